"""What the models fitted in closed form share (EASE, item-kNN; issue #15): no epochs, a fit from
the training split when the model is built, and an item-item matrix held as a non-trainable weight,
so the `.keras` file and every export carry the fitted model.

They are user-vector models: a user is scored from the multi-hot vector of their history, as
`context_from_history` builds it (at validation the training items, at test training + validation,
in an export whatever history the request sends), times the item-item matrix.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
from keras import ops

from recctl.models.base import UserVectorRecommender


def available_memory_bytes() -> int | None:
    """Physical memory free now (Linux, macOS); None where the system does not say."""
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_dense_fits(family: str, rows: int, columns: int, copies: float, hint: str) -> None:
    """Refuse, before allocating, a dense float64 fit that would not fit in the memory free now."""
    needed = rows * columns * 8 * copies
    free = available_memory_bytes()
    if free is not None and needed > 0.8 * free:
        from recctl.errors import ConfigError

        raise ConfigError(
            f"model={family} needs dense {rows:,} x {columns:,} matrices for this catalogue: about "
            f"{needed / 2**30:.1f} GiB of memory, and {free / 2**30:.1f} GiB is free; {hint}"
        )


def training_matrix_chunks(tables: dict[str, Any], n_users: int, n_items: int, chunk: int = 2048):
    """The training split's user-item matrix, a dense float64 block of up to `chunk` users at a time
    (the whole matrix is never held: a block is users x items)."""
    users, items = tables["train_pairs"]
    order = np.argsort(users, kind="stable")
    users, items = users[order], items[order]
    for start in range(0, n_users, chunk):
        lo, hi = np.searchsorted(users, [start, start + chunk])
        block = np.zeros((min(chunk, n_users - start), n_items), np.float64)
        block[users[lo:hi] - start, items[lo:hi]] = 1.0
        yield block


def item_cooccurrence(tables: dict[str, Any], n_users: int, n_items: int) -> np.ndarray:
    """G = X^T X over the training split (float64): co-occurrence counts, item counts on the diagonal."""
    gram = np.zeros((n_items, n_items), np.float64)
    for block in training_matrix_chunks(tables, n_users, n_items):
        gram += block.T @ block
    return gram


class ItemItemRecommender(UserVectorRecommender):
    """Scores = the user's interaction vector x the fitted item-item matrix W [n_items, n_items]."""

    needs_training: ClassVar[bool] = False
    data_tables: ClassVar[tuple[str, ...]] = ("item_weights",)
    jit_compile_default: ClassVar[bool] = False

    def __init__(self, n_users: int, n_items: int, **kwargs):
        super().__init__(n_users, n_items, **kwargs)
        self.item_weights = self.add_weight(
            shape=(self.n_items, self.n_items), initializer="zeros", trainable=False, name="item_weights"
        )
        self.built = True

    def fit_item_weights(self, tables: dict[str, Any]) -> np.ndarray:
        """W from the training split; row j, column i: how much having j raises i's score."""
        raise NotImplementedError

    def load_tables(self, tables: dict[str, Any]) -> None:
        self.item_weights.assign(self.fit_item_weights(tables).astype(np.float32))

    def call(self, inputs, training=False):
        return ops.matmul(ops.cast(inputs["vector"], "float32"), self.item_weights)
