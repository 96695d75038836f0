"""Errors that end a command with a one-line message and a documented exit code.

Exit codes are part of the public interface (docs/interface.md): scripts and CI rely on them.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_GATE = 3
EXIT_SWEEP_FAILED = 4
EXIT_INTERRUPTED = 130


class RecctlError(Exception):
    """Base class: carries the exit code the CLI should end with."""

    exit_code = EXIT_RUNTIME


class ConfigError(RecctlError):
    """A config value is missing, of the wrong type, out of range or contradictory."""

    exit_code = EXIT_USAGE


class DataError(RecctlError):
    """Input data is missing or malformed; the message names the file, line and column."""

    exit_code = EXIT_USAGE


class RunNotFoundError(RecctlError):
    """`run=` points at nothing usable (no run, an unfinished run, no model)."""

    exit_code = EXIT_USAGE


class GateFailed(RecctlError):
    """A quality gate (gate.metric with gate.min / gate.min_lift) was not met."""

    exit_code = EXIT_GATE


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.EISDIR)


def output_error(exc: OSError, target: str, setting: str, value: Any) -> RecctlError | None:
    """An OSError met while writing `target` under a configured folder, as a one-line error (None:
    another kind of failure, left as it is).

    A full disk (or quota) is a runtime failure (exit 1). A folder that cannot be created or written
    (read-only, no permission, a file in the way) is a config error naming the setting (exit 2).
    """
    if exc.errno in _DISK_FULL:
        return RecctlError(
            f"no space left on device while writing {target}; nothing was kept (free some space, or set {setting} "
            "to a folder on another disk)"
        )
    if exc.errno in _NOT_WRITABLE:
        blocker = _file_in_the_way(Path(exc.filename)) if exc.filename else None
        reason = f"{blocker} is a file, not a folder" if blocker else (exc.strerror or str(exc))
        return ConfigError(f"{setting}={value}: cannot write {target} ({reason})")
    return None


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` (itself included) when it is not a folder."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None
