"""Evaluate a model and the popularity baseline on the same split, and show them side by side."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from recctl.data.snapshot import Snapshot


def score_function(model, snapshot: Snapshot, split: str):
    """users -> scores [B, n_items], each user seen through the history visible at `split`
    (valid: the training history; test: training + validation; "all": everything, for serving).
    The context comes from the model's own `context_from_history`, as in every export."""

    def scores_of(history, users):
        return tf.cast(model.score_all(model.context_from_history(history, users)), tf.float32)

    compiled = tf.function(
        scores_of,
        input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)],
    )
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


def evaluate_model(model, snapshot: Snapshot, settings, seed: int, splits=("valid", "test")) -> dict:
    """{"metrics": {split: {...}}, "baseline": {"pop": {split: {...}}}}, as the model's task
    evaluates (evaluation/tasks.py: full ranking, or AUC/logloss over labelled rows)."""
    from recctl.evaluation.tasks import task_of

    task = task_of(model)
    out = {
        "metrics": {s: None for s in ("valid", "test")},
        "baseline": {"pop": {s: None for s in ("valid", "test")}},
    }
    for split in splits:
        if len(snapshot.split(split)) == 0:
            continue
        out["metrics"][split] = _rounded(task.evaluate(model, snapshot, settings, seed, split))
        if settings.baseline:
            out["baseline"]["pop"][split] = _rounded(task.baseline(snapshot, settings, split))
    return out


def _rounded(metrics: dict) -> dict:
    return {k: round(float(v), 6) for k, v in metrics.items()}


def metrics_table(result: dict, protocol: str, model_name: str) -> str:
    """A plain-text table: each metric for the model and pop per split, with the lift on test."""
    metrics, pop = result["metrics"], result["baseline"]["pop"]
    columns = []
    for split in ("valid", "test"):
        if metrics.get(split) is not None:
            columns.append((f"{model_name} {split}", metrics[split]))
        if pop.get(split) is not None:
            columns.append((f"pop {split}", pop[split]))
    if not columns:
        return "(no metrics)"
    keys: list[str] = []
    for _, values in columns:
        keys += [k for k in values if k not in keys]
    lift_split = (
        "test"
        if metrics.get("test") and pop.get("test")
        else ("valid" if metrics.get("valid") and pop.get("valid") else None)
    )
    header = ["metric"] + [name for name, _ in columns] + ([f"lift ({lift_split})"] if lift_split else [])
    rows = [header]
    for key in keys:
        row = [key] + [f"{values[key]:.4f}" if key in values else "-" for _, values in columns]
        if lift_split:
            m, p = metrics[lift_split].get(key), pop[lift_split].get(key)
            row.append(f"{m / p:.2f}x" if m is not None and p and key not in ("logloss",) else "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"protocol: {protocol}")
    return "\n".join(lines)
