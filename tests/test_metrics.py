"""Ranking metrics against values worked out by hand, and NDCG against keras-rs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recctl.evaluation.metrics import RankingAccumulator, binary_auc, binary_logloss


def _single(topk, targets, ks, n_items=10):
    acc = RankingAccumulator(ks, n_items)
    rows = np.array([r for r, items in enumerate(targets) for _ in items])
    items = np.array([i for items in targets for i in items])
    acc.update(np.array(topk), rows, items, len(topk))
    return acc.result()


def test_one_target_at_rank_three():
    # user 0: target 7 at 0-based rank 2; user 1: target 9 not in the list
    m = _single([[1, 2, 7, 3, 4], [1, 2, 3, 4, 5]], [[7], [9]], [2, 5])
    assert m["hr@2"] == 0.0 and m["hr@5"] == 0.5
    assert m["ndcg@5"] == pytest.approx(0.5 * (1 / math.log2(4)))
    assert m["mrr@5"] == pytest.approx(0.5 * (1 / 3))
    assert m["precision@5"] == pytest.approx(0.5 * (1 / 5))
    assert m["recall@5"] == pytest.approx(0.5)
    assert m["map@5"] == pytest.approx(0.5 * (1 / 3))
    assert m["coverage@2"] == pytest.approx(2 / 10)  # items 1 and 2 only
    assert m["coverage@5"] == pytest.approx(6 / 10)


def test_several_targets():
    # targets {1, 4, 8}; ranked 1, 2, 4, 5, 6: hits at ranks 0 and 2
    m = _single([[1, 2, 4, 5, 6]], [[1, 4, 8]], [5])
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg@5"] == pytest.approx(dcg / idcg)
    assert m["recall@5"] == pytest.approx(2 / 3)
    assert m["precision@5"] == pytest.approx(2 / 5)
    assert m["map@5"] == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert m["mrr@5"] == pytest.approx(1.0)


def test_users_without_targets_are_not_counted():
    m = _single([[1, 2], [3, 4]], [[1], []], [2])
    assert m["hr@2"] == 1.0


def test_ndcg_matches_keras_rs_on_dense_lists():
    import keras_rs

    rng = np.random.default_rng(0)
    n_users, n_items, k = 6, 12, 5
    scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    labels = np.zeros((n_users, n_items), np.float32)
    targets = [rng.choice(n_items, size=rng.integers(1, 4), replace=False) for _ in range(n_users)]
    for u, t in enumerate(targets):
        labels[u, t] = 1.0
    topk = np.argsort(-scores, axis=1)[:, :k]
    ours = _single(topk, targets, [k], n_items)["ndcg@5"]
    metric = keras_rs.metrics.NDCG(k=k)
    metric.update_state(labels, scores)
    assert ours == pytest.approx(float(metric.result()), rel=1e-5)


def test_binary_auc_and_logloss():
    assert binary_auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.1, 0.8, 0.2])) == 1.0
    assert binary_auc(np.array([1, 0]), np.array([0.5, 0.5])) == 0.5
    assert binary_auc(np.array([1, 0, 0]), np.array([0.2, 0.9, 0.1])) == pytest.approx(0.5)
    assert binary_logloss(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(math.log(2))


def test_unknown_metric_name():
    with pytest.raises(ValueError, match="unknown metric"):
        RankingAccumulator([5], 10, ["hr", "ndgc"])


def test_full_ranking_auc_with_several_targets_per_user_matches_brute_force():
    """Random splits leave users several test items: each target's AUC counts only true negatives."""
    import tensorflow as tf

    from recctl.evaluation.ranking import _batch_auc

    rng = np.random.default_rng(0)
    n_users, n_items = 3, 30
    scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    scores[0, 5] = scores[0, 6]  # a tie between a target and a negative counts one half
    history = {0: [1, 2], 1: [3], 2: []}
    targets = {0: [5, 7, 9], 1: [0, 4], 2: [8, 10, 11, 12]}
    for user, items in history.items():
        scores[user, items] = -np.inf
    t_rows = np.array([u for u, items in targets.items() for _ in items], np.int32)
    t_items = np.array([i for items in targets.values() for i in items], np.int32)
    masked_per_user = np.array([len(history[u]) for u in range(n_users)])
    targets_per_user = np.array([len(targets[u]) for u in range(n_users)])
    got = _batch_auc(tf.constant(scores), t_rows, t_items, masked_per_user, targets_per_user, n_items)
    expected = []
    for user in range(n_users):
        negatives = [i for i in range(n_items) if i not in history[user] and i not in targets[user]]
        per_target = [
            np.mean(
                [
                    1.0
                    if scores[user, t] > scores[user, n]
                    else 0.5
                    if scores[user, t] == scores[user, n]
                    else 0.0
                    for n in negatives
                ]
            )
            for t in targets[user]
        ]
        expected.append(np.mean(per_target))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def _auc_of(scores, targets, history=None):
    import tensorflow as tf

    from recctl.evaluation.ranking import _batch_auc

    history = history or {u: [] for u in range(len(scores))}
    scores = np.array(scores, np.float32)
    for user, items in history.items():
        scores[user, items] = -np.inf
    t_rows = np.array([u for u, items in targets.items() for _ in items], np.int32)
    t_items = np.array([i for items in targets.values() for i in items], np.int32)
    masked = np.array([len(history[u]) for u in range(len(scores))])
    per_row = np.array([len(targets[u]) for u in range(len(scores))])
    return _batch_auc(tf.constant(scores), t_rows, t_items, masked, per_row, scores.shape[1])


