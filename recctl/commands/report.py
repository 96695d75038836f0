"""recctl report: a sweep folder's leaderboard, rebuilt from what its jobs wrote."""

from __future__ import annotations

from pathlib import Path

from recctl import console
from recctl.config import checked_paths


def run(cfg, result: dict) -> dict:
    from recctl.sweep import job_rows, objective, resolve_sweep, write_leaderboard

    sweep_dir = resolve_sweep(cfg.get("sweep"), Path(checked_paths(cfg).output_dir))
    paths = write_leaderboard(sweep_dir)
    rows = job_rows(sweep_dir)
    statuses = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    result["sweep_dir"] = str(sweep_dir.resolve())
    result["leaderboard"] = {kind: str(path.resolve()) for kind, path in paths.items()}
    result["jobs"] = statuses
    result["objective"] = objective(sweep_dir, rows)
    console.info(paths["md"].read_text().rstrip())
    console.info(f"leaderboard: {paths['md']} (and leaderboard.csv, leaderboard.png)")
    return result
