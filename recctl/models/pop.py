"""Popularity: every user gets the items with the most training interactions.

Ties are broken by item index (the lower index first, as top-K returns it). Not trained: the
counts are copied from the training split by ``load_tables``. The baseline printed beside every
result is computed the same way.
"""

from __future__ import annotations

import keras
from keras import ops

from recctl.models.base import IdRecommender


@keras.saving.register_keras_serializable(package="recctl")
class Popularity(IdRecommender):
    needs_training = False
    data_tables = ("counts",)
    score_ties = "index"  # part of pop's definition: ties by item index, as documented
    cold_start = {"users": None}  # the same items for every user, history or not

    def __init__(self, n_users: int, n_items: int, **kwargs):
        super().__init__(n_users, n_items, **kwargs)
        self.counts = self.add_weight(
            shape=(self.n_items,), initializer="zeros", trainable=False, name="counts"
        )
        self.built = True

    def load_tables(self, tables):
        self.counts.assign(tables["item_popularity"])

    def call(self, inputs, training=False):
        return ops.take(self.counts, inputs["items"], axis=0)

    def score_all(self, users):
        batch = ops.shape(users)[0]
        return ops.broadcast_to(ops.expand_dims(self.counts, 0), (batch, self.n_items))