def test_auc_counts_tied_targets_as_neither_negatives_nor_wins():
    # Every item ties: three targets among ten items are each at one half, not below it.
    assert _auc_of([[0.0] * 10], {0: [1, 4, 7]}) == pytest.approx([0.5])
    # Two targets tied with each other above every negative: a perfect ranking.
    assert _auc_of([[1.0, 1.0, 0.2, 0.1, 0.0]], {0: [0, 1]}) == pytest.approx([1.0])
    # A target tied with one negative and above the other two; another target below all three.
    got = _auc_of([[0.5, 0.5, 0.1, 0.0, -1.0]], {0: [1, 4]})
    assert got == pytest.approx([(2.5 / 3 + 0.0) / 2])


def test_constant_scores_rank_at_the_random_expectation_and_index_ties_take_the_lowest_ids(tmp_path):
    """A model that scores every item alike gets a random ranking's figures (seeded, repeatable);
    under ties="index" (pop's rule) its top-K is the lowest unmasked item indexes."""
    from omegaconf import OmegaConf

    from recctl.config import checked_dataset
    from recctl.data.prepare import ensure_snapshot
    from recctl.evaluation.ranking import evaluate_split

    settings = {"name": "ties", "source": "synthetic", "synthetic": {"n_users": 3000, "n_items": 200}}
    snapshot, _ = ensure_snapshot(checked_dataset(OmegaConf.create(settings)), tmp_path / "data", 42)
    flat = lambda batch: np.zeros((len(batch), snapshot.n_items), np.float32)  # noqa: E731
    k = 10
    targets, history = snapshot.csr("test"), snapshot.history_for("test")
    users = np.flatnonzero(targets.row_lengths() > 0)
    candidates = snapshot.n_items - history.row_lengths()[users]
    # Leave-one-out: one target per user, in the top k with chance k / candidates.
    hit_chance = k / candidates
    expected, noise = hit_chance.mean(), np.sqrt((hit_chance * (1 - hit_chance)).sum()) / len(users)
    got = evaluate_split(flat, snapshot, "test", [k], ["hr"], 512, with_auc=False)
    assert abs(got[f"hr@{k}"] - expected) < 4 * noise
    assert got == evaluate_split(flat, snapshot, "test", [k], ["hr"], 512, with_auc=False)

    lowest_hits = []
    for user in users:
        seen = set(history.rows(np.array([user]))[1].tolist())
        top = [i for i in range(snapshot.n_items) if i not in seen][:k]
        lowest_hits.append(bool(set(targets.rows(np.array([user]))[1].tolist()) & set(top)))
    by_index = evaluate_split(flat, snapshot, "test", [k], ["hr"], 512, with_auc=False, ties="index")
    assert by_index[f"hr@{k}"] == pytest.approx(np.mean(lowest_hits))
