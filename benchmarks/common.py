"""Shared by the benchmark scripts: run `recctl --json train` and read its result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def train_result(args: list[str], cwd: Path) -> tuple[dict | None, str | None]:
    """(result, None) when the run succeeded; (None, one-line reason) when it did not."""
    proc = subprocess.run(
        [str(BIN / "recctl"), "--json", "train", *args], cwd=cwd, capture_output=True, text=True
    )
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        return None, f"error: {proc.stderr.strip().splitlines()[-1:]}"
    if result["status"] != "ok":
        return None, f"{result['status']}: {result.get('error')}"
    return result, None
