"""The regularised bias model: r_hat(u, i) = mu + b_u + b_i, the rating task's baseline.

Koren, "Factor in the Neighbors" (TKDD 2010), section 2.1: the baseline estimates that every rating
model must beat, fitted by alternating least squares on the training ratings as surprise's
BaselineOnly does (reg_u=15, reg_i=10, 10 sweeps): each sweep sets every user's offset to the
shrunken mean of its residuals, b_u = sum(r - mu - b_i) / (reg_u + |I_u|), then every item's
likewise. It is to the rating task what pop is to ranking (`bias` in `evaluation.baselines`); it has
no epochs (fitted when built, like ease) and ranks a user's items by mu + b_u + b_i, i.e. by b_i.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from recctl.models.base import IdRecommender, check_positive


def fit_biases(users, items, ratings, n_users: int, n_items: int, reg_u: float, reg_i: float, sweeps: int):
    """(mu, b_u [n_users], b_i [n_items]) by alternating least squares (float64 sums)."""
    ratings = np.asarray(ratings, np.float64)
    mu = float(ratings.mean()) if len(ratings) else 0.0
    user_counts = np.bincount(users, minlength=n_users)
    item_counts = np.bincount(items, minlength=n_items)
    b_u, b_i = np.zeros(n_users), np.zeros(n_items)
    for _ in range(sweeps):
        b_u = np.bincount(users, ratings - mu - b_i[items], minlength=n_users) / (reg_u + user_counts)
        b_i = np.bincount(items, ratings - mu - b_u[users], minlength=n_items) / (reg_i + item_counts)
    return mu, b_u, b_i


@keras.saving.register_keras_serializable(package="recctl")
class BiasBaseline(IdRecommender):
    """Args:
    n_users, n_items: catalogue sizes (from the dataset).
    reg_u, reg_i: shrinkage of the user and item offsets towards 0 (surprise's defaults).
    sweeps: alternating least-squares sweeps (10 converge on ml-100k to the fourth decimal).
    """

    needs_training = False
    tasks = ("rating",)
    data_tables = ("user_offset", "item_offset", "global_bias")
    score_ties = "index"

    def __init__(
        self,
        n_users: int,
        n_items: int,
        reg_u: float = 15.0,
        reg_i: float = 10.0,
        sweeps: int = 10,
        task: str = "rating",
        loss: str = "mse",
        **kwargs,
    ):
        super().__init__(n_users, n_items, loss=loss, task=task, **kwargs)
        check_positive("reg_u", reg_u, allow_zero=True)
        check_positive("reg_i", reg_i, allow_zero=True)
        check_positive("sweeps", sweeps)
        self.reg_u, self.reg_i, self.sweeps = float(reg_u), float(reg_i), int(sweeps)
        self.user_offset = self.add_weight(
            shape=(self.n_users,), initializer="zeros", trainable=False, name="user_offset"
        )
        self.item_offset = self.add_weight(
            shape=(self.n_items,), initializer="zeros", trainable=False, name="item_offset"
        )
        self.built = True

    def load_tables(self, tables):
        ratings = tables.get("train_ratings")
        if ratings is None:
            return
        users, items = tables["train_pairs"]
        mu, b_u, b_i = fit_biases(
            users, items, ratings, self.n_users, self.n_items, self.reg_u, self.reg_i, self.sweeps
        )
        self.global_bias.assign(mu)
        self.user_offset.assign(b_u.astype(np.float32))
        self.item_offset.assign(b_i.astype(np.float32))

    def _user_offsets(self, users):
        # an unknown user (-1, serving) gets no offset
        known = ops.cast(users >= 0, self.user_offset.dtype)
        return ops.take(self.user_offset, ops.maximum(users, 0), axis=0) * known

    def call(self, inputs, training=False):
        users, items = inputs["user"], inputs["items"]
        scores = ops.take(self.item_offset, items, axis=0) + ops.expand_dims(self._user_offsets(users), -1)
        return self.task_output(scores)

    def score_all(self, users):
        scores = ops.expand_dims(self._user_offsets(users), -1) + ops.expand_dims(self.item_offset, 0)
        return self.task_output(scores)

    def get_config(self):
        config = super().get_config()
        config.update(reg_u=self.reg_u, reg_i=self.reg_i, sweeps=self.sweeps)
        return config
