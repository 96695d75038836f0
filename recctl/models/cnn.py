"""Caser: convolutional sequence embedding over the user's last L items.

Tang & Wang, "Personalized Top-N Sequential Recommendation via Convolutional Sequence Embedding"
(WSDM 2018): the embeddings of the user's last L items form an L x d "image"; horizontal filters of
heights 1..L (ReLU, max-pooled over time) capture union-level and skip patterns, vertical filters
(L x 1, a learned weighted sum of the L rows) point-level ones. Both are concatenated, passed through
a dense layer (ReLU) to z, and [z; P_u] (P_u the user's embedding) is scored by dot product with
the output item vectors (2 x embedding_dim wide) plus a per-item bias, as in the paper.
Differences from the paper: one target per example (T = 1, the next item) with a sampled softmax
over it and `num_negatives` uniform negatives instead of binary cross-entropy on T targets and 3
negatives; an extra user row for unknown users (index -1, e.g. serving a history only), trained by
replacing the user with it in a `user_dropout` share of the training examples; padding rows (users
with fewer than L items) are zero vectors; the item bias may start from log popularity.

    model = Caser(n_users=943, n_items=1682, max_length=5)
    history = keras.ops.array([[0, 0, 5, 9, 2]])       # item index + 1, left-padded, most recent last
    scores = model.score_all({"history": history, "user": keras.ops.array([3])})   # [1, 1682]
"""

from __future__ import annotations

import keras
from keras import layers, ops

from recctl.models.base import IdAxis, PopularityPrior, SequenceRecommender, check_positive, check_rate


