"""The result every command returns: the `--json` object of docs/interface.md.

Every key of the schema is always present (null when it does not apply), so scripts can index
without guarding.
"""

from __future__ import annotations

from typing import Any

from recctl.errors import EXIT_GATE, EXIT_INTERRUPTED, EXIT_OK

_STATUS_BY_CODE = {EXIT_OK: "ok", EXIT_GATE: "gate_failed", EXIT_INTERRUPTED: "interrupted"}


def status_of(exit_code: int) -> str:
    """The `status` of a result that ends with `exit_code`."""
    return _STATUS_BY_CODE.get(exit_code, "failed")


def new_result(command: str) -> dict[str, Any]:
    return {
        "command": command,
        "status": "ok",
        "run_dir": None,
        "export_dir": None,
        "dataset": None,
        "model": None,
        "metrics": {"valid": None, "test": None},
        "baseline": {"pop": {"valid": None, "test": None}},
        "intervals": None,
        "protocol": None,
        "seconds": {"total": None, "fit": None, "per_epoch": None, "epochs": None},
        "error": None,
    }
