"""Do concurrent writers ever collide? (issue #7: artifacts are atomic and never clobbered)

Runs rounds of simultaneous recctl commands that write the same kind of artifact and counts what
must never happen, printing a Markdown table:
  - concurrent exports: each round, 2 `recctl export`s of one trained run into one export name;
  - concurrent prepares: each round, 2 `recctl prepare`s of a fresh dataset (a new seed).
Counted per trial: shared folders (two writers published into one folder, or one's files mixed
into another's: the digests in export.json / the snapshot manifest no longer match), incomplete
folders seen (a watcher polls the parent every ~2 ms for a final folder without its completion
file), non-unique versions, staging folders left after the round, and failed commands.

    python benchmarks/reliability.py [--rounds 10] [--keep]      (make bench-reliability)

To add a trial, write a function `(work: Path, rounds: int) -> Trial` and append it to TRIALS.

Kill and resume (`--resume-rounds N`, 0 to skip): for one model per input kind (mf, lstm,
autoencoder), a deterministic run trained straight through, then N runs killed at a random moment
(SIGKILL, or SIGTERM every third round) after their first checkpoint and continued with
`train resume=latest`; every metric of the resumed run is compared with the straight run's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from recctl.artifacts import verify_digests  # noqa: E402
from recctl.data.snapshot import Snapshot  # noqa: E402
from recctl.runs import completed_runs  # noqa: E402
from tests.test_resume import SHAPE as RESUME_SHAPE  # noqa: E402  (the CI test's run)

TINY = [
    "dataset.synthetic.n_users=300",
    "dataset.synthetic.n_items=150",
    "dataset.synthetic.mean_interactions=25",
]
PREPARE_DATA = ["dataset.synthetic.n_users=3000", "dataset.synthetic.n_items=1000"]
ENV = {
    **os.environ,
    "PYTHONUNBUFFERED": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


@dataclass
class Trial:
    name: str
    rounds: int = 0
    writers: int = 2
    artifacts: int = 0  # final folders published
    shared: int = 0  # two writers in one folder
    incomplete_seen: int = 0  # a final folder seen without its completion file
    duplicate_versions: int = 0
    leftover_staging: int = 0
    failed: int = 0
    seconds: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def collisions(self) -> int:
        return self.shared + self.incomplete_seen + self.duplicate_versions + self.leftover_staging


def _start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "recctl", "--json", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _results(procs: list[subprocess.Popen], trial: Trial) -> list[dict | None]:
    """Each process's JSON result (None and a note when it failed)."""
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate()
        try:
            result = json.loads(stdout)
        except ValueError:
            result = None
        if proc.returncode != 0 or result is None or result.get("status") != "ok":
            trial.failed += 1
            trial.notes.append(f"exit {proc.returncode}: {stderr.strip().splitlines()[-1:]}")
            result = None
        out.append(result)
    return out


class Watcher(threading.Thread):
    """Polls `parent` while writers run; records final folders seen without `marker` in them."""

    def __init__(self, parent: Path, marker: str):
        super().__init__(daemon=True)
        self.parent, self.marker = parent, marker
        self.incomplete: set[str] = set()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                for entry in self.parent.iterdir():
                    if not entry.name.startswith(".") and not (entry / self.marker).is_file():
                        # rename is atomic: re-check once to rule out a folder removed under us
                        if entry.is_dir() and not (entry / self.marker).is_file():
                            self.incomplete.add(entry.name)
            except OSError:
                pass
            time.sleep(0.002)

    def stop(self) -> set[str]:
        self._done.set()
        self.join()
        return self.incomplete


def _visible(parent: Path) -> set[str]:
    return {p.name for p in parent.iterdir() if not p.name.startswith(".")} if parent.is_dir() else set()


def _staging(parent: Path) -> int:
    return len(list(parent.glob(".tmp-*"))) if parent.is_dir() else 0


def concurrent_exports(work: Path, rounds: int) -> Trial:
    """Rounds of 2 simultaneous `recctl export`s of one run into one export name."""
    trial = Trial("2 concurrent exports of one run (saved_model)")
    proc = subprocess.run(
        [sys.executable, "-m", "recctl", "--json", "train", *TINY, "trainer.epochs=2", "logger=none"],
        cwd=work,
        capture_output=True,
        text=True,
        env=ENV,
    )
    if proc.returncode != 0:
        raise SystemExit(f"training the run to export failed: {proc.stderr[-2000:]}")
    run = completed_runs(work / "outputs")[-1].resolve()
    parent = work / "outputs" / "exports" / "bench"
    for _ in range(rounds):
        before = _visible(parent)
        parent.mkdir(parents=True, exist_ok=True)
        watcher = Watcher(parent, "export.json")
        watcher.start()
        start = time.perf_counter()
        procs = [_start("export", f"run={run}", "export.name=bench", cwd=work) for _ in range(2)]
        results = _results(procs, trial)
        trial.seconds.append(time.perf_counter() - start)
        trial.incomplete_seen += len(watcher.stop())
        trial.rounds += 1
        dirs = [Path(r["export_dir"]) for r in results if r]
        new = _visible(parent) - before
        trial.artifacts += len(new)
        if len({d.name for d in dirs}) < len(dirs) or len(new) < len(dirs):
            trial.duplicate_versions += 1
        for d in dirs:
            info = json.loads((d / "export.json").read_text())
            if verify_digests(d, info["files"]) or set(info["files"]) != {
                p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()
            } - {"export.json"}:
                trial.shared += 1
        trial.leftover_staging += _staging(parent)
    return trial


