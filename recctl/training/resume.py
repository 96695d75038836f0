"""`recctl train resume=RUN|latest`: find a killed run, check it can go on, and hand its config back.

A run killed by SIGKILL never updates its manifest (it stays `running`); one stopped by
SIGINT/SIGTERM says `interrupted`; one that crashed says `failed`. Any of them resumes from its
newest checkpoint, with the config it was started with (config.yaml), in its own folder. The
invocation's own Hydra folder is removed: the run folder stays the one place the run lives.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from recctl import console
from recctl.artifacts import MANIFEST, discard_job_folder, read_json
from recctl.errors import ConfigError, RunNotFoundError
from recctl.runs import RunFolder, run_manifests
from recctl.training import checkpoints

RESUMABLE = ("running", "interrupted", "failed")


@dataclass
class Resumed:
    run_dir: Path
    cfg: object
    model: str
    checkpoint: Path
    epoch: int

    def start(self, snapshot, command: str) -> None:
        """Mark the run running again, after checking its data did not change under it."""
        folder = RunFolder(self.run_dir)
        manifest = folder.read_manifest()
        if manifest.get("fingerprint") not in (None, snapshot.fingerprint):
            raise ConfigError(
                f"resume={self.run_dir}: its data changed (snapshot {snapshot.fingerprint}, the run was "
                f"trained on {manifest['fingerprint']}); train a new run instead"
            )
        folder.restart(self.epoch, command)
        console.info(f"resuming {self.run_dir} after epoch {self.epoch} ({self.checkpoint.name})")


def resumable_run(cfg, hydra_cfg) -> Resumed:
    spec = str(cfg.get("resume"))
    others = [o for o in hydra_cfg.overrides.task if not o.startswith("resume=")]
    if others:
        raise ConfigError(
            f"resume= continues a run with its own saved config; drop the other overrides ({' '.join(others)})"
        )
    output_dir = Path(str(cfg.paths.output_dir))
    run_dir = _latest_resumable(output_dir) if spec == "latest" else Path(spec)
    folder = RunFolder(run_dir)
    manifest = folder.read_manifest() if run_dir.is_dir() else {}
    if not manifest:
        raise RunNotFoundError(f"resume={spec}: not a recctl run folder (no {MANIFEST})")
    status = manifest.get("status")
    if status == "completed":
        raise ConfigError(f"resume={spec}: that run completed; nothing to resume")
    if status not in RESUMABLE:
        raise RunNotFoundError(f"resume={spec}: the run's status is {status!r}, not one that can resume")
    if status == "running" and _alive(manifest):
        raise ConfigError(f"resume={spec}: that run is still running (pid {manifest.get('pid')})")
    checkpoint = checkpoints.latest(folder.checkpoints)
    if checkpoint is None:
        raise RunNotFoundError(
            f"resume={spec}: the run has no checkpoint (it stopped before its first epoch ended); train again"
        )
    if not folder.config.is_file():
        raise RunNotFoundError(f"resume={spec}: the run has no {folder.config.name}")
    run_cfg = upgrade_saved_config(OmegaConf.load(folder.config))
    run_cfg.resume = None
    run_cfg.init_from = None  # the checkpoint already holds the warm-started weights
    _drop_own_folder(Path(hydra_cfg.runtime.output_dir), run_dir)
    epoch = int(read_json(checkpoint / "state.json")["epoch"])
    return Resumed(run_dir.resolve(), run_cfg, manifest.get("model") or "model", checkpoint, epoch)


_GAINED_TASK = ("recctl.models.mf.MatrixFactorization", "recctl.models.neumf.NeuMF")


def upgrade_saved_config(run_cfg):
    """Spell out what an older run's config.yaml left to a default that has since changed, so the
    run resumes as it began: sequence models saved before `model.softmax` existed trained on the
    sampled softmax (the default is now auto). Runs saved before `evaluation.baselines` said
    `evaluation.baseline: true|false`: that is `[pop]` or `[]`. mf and neumf saved before
    `model.task` existed were ranking models."""
    model = run_cfg.get("model") or {}
    if "max_length" in model and "num_negatives" in model and "softmax" not in model:
        run_cfg.model.softmax = "sampled"
    if model.get("_target_") in _GAINED_TASK and "task" not in model:
        from omegaconf import open_dict

        with open_dict(run_cfg):
            run_cfg.model.task = "ranking"
    evaluation = run_cfg.get("evaluation")
    if evaluation is not None and "baseline" in evaluation:
        from omegaconf import open_dict

        with open_dict(run_cfg):
            run_cfg.evaluation.baselines = ["pop"] if evaluation.baseline else []
            del run_cfg.evaluation["baseline"]
    return run_cfg


def _latest_resumable(output_dir: Path) -> Path:
    """The most recently started run that did not complete and has a checkpoint."""
    found = [
        (manifest.get("started_at", ""), folder)
        for folder, manifest in run_manifests(output_dir)
        if manifest.get("status") in RESUMABLE
        and not (manifest.get("status") == "running" and _alive(manifest))
        and checkpoints.latest(RunFolder(folder).checkpoints) is not None
    ]
    if not found:
        raise RunNotFoundError(f"resume=latest: no interrupted run with a checkpoint under {output_dir}/")
    return max(found)[1]


def _alive(manifest: dict) -> bool:
    """Whether the process that wrote a `running` manifest still runs (only knowable on its host)."""
    pid = manifest.get("pid")
    if not pid or manifest.get("host") != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a reused pid, or a zombie (empty command line), is not the run
        return b"recctl" in Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except OSError:
        return True


def _drop_own_folder(own: Path, run_dir: Path) -> None:
    if own.resolve() != run_dir.resolve():
        discard_job_folder(own)
