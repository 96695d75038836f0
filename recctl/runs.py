"""Run folders: what a training run writes, where, and how a finished one is found and opened.

`RunFolder` is the one place that names a run's files and moves its manifest through its states:
`start` (running) -> `complete` | `fail` (failed, interrupted); `restart` when `resume=` continues
it. `resolve_run` turns `run=PATH|latest` into a completed run; `open_finished_run` is the preamble
of every command that reads one (evaluate, export, recommend).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from recctl.artifacts import (
    MANIFEST,
    atomic_write_json,
    atomic_write_parquet,
    atomic_write_text,
    environment,
    now_iso,
    read_json,
    read_manifest,
    update_manifest,
)
from recctl.errors import RunNotFoundError

if TYPE_CHECKING:
    from recctl.data.snapshot import Snapshot


@dataclass(frozen=True)
class RunFolder:
    """A run's folder (or a non-chief worker's scratch folder, which only gets the training files)."""

    path: Path

    @property
    def config(self) -> Path:  # the composed config the run was trained with (resolved)
        return self.path / "config.yaml"

    @property
    def model(self) -> Path:  # the fitted model, loadable in safe mode
        return self.path / "model.keras"

    @property
    def metrics(self) -> Path:  # test (and valid) metrics beside pop; evaluate rewrites them
        return self.path / "metrics.json"

    @property
    def per_user(self) -> Path:  # each evaluated user's metric values (compare reads it; no re-scoring)
        return self.path / "per_user.parquet"

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    @property
    def history(self) -> Path:  # one row per epoch
        return self.path / "history.csv"

    @property
    def curves(self) -> Path:
        return self.path / "curves.png"

    @property
    def checkpoints(self) -> Path:  # one complete checkpoint per epoch (training/checkpoints.py)
        return self.path / "checkpoints"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def error_log(self) -> Path:  # the traceback of an unexpected failure
        return self.path / "error.log"

    @property
    def hydra(self) -> Path:  # Hydra's own record of the job: config and overrides
        return self.path / ".hydra"

    def read_manifest(self) -> dict:
        return read_manifest(self.path)

    def update(self, **fields: Any) -> dict:
        """Set manifest fields (the others are kept)."""
        return update_manifest(self.path, **fields)

    def read_metrics(self) -> dict:
        return read_json(self.metrics) if self.metrics.is_file() else {}

    def write_metrics(self, metrics: dict) -> None:
        atomic_write_json(self.metrics, metrics)

    def write_evaluation(self, metrics: dict, per_user) -> None:
        """metrics.json, and per_user.parquet beside it (removed when there are no per-user values,
        so it never describes an older evaluation)."""
        if per_user is not None:
            atomic_write_parquet(self.per_user, per_user)
        elif self.per_user.exists():
            self.per_user.unlink()
        atomic_write_json(self.metrics, metrics)

    def start(self, config, command: str, overrides: list[str], model: str, snapshot: Snapshot, seed: int):
        """Save the run's config and mark it running: from here on a failure is recorded in it."""
        atomic_write_text(self.config, OmegaConf.to_yaml(config, resolve=True))
        self.update(
            kind="run",
            status="running",
            started_at=now_iso(),
            command=command,
            overrides=list(overrides),
            model=model,
            dataset=snapshot.name,
            fingerprint=snapshot.fingerprint,
            snapshot=str(snapshot.path.resolve()),
            seed=seed,
            pid=os.getpid(),
            host=socket.gethostname(),
        )

    def restart(self, from_epoch: int, command: str) -> None:
        """Mark a killed run running again (`resume=`); its `resumed` list records each restart."""
        history = list(self.read_manifest().get("resumed") or [])
        history.append({"at": now_iso(), "from_epoch": from_epoch, "command": command})
        self.update(status="running", resumed=history, pid=os.getpid(), host=socket.gethostname(), error=None)

    def complete(self, **fields: Any) -> None:
        """Mark the run completed (written after its model and metrics): `run=latest` may pick it."""
        self.update(status="completed", completed_at=now_iso(), **fields, environment=environment())

    def fail(self, status: str, error: str | None, started: bool = True) -> None:
        """Record that the run failed or was interrupted (`started=False`: a sweep job rejected before
        its run started gets a manifest all the same, so the sweep lists it)."""
        self.update(**({} if started else {"kind": "run"}), status=status, error=error)

    def record_gate(self, passed: bool, verdict: str) -> None:
        self.update(gate={"passed": passed, "verdict": verdict})


