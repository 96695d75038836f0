"""Sweep summaries: after a multirun, one table of every job's overrides, status and metrics.

Runs as a Hydra callback (`on_multirun_end`), so it works with any launcher: it reads what each
job wrote to its own folder rather than anything held in memory.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from hydra.experimental.callback import Callback

from recctl import console
from recctl.artifacts import atomic_write_text, read_json

_METRICS = ("ndcg@10", "hr@10", "recall@10", "mrr@10")


class SweepSummary(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            path = write_summary(sweep_dir)
            console.info(f"sweep summary: {path} (and summary.csv)")


def job_rows(sweep_dir: Path) -> list[dict]:
    rows = []
    jobs = sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    )
    for job in jobs:
        manifest = _read(job / "manifest.json")
        metrics = _read(job / "metrics.json")
        overrides = job / ".hydra" / "overrides.yaml"
        row = {
            "job": job.name,
            "overrides": " ".join(_overrides(overrides)),
            "status": manifest.get("status", "unknown"),
            "model": manifest.get("model"),
            "epochs": manifest.get("epochs"),
            "fit_s": (manifest.get("seconds") or {}).get("fit"),
            "params": manifest.get("params"),
        }
        for split in ("valid", "test"):
            values = (metrics.get("metrics") or {}).get(split) or {}
            for name in _METRICS:
                row[f"{split}_{name}"] = values.get(name)
        pop = ((metrics.get("baseline") or {}).get("pop") or {}).get("test") or {}
        row["pop_test_ndcg@10"] = pop.get("ndcg@10")
        row["error"] = manifest.get("error")
        rows.append(row)
    return rows


def write_summary(sweep_dir: Path) -> Path:
    rows = _only_varying_overrides(job_rows(sweep_dir))
    columns = list(rows[0].keys()) if rows else ["job", "overrides", "status"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(sweep_dir / "summary.csv", buffer.getvalue())
    ranked = sorted(rows, key=lambda r: -(r.get("valid_ndcg@10") or -1.0))
    lines = [
        f"# Sweep {sweep_dir.name}",
        "",
        f"{len(rows)} jobs, ranked by validation NDCG@10 (full ranking).",
        "",
    ]
    show = [
        "job",
        "overrides",
        "status",
        "valid_ndcg@10",
        "test_ndcg@10",
        "test_hr@10",
        "pop_test_ndcg@10",
        "epochs",
        "fit_s",
    ]
    lines.append("| " + " | ".join(show) + " |")
    lines.append("|" + "---|" * len(show))
    for row in ranked:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in show) + " |")
    path = sweep_dir / "summary.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _only_varying_overrides(rows: list[dict]) -> list[dict]:
    """Keep in `overrides` what differs between jobs; what every job shares goes to `common_overrides`."""
    if not rows:
        return rows
    lists = [row["overrides"].split() for row in rows]
    common = set(lists[0]).intersection(*map(set, lists[1:])) if len(lists) > 1 else set()
    for row, items in zip(rows, lists, strict=True):
        row["overrides"] = " ".join(o for o in items if o not in common)
        row["common_overrides"] = " ".join(o for o in items if o in common)
    return rows


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|")


def _read(path: Path) -> dict:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return {}


def _overrides(path: Path) -> list[str]:
    if not path.is_file():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(path)]