@keras.saving.register_keras_serializable(package="recctl")
class Caser(PopularityPrior, SequenceRecommender):
    """XLA is off by default for this family: on CPU a jit-compiled ml-100k epoch took 3.6x as long
    (18.2 s vs 5.1 s, 5 epochs each); the convolutional encoder alone ran about 8x slower.

    Args:
    n_users, n_items: catalogue sizes (from the dataset).
    max_length: L, how many recent items the convolutions see.
    num_negatives: uniform negatives per example in the sampled softmax.
    embedding_dim: d, size of the input item vectors and of the user vectors (output vectors: 2d).
    num_horizontal: horizontal filters per height (1..L): the paper's n_h.
    num_vertical: vertical filters: the paper's n_v.
    dropout: dropout rate on the concatenated convolution features.
    user_dropout: share of training examples whose user is replaced by the unknown-user row.
    popularity_prior: add log(1 + training count) of each item to its score (a fixed table set by
        `load_tables`), so training starts from popularity and learns the rest.
    seed: seed of the user-dropout draws.
    """

    training_mode = "prefix"
    jit_compile_default = False
    dense_candidate_scoring = True  # measured: 2-3x faster training steps on ml-100k-sized catalogues

    def __init__(
        self,
        n_users: int,
        n_items: int,
        max_length: int = 5,
        num_negatives: int = 128,
        embedding_dim: int = 64,
        num_horizontal: int = 16,
        num_vertical: int = 4,
        dropout: float = 0.5,
        user_dropout: float = 0.1,
        popularity_prior: bool = True,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(n_users, n_items, max_length=max_length, num_negatives=num_negatives, **kwargs)
        check_positive("embedding_dim", embedding_dim)
        check_positive("num_horizontal", num_horizontal)
        check_positive("num_vertical", num_vertical)
        check_rate("dropout", dropout)
        check_rate("user_dropout", user_dropout)
        self.embedding_dim = int(embedding_dim)
        self.num_horizontal = int(num_horizontal)
        self.num_vertical = int(num_vertical)
        self.dropout = float(dropout)
        self.user_dropout = float(user_dropout)
        self.popularity_prior = bool(popularity_prior)
        self.seed = seed

        d, length = self.embedding_dim, self.max_length
        self.input_embedding = layers.Embedding(
            self.n_items + 1,
            d,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0 / d),
            name="input_embedding",
        )
        self.user_embedding = layers.Embedding(
            self.n_users + 1,
            d,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0 / d),
            name="user_embedding",
        )
        # output vectors, scored against [z; P_u]
        self.item_embedding = layers.Embedding(
            self.n_items + 1,
            2 * d,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0 / (2 * d)),
            name="item_embedding",
        )
        self.add_item_bias()
        self.horizontal = [
            layers.Conv1D(self.num_horizontal, h, activation="relu", name=f"horizontal_{h}")
            for h in range(1, length + 1)
        ]
        # a vertical filter is an L x 1 kernel sliding over the d columns: a weighted sum of the L rows
        self.vertical = layers.Dense(self.num_vertical, use_bias=True, name="vertical")
        self.feature_dropout = layers.Dropout(self.dropout)
        self.hidden = layers.Dense(d, activation="relu", name="hidden")
        self.seed_generator = keras.random.SeedGenerator(seed)
        # Candidate scores from one [B, items] matmul when the catalogue is small next to the candidates:
        # gathering [B, 1 + neg, 2d] vectors and its sparse gradient cost more on CPU.

        for layer in (self.input_embedding, self.user_embedding, self.item_embedding):
            layer.build((None,))
        for conv in self.horizontal:
            conv.build((None, length, d))
        self.vertical.build((None, d, length))
        self.hidden.build((None, self.num_vertical * d + self.num_horizontal * length))
        self.built = True

    def id_axes(self):
        return {  # item tokens: row 0 is padding; users: the last row is the unknown user
            "input_embedding/embeddings": IdAxis("item", leading=1),
            "item_embedding/embeddings": IdAxis("item", leading=1),
            "item_bias": IdAxis("item", leading=1),
            "user_embedding/embeddings": IdAxis("user", trailing=1),
        }

    def _last_items(self, history):
        """The last L tokens, left-padded with 0 when the input is shorter."""
        length = history.shape[1]
        if length is not None and length > self.max_length:
            history = history[:, -self.max_length :]
        elif length is not None and length < self.max_length:
            history = ops.pad(history, [[0, 0], [self.max_length - length, 0]])
        return history

    def _user_rows(self, user, batch, training):
        """User index per example, -1 (unknown) mapped to the extra last row."""
        if user is None:
            user = ops.full((batch,), -1, dtype="int32")
        user = ops.cast(user, "int32")
        unknown = ops.less(user, 0)
        if training and self.user_dropout > 0:
            draw = keras.random.uniform(ops.shape(user), seed=self.seed_generator)
            unknown = ops.logical_or(unknown, ops.less(draw, self.user_dropout))
        return ops.where(unknown, self.n_users, user)

    def encode(self, history, user=None, training=False):
        history = self._last_items(history)
        e = self.input_embedding(history)
        e = e * ops.expand_dims(
            ops.cast(ops.greater(history, 0), e.dtype), -1
        )  # [B, L, d], padding rows zero
        out_h = [ops.max(conv(e), axis=1) for conv in self.horizontal]  # L x [B, n_h]
        out_v = self.vertical(ops.transpose(e, (0, 2, 1)))  # [B, d, n_v]
        batch = ops.shape(e)[0]
        features = ops.concatenate([ops.reshape(out_v, (batch, -1)), *out_h], axis=-1)
        z = self.hidden(self.feature_dropout(features, training=training))  # [B, d]
        p_u = self.user_embedding(self._user_rows(user, batch, training))
        return ops.concatenate([z, p_u], axis=-1)  # [B, 2d]

    def get_config(self):
        config = super().get_config()
        config.update(
            embedding_dim=self.embedding_dim,
            num_horizontal=self.num_horizontal,
            num_vertical=self.num_vertical,
            dropout=self.dropout,
            user_dropout=self.user_dropout,
            popularity_prior=self.popularity_prior,
            seed=self.seed,
        )
        return config
