"""Errors that end a command with a one-line message and a documented exit code.

Exit codes are part of the public interface (docs/interface.md): scripts and CI rely on them.
"""

from __future__ import annotations

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
