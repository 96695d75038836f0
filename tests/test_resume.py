"""Killed runs resume (issue #7): a real training process is killed mid-epoch and continued with
`train resume=`, ending with the metrics of a run that was never interrupted; SIGTERM stops a run
cleanly (exit 130, manifest `interrupted`, checkpoint kept). Also the data side of it: each
epoch's batches are a function of (seed, epoch) only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import recctl, recctl_json

# Big enough that an epoch takes a moment (so a kill lands inside one), small enough for CI.
SHAPE = [
    "dataset.synthetic.n_users=1500",
    "dataset.synthetic.n_items=400",
    "dataset.synthetic.mean_interactions=40",
    "trainer.batch_size=128",
    "trainer.deterministic=true",
    "trainer.early_stopping=false",
    "trainer.epochs=6",
    "trainer.evaluate_test=true",
    "logger=none",
]


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "recctl", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for_checkpoint(cwd: Path, epoch: int, proc: subprocess.Popen, limit: float = 180) -> Path:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = list(cwd.glob(f"outputs/runs/*/checkpoints/epoch-{epoch:04d}/state.json"))
        if found:
            return found[0].parent.parent.parent
        if proc.poll() is not None:
            pytest.fail(
                f"training ended (exit {proc.returncode}) before epoch {epoch}:\n{proc.stderr.read()}"
            )
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no checkpoint for epoch {epoch} within {limit} s")


# slow (86 s): tests/test_golden.py resumes a killed run in CI; this one kills mid-epoch.
@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_metrics_of_an_uninterrupted_run(tmp_path):
    straight = tmp_path / "straight"
    straight.mkdir()
    expected = recctl_json("train", *SHAPE, cwd=straight)

    killed = tmp_path / "killed"
    killed.mkdir()
    proc = _start(["train", *SHAPE], killed)
    run_dir = _wait_for_checkpoint(killed, 2, proc)
    proc.send_signal(signal.SIGKILL)  # no handler runs: the manifest still says "running"
    proc.wait(timeout=60)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "running"
    assert not (run_dir / "model.keras").exists()
    done = len(list((run_dir / "checkpoints").glob("epoch-*")))
    assert done == 1  # older checkpoints are removed once a newer one is complete

    resumed = recctl_json("train", "resume=latest", cwd=killed)
    assert resumed["status"] == "ok"
    assert resumed["run_dir"] == str(run_dir.resolve())
    assert resumed["seconds"]["epochs"] == 6
    assert resumed["metrics"] == expected["metrics"]  # every figure, both splits
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["resumed"][0]["from_epoch"] >= 2
    history = (run_dir / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == [str(e) for e in range(6)]
    # the invocation that resumed left no folder of its own
    assert [p for p in (killed / "outputs" / "runs").iterdir()] == [run_dir]

    again = recctl("train", "resume=latest", cwd=killed)
    assert again.returncode == 2 and "no interrupted run with a checkpoint" in again.stderr


def test_sigterm_stops_cleanly_with_exit_130_and_a_resumable_run(tmp_path):
    proc = _start(["train", *SHAPE[:5], "trainer.epochs=200", "logger=none"], tmp_path)
    run_dir = _wait_for_checkpoint(tmp_path, 1, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"recctl train resume={run_dir}" in stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert (run_dir / "checkpoints").glob("epoch-*")

    other = recctl("train", f"resume={run_dir}", "trainer.epochs=3", cwd=tmp_path)
    assert other.returncode == 2
    assert "drop the other overrides (trainer.epochs=3)" in other.stderr


def test_each_epoch_of_the_pipeline_depends_only_on_seed_and_epoch():
    from recctl.data.pipelines import EpochClock, id_training_dataset

    users = np.repeat(np.arange(50), 4)
    items = np.tile(np.arange(4), 50) + 3 * (np.arange(200) % 7)
    clock = EpochClock()

    def epoch(e: int, seed: int = 1):
        clock.set(e)
        ds = id_training_dataset(users, items, 40, 32, 2, seed, clock)
        return [(b[0]["user"].tolist(), b[0]["items"].tolist()) for b in ds.as_numpy_iterator()]

    first, second = epoch(0), epoch(1)
    assert first != second  # reshuffled, new negatives
    assert epoch(0) == first and epoch(1) == second  # and reproducible out of order
    assert epoch(0, seed=2) != first
    assert sorted(u for batch in first for u in batch[0]) == sorted(users.tolist())


def test_a_sequence_run_saved_before_model_softmax_resumes_on_the_sampled_softmax():
    from omegaconf import OmegaConf

    from recctl.training.resume import upgrade_saved_config

    old = OmegaConf.create(
        {
            "model": {
                "_target_": "recctl.models.lstm.RecurrentRecommender",
                "max_length": 10,
                "num_negatives": 128,
            }
        }
    )
    assert upgrade_saved_config(old).model.softmax == "sampled"
    new = OmegaConf.create({"model": {"max_length": 10, "num_negatives": 128, "softmax": "auto"}})
    assert upgrade_saved_config(new).model.softmax == "auto"
    mf = OmegaConf.create(
        {"model": {"_target_": "recctl.models.mf.MatrixFactorization", "num_negatives": 64}}
    )
    assert "softmax" not in upgrade_saved_config(mf).model
