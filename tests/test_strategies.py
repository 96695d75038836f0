"""tf.distribute strategies on a CPU-only machine (issue #4): mirrored over two logical CPUs,
multi_worker with two real worker processes on 127.0.0.1, mixed precision, and fast refusals."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY, recctl, recctl_json

ONE_EPOCH = [*TINY, "trainer.epochs=1", "trainer.early_stopping=false", "logger=none"]


def _losses(run_dir: str) -> list[float]:
    with open(Path(run_dir) / "history.csv", newline="") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


@pytest.mark.slow  # CI time: covered in make test-all
def test_mirrored_over_two_cpus_matches_one_device_then_evaluates_and_exports(tmp_path):
    one = recctl_json("train", *ONE_EPOCH, "strategy=cpu", cwd=tmp_path)
    two = recctl_json("train", *ONE_EPOCH, "strategy=mirrored", "strategy.logical_cpus=2", cwd=tmp_path)
    (a,), (b,) = _losses(one["run_dir"]), _losses(two["run_dir"])
    assert abs(a - b) <= 1e-4 * abs(a), (a, b)  # same global batch: same loss after one epoch
    evaluated = recctl_json("evaluate", f"run={two['run_dir']}", cwd=tmp_path)
    assert evaluated["metrics"]["test"]["ndcg@10"] == pytest.approx(
        two["metrics"]["test"]["ndcg@10"], abs=1e-6
    )
    exported = recctl_json("export", f"run={two['run_dir']}", cwd=tmp_path)
    assert (Path(exported["export_dir"]) / "saved_model.pb").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_workers(cwd: Path, *args: str) -> list[subprocess.Popen]:
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        env = {**os.environ, "TF_CONFIG": tf_config, "PYTHONUNBUFFERED": "1"}
        env.pop("HYDRA_FULL_ERROR", None)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "recctl", "--json", "train", "strategy=multi_worker", *args],
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=open(cwd / f"worker{index}.err", "w"),
                text=True,
            )
        )
    return procs


def _finish(procs: list[subprocess.Popen], timeout: float) -> list[tuple[int, str]]:
    out = []
    try:
        for proc in procs:
            stdout, _ = proc.communicate(timeout=timeout)
            out.append((proc.returncode, stdout))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return out


def test_multi_worker_two_processes_train_in_step_and_only_the_chief_writes(tmp_path):
    procs = _start_workers(tmp_path, *TINY, "trainer.epochs=2", "trainer.early_stopping=false", "logger=none")
    (rc0, out0), (rc1, out1) = _finish(procs, timeout=300)
    errors = "\n".join((tmp_path / f"worker{i}.err").read_text()[-2000:] for i in range(2))
    assert rc0 == 0 and rc1 == 0, errors
    chief, worker = json.loads(out0), json.loads(out1)
    assert chief["weights_digest"] == worker["weights_digest"]  # identical weights on both workers
    assert worker["run_dir"] is None and worker["role"] == "worker"
    runs = sorted((tmp_path / "outputs" / "runs").iterdir())
    assert [str(r) for r in runs] == [chief["run_dir"]]  # the worker left no run folder
    manifest = json.loads((runs[0] / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["epochs"] == 2


# slow (27 s): the two-worker training test stays in CI.
@pytest.mark.slow
def test_multi_worker_fails_with_a_clear_error_when_a_worker_dies(tmp_path):
    procs = _start_workers(
        tmp_path, *TINY, "trainer.epochs=500", "trainer.early_stopping=false", "logger=none"
    )
    deadline = time.monotonic() + 180
    while "epoch 1/" not in (tmp_path / "worker1.err").read_text():
        assert time.monotonic() < deadline and procs[1].poll() is None, (tmp_path / "worker1.err").read_text()
        time.sleep(0.5)
    procs[1].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    (rc0, out0), _ = _finish(procs, timeout=120)  # bounded: the chief must not wait forever
    assert time.monotonic() - killed < 120
    assert rc0 == 1
    chief = json.loads(out0)
    assert "a worker stopped responding" in chief["error"], chief["error"]
    manifest = json.loads((Path(chief["run_dir"]) / "manifest.json").read_text())
    assert manifest["status"] == "failed"


@pytest.mark.slow  # CI time: covered in make test-all
def test_mixed_precision_trains_evaluates_with_float32_scores(tmp_path):
    result = recctl_json("train", *ONE_EPOCH, "strategy.mixed_precision=mixed_bfloat16", cwd=tmp_path)
    assert result["metrics"]["test"]["ndcg@10"] > 0
    probe = (
        "import sys, tensorflow as tf; from recctl.runs import load_run; "
        "from recctl.evaluation.report import score_function; "
        "from pathlib import Path; run = load_run(Path(sys.argv[1])); s = score_function(run.model, run.snapshot, 'test')([0, 1]); "
        "print(run.model.dtype_policy.name, s.dtype.name)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, result["run_dir"]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-2:] == ["mixed_bfloat16", "float32"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["strategy=tpu"], "strategy=tpu: cannot reach"),
        (["strategy=one_device", "strategy.device=/gpu:3"], "device '/gpu:3' is not on this machine"),
        pytest.param(  # CI time: the same check-before-data path as the two rows above
            ["strategy=mirrored", "trainer.steps_per_execution=8"],
            "cannot run trainer.steps_per_execution=8",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            ["strategy.name=parameter_server"],
            "Keras 3 fit does not support ParameterServerStrategy",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_impossible_placements_fail_before_any_data_is_read(tmp_path, overrides, message):
    proc = recctl("train", *overrides, cwd=tmp_path, env={"TF_CONFIG": ""})
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("recctl: error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()  # failed before preparing any snapshot
