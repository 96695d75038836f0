"""The command line as scripts see it: help without TensorFlow, config errors as one line + exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import recctl, recctl_in_process, recctl_json

from recctl import __version__


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
        (["model=qqq"], "Could not find 'model/qqq'. Available options in 'model': "),  # nothing near it
        (["trainer.epochs=abc"], "epochs"),
        (["trainer.epochz=3"], "epochz"),
        (["optimizer.learning_rate=-1", "model=pop"], "learning_rate must be a positive number"),
        (["trainer.epochs=0"], "trainer.epochs must be >= 1"),
        (["dataset.split=sideways"], "dataset.split must be one of loo, temporal, random"),
        (["dataset=csv"], "dataset.path is required"),
        (["model.embedding_dim=0"], "embedding_dim should be positive"),
        (["gate.metric=ndcg@10"], "needs gate.min, gate.max and/or gate.min_lift"),
        (["dataset=csv", "dataset.path=missing.csv"], "missing.csv: file not found"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(tmp_path: Path, args, needle, monkeypatch, capsys):
    # In process (the CLI's own entry point): a subprocess per row cost ~10 s of TensorFlow import
    # each; test_model_error_names_valid_options and test_bad_inputs.py cover the real process.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    code, err = _in_process(["train", *args], capsys)
    assert code == 2, err
    assert needle in err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err


def test_model_error_names_valid_options(tmp_path: Path):
    proc = recctl("train", "model=nonexistent", cwd=tmp_path)
    assert "mf" in proc.stderr and "wide_deep" in proc.stderr and "pop" in proc.stderr


def test_json_error_object(tmp_path: Path):
    result = recctl_json("evaluate", "run=nowhere", cwd=tmp_path, expect=2)
    assert result["status"] == "failed" and "run=nowhere" in result["error"]


def test_run_latest_without_runs(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = recctl_in_process(monkeypatch, capsys, "export", "run=latest")
    assert code == 2 and "no completed training run" in err


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


# ---- behaving like its neighbours (issue #18): options after the command, -h, key help, did you
# mean, override quoting, shell completion. In this process where Typer alone answers.


def _invoke(*args: str, env: dict | None = None):
    from typer.testing import CliRunner

    from recctl.cli import app

    return CliRunner().invoke(app, list(args), env=env, prog_name="recctl")


def test_json_and_version_after_the_command(tmp_path: Path):
    proc = recctl("train", "--json", "experiment=smoke", "--cfg", "job", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "recctl-train: error" not in proc.stderr and "seed: 42" in proc.stdout
    result = _invoke("report", "sweep=nowhere", "--json")  # fails before any TensorFlow import
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"] == "sweep=nowhere: no such folder"
    for command in ("train", "recommend", "report"):
        result = _invoke(command, "--version")
        assert result.exit_code == 0 and result.stdout.strip() == f"recctl {__version__}"


@pytest.mark.parametrize(
    "command", ["prepare", "train", "evaluate", "compare", "export", "recommend", "report"]
)
def test_dash_h_is_help(command: str):
    short, long = _invoke(command, "-h"), _invoke(command, "--help")
    assert short.exit_code == long.exit_code == 0
    assert short.stdout == long.stdout and f"Usage: recctl {command}" in short.stdout
    assert "--json" in short.stdout and "schema" not in short.stdout
    assert _invoke("-h").stdout == _invoke("--help").stdout


@pytest.mark.parametrize(
    ("command", "keys"),
    [
        ("recommend", ["run=latest", "export_dir=null", "user=null", "users_file=null", "k=10"]),
        ("report", ["sweep=latest"]),
        ("evaluate", ["run=latest", "gate.metric=null", "gate.min_lift=null"]),
        ("export", ["run=latest"]),
        ("compare", ["run=latest", "base=null", "gate.metric=null"]),
        ("prepare", ["seed=42", "paths.data_dir=data"]),
        ("train", ["resume=null", "init_from=null", "paths.output_dir=outputs"]),
    ],
)
def test_help_names_the_commands_keys(command: str, keys: list[str]):
    out = _invoke(command, "--help").stdout
    for key in keys:
        assert f"  {key}" in out, out
    if command == "recommend":
        assert "an original user id" in out  # the key's comment in conf/recommend.yaml
    assert ("Config groups" in out) == (command not in ("recommend", "report")), out


def test_command_help_imports_neither_tensorflow_nor_hydra(tmp_path: Path):
    for args in (["train", "--help"], ["--help"]):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "recctl", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert proc.returncode == 0 and "Usage: recctl" in proc.stdout
        imported = [line for line in proc.stderr.splitlines() if "tensorflow" in line or "hydra" in line]
        assert not imported, imported[:5]


def _in_process(args: list[str], capsys) -> tuple[int, str]:
    from recctl.runner import run_command

    code = run_command(args[0], args[1:])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["train", "trainer.epoch=3"],
            "Could not override 'trainer.epoch': no such key; did you mean trainer.epochs?",
        ),
        (["train", "sed=1"], "Could not override 'sed': no such key; did you mean seed?"),
        (
            ["train", "paths.output=x"],
            "Could not override 'paths.output': no such key; did you mean paths.output_dir?",
        ),
        (["recommend", "usr=196"], "Could not override 'usr': no such key; did you mean user?"),
        (
            ["train", "trainer.frobnicate=1"],
            "Could not override 'trainer.frobnicate': no such key (trainer has: epochs, ",
        ),
        (
            ["train", "model=lstmm"],
            "In 'train': Could not find 'model/lstmm'; did you mean model=lstm? Available options in 'model': ",
        ),
        (
            ["train", "dataset.sep=;"],
            "Could not parse the override 'dataset.sep=;': quote the value of dataset.sep, as in "
            "\"dataset.sep=';'\" (the outer quotes are for the shell)",
        ),
        (["train", "x=$y;"], "as in \"x='\\$y;'\""),
        (["train", "trainer"], "Could not parse 'trainer': an override is key=value (or group=option)"),
    ],
)
def test_mistakes_get_a_suggestion(args: list[str], line: str, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    code, err = _in_process([*args, "--cfg", "job"], capsys)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("recctl: error: ") and line in lines[0], lines[0]
    assert "+trainer" not in lines[0] and "Lexer" not in lines[0]


def test_completion_script(monkeypatch):
    # Typer reads this when it builds the command: `--show-completion SHELL` instead of detecting it.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    for shell, needle in (("bash", "_RECCTL_COMPLETE=complete_bash"), ("zsh", "#compdef recctl")):
        result = _invoke("--show-completion", shell)
        assert result.exit_code == 0, result.output
        assert needle in result.stdout and "recctl" in result.stdout
    assert "--install-completion" in _invoke("--help").stdout


def _complete(env: dict) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "recctl"], capture_output=True, text=True, env={**os.environ, **env}
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_completion_of_groups_and_options():
    from recctl.cli import _override_candidates
    from recctl.confdir import group_options

    families = group_options("model")
    assert {"mf", "lstm", "wide_deep"} <= set(families)
    assert _override_candidates("train", "model=") == [f"model={f}" for f in families]
    assert _override_candidates("train", "model=ls") == ["model=lstm"]
    assert "model=" in _override_candidates("train", "mo") and "users_file=" in _override_candidates(
        "recommend", "u"
    )
    assert _override_candidates("recommend", "model=") == []
    # Through the shell protocol: bash splits `model=` into `model` `=` and replaces the text after `=`.
    bash = _complete(
        {"_RECCTL_COMPLETE": "complete_bash", "COMP_WORDS": "recctl train model = ", "COMP_CWORD": "4"}
    )
    assert bash == families
    zsh = _complete({"_RECCTL_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "recctl train model=l"})
    assert any("model=lstm" in word for word in zsh)
    commands = _complete({"_RECCTL_COMPLETE": "complete_bash", "COMP_WORDS": "recctl tr", "COMP_CWORD": "1"})
    assert commands == ["train"]


def test_a_failing_command_keeps_its_error_log_beside_the_run_not_inside(tmp_path: Path):
    from recctl.runner import _error_log_folder

    run = tmp_path / "outputs" / "runs" / "20261202-mf"
    folder = _error_log_folder({"run_dir": str(run), "command": "evaluate"}, tmp_path)
    assert folder.parent == tmp_path / "outputs" / "logs" and folder.name.endswith("-evaluate-20261202-mf")
    job = tmp_path / "outputs" / "sweeps" / "20261202" / "3"
    assert (
        _error_log_folder({"run_dir": str(job), "command": "export"}, tmp_path).parent
        == tmp_path / "outputs" / "logs"
    )
    assert _error_log_folder({"run_dir": None, "command": "evaluate"}, tmp_path) is None


def test_progress_is_a_bar_at_a_terminal_lines_in_ci_and_nothing_when_piped(monkeypatch, capsys):
    from recctl import console

    for key in ("RECCTL_PROGRESS", "CI", "NO_COLOR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(console, "_json_mode", False)
    assert console.progress_mode() == "off"  # pytest's stderr is not a terminal
    monkeypatch.setenv("CI", "true")
    assert console.progress_mode() == "lines"
    monkeypatch.setenv("RECCTL_PROGRESS", "off")
    assert console.progress_mode() == "off"

    now = [0.0]
    with console.Progress("ranking test users", 1000, "users", mode="lines", clock=lambda: now[0]) as step:
        step.advance(100)  # under a second: nothing
        now[0] = 12.0
        step.advance(400)
        now[0] = 14.0
        step.advance(100)  # within 10 s of the last line: nothing
        now[0] = 30.0
        step.advance(400)  # the end: the closing line says so
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "  ranking test users: 500/1,000 users (50%), 12 s",
        "  ranking test users: done, 1,000 users in 30 s",
    ]
    with console.Progress("quiet", 10, "users", mode="off") as step:
        step.advance(10)
    with console.Progress("short", 10, "users", mode="lines") as step:
        step.advance(10)  # a short pass prints nothing, even in CI
    assert capsys.readouterr().out == ""
