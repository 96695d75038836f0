"""Sweeps (issue #5): grids, an Optuna search, parallel jobs, leaderboards, failures, determinism, MLflow."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import TINY, recctl, recctl_json

FAST = [*TINY, "trainer.epochs=1", "logger=none"]


def _sweep(tmp_path: Path) -> Path:
    sweeps = list((tmp_path / "outputs" / "sweeps").iterdir())
    assert len(sweeps) == 1, sweeps
    return sweeps[0]


def _leaderboard(sweep: Path) -> list[dict]:
    with open(sweep / "leaderboard.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _sweep_json(proc) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout  # one JSON object for the whole sweep, nothing else on stdout
    return json.loads(lines[0])


def test_grid_gives_one_job_folder_each_and_a_leaderboard(tmp_path: Path):
    proc = recctl(
        "--json", "train", "-m", "model=pop,mf", "optimizer.learning_rate=0.003,0.01", *FAST, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = _sweep_json(proc)
    sweep = _sweep(tmp_path)
    assert result["status"] == "ok" and Path(result["sweep_dir"]).resolve() == sweep.resolve()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2", "3"]
    rows = _leaderboard(sweep)
    assert [r["overrides"] for r in rows] == [
        "model=pop optimizer.learning_rate=0.003",
        "model=pop optimizer.learning_rate=0.01",
        "model=mf optimizer.learning_rate=0.003",
        "model=mf optimizer.learning_rate=0.01",
    ]
    for row, job in zip(rows, result["jobs"], strict=True):
        assert row["status"] == "completed"
        assert float(row["valid_ndcg@10"]) == job["metrics"]["valid"]["ndcg@10"]
        assert float(row["test_ndcg@10"]) == job["metrics"]["test"]["ndcg@10"]
        assert int(row["params"]) > 0 and row["epochs"] != "" and row["fit_s"] != ""
    markdown = (sweep / "leaderboard.md").read_text()
    best = max(rows, key=lambda r: float(r["valid_ndcg@10"]))
    assert (
        f"Best: job {best['job']} " in markdown and "| job | overrides | status | valid_ndcg@10 |" in markdown
    )
    assert (sweep / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _optuna_json(proc) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _sweep_json(proc)


def test_optuna_study_persists_continues_after_a_kill_and_records_the_best(tmp_path: Path):
    """The default study is SQLite under outputs/optuna/; a sweep killed mid-trial continues when
    the same command runs again: the killed trial's settings run again, then the trials still due."""
    import signal
    import subprocess
    import sys
    import time

    from omegaconf import OmegaConf

    args = ["train", "-m", "hparams_search=mf_optuna", "hydra.sweeper.n_trials=3", *FAST]
    killed = subprocess.Popen(
        [sys.executable, "-m", "recctl", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    first = None
    while time.monotonic() < deadline and killed.poll() is None:
        sweeps = list((tmp_path / "outputs" / "sweeps").glob("*"))
        if sweeps and (sweeps[0] / "1" / ".hydra" / "overrides.yaml").is_file():
            first = sweeps[0]
            break
        time.sleep(0.2)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert first is not None, "the second trial never started"
    killed_params = [o for o in OmegaConf.load(first / "1" / ".hydra" / "overrides.yaml") if "=" in o]
    assert (tmp_path / "outputs" / "optuna" / "mf_optuna.db").is_file()

    proc = recctl("--json", *args, cwd=tmp_path)
    result = _optuna_json(proc)
    assert (
        "continuing study mf_optuna: 1 of 3 trials done, 2 to go (1 unfinished trial(s) tried again)"
        in proc.stderr
    )
    assert "[job 1/2] " in proc.stderr and "[job 2/2] " in proc.stderr
    jobs = result["jobs"]
    assert len(jobs) == 2 and all(j["status"] == "ok" for j in jobs)
    second = Path(result["sweep_dir"])
    rerun = list(OmegaConf.load(second / "0" / ".hydra" / "overrides.yaml"))
    searched = ("optimizer.learning_rate=", "model.embedding_dim=", "model.num_negatives=", "model.l2=")
    assert sorted(o for o in rerun if o.startswith(searched)) == sorted(
        o for o in killed_params if o.startswith(searched)
    )
    best = OmegaConf.load(second / "optimization_results.yaml")
    assert best.trials.complete == 3 and best.trials.pruned == 0
    from recctl.sweep import job_rows

    values = [job_rows(first)[0]["valid_ndcg@10"]] + [j["metrics"]["valid"]["ndcg@10"] for j in jobs]
    assert best.best_value == max(values)  # over the whole study, both sweeps
    assert set(best.best_params) == {s.rstrip("=") for s in searched}
    for plot in ("optuna_history.png", "optuna_importances.png", "optuna_epochs.png"):
        assert (second / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot
    rows = _leaderboard(second)
    assert len(rows) == 2 and all("optimizer.learning_rate=" in r["overrides"] for r in rows)

    again = recctl(
        "train",
        "-m",
        "hparams_search=mf_optuna",
        "hydra.sweeper.n_trials=4",
        *FAST[:-1],
        "trainer.epochs=2",
        "logger=none",
        cwd=tmp_path,
    )
    assert again.returncode == 2, again.stderr[-2000:]  # same study, other fixed overrides: refused
    assert "study mf_optuna searched other parameters or other fixed overrides" in again.stderr
    assert "Traceback" not in again.stderr
    assert len(list((tmp_path / "outputs" / "sweeps").iterdir())) == 2  # nothing ran


def test_a_pruned_trial_is_recorded_as_pruned(tmp_path: Path):
    proc = recctl(
        "--json",
        "train",
        "-m",
        "hparams_search=mf_optuna",
        "hydra/sweeper/sampler=grid",
        "hydra.sweeper.sampler.seed=1",  # the grid's order: the good learning rate first
        "hydra.sweeper.params=null",
        "optimizer.learning_rate=choice(0.02, 0.000001)",
        "hydra.sweeper.pruner_startup_trials=1",
        "hydra.sweeper.pruner_warmup_epochs=0",
        *TINY,
        "trainer.epochs=3",
        "logger=none",
        cwd=tmp_path,
    )
    result = _optuna_json(proc)
    rows = _leaderboard(_sweep(tmp_path))
    assert [(r["overrides"], r["status"], r["epochs"]) for r in rows] == [
        ("optimizer.learning_rate=0.02", "completed", "3"),
        ("optimizer.learning_rate=1e-06", "pruned", "1"),
    ]
    assert [j["status"] for j in result["jobs"]] == ["ok", "ok"]  # a pruned job is evaluated and kept
    from omegaconf import OmegaConf

    best = OmegaConf.load(_sweep(tmp_path) / "optimization_results.yaml")
    assert (best.trials.complete, best.trials.pruned) == (1, 1)
    assert dict(best.best_params) == {"optimizer.learning_rate": 0.02}
    assert "trial 1 pruned after epoch 1" in proc.stderr


def test_the_search_space_grammar_of_the_presets():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from recctl.errors import ConfigError
    from recctl.optuna_search import search_space

    space, fixed = search_space(
        [
            "optimizer.learning_rate=tag(log, interval(3e-4, 1e-2))",
            "model.embedding_dim=choice(32, 64)",
            "model.l2=interval(0, 1)",  # Hydra reads interval bounds as floats
            "trainer.batch_size=range(128, 513, 128)",
            "model.dropout=0.1,0.2",
            "trainer.epochs=3",
            "model.embedding_dim=choice(16, 32, 64)",  # a later value (the command line) wins
        ]
    )
    assert space["optimizer.learning_rate"] == FloatDistribution(3e-4, 1e-2, log=True)
    assert space["model.embedding_dim"] == CategoricalDistribution([16, 32, 64])
    assert space["model.l2"] == FloatDistribution(0.0, 1.0)
    assert space["trainer.batch_size"] == IntDistribution(128, 512, step=128)  # range's end excluded
    assert space["model.dropout"] == CategoricalDistribution([0.1, 0.2])
    assert fixed == {"trainer.epochs": "trainer.epochs=3"}
    for bad in ("model.l2=tag(log, interval(0, 1))", "+model.extra=choice(1, 2)", "model.l2=interval(1, 1)"):
        with pytest.raises(ConfigError):
            search_space([bad])


def test_failed_and_nan_jobs_are_listed_and_the_sweep_exits_4(tmp_path: Path):
    proc = recctl(
        "--json",
        "train",
        "-m",
        "optimizer.learning_rate=0.01,1e30,-1",
        *TINY,
        "trainer.epochs=5",
        "logger=none",
        cwd=tmp_path,
    )
    assert proc.returncode == 4, proc.stderr[-3000:]
    result = _sweep_json(proc)
    assert result["status"] == "failed"
    assert [j["status"] for j in result["jobs"]] == ["ok", "failed", "failed"]
    assert "loss became NaN in epoch 1: stopped" in result["jobs"][1]["error"]  # not all 5 epochs
    assert "learning_rate" in result["jobs"][2]["error"]
    rows = _leaderboard(_sweep(tmp_path))
    assert [r["status"] for r in rows] == ["completed", "failed", "failed"]
    assert "NaN" in rows[1]["error"]
    assert "| failed |" in (_sweep(tmp_path) / "leaderboard.md").read_text()


@pytest.mark.slow  # CI time: covered in make test-all
def test_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path: Path):
    proc = recctl(
        "--json",
        "train",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "model=pop",
        "trainer.epochs=1,0",
        *TINY,
        "logger=none",
        cwd=tmp_path,
        env={"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"},
    )
    assert proc.returncode == 4, proc.stderr[-3000:]  # the jobs ran elsewhere: outcome read from folders
    result = _sweep_json(proc)
    assert [j["status"] for j in result["jobs"]] == ["ok", "failed"]
    assert "trainer.epochs must be >= 1" in result["jobs"][1]["error"]


@pytest.mark.slow  # CI time: covered in make test-all
def test_report_rebuilds_the_leaderboard_of_a_running_or_partly_failed_sweep(tmp_path: Path):
    proc = recctl("train", "-m", "model=pop", "trainer.epochs=1,0,2", *TINY, "logger=none", cwd=tmp_path)
    assert proc.returncode == 4
    sweep = _sweep(tmp_path)
    (sweep / "2" / "manifest.json").unlink()  # as if job 2 were still running
    (sweep / "leaderboard.csv").unlink()
    report = recctl_json("report", "sweep=latest", cwd=tmp_path)
    assert Path(report["sweep_dir"]).resolve() == sweep.resolve()
    assert report["jobs"] == {"completed": 1, "failed": 1, "running": 1}
    assert [r["status"] for r in _leaderboard(sweep)] == ["completed", "failed", "running"]
    again = recctl_json("report", f"sweep={sweep}", cwd=tmp_path)
    assert again["leaderboard"]["png"].endswith("leaderboard.png")
    missing = recctl("report", "sweep=nowhere", cwd=tmp_path)
    assert missing.returncode == 2 and "sweep=nowhere: no such folder" in missing.stderr


# slow (34 s): golden runs re-evaluate to their saved metrics in CI (tests/test_golden.py).
@pytest.mark.slow
def test_same_config_and_seed_give_the_same_metrics(tmp_path: Path):
    args = [
        "train",
        "model=attention",
        *TINY,
        "trainer.epochs=2",
        "trainer.deterministic=true",
        "logger=none",
    ]
    first = recctl_json(*args, cwd=tmp_path)
    second = recctl_json(*args, cwd=tmp_path)
    assert first["metrics"] == second["metrics"]
    assert first["run_dir"] != second["run_dir"]


def test_mlflow_logger_records_params_epochs_metrics_and_files(tmp_path: Path):
    result = recctl_json(
        "train", *TINY, "trainer.epochs=2", "trainer.early_stopping=false", "logger=mlflow", cwd=tmp_path
    )
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{(tmp_path / 'outputs' / 'mlflow' / 'mlflow.db').resolve()}")
    client = mlflow.tracking.MlflowClient()
    experiment = client.get_experiment_by_name("recctl")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["model.embedding_dim"] == "64" and run.data.params["seed"] == "42"
    assert run.data.metrics["test_ndcg_at_10"] == result["metrics"]["test"]["ndcg@10"]
    assert run.data.metrics["pop_test_ndcg_at_10"] == result["baseline"]["pop"]["test"]["ndcg@10"]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.json", "history.csv", "tensorboard"} <= files
    run_dir = Path(result["run_dir"])  # the run keeps its TensorBoard files (curves and HParams) too
    assert any((run_dir / "tensorboard" / "hparams").glob("events.out.tfevents.*"))
    assert any((run_dir / "tensorboard" / "train").glob("events.out.tfevents.*"))
    assert run.data.tags["recctl.run_dir"] == str(Path(result["run_dir"]).resolve())


def test_a_seed_sweep_groups_its_seeds_into_mean_and_spread(tmp_path: Path):
    from recctl.sweep import _markdown

    def row(job, overrides, valid, test):
        return {
            "job": job,
            "overrides": overrides,
            "status": "completed",
            "valid_ndcg@10": valid,
            "test_ndcg@10": test,
        }

    rows = [
        row(0, "model.embedding_dim=32 seed=1", 0.10, 0.09),
        row(1, "model.embedding_dim=32 seed=2", 0.12, 0.11),
        row(2, "model.embedding_dim=64 seed=1", 0.14, 0.13),
        row(3, "model.embedding_dim=64 seed=2", 0.16, 0.15),
    ]
    text = _markdown(tmp_path, rows, "valid_ndcg@10")
    grouped = text.split("## Seeds grouped")[1].splitlines()
    first = next(line for line in grouped if "embedding_dim=64" in line)
    assert "| 2 |" in first and "0.1500 ± 0.0141" in first and "0.1400 ± 0.0141" in first
    assert grouped.index(first) < next(i for i, line in enumerate(grouped) if "embedding_dim=32" in line)
    assert "Seeds grouped" not in _markdown(
        tmp_path, [row(0, "model.embedding_dim=32", 0.1, 0.1)], "valid_ndcg@10"
    )


def test_mlflow_tracking_uri_follows_the_setting_then_the_environment(tmp_path: Path, monkeypatch):
    from omegaconf import OmegaConf

    from recctl.training.mlflow_logger import tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = tracking_uri(OmegaConf.create({"tracking_uri": None}), tmp_path)
    assert default == f"sqlite:///{(tmp_path / 'mlflow' / 'mlflow.db').resolve()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking_uri(OmegaConf.create({"tracking_uri": None}), tmp_path) == "http://tracking.example:5000"
    given = OmegaConf.create({"tracking_uri": "sqlite:///x.db"})
    assert tracking_uri(given, tmp_path) == "sqlite:///x.db"  # the setting wins over the environment
