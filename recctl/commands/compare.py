"""recctl compare: is `run` better or worse than `base` on the same split, beyond noise?

Reads both runs' per-user values (per_user.parquet, written by train and evaluate): no re-scoring.
Per metric: the two means, the paired difference with its 95% interval and a p-value
(evaluation/uncertainty.py). `gate.metric` turns it into the regression gate a CI job runs before
it exports: exit 3 when run is significantly worse than base.
"""

from __future__ import annotations

from pathlib import Path

from recctl import console
from recctl.errors import ConfigError, GateFailed
from recctl.plan import compare_plan


def run(cfg, result: dict) -> dict:
    import pandas as pd

    from recctl.evaluation.uncertainty import COMPARISON_METHOD, paired_difference
    from recctl.runs import RunFolder, resolve_run

    plan = compare_plan(cfg)
    output_dir = Path(plan.paths.output_dir)
    run_dir, base_dir = resolve_run(plan.run, output_dir), resolve_run(plan.base, output_dir, key="base")
    result["run_dir"], result["base_dir"] = str(run_dir.resolve()), str(base_dir.resolve())
    folders = {"run": RunFolder(run_dir), "base": RunFolder(base_dir)}
    for key, folder in folders.items():
        if not folder.per_user.is_file():
            raise ConfigError(
                f"{key}={folder.path} has no per-user metric values (per_user.parquet; runs made before "
                f"they existed): run `recctl evaluate run={folder.path}` first"
            )
    metrics = {key: folder.read_metrics() for key, folder in folders.items()}
    digests = {key: m.get("evaluation_digests") or {} for key, m in metrics.items()}
    result["model"] = metrics["run"].get("model")
    result["dataset"] = metrics["run"].get("dataset")
    result["protocol"] = metrics["run"].get("protocol")
    tables = {key: pd.read_parquet(folder.per_user) for key, folder in folders.items()}

    comparison: dict = {"valid": None, "test": None}
    for split in ("valid", "test"):
        run_split, base_split = digests["run"].get(split), digests["base"].get(split)
        if run_split is None or base_split is None:
            continue
        if run_split != base_split:
            raise ConfigError(
                f"run and base were not evaluated on the same split: their {split} targets, masked "
                f"history or catalogue differ (evaluation digest {run_split} vs {base_split}); compare "
                "needs two runs of one dataset snapshot"
            )
        joined = _joined(tables, split)
        names = [
            c for c in tables["run"].columns if c in tables["base"].columns and c not in ("split", "user_id")
        ]
        comparison[split] = {
            name: paired_difference(
                joined[f"{name}_run"].to_numpy(), joined[f"{name}_base"].to_numpy(), plan.resamples, plan.seed
            )
            for name in names
        }
    if comparison["valid"] is None and comparison["test"] is None:
        raise ConfigError("run and base share no evaluated split (valid or test) to compare")
    comparison["method"] = COMPARISON_METHOD.format(resamples=plan.resamples, seed=plan.seed)
    result["comparison"] = comparison
    console.info(_table(comparison, metrics["run"].get("model"), metrics["base"].get("model")))
    console.info(f"run: {run_dir}\nbase: {base_dir}")
    _gate(plan.gate, comparison)
    return result


def _joined(tables, split: str):
    run = tables["run"][tables["run"]["split"] == split].drop(columns="split")
    base = tables["base"][tables["base"]["split"] == split].drop(columns="split")
    return run.merge(base, on="user_id", suffixes=("_run", "_base"), validate="one_to_one")


def _table(comparison: dict, run_model: str | None, base_model: str | None) -> str:
    header = ["metric", "split", f"run ({run_model})", f"base ({base_model})", "diff", "95% interval", "p"]
    rows = [header]
    for split in ("valid", "test"):
        for name, c in (comparison.get(split) or {}).items():
            rows.append(
                [
                    name,
                    split,
                    f"{c['run']:.4f}",
                    f"{c['base']:.4f}",
                    f"{c['diff']:+.4f}",
                    f"[{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}]",
                    f"{c['p_value']:.4f}",
                ]
            )
    from recctl.evaluation.tables import fold_identical_rows

    rows = [header, *fold_identical_rows(rows[1:])]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"method: {comparison['method']}")
    return "\n".join(lines)


def _gate(gate, comparison: dict) -> None:
    if gate.metric is None:
        return
    figures = comparison.get(gate.split) or {}
    if gate.metric not in figures:
        known = ", ".join(sorted(figures)) or "none"
        raise ConfigError(f"gate.metric={gate.metric} was not compared on {gate.split} (compared: {known})")
    c = figures[gate.metric]
    where = f"{gate.metric} on {gate.split}: run - base = {c['diff']:+.4f}, 95% interval [{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}]"
    if c["ci"][1] < 0:
        raise GateFailed(f"regression gate failed: run is significantly worse than base ({where})")
    console.info(f"regression gate passed: run is not significantly worse than base ({where})")
