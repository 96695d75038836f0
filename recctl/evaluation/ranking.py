"""Batched full-ranking evaluation: every item is a candidate, the user's history is masked.

Scores come from the model contract (`score_all`: [batch, n_items]); masking and top-K run as
TensorFlow ops on whole batches of users, metrics in numpy on the top-K indexes. No Python loop
over users. The popularity baseline goes through the very same path.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from recctl.data.snapshot import CSR, Snapshot
from recctl.evaluation.metrics import RankingAccumulator, binary_logloss

ScoreFn = Callable[[np.ndarray], "tf.Tensor | np.ndarray"]


@tf.function(reduce_retracing=True)
def _mask_and_topk(scores, mask_rows, mask_items, k):
    scores = tf.cast(scores, tf.float32)
    index = tf.stack([mask_rows, mask_items], axis=1)
    fill = tf.fill(tf.shape(mask_rows), tf.constant(-np.inf, tf.float32))
    masked = tf.tensor_scatter_nd_update(scores, index, fill)
    k = tf.minimum(k, tf.shape(masked)[1])
    return masked, tf.math.top_k(masked, k=k, sorted=True).indices


@tf.function(reduce_retracing=True)
def _greater_equal_counts(masked, target_rows, target_items):
    """For each target: how many items of its row score above it, and how many tie with it."""
    row_scores = tf.gather(masked, target_rows)
    own = tf.gather_nd(masked, tf.stack([target_rows, target_items], axis=1))  # each target's own score
    greater = tf.reduce_sum(tf.cast(row_scores > own[:, None], tf.int32), axis=1)
    equal = tf.reduce_sum(tf.cast(row_scores == own[:, None], tf.int32), axis=1) - 1
    return greater, equal


def rank_users(
    score_fn: ScoreFn,
    users: np.ndarray,
    history: CSR,
    k: int,
    batch_size: int,
) -> np.ndarray:
    """Top-k item indexes [len(users), k] with each user's history masked."""
    out = []
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        h_rows, h_items = history.rows(batch)
        _, topk = _mask_and_topk(score_fn(batch), h_rows.astype(np.int32), h_items.astype(np.int32), k)
        out.append(topk.numpy())
    return np.concatenate(out) if out else np.zeros((0, k), np.int32)


def evaluate_split(
    score_fn: ScoreFn,
    snapshot: Snapshot,
    split: str,
    ks: list[int],
    names: list[str],
    batch_size: int,
    with_auc: bool = True,
) -> dict[str, float]:
    """Full-ranking metrics of `score_fn` on `split` (valid or test) of a snapshot."""
    targets = snapshot.csr(split)
    history = snapshot.history_for(split)
    users = np.flatnonzero(targets.row_lengths() > 0).astype(np.int32)
    acc = RankingAccumulator(ks, snapshot.n_items, names)
    kmax = max(ks)
    masked_per_user = history.row_lengths()
    targets_per_user = targets.row_lengths()
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        h_rows, h_items = history.rows(batch)
        t_rows, t_items = targets.rows(batch)
        masked, topk = _mask_and_topk(
            score_fn(batch), h_rows.astype(np.int32), h_items.astype(np.int32), kmax
        )
        acc.update(topk.numpy(), t_rows, t_items, len(batch))
        if with_auc:
            acc.update_auc(
                _batch_auc(
                    masked, batch, t_rows, t_items, masked_per_user, targets_per_user, snapshot.n_items
                )
            )
    return acc.result()


def _batch_auc(masked, batch, t_rows, t_items, masked_per_user, targets_per_user, n_items) -> np.ndarray:
    greater, equal = [], []
    for start in range(0, len(t_rows), 1024):
        g, e = _greater_equal_counts(
            masked,
            t_rows[start : start + 1024].astype(np.int32),
            t_items[start : start + 1024].astype(np.int32),
        )
        greater.append(g.numpy())
        equal.append(e.numpy())
    greater = np.concatenate(greater).astype(np.float64)
    equal = np.concatenate(equal).astype(np.float64)
    n_targets = targets_per_user[batch][t_rows].astype(np.float64)
    # other targets of the same user scored above this one are not negatives: rank targets per row
    own = greater  # position among all candidates; subtract the targets above it
    order = np.lexsort((own, t_rows))
    rank_in_row = np.empty(len(order), dtype=np.float64)
    starts = np.searchsorted(t_rows[order], t_rows[order], side="left")
    rank_in_row[order] = np.arange(len(order)) - starts
    negatives = n_items - masked_per_user[batch][t_rows] - n_targets
    neg_greater = np.maximum(greater - rank_in_row, 0)
    auc = np.where(negatives > 0, (negatives - neg_greater - 0.5 * equal) / np.maximum(negatives, 1), np.nan)
    per_user = np.bincount(t_rows, weights=np.nan_to_num(auc, nan=0.0), minlength=len(batch))
    counts = np.bincount(t_rows, minlength=len(batch))
    return per_user[counts > 0] / counts[counts > 0]


def pointwise_logloss(prob_fn, snapshot: Snapshot, split: str, negatives: int, seed: int) -> float:
    """Logloss on the split's positives plus `negatives` sampled unseen items per positive."""
    users, items = snapshot.pairs(split)
    if len(users) == 0:
        return float("nan")
    rng = np.random.default_rng(seed)
    seen = snapshot.csr("train", "valid", "test")
    seen_rows, seen_items = seen.rows(np.arange(snapshot.n_users))
    seen_codes = np.sort(seen_rows.astype(np.int64) * snapshot.n_items + seen_items)
    neg = rng.integers(0, snapshot.n_items, size=(len(users), negatives))
    for _ in range(5):  # resample the few negatives that hit a seen item
        codes = users[:, None].astype(np.int64) * snapshot.n_items + neg
        clash = np.isin(codes, seen_codes)
        if not clash.any():
            break
        neg[clash] = rng.integers(0, snapshot.n_items, size=int(clash.sum()))
    candidates = np.concatenate([items[:, None], neg], axis=1).astype(np.int32)
    labels = np.zeros_like(candidates, dtype=np.float32)
    labels[:, 0] = 1.0
    probs = []
    for start in range(0, len(users), 4096):
        probs.append(np.asarray(prob_fn(users[start : start + 4096], candidates[start : start + 4096])))
    return binary_logloss(labels.ravel(), np.concatenate(probs).ravel())
