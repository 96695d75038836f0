"""Where recctl's human-readable lines go.

With the global `--json` flag stdout carries exactly one JSON object, so every human line moves to
stderr; without it, results go to stdout and warnings/errors to stderr.
"""

from __future__ import annotations

import json
import os
import sys

# Inherited through the environment, so sweep jobs that a launcher runs in other processes
# (joblib, submitit) keep stdout for the one JSON object too.
_json_mode = os.environ.get("RECCTL_JSON_MODE") == "1"


def set_json_mode(on: bool) -> None:
    global _json_mode
    _json_mode = on
    os.environ["RECCTL_JSON_MODE"] = "1" if on else "0"


def json_mode() -> bool:
    return _json_mode


def info(message: str = "") -> None:
    stream = sys.stderr if _json_mode else sys.stdout
    print(message, file=stream, flush=True)


def error(message: str) -> None:
    print(f"recctl: error: {message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"recctl: warning: {message}", file=sys.stderr, flush=True)


def emit_json(obj: dict) -> None:
    """One JSON object on stdout; keys starting with "_" are recctl's own bookkeeping and stay out."""
    obj = {k: v for k, v in obj.items() if not k.startswith("_")}
    sys.stdout.write(json.dumps(obj, default=_jsonable) + "\n")
    sys.stdout.flush()


def _jsonable(value):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def interactive() -> bool:
    """True when a person is watching a terminal (progress bars make sense)."""
    return not _json_mode and sys.stdout.isatty()