def concurrent_prepares(work: Path, rounds: int) -> Trial:
    """Rounds of 2 simultaneous `recctl prepare`s of a dataset not prepared before (a new seed)."""
    trial = Trial("2 concurrent prepares of a fresh dataset")
    parent = work / "data" / "processed" / "synthetic"
    for i in range(rounds):
        before = _visible(parent)
        parent.mkdir(parents=True, exist_ok=True)
        watcher = Watcher(parent, "manifest.json")
        watcher.start()
        start = time.perf_counter()
        procs = [_start("prepare", *PREPARE_DATA, f"seed={1000 + i}", cwd=work) for _ in range(2)]
        results = _results(procs, trial)
        trial.seconds.append(time.perf_counter() - start)
        trial.incomplete_seen += len(watcher.stop())
        trial.rounds += 1
        ok = [r for r in results if r]
        new = _visible(parent) - before
        trial.artifacts += len(new)
        paths = {r["dataset"]["path"] for r in ok}
        created = sum(bool(r["dataset"]["created"]) for r in ok)
        if len(paths) > 1 or len(new) != 1:
            trial.duplicate_versions += 1  # one dataset, more than one snapshot folder
        if created > 1:
            trial.shared += 1  # both claim to have published the same folder
        for path in paths:
            if Snapshot(work / path).verify():
                trial.shared += 1
        trial.leftover_staging += _staging(parent)
    return trial


TRIALS: list[Callable[[Path, int], Trial]] = [concurrent_exports, concurrent_prepares]


@dataclass
class ResumeTrial:
    model: str
    runs: int = 0
    resumed_ok: int = 0
    differing: int = 0  # resumed runs whose metrics differ from the straight run's
    max_abs_diff: float = 0.0
    kill_epochs: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _flat_metrics(result: dict) -> dict[str, float]:
    return {
        f"{split}/{k}": v for split, values in result["metrics"].items() for k, v in (values or {}).items()
    }


def kill_and_resume(work: Path, rounds: int, model: str, rng: random.Random) -> ResumeTrial:
    trial = ResumeTrial(model)
    args = ["train", *RESUME_SHAPE, f"model={model}"]
    straight_dir = work / f"resume-{model}-straight"
    straight_dir.mkdir()
    (expected,) = _results([_start(*args, cwd=straight_dir)], Trial("straight"))
    if expected is None:
        trial.notes.append("the uninterrupted run failed")
        return trial
    want = _flat_metrics(expected)
    for r in range(rounds):
        cwd = work / f"resume-{model}-{r}"
        cwd.mkdir()
        proc = _start(*args, cwd=cwd)
        while not list(cwd.glob("outputs/runs/*/checkpoints/epoch-*/state.json")) and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 1.5))  # somewhere in a later epoch (or during validation)
        if proc.poll() is not None:
            trial.notes.append(f"round {r}: training ended before the kill")
            continue
        proc.send_signal(signal.SIGTERM if r % 3 == 2 else signal.SIGKILL)
        proc.communicate()
        state = sorted(cwd.glob("outputs/runs/*/checkpoints/epoch-*/state.json"))
        trial.kill_epochs.append(json.loads(state[-1].read_text())["epoch"] if state else 0)
        trial.runs += 1
        probe = Trial("resume")
        (resumed,) = _results([_start("train", "resume=latest", cwd=cwd)], probe)
        if resumed is None:
            trial.notes.extend(probe.notes)
            continue
        trial.resumed_ok += 1
        got = _flat_metrics(resumed)
        diffs = [abs(got.get(k, float("nan")) - v) for k, v in want.items()]
        worst = max(diffs) if diffs else 0.0
        if worst != 0.0 or set(got) != set(want):
            trial.differing += 1
        trial.max_abs_diff = max(trial.max_abs_diff, worst)
    return trial


def resume_table(trials: list[ResumeTrial]) -> str:
    lines = [
        "| model | killed runs | resumed to completion | metrics differing | max abs difference | epochs done at the kill |",
        "|---|---|---|---|---|---|",
    ]
    for t in trials:
        lines.append(
            f"| {t.model} | {t.runs} | {t.resumed_ok} | **{t.differing}** | {t.max_abs_diff:g} | "
            f"{', '.join(map(str, t.kill_epochs))} |"
        )
    return "\n".join(lines)


def table(trials: list[Trial]) -> str:
    lines = [
        "| trial | rounds | writers/round | artifacts | shared folder | incomplete seen | "
        "non-unique versions | leftover staging | failed | collisions | s/round |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in trials:
        per_round = sum(t.seconds) / max(1, len(t.seconds))
        lines.append(
            f"| {t.name} | {t.rounds} | {t.writers} | {t.artifacts} | {t.shared} | {t.incomplete_seen} | "
            f"{t.duplicate_versions} | {t.leftover_staging} | {t.failed} | **{t.collisions}** | {per_round:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--resume-rounds", type=int, default=4, help="kill-and-resume runs per model")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="recctl-reliability-"))
    trials, resumes = [], []
    rng = random.Random(7)
    try:
        for trial in TRIALS if args.rounds else []:
            started = time.perf_counter()
            trials.append(trial(work, args.rounds))
            print(f"{trials[-1].name}: done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        for model in ("mf", "lstm", "autoencoder") if args.resume_rounds else ():
            started = time.perf_counter()
            resumes.append(kill_and_resume(work, args.resume_rounds, model, rng))
            print(f"kill and resume {model}: done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if trials:
        print(table(trials))
        for t in trials:
            for note in t.notes:
                print(f"- {t.name}: {note}")
    if resumes:
        print("\n" + resume_table(resumes))
        for t in resumes:
            for note in t.notes:
                print(f"- {t.model}: {note}")
    failed = any(t.collisions or t.failed for t in trials)
    if failed or any(t.differing or t.resumed_ok < t.runs for t in resumes):
        sys.exit(1)


if __name__ == "__main__":
    main()
