"""recctl report: a sweep folder's leaderboard, rebuilt from what its jobs wrote."""

from __future__ import annotations

from pathlib import Path

from recctl import console, settings
from recctl.errors import RunNotFoundError


def run(cfg, result: dict) -> dict:
    from recctl.sweep import job_rows, objective, write_leaderboard

    sweep_dir = resolve_sweep(cfg.get("sweep"), Path(settings.paths(cfg).output_dir))
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


def resolve_sweep(spec, output_dir: Path) -> Path:
    """`sweep=PATH` or `sweep=latest` -> a sweep folder holding job folders (clear error otherwise)."""
    if spec in (None, "", "latest"):
        root = output_dir / "sweeps"
        sweeps = (
            sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name) if root.is_dir() else []
        )
        sweeps = [p for p in sweeps if _has_jobs(p)]
        if not sweeps:
            raise RunNotFoundError(f"sweep=latest: no sweep folder with jobs under {root}")
        return sweeps[-1]
    path = Path(str(spec))
    if not path.is_dir():
        raise RunNotFoundError(f"sweep={spec}: no such folder")
    if not _has_jobs(path):
        raise RunNotFoundError(f"sweep={spec}: not a sweep folder (no numbered job folders in it)")
    return path


def _has_jobs(path: Path) -> bool:
    return any(p.is_dir() and p.name.isdigit() for p in path.iterdir())
