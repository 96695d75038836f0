"""EASE (Steck, WWW 2019): a linear item-item autoencoder fitted in closed form, no epochs.

B = argmin ||X - XB||^2 + l2 ||B||^2 with diag(B) = 0, whose solution is P = (X^T X + l2 I)^-1,
B_ij = -P_ij / P_jj (B_jj = 0). A user's scores are x_u B. A strong simple baseline: on ml-100k it
beats most deep models (issue #15, BENCHMARKS.md). The dense item-item inverse costs O(n_items^3)
time and three n_items^2 float64 matrices of memory: refused with the figure where it will not fit.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from recctl.models.base import check_positive
from recctl.models.closed_form import ItemItemRecommender, check_dense_fits, item_cooccurrence


@keras.saving.register_keras_serializable(package="recctl")
class EASE(ItemItemRecommender):
    def __init__(self, n_users: int, n_items: int, l2: float = 250.0, **kwargs):
        check_positive("l2", l2)
        super().__init__(n_users, n_items, **kwargs)
        self.l2 = float(l2)

    def fit_item_weights(self, tables: dict[str, Any]) -> np.ndarray:
        check_dense_fits(
            "ease",
            self.n_items,
            self.n_items,
            3,
            "use model=item_knn, or filter rare items (dataset.min_item_interactions)",
        )
        gram = item_cooccurrence(tables, self.n_users, self.n_items)
        gram[np.diag_indices_from(gram)] += self.l2
        precision = np.linalg.inv(gram)
        weights = precision / -np.diag(precision)[None, :]
        weights[np.diag_indices_from(weights)] = 0.0
        return weights

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "l2": self.l2}