def run_manifests(output_dir: Path) -> Iterator[tuple[Path, dict]]:
    """(folder, manifest) of every run under `output_dir`: single runs and sweep jobs."""
    output_dir = Path(output_dir)
    for path in list(output_dir.glob(f"runs/*/{MANIFEST}")) + list(output_dir.glob(f"sweeps/*/*/{MANIFEST}")):
        try:
            manifest = read_json(path)
        except (OSError, ValueError):
            continue
        if manifest.get("kind") == "run":
            yield path.parent, manifest


def completed_runs(output_dir: Path) -> list[Path]:
    """Completed runs (single runs and sweep jobs), oldest first by completion time."""
    found = [
        (manifest.get("completed_at", ""), folder)
        for folder, manifest in run_manifests(output_dir)
        if manifest.get("status") == "completed"
    ]
    found.sort(key=lambda pair: pair[0])
    return [p for _, p in found]


def resolve_run(spec: str | None, output_dir: Path, key: str = "run") -> Path:
    """`run=PATH` or `run=latest` -> a completed run folder (clear error otherwise); `key` is the
    setting that named it (compare also takes `base=`)."""
    if spec in (None, "", "latest"):
        runs = completed_runs(output_dir)
        if not runs:
            raise RunNotFoundError(
                f"{key}=latest: no completed training run under {output_dir}/ (train one with `recctl train`)"
            )
        return runs[-1]
    path = Path(spec)
    if not path.is_dir():
        raise RunNotFoundError(f"{key}={spec}: no such run folder")
    manifest = read_manifest(path)
    if not manifest:
        raise RunNotFoundError(f"{key}={spec}: not a recctl run folder (no {MANIFEST})")
    if manifest.get("status") != "completed":
        raise RunNotFoundError(
            f"{key}={spec}: that run did not complete (status: {manifest.get('status', 'unknown')}); "
            "pick another run or train again"
        )
    model = RunFolder(path).model
    if not model.is_file():
        raise RunNotFoundError(f"{key}={spec}: the run has no {model.name}")
    return path


@dataclass
class LoadedRun:
    path: Path
    config: object
    manifest: dict
    snapshot: Snapshot
    model: object
    model_name: str
    seed: int

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.path)


def load_run(run_dir: Path, with_model: bool = True) -> LoadedRun:
    folder = RunFolder(Path(run_dir))
    manifest = folder.read_manifest()
    config = OmegaConf.load(folder.config)
    snapshot = _snapshot_of(run_dir, manifest, config)
    model = load_model(folder.model) if with_model else None
    return LoadedRun(
        run_dir,
        config,
        manifest,
        snapshot,
        model,
        manifest.get("model", "model"),
        int(config.get("seed", 42)),
    )


def load_model(path: Path):
    import keras

    import recctl.models.registry  # noqa: F401  (registers every recctl model class for safe-mode loading)

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:
        raise RunNotFoundError(
            f"{path}: the model could not be loaded ({str(exc).splitlines()[0]})"
        ) from None


def _snapshot_of(run_dir: Path, manifest: dict, config) -> Snapshot:
    """The run's own snapshot; re-prepared from the run's dataset config if it was deleted."""
    from recctl.data.snapshot import Snapshot

    path = Path(manifest.get("snapshot", ""))
    if path.is_dir() and (path / MANIFEST).is_file():
        return Snapshot(path)
    from recctl.data.prepare import ensure_snapshot

    snapshot, _ = ensure_snapshot(config.dataset, config.paths.data_dir, int(config.seed))
    if snapshot.fingerprint != manifest.get("fingerprint"):
        raise RunNotFoundError(
            f"run {run_dir}: its dataset snapshot {manifest.get('fingerprint')} is gone and the data now gives "
            f"{snapshot.fingerprint} (the raw files changed): train again on the current data"
        )
    return snapshot


def open_finished_run(cfg, command: str, with_model: bool = True, result: dict | None = None) -> LoadedRun:
    """The preamble of every command that reads a finished run (evaluate, export, recommend):
    `run=PATH|latest` resolved to a completed run, dataset overrides that would make another
    snapshot refused, then the run opened. `result`: the command's result, given the run's folder as
    soon as it is known (a failure after that names the run, and its traceback goes to its error.log)."""
    from recctl.config import checked_paths
    from recctl.data.prepare import check_run_dataset

    run_dir = resolve_run(cfg.get("run"), Path(checked_paths(cfg).output_dir))
    if result is not None:
        result["run_dir"] = str(run_dir.resolve())
    check_run_dataset(cfg.get("dataset"), read_manifest(run_dir), str(run_dir), command)
    return load_run(run_dir, with_model=with_model)
