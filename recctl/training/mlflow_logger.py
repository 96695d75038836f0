"""logger=mlflow: one MLflow run per recctl run (parameters, per-epoch metrics, final metrics, files).

Optional: MLflow is imported only when this logger is chosen (`pip install 'recctl[mlflow]'`).
The default store is a SQLite file under the output folder (MLflow 3 refuses new file stores);
artifacts go beside it. Sweep jobs are tagged with their sweep folder, so MLflow's UI can compare
the jobs of one sweep.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from recctl.errors import ConfigError
from recctl.runs import RunFolder
from recctl.training.hparams import flat_params, is_number


def check_available() -> None:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ConfigError("logger=mlflow needs MLflow: pip install 'recctl[mlflow]'") from None


def tracking_uri(settings, output_dir: Path) -> str:
    """logger.tracking_uri, else $MLFLOW_TRACKING_URI (as MLflow's own tools read it), else a SQLite
    store under paths.output_dir."""
    if settings.get("tracking_uri"):
        return str(settings.tracking_uri)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    folder = (output_dir / "mlflow").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def start_tracking(plan, folder: RunFolder, snapshot) -> MlflowRun | None:
    """logger=mlflow: an MLflow run mirroring this one (None for the other loggers)."""
    if plan.logger.get("name") != "mlflow":
        return None
    run_dir = folder.path
    tags = {
        "recctl.run_dir": str(run_dir.resolve()),
        "recctl.model": plan.model_name,
        "recctl.fingerprint": snapshot.fingerprint,
    }
    if run_dir.parent.parent.name == "sweeps":
        tags["recctl.sweep"] = str(run_dir.parent.resolve())
    return MlflowRun(plan.logger, Path(plan.paths.output_dir), run_dir, flat_params(plan.config), tags)


class MlflowRun:
    """Start on creation; `callback()` logs each epoch; `finish()` logs results and files and ends it."""

    def __init__(self, settings, output_dir: Path, run_dir: Path, params: dict, tags: dict):
        import logging

        import mlflow

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # no database-migration chatter
        self._mlflow = mlflow
        mlflow.set_tracking_uri(tracking_uri(settings, output_dir))
        name = str(settings.get("experiment") or "recctl")
        if mlflow.get_experiment_by_name(name) is None:
            artifacts = (output_dir / "mlflow" / "artifacts").resolve()
            mlflow.create_experiment(name, artifact_location=artifacts.as_uri())
        mlflow.set_experiment(name)
        self.run = mlflow.start_run(run_name=run_dir.name, tags={k: str(v) for k, v in tags.items()})
        mlflow.log_params({k: _short(v) for k, v in params.items()})
        self.run_dir = run_dir

    def callback(self) -> keras.callbacks.Callback:
        mlflow = self._mlflow

        class _EpochMetrics(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                values = {k.replace("@", "_at_"): float(v) for k, v in (logs or {}).items() if is_number(v)}
                if values:
                    mlflow.log_metrics(values, step=epoch + 1)

        return _EpochMetrics()

    def finish(self, evaluated: dict | None, status: str = "FINISHED") -> None:
        mlflow = self._mlflow
        if evaluated:
            for split, values in (evaluated.get("metrics") or {}).items():
                for name, value in (values or {}).items():
                    if is_number(value):
                        mlflow.log_metric(f"{split}_{name}".replace("@", "_at_"), float(value))
            pop = (evaluated.get("baseline") or {}).get("pop") or {}
            for split, values in pop.items():
                for name, value in (values or {}).items():
                    if is_number(value):
                        mlflow.log_metric(f"pop_{split}_{name}".replace("@", "_at_"), float(value))
        folder = RunFolder(self.run_dir)
        for path in (folder.config, folder.metrics, folder.history, folder.curves, folder.manifest):
            if path.is_file():
                mlflow.log_artifact(str(path))
        if folder.tensorboard.is_dir():  # logger.tensorboard=true: the event files travel too
            mlflow.log_artifacts(str(folder.tensorboard), artifact_path="tensorboard")
        mlflow.end_run(status=status)


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 500 else text[:497] + "..."
