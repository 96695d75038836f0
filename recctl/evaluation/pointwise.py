"""Pointwise (CTR) evaluation: AUC and logloss of predicted probabilities over a split's labelled rows."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from recctl.data.snapshot import Snapshot
from recctl.evaluation.metrics import binary_auc, binary_logloss


def probability_function(model):
    compiled = tf.function(lambda u, i: tf.sigmoid(model.score_pairs(u, i)), reduce_retracing=True)
    return lambda users, items: compiled(tf.constant(users, tf.int32), tf.constant(items, tf.int32)).numpy()


def pointwise_metrics(
    score_fn, snapshot: Snapshot, split: str, probabilities: bool = True
) -> dict[str, float]:
    """score_fn(users [N], items [N, 1]) -> [N, 1]; AUC always, logloss when scores are probabilities."""
    users, items = snapshot.pairs(split)
    labels = snapshot.labels(split)
    if len(users) == 0:
        return {}
    scores = np.concatenate(
        [
            np.asarray(score_fn(users[s : s + 8192], items[s : s + 8192, None])).ravel()
            for s in range(0, len(users), 8192)
        ]
    )
    out = {"auc": binary_auc(labels, scores)}
    if probabilities:
        out["logloss"] = binary_logloss(labels, scores)
    return out


def popularity_pointwise(snapshot: Snapshot, split: str) -> dict[str, float]:
    popularity = snapshot.item_popularity()
    return pointwise_metrics(lambda u, i: popularity[i], snapshot, split, probabilities=False)
