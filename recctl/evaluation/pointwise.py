"""Pointwise evaluation over a split's rows: AUC and logloss of predicted probabilities (CTR), RMSE
and MAE of predicted ratings (rating)."""

from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf

from recctl.data.snapshot import Snapshot
from recctl.evaluation.metrics import binary_auc, binary_logloss, rating_errors

# (users [N], items [N, 1]): one trace for every batch size
_PAIRS = [tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, None], tf.int32)]


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled_pairs(model, kind: str):
    """One traced pair scorer per (model, kind), shared by validation, every split and the report."""
    functions = _COMPILED.setdefault(model, {})
    if kind not in functions:
        if kind == "probability":
            fn = lambda u, i: tf.sigmoid(model.score_pairs(u, i))  # noqa: E731
        else:
            fn = lambda u, i: tf.cast(model.score_pairs(u, i), tf.float32)  # noqa: E731
        compiled = tf.function(fn, input_signature=_PAIRS)
        functions[kind] = lambda users, items: compiled(
            tf.constant(users, tf.int32), tf.constant(items, tf.int32)
        ).numpy()
    return functions[kind]


def probability_function(model):
    return _compiled_pairs(model, "probability")


def rating_function(model):
    """(users [N], items [N, 1]) -> predicted ratings [N, 1] (the model's raw output under task=rating)."""
    return _compiled_pairs(model, "rating")


def _row_scores(score_fn, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [
            np.asarray(score_fn(users[s : s + 8192], items[s : s + 8192, None])).ravel()
            for s in range(0, len(users), 8192)
        ]
    )


def rating_metrics(predict_fn, snapshot: Snapshot, split: str) -> dict[str, float]:
    """RMSE and MAE of predict_fn(users [N], items [N, 1]) against the split's ratings."""
    users, items = snapshot.pairs(split)
    if len(users) == 0:
        return {}
    return rating_errors(snapshot.ratings(split), _row_scores(predict_fn, users, items))


def pointwise_metrics(
    score_fn, snapshot: Snapshot, split: str, probabilities: bool = True
) -> dict[str, float]:
    """score_fn(users [N], items [N, 1]) -> [N, 1]; AUC always, logloss when scores are probabilities."""
    users, items = snapshot.pairs(split)
    labels = snapshot.labels(split)
    if len(users) == 0:
        return {}
    scores = _row_scores(score_fn, users, items)
    out = {"auc": binary_auc(labels, scores)}
    if probabilities:
        out["logloss"] = binary_logloss(labels, scores)
    return out


def popularity_pointwise(snapshot: Snapshot, split: str) -> dict[str, float]:
    popularity = snapshot.item_popularity()
    return pointwise_metrics(lambda u, i: popularity[i], snapshot, split, probabilities=False)
