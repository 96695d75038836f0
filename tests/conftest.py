"""Shared fixtures: where the real datasets are, and how to run recctl as a user would (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Tiny synthetic data and short training: the end-to-end tests exercise every stage in seconds.
TINY = [
    "dataset.synthetic.n_users=300",
    "dataset.synthetic.n_items=150",
    "dataset.synthetic.mean_interactions=25",
    "trainer.batch_size=256",
]


def datasets_root() -> Path:
    """`../shared/datasets` beside the repo, or $RECCTL_DATASETS (a folder containing ml-100k/)."""
    return Path(os.environ.get("RECCTL_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    folder = datasets_root() / "ml-100k"
    if not (folder / "u.data").is_file():
        message = (
            f"MovieLens 100K not found at {folder} (set RECCTL_DATASETS to a folder containing ml-100k/)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return folder


def recctl(
    *args: str, cwd: Path, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the installed CLI exactly as a user's shell would, capturing its output."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", "recctl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def recctl_json(*args: str, cwd: Path, expect: int = 0, **kw) -> dict:
    proc = recctl("--json", *args, cwd=cwd, **kw)
    assert proc.returncode == expect, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print exactly one line on stdout, got:\n{proc.stdout}"
    return json.loads(lines[0])


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory) -> Path:
    """One tiny mf run (trained, evaluated) shared by the evaluate / export / recommend tests."""
    work = tmp_path_factory.mktemp("work")
    proc = recctl("--json", "train", *TINY, "trainer.epochs=4", "optimizer.learning_rate=0.01", cwd=work)
    assert proc.returncode == 0 and json.loads(proc.stdout)["status"] == "ok", proc.stderr
    (work / "train.stderr").write_text(proc.stderr)  # the human lines, for the tests that read them
    return work


def recctl_in_process(monkeypatch, capsys, *args: str, json_output: bool = False) -> tuple[int, str, str]:
    """The CLI's own entry point (recctl.runner.run_command), in this process: no TensorFlow import
    per call. (exit code, stdout, stderr). For checks of what a command decides and prints; the
    subprocess `recctl` above stays the path for what a shell sees."""
    from recctl import console
    from recctl.runner import run_command

    for key in ("HYDRA_FULL_ERROR", "RECCTL_JSON_MODE", "KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL"):
        # run_command sets them for its process: registered here, monkeypatch puts them back after
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])
        else:
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(console, "_json_mode", console.json_mode())
    capsys.readouterr()
    code = run_command(args[0], list(args[1:]), json_output=json_output)
    out, err = capsys.readouterr()
    return code, out, err


def recctl_json_in_process(monkeypatch, capsys, *args: str, cwd: Path, expect: int = 0) -> dict:
    """`recctl --json ARGS` in this process, from `cwd`: the one JSON object, exit code checked."""
    monkeypatch.chdir(cwd)
    code, out, err = recctl_in_process(monkeypatch, capsys, *args, json_output=True)
    assert code == expect, f"exit {code}\nstdout:\n{out}\nstderr:\n{err}"
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print exactly one line on stdout, got:\n{out}"
    return json.loads(lines[0])
