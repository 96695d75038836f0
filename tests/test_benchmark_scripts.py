"""The benchmark scripts run end to end on tiny sizes (their figures are benchmarks, never tests)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
def test_bench_serving_times_every_format_and_the_floor_on_a_tiny_catalogue():
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "serving.py"),
            "--items",
            "300",
            "--users",
            "120",
            "--per-user",
            "8",
            "--singles",
            "20",
            "--repeats",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith(("| mf ", "| attention "))]
    runtimes = {(r.split("|")[1].strip(), r.split("|")[2].strip()) for r in rows}
    for model in ("mf", "attention"):
        for runtime in ("saved_model", "onnx", "litert", "floor: numpy matmul + top-k"):
            assert (model, runtime) in runtimes, (model, runtime, proc.stdout)
    assert "failed" not in proc.stdout, proc.stdout


@pytest.mark.slow
def test_bench_warmstart_replays_one_early_week_warm_and_from_scratch(ml100k_dir):
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "warmstart.py"), "--slices", "8", "--families", "mf"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "RECCTL_DATASETS": str(ml100k_dir.parent)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = [line for line in proc.stdout.splitlines() if line.startswith("| mf |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "0-7, 9" and 0 < float(cells[2].split()[0]) <= 1 and 0 < float(cells[3]) <= 1
