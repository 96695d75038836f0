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


# ------------------------------------------------------------------------------------ progress
# Long silent steps (a validation pass, evaluate's ranking passes, hashing a large file) report
# progress the way the surroundings want it:
#   bar    a transient rich bar on stderr: a person at a terminal (not NO_COLOR, not TERM=dumb);
#   lines  a plain line every LINE_EVERY_S seconds of a long step: CI logs (CI set) and --json;
#   off    nothing: output piped elsewhere asks for less.
# RECCTL_PROGRESS=bar|lines|off overrides. A step shorter than SHOW_AFTER_S shows nothing at all,
# so the per-epoch validation of a small dataset stays quiet.
SHOW_AFTER_S = 1.0
LINE_EVERY_S = 10.0


def progress_mode() -> str:
    chosen = os.environ.get("RECCTL_PROGRESS", "").strip().lower()
    if chosen in ("bar", "lines", "off"):
        return chosen
    if _json_mode or os.environ.get("CI"):
        return "lines"
    if sys.stderr.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb":
        return "bar"
    return "off"


class Progress:
    """`with console.progress("ranking test users", total, "users") as step: step.advance(n)`."""

    def __init__(self, description: str, total: int, unit: str, mode: str | None = None, clock=None):
        import time

        self._clock = clock or time.perf_counter
        self.description, self.total, self.unit = description, max(int(total), 0), unit
        self.mode = mode or progress_mode()
        self.done = 0
        self.started = self._clock()
        self._last_line = self.started
        self._bar = None
        self._task = None

    def __enter__(self) -> Progress:
        return self

    def advance(self, n: int = 1) -> None:
        self.done += int(n)
        if self.mode == "off":
            return
        now = self._clock()
        if now - self.started < SHOW_AFTER_S:
            return
        if self.mode == "bar":
            self._advance_bar()
        elif now - self._last_line >= LINE_EVERY_S and self.done < self.total:
            self._last_line = now
            share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
            info(
                f"  {self.description}: {self.done:,}/{self.total:,} {self.unit}{share}, {now - self.started:.0f} s"
            )

    def _advance_bar(self) -> None:
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.unit),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total or None)
        self._bar.update(self._task, completed=self.done)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self.mode == "lines" and self._last_line > self.started:  # it printed: say it ended
            seconds = self._clock() - self.started
            info(f"  {self.description}: done, {self.done:,} {self.unit} in {seconds:.0f} s")


def progress(description: str, total: int, unit: str) -> Progress:
    return Progress(description, total, unit)


class Stage:
    """`with console.stage("prepare: reading ratings.csv"):` a step without a known total: a transient
    spinner at a terminal after SHOW_AFTER_S, and in `lines` mode one line when it took that long."""

    def __init__(self, description: str, mode: str | None = None):
        import threading
        import time

        self.description, self.mode = description, mode or progress_mode()
        self._clock = time.perf_counter
        self._done = threading.Event()
        self._thread = None

    def __enter__(self) -> Stage:
        self.started = self._clock()
        if self.mode == "bar":
            import threading

            self._thread = threading.Thread(target=self._spin, daemon=True)
            self._thread.start()
        return self

    def _spin(self) -> None:
        if self._done.wait(SHOW_AFTER_S):
            return
        from rich.console import Console

        with Console(stderr=True).status(self.description):
            self._done.wait()

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        seconds = self._clock() - self.started
        if self.mode == "lines" and seconds >= SHOW_AFTER_S and exc[0] is None:
            info(f"  {self.description}: {seconds:.1f} s")


def stage(description: str) -> Stage:
    return Stage(description)
