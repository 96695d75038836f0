"""Versioned artifacts on disk: atomic writes, manifests, staging folders and export versions.

A folder that exists under its final name is complete: everything is written under a temporary
name first and renamed into place. A run folder is the exception (Hydra creates it up front), so
its manifest's `status` says whether it completed (recctl/runs.py owns run folders; `run=latest`
only ever picks completed runs).
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from recctl import __version__

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


def atomic_write_parquet(path: Path, frame) -> None:
    """A pandas DataFrame as Parquet, written beside `path` and renamed into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        frame.to_parquet(tmp, index=False)
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


STAGING_PREFIX = ".tmp-"
# A staging folder whose writer cannot be checked (another machine, another PID namespace, an
# older recctl's name) is only removed once it is this old: no export or prepare runs that long.
STALE_STAGING_AGE_S = 24 * 3600
_STAGING_NAME = re.compile(r"^\.tmp-[0-9a-f]{12}-(\d+)-([0-9a-f]{10})$")


def discard_job_folder(folder: Path) -> None:
    """Remove a job folder Hydra made for an invocation that left nothing in it but `.hydra`
    (a rejected run, a resume, a non-chief worker): the run lives elsewhere or not at all."""
    folder = Path(folder)
    if folder.is_dir() and {p.name for p in folder.iterdir()} <= {".hydra"}:
        shutil.rmtree(folder, ignore_errors=True)


def staging_dir(parent: Path) -> Path:
    """A fresh hidden folder beside the final one; renamed into place when complete.

    Named `.tmp-<random>-<pid>-<writer>`, so a later writer can tell that its owner died (a kill
    -9, a power cut) and remove it: stale staging folders under `parent` are cleaned first. Being
    hidden and never a final name, a staging folder is never read or reused.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(parent)
    path = parent / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}-{os.getpid()}-{_writer_token()}"
    path.mkdir()
    return path


def clean_stale_staging(parent: Path, max_age_s: float = STALE_STAGING_AGE_S) -> list[Path]:
    """Remove the staging folders under `parent` whose writer is gone; returns what was removed.

    A folder written on this machine and PID namespace is stale when its process no longer
    exists. One whose writer cannot be checked here is stale only after `max_age_s`. A live
    writer's folder is never touched (a reused pid keeps a dead writer's folder until it ages).
    """
    removed: list[Path] = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(STAGING_PREFIX) or entry.is_symlink() or not entry.is_dir():
            continue
        match = _STAGING_NAME.match(entry.name)
        if match and match.group(2) == _writer_token():
            pid = int(match.group(1))
            stale = pid != os.getpid() and not _process_alive(pid)
        else:
            try:
                stale = now - entry.stat().st_mtime > max_age_s
            except OSError:
                continue
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


@functools.lru_cache(maxsize=1)
def _writer_token() -> str:
    """Names this machine boot and PID namespace: pids in staging names are comparable only within it."""
    parts = [socket.gethostname()]
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            parts.append(Path(path).read_text().strip() if "boot_id" in path else os.readlink(path))
        except OSError:
            pass
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:10]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists (another user's), or we cannot tell: keep its folder
    return True


def file_digests(folder: Path, exclude: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file under `folder` (relative POSIX paths), for a manifest."""
    folder = Path(folder)
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel not in exclude:
            out[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return out


def verify_digests(folder: Path, digests: dict[str, dict[str, Any]]) -> list[str]:
    """Problems found checking `folder` against `file_digests` output (empty list: intact)."""
    problems = []
    for rel, want in digests.items():
        path = Path(folder) / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif sha256_file(path) != want.get("sha256"):
            problems.append(f"{rel}: sha256 differs from the manifest")
    return problems


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
