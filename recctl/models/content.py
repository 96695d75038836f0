"""A content model: item embeddings computed from item content only, so items nobody has
interacted with yet are scored like any other (issue #17, part 2; `dataset.split=cold_items`).

Each item's content is one fixed vector (`item_content`, a data table set by `load_tables`): its
numeric side features as they are (ml-100k: the 19 genre flags), a one-hot of every categorical
side feature (ml-100k: the release decade; code 0 = unknown has its own column), and a bag of the
words of its title (lower-cased letter/digit tokens; the `title_words` words found in the most
titles and in at least `min_word_items` of them, weighted 1/sqrt(words in the title)). Every other
text column of `dataset.item_features` is a categorical feature already (data/transform.py), so
it enters through its one-hot. An MLP encoder maps content to an embedding,
``E = encoder(item_content)`` [n_items, embedding_dim], with no id input anywhere: two items with
the same content have the same embedding.

A user is the mean of their history items' embeddings, and every candidate is scored by
``score(u, i) = mean_{h in history(u)} E_h . E_i + b(content_i)``, where b is a linear term on the
content (`content_bias`: the popularity of content, what `feature_pop` ranks by, learnt jointly).

Why the encoder is trained on co-consumption, not to reconstruct the content: an autoencoder of
the content vector alone puts items close whose features are costly to reconstruct together,
whatever users do with them (a title word shared by two films counts as much as a genre), and
needs a second choice of which similarity to score with. Here the encoder is trained for the very
score it is used with: each step drops a share `dropout` of every user's training items from the
input (the denoising corruption of Mult-DAE), and the multinomial likelihood of the dropped items
under a softmax over the catalogue is maximised, given the mean embedding of the kept ones.
So the content features that predict what the same users consume are the ones the embedding
keeps, and at test a history predicts items it does not contain, as in training. The softmax is
over the items with training interactions only: the cold items would be in it as items nobody
chose, and the encoder would learn to push their content down.

The training examples are the user-vector kind's (each user's multi-hot training row, input and
target); the loss is computed in `call` from that row (`add_loss`), so the compiled loss is zero.
Each pipeline batch is split into `micro_batch_size` users per update, as in Mult-VAE
(autoencoder.py: the user-vector pipeline yields one example per user).

Cost: the encoder runs over the whole catalogue every step ([n_items, width] activations) and the
content table is dense [n_items, n_numeric + sum(vocabularies) + title_words], both fine for
catalogues of some 10^4 items, not 10^6.

Measured (BENCHMARKS.md, "Cold start"): ml-100k cold_items test NDCG@10 0.4034 against
feature_pop's 0.2744 (paired lift 1.47x, 1.38-1.56); without title words 0.3046. Not done yet:
blending with a collaborative run (`model.blend`, issue #17).

    model = ContentModel(n_users=943, n_items=1682, item_categorical=[11], item_numeric=19)
    scores = model.score_all({"vector": multi_hot})   # [batch, 1682]
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

import keras
import numpy as np
from keras import layers, ops

from recctl.models.autoencoder import MicroBatchSteps
from recctl.models.base import UserVectorRecommender, check_positive, check_rate

_WORD = re.compile(r"[^\W_]+")


def title_tokens(title: Any) -> list[str]:
    """The distinct lower-cased letter/digit tokens of a title, in order of first appearance."""
    if title is None or (isinstance(title, float) and np.isnan(title)):
        return []
    return list(dict.fromkeys(_WORD.findall(str(title).lower())))


def title_vocabulary(titles: Sequence[Any], size: int, min_items: int) -> list[str]:
    """The `size` words found in the most titles (ties: alphabetical), each in >= `min_items` titles."""
    counts = Counter(word for title in titles for word in title_tokens(title))
    ranked = sorted((w for w, n in counts.items() if n >= min_items), key=lambda w: (-counts[w], w))
    return ranked[:size]


def title_bags(titles: Sequence[Any], vocabulary: list[str], width: int) -> np.ndarray:
    """[n, width] float32: 1/sqrt(k) on each of a title's k vocabulary words (0 elsewhere)."""
    column = {word: j for j, word in enumerate(vocabulary)}
    out = np.zeros((len(titles), width), np.float32)
    for row, title in enumerate(titles):
        hits = [column[w] for w in title_tokens(title) if w in column]
        if hits:
            out[row, hits] = 1.0 / np.sqrt(len(hits))
    return out


