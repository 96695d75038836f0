"""Evaluate a model and the popularity baseline on the same split, and show them side by side."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from recctl.data.snapshot import Snapshot
from recctl.evaluation.ranking import evaluate_split, pointwise_logloss


def score_function(model, snapshot: Snapshot, split: str):
    """users -> scores [B, n_items], each user seen through the context visible at `split`
    (valid: the training history; test: training + validation; "all": everything, for serving)."""
    from recctl.data.pipelines import scoring_context

    if model.input_kind == "id":
        compiled = tf.function(_float32_scores(model), input_signature=[tf.TensorSpec([None], tf.int32)])
        return lambda users: compiled(tf.constant(np.asarray(users, dtype=np.int32)))
    if model.input_kind == "sequence":
        spec = {
            "history": tf.TensorSpec([None, model.max_length], tf.int32),
            "user": tf.TensorSpec([None], tf.int32),
        }
    else:
        spec = {"vector": tf.TensorSpec([None, snapshot.n_items], tf.float32)}
    compiled = tf.function(_float32_scores(model), input_signature=[spec])
    history = snapshot.csr("train", "valid", "test") if split == "all" else snapshot.history_for(split)

    def scores(users):
        context = scoring_context(model, history, users, snapshot.n_items)
        return compiled({key: tf.constant(value) for key, value in context.items()})

    return scores


def _float32_scores(model):
    """Scores as float32 whatever the compute dtype (mixed precision computes in float16/bfloat16)."""
    return lambda context: tf.cast(model.score_all(context), tf.float32)


def popularity_score_function(snapshot: Snapshot):
    counts = tf.constant(snapshot.item_popularity()[None, :])
    return lambda users: tf.broadcast_to(counts, (len(users), snapshot.n_items))


def evaluate_model(model, snapshot: Snapshot, settings, seed: int, splits=("valid", "test")) -> dict:
    """{"metrics": {split: {...}}, "baseline": {"pop": {split: {...}}}} under full ranking."""
    ks = [int(k) for k in settings.ks]
    names = [str(n) for n in settings.metrics]
    batch = (
        model.scoring_batch_size(int(settings.batch_size)) if model is not None else int(settings.batch_size)
    )
    out = {
        "metrics": {s: None for s in ("valid", "test")},
        "baseline": {"pop": {s: None for s in ("valid", "test")}},
    }
    if model is not None and getattr(model, "task", "ranking") == "ctr":
        from recctl.evaluation.pointwise import pointwise_metrics, popularity_pointwise, probability_function

        prob_fn = probability_function(model)
        for split in splits:
            if len(snapshot.split(split)):
                out["metrics"][split] = _rounded(pointwise_metrics(prob_fn, snapshot, split))
                if settings.baseline:
                    out["baseline"]["pop"][split] = _rounded(popularity_pointwise(snapshot, split))
        return out
    pop_fn = popularity_score_function(snapshot)
    for split in splits:
        if len(snapshot.split(split)) == 0:
            continue
        if model is not None:
            model_fn = score_function(model, snapshot, split)
            metrics = evaluate_split(model_fn, snapshot, split, ks, names, batch)
            if model.emits_probabilities:
                prob_fn = _probability_function(model)
                negatives = settings.logloss_negatives or getattr(model, "num_negatives", 1)
                metrics["logloss"] = pointwise_logloss(prob_fn, snapshot, split, int(negatives), seed)
            out["metrics"][split] = _rounded(metrics)
        if settings.baseline:
            out["baseline"]["pop"][split] = _rounded(
                evaluate_split(pop_fn, snapshot, split, ks, names, int(settings.batch_size))
            )
    return out


def _probability_function(model):
    from recctl.evaluation.pointwise import probability_function

    return probability_function(model)


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
