"""Recurrent next-item model over the user's item history: LSTM cells, or GRU cells (GRU4Rec).

Hidasi et al., "Session-based Recommendations with Recurrent Neural Networks" (GRU4Rec, ICLR 2016):
the items seen so far are embedded and fed through a recurrent network; its output at each step is
the state that scores the next item. Here the output is projected to the item-embedding size and
scored by dot product with the item vectors (one table for input and output, as RecBole's GRU4Rec),
trained seq2seq: every position of a window of `max_length` items predicts the item after it, with
a sampled softmax over the positive and `num_negatives` uniform negatives.
Differences from the paper: user histories instead of sessions, windows of the last `max_length`
items instead of session-parallel mini-batches (a window starts from a zero state); sampled softmax
with uniform negatives instead of TOP1/BPR over in-batch negatives; LSTM cells by default (the
paper's GRU with `cell="gru"`); left padding is masked, so padding never changes the state; an
optional per-item output bias starting from log popularity (`popularity_prior`).

    model = RecurrentRecommender(n_users=943, n_items=1682, cell="gru")
    history = keras.ops.array([[0, 0, 5, 9, 2]])       # item index + 1, left-padded, most recent last
    scores = model.score_all({"history": history, "user": keras.ops.array([-1])})   # [1, 1682]
"""

from __future__ import annotations

import keras
from keras import layers, ops

from recctl.models.base import (
    IdAxis,
    PopularityPrior,
    SequenceRecommender,
    check_choice,
    check_positive,
    check_rate,
)

CELLS = ("lstm", "gru")


@keras.saving.register_keras_serializable(package="recctl")
class RecurrentRecommender(PopularityPrior, SequenceRecommender):
    """XLA is off by default for this family: on CPU a jit-compiled ml-100k epoch took 3x as long
    (24.1 s vs 7.8 s, 5 epochs each); the recurrent encoder alone ran about 4x slower.

    Args:
    n_users, n_items: catalogue sizes (from the dataset; the user itself is not used).
    max_length: window length in training and the number of recent items scored on.
    num_negatives: uniform negatives per position in the sampled softmax.
    embedding_dim: size of the item vectors (input and output: one shared table).
    cell: "lstm" or "gru" (GRU4Rec).
    hidden_units: size of the recurrent state.
    num_layers: stacked recurrent layers.
    dropout: dropout rate on the input embeddings and on the recurrent outputs.
    popularity_prior: add log(1 + training count) of each item to its score (a fixed table set by
        `load_tables`), so training starts from popularity and learns the rest.
    init_std: standard deviation of the item vectors' normal initialiser.
    """

    training_mode = "seq2seq"
    jit_compile_default = False
    dense_candidate_scoring = True  # measured: 2-3x faster training steps on ml-100k-sized catalogues

    def __init__(
        self,
        n_users: int,
        n_items: int,
        max_length: int = 10,
        num_negatives: int = 128,
        embedding_dim: int = 64,
        cell: str = "lstm",
        hidden_units: int = 128,
        num_layers: int = 1,
        dropout: float = 0.2,
        popularity_prior: bool = True,
        init_std: float = 0.2,
        **kwargs,
    ):
        super().__init__(n_users, n_items, max_length=max_length, num_negatives=num_negatives, **kwargs)
        check_positive("embedding_dim", embedding_dim)
        check_choice("cell", cell, CELLS)
        check_positive("hidden_units", hidden_units)
        check_positive("num_layers", num_layers)
        check_rate("dropout", dropout)
        check_positive("init_std", init_std)
        self.embedding_dim = int(embedding_dim)
        self.cell = str(cell)
        self.hidden_units = int(hidden_units)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.popularity_prior = bool(popularity_prior)
        self.init_std = float(init_std)

        self.item_embedding = layers.Embedding(
            self.n_items + 1,
            self.embedding_dim,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=self.init_std),
            name="item_embedding",
        )
        rnn = layers.LSTM if self.cell == "lstm" else layers.GRU
        self.recurrent = [
            rnn(self.hidden_units, return_sequences=True, name=f"{self.cell}_{j}")
            for j in range(self.num_layers)
        ]
        self.input_dropout = layers.Dropout(self.dropout)
        self.output_dropout = layers.Dropout(self.dropout)
        self.projection = layers.Dense(self.embedding_dim, name="projection")
        self.add_item_bias()
        self.item_embedding.build((None,))
        width = self.embedding_dim
        for layer in self.recurrent:
            layer.build((None, None, width))
            width = self.hidden_units
        self.projection.build((None, None, self.hidden_units))
        # Candidate scores from one [positions, items] matmul when the catalogue is small next to the
        # candidates: gathering [B, L, 1 + neg, d] vectors and its sparse gradient cost more on CPU.
        self.built = True

    def id_axes(self):
        return {  # item tokens: row 0 is padding
            "item_embedding/embeddings": IdAxis("item", leading=1),
            "item_bias": IdAxis("item", leading=1),
        }

    def encode(self, history, user=None, training=False):
        mask = ops.greater(history, 0)
        x = self.input_dropout(self.item_embedding(history), training=training)
        for layer in self.recurrent:
            x = layer(x, mask=mask, training=training)
        return self.projection(self.output_dropout(x, training=training))  # [B, L, d]

    def get_config(self):
        config = super().get_config()
        config.update(
            embedding_dim=self.embedding_dim,
            cell=self.cell,
            hidden_units=self.hidden_units,
            num_layers=self.num_layers,
            dropout=self.dropout,
            popularity_prior=self.popularity_prior,
            init_std=self.init_std,
        )
        return config
