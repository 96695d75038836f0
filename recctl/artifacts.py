"""Versioned artifacts on disk: atomic writes, manifests, run lookup and export versions.

A folder that exists under its final name is complete: everything is written under a temporary
name first and renamed into place. A run folder is the exception (Hydra creates it up front), so
its manifest's `status` says whether it completed; `run=latest` only ever picks completed runs.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

from recctl import __version__
from recctl.errors import RunNotFoundError

MANIFEST = "manifest.json"


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    return read_json(path) if path.is_file() else {}


def update_manifest(folder: Path, **fields: Any) -> dict:
    manifest = read_manifest(folder)
    manifest.update(fields)
    atomic_write_json(Path(folder) / MANIFEST, manifest)
    return manifest


def environment() -> dict[str, Any]:
    """Versions and host facts recorded in every manifest, so a number can be traced to its setup."""
    info: dict[str, Any] = {
        "recctl": __version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
    }
    for module in ("tensorflow", "keras", "numpy", "pandas"):
        mod = __import__("sys").modules.get(module)
        if mod is not None:
            info[module] = getattr(mod, "__version__", None)
    return info


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def resolve_run(spec: str | None, output_dir: Path) -> Path:
    """`run=PATH` or `run=latest` -> a completed run folder (clear error otherwise)."""
    if spec in (None, "", "latest"):
        runs = completed_runs(output_dir)
        if not runs:
            raise RunNotFoundError(
                f"run=latest: no completed training run under {output_dir}/ (train one with `recctl train`)"
            )
        return runs[-1]
    path = Path(spec)
    if not path.is_dir():
        raise RunNotFoundError(f"run={spec}: no such run folder")
    manifest = read_manifest(path)
    if not manifest:
        raise RunNotFoundError(f"run={spec}: not a recctl run folder (no {MANIFEST})")
    if manifest.get("status") != "completed":
        raise RunNotFoundError(
            f"run={spec}: that run did not complete (status: {manifest.get('status', 'unknown')}); "
            "pick another run or train again"
        )
    if not (path / "model.keras").is_file():
        raise RunNotFoundError(f"run={spec}: the run has no model.keras")
    return path


def completed_runs(output_dir: Path) -> list[Path]:
    """Completed runs (single runs and sweep jobs), oldest first by completion time."""
    found: list[tuple[str, Path]] = []
    output_dir = Path(output_dir)
    candidates = list(output_dir.glob(f"runs/*/{MANIFEST}")) + list(output_dir.glob(f"sweeps/*/*/{MANIFEST}"))
    for manifest_path in candidates:
        try:
            manifest = read_json(manifest_path)
        except (OSError, ValueError):
            continue
        if manifest.get("kind") == "run" and manifest.get("status") == "completed":
            found.append((manifest.get("completed_at", ""), manifest_path.parent))
    found.sort(key=lambda pair: pair[0])
    return [p for _, p in found]


def staging_dir(parent: Path) -> Path:
    """A fresh hidden folder beside the final one; renamed into place when complete."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / f".tmp-{uuid.uuid4().hex}"
    path.mkdir()
    return path


def publish_version(staged: Path, parent: Path) -> Path:
    """Rename a staged folder to the next free integer version under `parent` (race-safe).

    rename() onto an existing non-empty folder fails, so two writers can never share a version:
    the loser simply tries the next number.
    """
    parent = Path(parent)
    for _ in range(1000):
        versions = [int(p.name) for p in parent.iterdir() if p.name.isdigit()]
        target = parent / str(max(versions, default=0) + 1)
        try:
            os.rename(staged, target)
            return target
        except OSError:
            if target.exists():
                continue
            raise
    raise RuntimeError(f"could not allocate a version under {parent}")


def publish_once(staged: Path, target: Path) -> bool:
    """Rename a staged folder to `target` unless another writer got there first (then discard ours)."""
    try:
        os.rename(staged, target)
        return True
    except OSError:
        if (Path(target) / MANIFEST).is_file():
            shutil.rmtree(staged, ignore_errors=True)
            return False
        raise
