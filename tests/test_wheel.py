"""The packaged configs work from a wheel installed outside the repo (pip users' path)."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

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
