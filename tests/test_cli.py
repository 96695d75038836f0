"""The command line as scripts see it: help without TensorFlow, config errors as one line + exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import recctl, recctl_json


def test_help_lists_commands_and_does_not_import_tensorflow(tmp_path: Path):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from recctl.cli import app\n"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; print(r.output)\n"
        "r = CliRunner().invoke(app, ['train', '--help']); assert r.exit_code == 0, r.output; print(r.output)\n"
        "print('TF-IMPORTED' if 'tensorflow' in sys.modules else 'TF-FREE')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout
    for command in ("prepare", "train", "evaluate", "export"):
        assert command in out
    assert "TF-FREE" in out
    assert "mf*" in out and "wide_deep" in out and "ml_100k" in out and "adamw" in out


def test_version(tmp_path: Path):
    proc = recctl("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("recctl ")


def test_cfg_job_prints_the_composed_config(tmp_path: Path):
    proc = recctl("train", "model=wide_deep", "optimizer=adamw", "--cfg", "job", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "_target_: recctl.models.wide_deep.WideDeep" in proc.stdout
    assert "keras.optimizers.AdamW" in proc.stdout
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["model=nonexistent"], "Could not find 'model/nonexistent'. Available options in 'model': "),
        (["trainer.epochs=abc"], "epochs"),
        (["trainer.epochz=3"], "epochz"),
        (["optimizer.learning_rate=-1", "model=pop"], "learning_rate must be a positive number"),
        (["trainer.epochs=0"], "trainer.epochs must be >= 1"),
        (["dataset.split=sideways"], "dataset.split must be one of loo, temporal, random"),
        (["dataset=csv"], "dataset.path is required"),
        (["model.embedding_dim=0"], "embedding_dim should be positive"),
        (["gate.metric=ndcg@10"], "needs gate.min and/or gate.min_lift"),
        (["dataset=csv", "dataset.path=missing.csv"], "missing.csv: file not found"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(tmp_path: Path, args, needle):
    proc = recctl("train", *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1, proc.stderr


def test_model_error_names_valid_options(tmp_path: Path):
    proc = recctl("train", "model=nonexistent", cwd=tmp_path)
    assert "mf" in proc.stderr and "wide_deep" in proc.stderr and "pop" in proc.stderr


def test_json_error_object(tmp_path: Path):
    result = recctl_json("evaluate", "run=nowhere", cwd=tmp_path, expect=2)
    assert result["status"] == "failed" and "run=nowhere" in result["error"]


def test_run_latest_without_runs(tmp_path: Path):
    proc = recctl("export", "run=latest", cwd=tmp_path)
    assert proc.returncode == 2 and "no completed training run" in proc.stderr


def test_user_config_dir_adds_a_dataset(tmp_path: Path):
    conf = tmp_path / "myconf" / "dataset"
    conf.mkdir(parents=True)
    (conf / "shop.yaml").write_text(
        "defaults:\n  - schema\nname: shop\nsource: synthetic\nsynthetic:\n  n_users: 100\n  n_items: 60\n  mean_interactions: 10\n"
    )
    proc = recctl("prepare", "--config-dir", str(tmp_path / "myconf"), "dataset=shop", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "data" / "processed" / "shop").is_dir()


def test_paths_override(tmp_path: Path):
    proc = recctl(
        "prepare",
        "paths.data_dir=elsewhere",
        "dataset.synthetic.n_users=50",
        "dataset.synthetic.n_items=40",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "elsewhere" / "processed" / "synthetic").is_dir() and not (tmp_path / "data").exists()
