"""The tables recctl prints: a run's metrics beside its baselines with intervals (train,
evaluate) and two runs' paired comparison (compare). Plain text, no TensorFlow: compare prints
without importing it."""

from __future__ import annotations


def metrics_table(result: dict, protocol: str, model_name: str) -> str:
    """A plain-text table: each metric for the model and every baseline per split, and the model's
    lift over each baseline on test (valid when there is no test)."""
    metrics = result["metrics"]
    baselines = {name: figures for name, figures in result["baseline"].items() if any(figures.values())}
    intervals = result.get("intervals") or {}
    columns = []  # (header, figures, the figures' intervals)
    for split in ("valid", "test"):
        if metrics.get(split) is not None:
            columns.append((f"{model_name} {split}", metrics[split], intervals.get(split) or {}))
        for name, figures in baselines.items():
            if figures.get(split) is not None:
                columns.append((f"{name} {split}", figures[split], {}))
    if not columns:
        return "(no metrics)"
    keys: list[str] = []
    for _, values, _ in columns:
        keys += [k for k in values if k not in keys]
    lifts = []  # (baseline, split)
    for name, figures in baselines.items():
        split = next((s for s in ("test", "valid") if metrics.get(s) and figures.get(s)), None)
        if split:
            lifts.append((name, split))
    header = ["metric"] + [name for name, _, _ in columns]
    header += [f"lift/{name} ({split})" if len(lifts) > 1 else f"lift ({split})" for name, split in lifts]
    rows = [header]
    for key in keys:
        row = [key] + [_cell(values.get(key), bands.get(key)) for _, values, bands in columns]
        for name, split in lifts:
            m, b = metrics[split].get(key), baselines[name][split].get(key)
            band = (((intervals.get("lift") or {}).get(name) or {}).get(split) or {}).get(key)
            lift = _lift(key, m, b)
            row.append(f"{lift} ({band[0]:.2f}-{band[1]:.2f})" if band and lift != "-" else lift)
        rows.append(row)
    rows = [rows[0], *fold_identical_rows(rows[1:])]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if intervals:
        lines.append(
            "±: half the width of the 95% bootstrap interval over users; lift: (95% paired interval)"
        )
    lines.append(f"protocol: {protocol}")
    return "\n".join(lines)


def _lift(metric: str, model, base) -> str:
    """model / baseline, or baseline / model for a lower-is-better metric (rmse): above 1 is better.
    logloss gets none (a ratio of log-losses means little)."""
    from recctl.evaluation.metrics import lower_is_better

    if model is None or not base or metric == "logloss":
        return "-"
    if lower_is_better(metric):
        return f"{base / model:.2f}x" if model else "-"
    return f"{model / base:.2f}x"


def fold_identical_rows(rows: list[list[str]]) -> list[list[str]]:
    """Rows of one cut-off equal in every column become one ("hr@10 = recall@10"): under
    leave-one-out hr and recall (and mrr and map) are the same figure, printed once."""
    out: list[list[str]] = []
    first: dict[tuple, list[str]] = {}
    for row in rows:
        key = (row[0].partition("@")[2], *row[1:])
        if key[0] and key in first:
            first[key][0] += f" = {row[0]}"
            continue
        first[key] = row
        out.append(row)
    return out


def _cell(value, band) -> str:
    if value is None:
        return "-"
    return f"{value:.4f} ±{(band[1] - band[0]) / 2:.4f}" if band else f"{value:.4f}"
