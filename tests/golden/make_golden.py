"""Make the golden artifacts of tests/test_golden.py (issue #14): what recctl wrote before the
architecture change, kept so that later code is proven to still read, evaluate, export, resume and
warm-start it.

Made once, at commit 7e074f8 (before the first move). Do not regenerate to make a failing golden
test pass: a failure means old artifacts no longer work, which is the thing being guarded.

    .venv/bin/python tests/golden/make_golden.py   # writes tests/golden/{data,outputs,cli.json}
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TINY = [
    "dataset.synthetic.n_users=60",
    "dataset.synthetic.n_items=40",
    "dataset.synthetic.mean_interactions=12",
    "trainer.batch_size=64",
    "trainer.early_stopping=false",
    "logger=none",
    "trainer.deterministic=true",
]
# One model per input kind, each as small as its config allows.
RUNS = {
    "mf": ["model=mf", "model.embedding_dim=8", "trainer.epochs=2"],
    "cnn": ["model=cnn", "model.embedding_dim=8", "trainer.epochs=2"],
    "autoencoder": [
        "model=autoencoder",
        "model.hidden_units=[16]",
        "model.latent_dim=8",
        "trainer.epochs=2",
    ],
}


def recctl(*args: str, cwd: Path) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "recctl", "--json", *args], cwd=cwd, capture_output=True, text=True, env=env
    )
    out = proc.stdout.strip().splitlines()
    if not out:
        raise SystemExit(f"recctl {' '.join(args)}: no JSON (exit {proc.returncode})\n{proc.stderr}")
    return {"code": proc.returncode, "json": json.loads(out[-1])}


def keys(obj, depth: int = 2):
    """The key structure of a --json object, two levels down (values are data, keys are interface)."""
    if not isinstance(obj, dict) or depth == 0:
        return None
    return {k: keys(v, depth - 1) for k, v in sorted(obj.items())}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="recctl-golden-"))
    cli: dict[str, dict] = {}
    cli["prepare"] = keys(recctl("prepare", *TINY[:3], cwd=work)["json"])
    for name, args in RUNS.items():
        got = recctl("train", *TINY, *args, cwd=work)
        assert got["code"] == 0, got
        if name == "mf":
            cli["train"] = keys(got["json"])
            run = got["json"]["run_dir"]
            cli["evaluate"] = keys(recctl("evaluate", f"run={run}", cwd=work)["json"])
            exported = recctl("export", f"run={run}", "export.k=5", cwd=work)["json"]
            cli["export"] = keys(exported)
            cli["recommend"] = keys(recctl("recommend", f"run={run}", "user=u01", cwd=work)["json"])
    # A killed run: SIGTERM once the second epoch's checkpoint is complete (exit 130, checkpoint kept).
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    before = set((work / "outputs" / "runs").iterdir())
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recctl",
            "train",
            *TINY,
            "model=mf",
            "model.embedding_dim=8",
            "trainer.epochs=10",
        ],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(work / "killed.log", "w"),
    )
    deadline = time.monotonic() + 300

    def killed_run_checkpointed() -> bool:
        new = set((work / "outputs" / "runs").iterdir()) - before
        return any((run / "checkpoints" / "epoch-0002" / "state.json").is_file() for run in new)

    while time.monotonic() < deadline and not killed_run_checkpointed():
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=120)
    assert code == 130, code
    for run in (work / "outputs" / "runs").iterdir():
        shutil.rmtree(run / "tensorboard", ignore_errors=True)
    for name in ("data", "outputs"):
        shutil.rmtree(HERE / name, ignore_errors=True)
        shutil.copytree(work / name, HERE / name)
    shutil.rmtree(HERE / "data" / "raw", ignore_errors=True)
    (HERE / "cli.json").write_text(json.dumps({"work": str(work), "keys": cli}, indent=1) + "\n")
    print(f"golden artifacts from {work} written under {HERE}")


if __name__ == "__main__":
    main()
