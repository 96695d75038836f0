"""Batched full-ranking evaluation: every item is a candidate, the user's history is masked.

Scores come from the model contract (`score_all`: [batch, n_items]); masking and top-K run as
TensorFlow ops on whole batches of users, metrics in numpy on the top-K indexes. No Python loop
over users. The popularity baseline goes through the very same path.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from recctl import console
from recctl.data.snapshot import CSR, Snapshot
from recctl.evaluation.metrics import RankingAccumulator, binary_logloss
from recctl.evaluation.uncertainty import PerUser

ScoreFn = Callable[[np.ndarray], "tf.Tensor | np.ndarray"]


@tf.function(reduce_retracing=True)
def _mask(scores, mask_rows, mask_items):
    scores = tf.cast(scores, tf.float32)
    index = tf.stack([mask_rows, mask_items], axis=1)
    fill = tf.fill(tf.shape(mask_rows), tf.constant(-np.inf, tf.float32))
    return tf.tensor_scatter_nd_update(scores, index, fill)


@tf.function(reduce_retracing=True)
def _mask_and_topk(scores, mask_rows, mask_items, k):
    """Top-k with exact score ties going to the lowest item index (tf.math.top_k's rule)."""
    masked = _mask(scores, mask_rows, mask_items)
    k = tf.minimum(k, tf.shape(masked)[1])
    return masked, tf.math.top_k(masked, k=k, sorted=True).indices


@tf.function(reduce_retracing=True)
def _mask_and_topk_shuffled_ties(scores, mask_rows, mask_items, k, order, shifts):
    """Top-k with exact score ties broken in a pseudo-random item order of each user's own: row b
    visits the items as order[(j + shifts[b]) % n]. top_k keeps the first of tied columns, so
    reading the columns in that order breaks ties by it; untied scores rank as before."""
    masked = _mask(scores, mask_rows, mask_items)
    n = tf.shape(masked)[1]
    columns = tf.gather(order, (tf.range(n)[None, :] + shifts[:, None]) % n)
    visited = tf.gather(masked, columns, batch_dims=1)
    k = tf.minimum(k, n)
    picked = tf.math.top_k(visited, k=k, sorted=True).indices
    return masked, tf.gather(columns, picked, batch_dims=1)


TIE_SEED = 0  # fixed, not the run's seed: every run of a split breaks ties the same way


class TieBreaker:
    """How exact ties in a model's scores are ordered in its top-K: `random` (a seeded item order per
    user, so a constant-score model lands at the random-ranking expectation instead of ranking low
    item indexes first) or `index` (tf.math.top_k's lowest index first: pop's documented rule)."""

    def __init__(self, rule: str, n_items: int):
        if rule not in ("random", "index"):
            raise ValueError(f"score ties: random or index. Received: {rule!r}")
        self.rule = rule
        rng = np.random.default_rng(TIE_SEED)
        self.order = tf.constant(rng.permutation(n_items).astype(np.int32))
        self.n_items = n_items

    def shifts(self, users: np.ndarray) -> np.ndarray:
        """Each user's own rotation of the item order: a fixed function of the user index."""
        mixed = (users.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(17)
        return (mixed % np.uint64(max(self.n_items, 1))).astype(np.int32)

    def mask_and_topk(self, scores, mask_rows, mask_items, k, users: np.ndarray):
        if self.rule == "index":
            return _mask_and_topk(scores, mask_rows, mask_items, k)
        return _mask_and_topk_shuffled_ties(
            scores, mask_rows, mask_items, k, self.order, tf.constant(self.shifts(users))
        )


@tf.function(reduce_retracing=True)
def _greater_equal_counts(masked, target_rows, target_items):
    """For each target: its score, how many items of its row score above it, and how many tie with it."""
    row_scores = tf.gather(masked, target_rows)
    own = tf.gather_nd(masked, tf.stack([target_rows, target_items], axis=1))  # each target's own score
    greater = tf.reduce_sum(tf.cast(row_scores > own[:, None], tf.int32), axis=1)
    equal = tf.reduce_sum(tf.cast(row_scores == own[:, None], tf.int32), axis=1) - 1
    return own, greater, equal


def rank_users(
    score_fn: ScoreFn,
    users: np.ndarray,
    history: CSR,
    k: int,
    batch_size: int,
) -> np.ndarray:
    """Top-k item indexes [len(users), k] with each user's history masked."""
    out = []
    with console.progress("ranking users", len(users), "users") as step:
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            h_rows, h_items = history.rows(batch)
            _, topk = _mask_and_topk(score_fn(batch), h_rows.astype(np.int32), h_items.astype(np.int32), k)
            out.append(topk.numpy())
            step.advance(len(batch))
    return np.concatenate(out) if out else np.zeros((0, k), np.int32)


def evaluate_split(
    score_fn: ScoreFn,
    snapshot: Snapshot,
    split: str,
    ks: list[int],
    names: list[str],
    batch_size: int,
    with_auc: bool = True,
    ties: str = "random",
) -> dict[str, float]:
    """Full-ranking metrics of `score_fn` on `split` (valid or test) of a snapshot.

    A user's targets are the distinct items of the split (an item repeated under
    dataset.duplicates=keep_all counts once, as a hit and as a target). `ties`: see TieBreaker."""
    return _ranked(score_fn, snapshot, split, ks, names, batch_size, with_auc, ties, False)[0].result()


def evaluate_split_per_user(
    score_fn: ScoreFn,
    snapshot: Snapshot,
    split: str,
    ks: list[int],
    names: list[str],
    batch_size: int,
    ties: str = "random",
    candidates: CandidateSampler | None = None,
) -> tuple[dict[str, float], PerUser]:
    """`evaluate_split`, and each evaluated user's values (for intervals and comparisons).
    `candidates`: rank each user's targets among sampled negatives only (None: the whole catalogue)."""
    acc, users = _ranked(score_fn, snapshot, split, ks, names, batch_size, True, ties, True, candidates)
    return acc.result(), PerUser(users, acc.per_user())


class CandidateSampler:
    """`evaluation.candidates=sampled`: each user's targets are ranked among `negatives` items drawn
    without replacement from the items they have not seen and that are not targets, uniformly or in
    proportion to training popularity (Gumbel top-k: exact sampling without replacement, vectorised
    over a batch). Seeded by (seed, split): the same candidates for every model of a split, which is
    what makes sampled figures comparable with each other (never with full-ranking ones)."""

    def __init__(self, snapshot: Snapshot, split: str, negatives: int, by: str, seed: int):
        self.n_items, self.negatives = snapshot.n_items, int(negatives)
        popularity = snapshot.item_popularity().astype(np.float64)
        with np.errstate(divide="ignore"):
            self.log_weights = np.log(popularity) if by == "popularity" else np.zeros(self.n_items)
        self.rng = np.random.default_rng([seed, 1 if split == "valid" else 2])

    def non_candidates(self, n_rows: int, h_rows, h_items, t_rows, t_items) -> tuple[np.ndarray, np.ndarray]:
        """The (row, item) pairs to mask: everything but the targets and the drawn negatives."""
        keys = self.log_weights[None, :] + self.rng.gumbel(size=(n_rows, self.n_items))
        keys[h_rows, h_items] = -np.inf
        keys[t_rows, t_items] = -np.inf
        keep = np.zeros((n_rows, self.n_items), dtype=bool)
        take = min(self.negatives, self.n_items)
        drawn = np.argpartition(-keys, take - 1, axis=1)[:, :take]
        rows = np.repeat(np.arange(n_rows), take)
        valid = np.isfinite(keys[rows, drawn.ravel()])  # fewer allowed items than negatives: all of them
        keep[rows[valid], drawn.ravel()[valid]] = True
        keep[t_rows, t_items] = True
        mask_rows, mask_items = np.nonzero(~keep)
        return mask_rows.astype(np.int32), mask_items.astype(np.int32)


class ColdItemCandidates:
    """dataset.split=cold_items: each user's targets are ranked among the split's cold items only
    (every other item is masked), the usual item cold-start protocol (docs/evaluation.md)."""

    def __init__(self, items: np.ndarray, n_items: int):
        self.n_items = n_items
        self.others = np.setdiff1d(np.arange(n_items), items).astype(np.int32)

    def non_candidates(self, n_rows: int, h_rows, h_items, t_rows, t_items) -> tuple[np.ndarray, np.ndarray]:
        keep = np.ones((n_rows, self.n_items), dtype=bool)
        keep[:, self.others] = False
        keep[h_rows, h_items] = False
        keep[t_rows, t_items] = True
        mask_rows, mask_items = np.nonzero(~keep)
        return mask_rows.astype(np.int32), mask_items.astype(np.int32)


def _ranked(score_fn, snapshot, split, ks, names, batch_size, with_auc, ties, keep_per_user, candidates=None):
    if candidates is None and snapshot.cold_candidates(split) is not None:
        candidates = ColdItemCandidates(snapshot.cold_candidates(split), snapshot.n_items)
    targets = snapshot.csr(split)
    history = snapshot.history_for(split)
    users = np.flatnonzero(targets.row_lengths() > 0).astype(np.int32)
    information = self_information(snapshot) if "novelty" in names else None
    acc = RankingAccumulator(ks, snapshot.n_items, names, keep_per_user, information)
    breaker = TieBreaker(ties, snapshot.n_items)
    kmax = max(ks)
    masked_per_user = history.row_lengths()
    with console.progress(f"ranking {split} users", len(users), "users") as step:
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            h_rows, h_items = history.rows(batch)
            t_rows, t_items = distinct_pairs(*targets.rows(batch), snapshot.n_items)
            h_rows, h_items = h_rows.astype(np.int32), h_items.astype(np.int32)
            masked_per_row = masked_per_user[batch]
            if candidates is not None:
                h_rows, h_items = candidates.non_candidates(len(batch), h_rows, h_items, t_rows, t_items)
                masked_per_row = np.bincount(h_rows, minlength=len(batch))
            masked, topk = breaker.mask_and_topk(score_fn(batch), h_rows, h_items, kmax, batch)
            acc.update(topk.numpy(), t_rows, t_items, len(batch))
            if with_auc:
                per_row = np.bincount(t_rows, minlength=len(batch))
                acc.update_auc(_batch_auc(masked, t_rows, t_items, masked_per_row, per_row, snapshot.n_items))
            step.advance(len(batch))
    return acc, users


def self_information(snapshot: Snapshot) -> np.ndarray:
    """-log2 of the share of training users who have each item (at least one user each)."""
    users, items = snapshot.pairs("train")
    pairs = np.unique(users.astype(np.int64) * snapshot.n_items + items)
    holders = np.bincount(pairs % snapshot.n_items, minlength=snapshot.n_items)
    n_users = max(int(np.unique(users).size), 1)
    return -np.log2(np.maximum(holders, 1) / n_users)


def distinct_pairs(rows: np.ndarray, items: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, item) pairs without repeats, sorted by row then item."""
    codes = np.unique(rows.astype(np.int64) * n_items + items.astype(np.int64))
    return (codes // n_items).astype(rows.dtype), (codes % n_items).astype(items.dtype)


def _batch_auc(masked, t_rows, t_items, masked_per_row, targets_per_row, n_items) -> np.ndarray:
    """Per user of the batch with targets: the mean over its targets of the share of its negatives
    (items neither masked nor targets) scored below the target, ties with a negative counting half.
    Other targets are not negatives, whether they score above the target or tie with it."""
    own, greater, equal = [], [], []
    for start in range(0, len(t_rows), 1024):
        o, g, e = _greater_equal_counts(
            masked,
            t_rows[start : start + 1024].astype(np.int32),
            t_items[start : start + 1024].astype(np.int32),
        )
        own.append(o.numpy())
        greater.append(g.numpy())
        equal.append(e.numpy())
    if not t_rows.size:
        return np.zeros(0)
    own = np.concatenate(own)
    greater = np.concatenate(greater).astype(np.float64)
    equal = np.concatenate(equal).astype(np.float64)
    # Where each target's score falls among its own row's targets: rows first, then dense score ranks.
    _, score_rank = np.unique(own, return_inverse=True)
    width = np.int64(score_rank.max() + 2)
    key = t_rows.astype(np.int64) * width + score_rank
    ordered = np.sort(key)
    below_or_tied = np.searchsorted(ordered, key, side="right")
    targets_tied = below_or_tied - np.searchsorted(ordered, key, side="left") - 1
    targets_above = (
        np.searchsorted(ordered, (t_rows.astype(np.int64) + 1) * width, side="left") - below_or_tied
    )
    negatives = n_items - masked_per_row[t_rows] - targets_per_row[t_rows]
    neg_greater = np.maximum(greater - targets_above, 0)
    neg_equal = np.maximum(equal - targets_tied, 0)
    auc = np.where(
        negatives > 0, (negatives - neg_greater - 0.5 * neg_equal) / np.maximum(negatives, 1), np.nan
    )
    rows = len(targets_per_row)
    per_user = np.bincount(t_rows, weights=np.nan_to_num(auc, nan=0.0), minlength=rows)
    counts = np.bincount(t_rows, minlength=rows)
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
