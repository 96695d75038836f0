"""Evaluate a model and its baselines (evaluation.baselines) on the same split, and show them side
by side."""

from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf

from recctl.data.snapshot import Snapshot
from recctl.evaluation.uncertainty import PerUser

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled_scores(model):
    """One traced scorer per model (every split and caller shares it: a tf.function made per call
    retraces each time, and TensorFlow warns after five)."""
    if model not in _COMPILED:

        def scores_of(history, users):
            return tf.cast(model.score_all(model.context_from_history(history, users)), tf.float32)

        _COMPILED[model] = tf.function(
            scores_of,
            input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)],
        )
    return _COMPILED[model]


def score_function(model, snapshot: Snapshot, split: str):
    """users -> scores [B, n_items], each user seen through the history visible at `split`
    (valid: the training history; test: training + validation; "all": everything, for serving).
    The context comes from the model's own `context_from_history`, as in every export."""
    compiled = _compiled_scores(model)
    history = snapshot.csr("train", "valid", "test") if split == "all" else snapshot.history_for(split)
    length = model.history_length()

    def scores(users):
        users = np.asarray(users, dtype=np.int32)
        window = history.latest(users, length) if length != 0 else np.zeros((len(users), 0), np.int32)
        return compiled(tf.constant(window), tf.constant(users))

    return scores


def popularity_score_function(snapshot: Snapshot):
    counts = tf.constant(snapshot.item_popularity()[None, :])
    return lambda users: tf.broadcast_to(counts, (len(users), snapshot.n_items))


def feature_popularity(snapshot: Snapshot) -> np.ndarray:
    """Per item: the mean, over its side-feature values (each categorical code, each binary numeric
    feature set to 1), of the training interactions per item among the items with training
    interactions that share the value. Items with no such value get the mean over those items.
    Other numeric features are not used. The baseline of cold items, which pop scores all 0."""
    cat, _, num = snapshot.side_features("item")
    counts = snapshot.item_popularity().astype(np.float64)
    warm = counts > 0
    columns = [cat[:, j] == v for j in range(cat.shape[1]) for v in np.unique(cat[:, j]) if v > 0]
    columns += [num[:, j] == 1.0 for j in range(num.shape[1]) if np.isin(num[:, j], (0.0, 1.0)).all()]
    fallback = float(counts[warm].mean()) if warm.any() else 0.0
    if not columns:
        return np.full(snapshot.n_items, fallback, np.float32)
    has = np.stack(columns, axis=1).astype(np.float64)  # [n_items, values]
    per_value = (counts @ has) / np.maximum(warm.astype(np.float64) @ has, 1.0)
    known = has * (warm.astype(np.float64) @ has > 0)  # values that some item with training has
    n_values = known.sum(axis=1)
    scores = np.where(n_values > 0, (known @ per_value) / np.maximum(n_values, 1.0), fallback)
    return scores.astype(np.float32)


def feature_popularity_score_function(snapshot: Snapshot):
    scores = tf.constant(feature_popularity(snapshot)[None, :])
    return lambda users: tf.broadcast_to(scores, (len(users), snapshot.n_items))


def evaluate_model(model, snapshot: Snapshot, settings, seed: int, splits=("valid", "test")) -> dict:
    """{"metrics": {split: {...}}, "baseline": {name: {split: {...}}}, "intervals": ... | None,
    "per_user": DataFrame | None, "digests": {split: Snapshot.evaluation_digest}}, as the model's task evaluates (evaluation/tasks.py: full
    ranking, or AUC/logloss over labelled rows), one entry per configured baseline. `pop` is always
    a key (null figures when it is not configured), so scripts that read it keep working.
    Intervals (evaluation/uncertainty.py) need per-user values: the ranking task has them."""
    from recctl.evaluation.baselines import baseline_scorers
    from recctl.evaluation.tasks import task_of

    task = task_of(model)
    scorers = baseline_scorers(task, snapshot, settings, seed)
    out = {
        "metrics": {s: None for s in ("valid", "test")},
        "baseline": {name: {s: None for s in ("valid", "test")} for name in ("pop", *scorers)},
        "intervals": None,
        "per_user": None,
        "digests": {},
        "task": task.name,
    }
    own: dict[str, PerUser] = {}
    theirs: dict[str, dict[str, PerUser]] = {name: {} for name in scorers}
    for split in splits:
        if len(snapshot.split(split)) == 0:
            continue
        metrics, per_user = task.evaluate(model, snapshot, settings, seed, split)
        out["metrics"][split] = _rounded(metrics)
        out["digests"][split] = snapshot.evaluation_digest(split, _candidate_rule(settings, seed))
        if per_user is not None:
            own[split] = per_user
        for name, scorer in scorers.items():
            metrics, per_user = scorer(split)
            out["baseline"][name][split] = _rounded(metrics)
            if per_user is not None:
                theirs[name][split] = per_user
    if own:
        out["per_user"] = per_user_table(own, snapshot)
        if settings.bootstrap > 0:
            out["intervals"] = _intervals(own, theirs, int(settings.bootstrap), seed)
    return out


def _candidate_rule(settings, seed: int) -> str:
    if getattr(settings, "candidates", "full") != "sampled":
        return "full"
    return f"sampled:{settings.sampled.negatives}:{settings.sampled.by}:seed={seed}"


def _intervals(own: dict, theirs: dict, resamples: int, seed: int) -> dict:
    """{valid: {metric: [lo, hi]}, test: {...}, lift: {baseline: {split: {metric: [lo, hi]}}}}."""
    from recctl.evaluation.uncertainty import bootstrap

    intervals: dict = {
        "valid": None,
        "test": None,
        "lift": {n: {"valid": None, "test": None} for n in theirs},
    }
    for split, per_user in own.items():
        paired = {name: by_split[split] for name, by_split in theirs.items() if split in by_split}
        intervals[split], lifts = bootstrap(per_user, paired, resamples, seed)
        for name, lift in lifts.items():
            intervals["lift"][name][split] = lift
    return intervals


def per_user_table(own: dict, snapshot: Snapshot):
    """One row per (split, evaluated user): the user's original id and each metric's value."""
    import pandas as pd

    frames = [
        pd.DataFrame({"split": split, "user_id": snapshot.user_ids[p.users], **p.values})
        for split, p in own.items()
    ]
    return pd.concat(frames, ignore_index=True)


def _rounded(metrics: dict) -> dict:
    return {k: round(float(v), 6) for k, v in metrics.items()}
