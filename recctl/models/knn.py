"""Neighbourhood collaborative filtering, fitted without epochs (issue #15): item-kNN (Sarwar et
al., WWW 2001) and user-kNN (Herlocker et al., SIGIR 1999) over the training split's implicit
interactions.

- `ItemKNN`: item i's score for a user is the sum of its similarities to the items in the user's
  history, counting only i's `neighbours` most similar items.
- `UserKNN`: the user's `neighbours` most similar training users vote for their items, each vote
  weighted by that user's similarity. The model holds the training user-item matrix, so its export
  carries every user's training history (docs/export.md). A training user's own row is one of their
  neighbours (it votes only for items they have seen, which every top-K leaves out): scoring then
  needs nothing but the history, so evaluation, `recommend` and every export give the same top-K.

Similarity between two binary vectors with c common entries and a and b entries each, out of n:
cosine c / (sqrt(a b) + shrink), jaccard c / (a + b - c + shrink), pearson
(c - a b / n) / (sqrt(a (1 - a/n) b (1 - b/n)) + shrink). `shrink` damps similarities resting on
few interactions.
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from recctl.models.base import UserVectorRecommender, check_choice, check_positive
from recctl.models.closed_form import (
    ItemItemRecommender,
    check_dense_fits,
    item_cooccurrence,
    training_matrix_chunks,
)

SIMILARITIES = ("cosine", "pearson", "jaccard")


def similarity(common, a, b, n, kind: str, shrink: float):
    """Elementwise similarity from co-occurrence counts (numpy arrays or keras tensors broadcast)."""
    sqrt = np.sqrt if isinstance(common, np.ndarray) else ops.sqrt
    if kind == "cosine":
        return common / (sqrt(a * b) + shrink + 1e-12)
    if kind == "jaccard":
        return common / (a + b - common + shrink + 1e-12)
    spread = sqrt(a * (1 - a / n) * b * (1 - b / n))
    return (common - a * b / n) / (spread + shrink + 1e-12)


class Neighbourhood:
    """The settings both kNN families take, checked and saved the same way."""

    def set_neighbourhood(self, similarity: str, neighbours: int, shrink: float) -> None:
        if isinstance(neighbours, bool) or not isinstance(neighbours, int) or neighbours < 1:
            raise ValueError(f"neighbours should be a positive integer. Received: neighbours={neighbours!r}")
        check_choice("similarity", similarity, SIMILARITIES)
        check_positive("shrink", shrink, allow_zero=True)
        self.similarity, self.neighbours, self.shrink = similarity, neighbours, float(shrink)

    def neighbourhood_config(self) -> dict[str, Any]:
        return {"similarity": self.similarity, "neighbours": self.neighbours, "shrink": self.shrink}


@keras.saving.register_keras_serializable(package="recctl")
class ItemKNN(Neighbourhood, ItemItemRecommender):
    def __init__(
        self,
        n_users: int,
        n_items: int,
        similarity: str = "cosine",
        neighbours: int = 100,
        shrink: float = 0.0,
        **kwargs,
    ):
        super().__init__(n_users, n_items, **kwargs)
        self.set_neighbourhood(similarity, neighbours, shrink)

    def fit_item_weights(self, tables: dict[str, Any]) -> np.ndarray:
        check_dense_fits(
            "item_knn", self.n_items, self.n_items, 3, "filter rare items (dataset.min_item_interactions)"
        )
        gram = item_cooccurrence(tables, self.n_users, self.n_items)
        counts = np.diag(gram).copy()
        sims = similarity(gram, counts[:, None], counts[None, :], self.n_users, self.similarity, self.shrink)
        sims = np.nan_to_num(sims, nan=0.0, posinf=0.0, neginf=0.0)
        np.fill_diagonal(sims, 0.0)
        k = min(self.neighbours, self.n_items - 1)
        if k < self.n_items - 1:  # column i keeps its k most similar items j
            cut = np.argpartition(-sims, k, axis=0)[k:]
            np.put_along_axis(sims, cut, 0.0, axis=0)
        return sims

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self.neighbourhood_config()}


@keras.saving.register_keras_serializable(package="recctl")
class UserKNN(Neighbourhood, UserVectorRecommender):
    needs_training: ClassVar[bool] = False
    data_tables: ClassVar[tuple[str, ...]] = ("train_matrix",)
    interaction_tables: ClassVar[tuple[str, ...]] = ("train_matrix",)  # every user's items
    jit_compile_default: ClassVar[bool] = False

    def __init__(
        self,
        n_users: int,
        n_items: int,
        similarity: str = "cosine",
        neighbours: int = 50,
        shrink: float = 0.0,
        **kwargs,
    ):
        super().__init__(n_users, n_items, **kwargs)
        self.set_neighbourhood(similarity, neighbours, shrink)
        self.train_matrix = self.add_weight(
            shape=(self.n_users, self.n_items), initializer="zeros", trainable=False, name="train_matrix"
        )
        self.built = True

    def load_tables(self, tables: dict[str, Any]) -> None:
        check_dense_fits("user_knn", self.n_users, self.n_items, 0.5, "use model=item_knn or model=ease")
        self.train_matrix.assign(
            np.concatenate(list(training_matrix_chunks(tables, self.n_users, self.n_items))).astype(
                np.float32
            )
        )

    def call(self, inputs, training=False):
        vector = ops.cast(inputs["vector"], "float32")
        common = ops.matmul(vector, ops.transpose(self.train_matrix))  # [B, n_users]
        own = ops.sum(vector, axis=1, keepdims=True)
        theirs = ops.expand_dims(ops.sum(self.train_matrix, axis=1), 0)
        sims = similarity(common, own, theirs, float(self.n_items), self.similarity, self.shrink)
        sims = ops.where(theirs > 0, sims, 0.0)
        k = min(self.neighbours, self.n_users)
        kth = ops.min(ops.top_k(sims, k=k)[0], axis=1, keepdims=True)
        votes = ops.where((sims >= kth) & (sims > 0), sims, 0.0)
        return ops.matmul(votes, self.train_matrix)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self.neighbourhood_config()}
