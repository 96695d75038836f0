"""The packaged configs work from a wheel installed outside the repo (pip users' path)."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, TINY


def test_wheel_installs_and_runs_outside_the_repo(tmp_path: Path):
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(REPO),
            "-w",
            str(dist),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    wheel = next(dist.glob("recctl-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    # Reuse the dependencies already installed here (no network, no re-download) but not recctl itself:
    # a .pth line adds our site-packages after the new venv's own, and .pth files there are not run,
    # so the editable install of the repo stays invisible.
    new_site = Path(
        subprocess.run(
            [str(py), "-c", "import site; print(site.getsitepackages()[0])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (new_site / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")}
    where = subprocess.run(
        [str(py), "-c", "import recctl; print(recctl.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert str(REPO) not in where and str(venv) in where
    recctl = venv / "bin" / "recctl"
    for args in (["prepare", *TINY[:3]], ["train", *TINY, "trainer.epochs=1"], ["evaluate", "run=latest"]):
        proc = subprocess.run(
            [str(recctl), *args], cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    assert "ndcg@10" in proc.stdout
    assert (work / "outputs" / "runs").is_dir() and (work / "data" / "processed" / "synthetic").is_dir()


@pytest.mark.slow
def test_the_mlflow_extra_alone_logs_a_run_in_a_fresh_virtualenv(tmp_path: Path):
    """`pip install 'recctl[mlflow]'` without the sweeps extra brings what MLflow's default SQLite
    store needs (SQLAlchemy, Alembic): a real install from the package index, so it is slow."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt"), f"{REPO}[mlflow]"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    absent = subprocess.run(
        [
            str(py),
            "-c",
            "import importlib.util as u; print(u.find_spec('optuna'), u.find_spec('hydra_plugins.hydra_joblib_launcher'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert absent == ["None", "None"], "the sweeps extra leaked into the mlflow extra"
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR", "MLFLOW_TRACKING_URI")
    }
    proc = subprocess.run(
        [str(venv / "bin" / "recctl"), "train", *TINY, "trainer.epochs=1", "logger=mlflow"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    check = (
        "import mlflow; mlflow.set_tracking_uri('sqlite:///outputs/mlflow/mlflow.db'); "
        "c = mlflow.tracking.MlflowClient(); e = c.get_experiment_by_name('recctl'); "
        "print(*[r.info.status for r in c.search_runs([e.experiment_id])])"
    )
    statuses = subprocess.run([str(py), "-c", check], cwd=work, env=env, capture_output=True, text=True)
    assert statuses.stdout.split() == ["FINISHED"], statuses.stderr[-2000:]