@keras.saving.register_keras_serializable(package="recctl")
class ContentModel(MicroBatchSteps, UserVectorRecommender):
    """Item embeddings from content only; a user is the mean embedding of their history.

    Args:
    n_users, n_items: catalogue sizes (from the dataset).
    item_categorical: vocabulary size of each categorical item feature (code 0 = unknown), and
    item_numeric: number of numeric item features, both from the dataset.
    title_words: size of the title vocabulary (0: titles are not used).
    min_word_items: a word enters the vocabulary only if at least this many titles have it.
    embedding_dim: size of the content embedding.
    hidden_units: widths of the encoder's relu layers before the linear embedding layer ([]: linear).
    dropout: share of a user's training items dropped from the input each step (their likelihood is
        what is maximised).
    content_bias: add a linear term on the content to every score (the learnt popularity of content).
    l2: L2 penalty on the encoder's kernels.
    micro_batch_size: users per optimizer update (each pipeline batch is split; 0 = one per batch).
    """

    data_tables: ClassVar[tuple[str, ...]] = ("item_content", "item_trained")
    # Items are scored from content, so an item without interactions needs nothing trained for it;
    # a user is scored from their history, so cold users are not.
    cold_start: ClassVar[dict[str, str | None]] = {"items": None}
    # XLA on: ml-100k cold_items, 34 epochs, fit 29.9 s with it, 43.7 s and 43.5 s without (2 shared
    # cores, so a rough figure; quality the same: test NDCG@10 0.4006 vs 0.4034)
    jit_compile_default: ClassVar[bool] = True

    def __init__(
        self,
        n_users: int,
        n_items: int,
        item_categorical: Sequence[int] = (),
        item_numeric: int = 0,
        title_words: int = 200,
        min_word_items: int = 10,
        embedding_dim: int = 64,
        hidden_units: Sequence[int] = (256,),
        dropout: float = 0.5,
        content_bias: bool = True,
        l2: float = 0.0,
        micro_batch_size: int = 32,
        **kwargs,
    ):
        super().__init__(n_users, n_items, **kwargs)
        if isinstance(hidden_units, (str, bytes)):
            raise ValueError(f"hidden_units should be a list of layer widths. Received: {hidden_units!r}")
        for width in hidden_units:
            check_positive("hidden_units[*]", width)
        check_positive("title_words", title_words, allow_zero=True)
        check_positive("min_word_items", min_word_items)
        check_positive("embedding_dim", embedding_dim)
        check_rate("dropout", dropout)
        check_positive("l2", l2, allow_zero=True)
        check_positive("micro_batch_size", micro_batch_size, allow_zero=True)
        self.item_categorical = [int(v) for v in item_categorical]
        self.item_numeric = int(item_numeric)
        self.title_words = int(title_words)
        self.min_word_items = int(min_word_items)
        self.embedding_dim = int(embedding_dim)
        self.hidden_units = [int(v) for v in hidden_units]
        self.dropout = float(dropout)
        self.content_bias = bool(content_bias)
        self.l2 = float(l2)
        self.micro_batch_size = int(micro_batch_size)
        # at least one column, so a model can be built before the data is known (check_model)
        self.content_width = max(self.item_numeric + sum(self.item_categorical) + self.title_words, 1)

        self.item_content = self.add_weight(
            shape=(self.n_items, self.content_width),
            initializer="zeros",
            trainable=False,
            name="item_content",
        )
        # 1 for items with training interactions: the training softmax is over these only (below)
        self.item_trained = self.add_weight(
            shape=(self.n_items,), initializer="ones", trainable=False, name="item_trained"
        )
        regularizer = keras.regularizers.L2(self.l2) if self.l2 > 0 else None
        self.encoder_layers = [
            layers.Dense(w, activation="relu", kernel_regularizer=regularizer, name=f"encoder_{j}")
            for j, w in enumerate(self.hidden_units)
        ]
        self.encoder_layers.append(
            layers.Dense(self.embedding_dim, kernel_regularizer=regularizer, name="embedding")
        )
        width = self.content_width
        for layer in self.encoder_layers:
            layer.build((None, width))
            width = layer.units
        self.bias_layer = None
        if self.content_bias:
            self.bias_layer = layers.Dense(1, kernel_initializer="zeros", name="content_bias")
            self.bias_layer.build((None, self.content_width))
        self.seed_generator = keras.random.SeedGenerator()
        self.built = True

    # -- data
    def content_table(self, tables: dict[str, Any]) -> np.ndarray:
        """[n_items, content_width]: numeric features, one-hot categories, title word bags."""
        blocks = []
        if self.item_numeric:
            blocks.append(np.asarray(tables["item_numeric"], np.float32).reshape(self.n_items, -1))
        codes = np.asarray(tables.get("item_categorical", np.zeros((self.n_items, 0))), np.int64)
        for j, vocab in enumerate(self.item_categorical):
            block = np.zeros((self.n_items, vocab), np.float32)
            block[np.arange(self.n_items), np.clip(codes[:, j], 0, vocab - 1)] = 1.0
            blocks.append(block)
        if self.title_words:
            titles = tables.get("item_titles")
            titles = [""] * self.n_items if titles is None else list(titles)
            vocabulary = title_vocabulary(titles, self.title_words, self.min_word_items)
            blocks.append(title_bags(titles, vocabulary, self.title_words))
        table = np.concatenate(blocks, axis=1) if blocks else np.zeros((self.n_items, 0), np.float32)
        return np.pad(table, ((0, 0), (0, self.content_width - table.shape[1]))).astype(np.float32)

    def load_tables(self, tables: dict[str, Any]) -> None:
        table = self.content_table(tables)
        if not (table != 0).any():
            from recctl.errors import ConfigError

            raise ConfigError(
                "model=content: the items have no content (no item features, and no title word in "
                "model.min_word_items titles or more): set dataset.item_features, or choose another family"
            )
        self.item_content.assign(table)
        if tables.get("item_popularity") is not None:
            self.item_trained.assign((np.asarray(tables["item_popularity"]) > 0).astype(np.float32))

    # -- scoring
    def item_embeddings(self):
        """E [n_items, embedding_dim]: every item's content embedding (the space explanations use)."""
        hidden = ops.cast(self.item_content, "float32")
        for layer in self.encoder_layers:
            hidden = layer(hidden)
        return hidden

    def _scores(self, vector, embeddings):
        vector = ops.cast(vector, embeddings.dtype)
        count = ops.maximum(ops.sum(vector, axis=-1, keepdims=True), 1.0)
        user = ops.matmul(vector, embeddings) / count  # [B, d]: the history's mean embedding
        scores = ops.matmul(user, ops.transpose(embeddings))
        if self.bias_layer is not None:
            bias = ops.squeeze(self.bias_layer(ops.cast(self.item_content, embeddings.dtype)), -1)
            scores = scores + ops.expand_dims(bias, 0)
        return scores

    def call(self, inputs, training=False):
        vector = ops.cast(inputs["vector"], "float32")
        embeddings = self.item_embeddings()
        if not training or self.dropout == 0:
            return self._scores(vector, embeddings)
        draw = keras.random.uniform(ops.shape(vector), seed=self.seed_generator)
        kept = vector * ops.cast(draw >= self.dropout, vector.dtype)
        held_out = vector - kept
        logits = self._scores(kept, embeddings)
        # items without training interactions (the cold ones) are left out of the softmax: as
        # never-chosen items they would teach the encoder to push their content down
        masked = ops.where(ops.expand_dims(self.item_trained, 0) > 0, logits, -1e9)
        nll = -ops.sum(held_out * ops.log_softmax(masked, axis=-1), axis=-1)
        self.add_loss(ops.mean(nll))
        return logits

    def training_loss(self) -> keras.losses.Loss:
        return NoLoss()

    def get_config(self):
        config = super().get_config()
        config.update(
            item_categorical=self.item_categorical,
            item_numeric=self.item_numeric,
            title_words=self.title_words,
            min_word_items=self.min_word_items,
            embedding_dim=self.embedding_dim,
            hidden_units=self.hidden_units,
            dropout=self.dropout,
            content_bias=self.content_bias,
            l2=self.l2,
            micro_batch_size=self.micro_batch_size,
        )
        return config


@keras.saving.register_keras_serializable(package="recctl")
class NoLoss(keras.losses.Loss):
    """Zero: the content model adds its likelihood in `call` (it needs the input's corruption)."""

    def __init__(self, name="no_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return ops.sum(ops.zeros_like(y_pred), axis=-1)
