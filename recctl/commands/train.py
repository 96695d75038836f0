"""recctl train: snapshot -> fitted model -> run folder (config, model, history, curves, metrics)."""

from __future__ import annotations

import os
import shlex
import socket
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from recctl import console, settings
from recctl.artifacts import (
    atomic_write_json,
    atomic_write_text,
    discard_job_folder,
    environment,
    now_iso,
    update_manifest,
)
from recctl.errors import ConfigError, RecctlError


def run(cfg, result: dict) -> dict:
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    resumed = None
    if cfg.get("resume") is not None:  # continue a killed run, with its own saved config
        from recctl.training.resume import resumable_run

        resumed = resumable_run(cfg, hydra_cfg)
        cfg = resumed.cfg
    # Everything is validated before any data is read or any folder is filled.
    trainer = settings.trainer(cfg)
    evaluation = settings.evaluation(cfg)
    settings.placement(trainer, settings.strategy(cfg))
    seed = settings.seed(cfg)
    paths = settings.paths(cfg)
    from recctl.evaluation.gate import check_gate, gate_settings

    gate = gate_settings(cfg.get("gate"))
    init_from = _warm_start_run(cfg, paths)
    from recctl.data.prepare import dataset_settings

    dataset_settings(cfg.dataset)
    from recctl.training.factory import check_model, check_optimizer, model_class

    _check_sequence_order(cfg, model_class(cfg.model))
    check_optimizer(cfg.optimizer)
    if cfg.logger.get("name") == "mlflow":
        from recctl.training.mlflow_logger import check_available

        check_available()
    if cfg.model.get("task") == "ctr" and cfg.dataset.get("label_threshold") is None:
        raise ConfigError(
            "model.task=ctr needs labelled rows: set dataset.label_threshold (e.g. 4; lower ratings become "
            "negatives), or use experiment=ml100k_ctr"
        )

    # Where training runs; a TPU or device that is not here fails now, before any data is read.
    from recctl.training.strategy import make_strategy

    placement = make_strategy(cfg.strategy)
    check_model(cfg.model)  # builds a stand-in model: after the strategy has set up the devices
    if resumed is not None and placement.multi_worker:
        raise ConfigError("resume= is not supported under strategy=multi_worker yet: train the job again")
    run_dir = resumed.run_dir if resumed else Path(hydra_cfg.runtime.output_dir)
    model_name = resumed.model if resumed else (hydra_cfg.runtime.choices.get("model") or "model")
    if not placement.is_chief:
        return _train_as_worker(cfg, trainer, seed, paths, placement, run_dir, result)
    result["model"] = model_name
    result["_monitor"] = trainer.monitor
    started = time.perf_counter()

    from recctl.data.prepare import ensure_snapshot

    snapshot, _ = ensure_snapshot(cfg.dataset, paths.data_dir, seed)
    result["dataset"] = {"name": snapshot.name, "fingerprint": snapshot.fingerprint}
    result["protocol"] = snapshot.protocol()
    command = "recctl train " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if resumed is not None:
        resumed.start(snapshot, command)
    else:
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        update_manifest(
            run_dir,
            kind="run",
            status="running",
            started_at=now_iso(),
            command=command,
            overrides=list(hydra_cfg.overrides.task),
            model=model_name,
            dataset=snapshot.name,
            fingerprint=snapshot.fingerprint,
            snapshot=str(snapshot.path.resolve()),
            seed=seed,
            pid=os.getpid(),
            host=socket.gethostname(),
        )
    # From here on the run folder is the run's: a failure is recorded in its manifest. Before (bad
    # data, a changed snapshot), the runner removes the invocation's empty folder instead.
    result["run_dir"] = str(run_dir)

    from recctl.training.fit import fit

    tracker = _start_tracking(cfg, paths, run_dir, model_name, snapshot)
    try:
        fitted = fit(
            cfg,
            trainer,
            snapshot,
            run_dir,
            placement,
            [tracker.callback()] if tracker else [],
            resume_from=resumed.checkpoint if resumed else None,
            init_from=init_from,
        )
        if fitted.warm_start:
            update_manifest(run_dir, init_from=fitted.warm_start)
            console.info(_warm_start_line(fitted.warm_start))
        evaluated = _complete_run(
            cfg, evaluation, trainer, snapshot, fitted, placement, run_dir, result, started
        )
    except BaseException:
        if tracker:
            tracker.finish(None, status="FAILED")
        raise
    if tracker:
        tracker.finish(evaluated)
    try:
        verdict = check_gate(gate, evaluated["metrics"], evaluated["baseline"])
    except RecctlError as exc:  # the run is complete; its manifest says the gate failed (sweeps read it)
        update_manifest(run_dir, gate={"passed": False, "verdict": str(exc)})
        raise
    if verdict:
        update_manifest(run_dir, gate={"passed": True, "verdict": verdict})
        console.info(verdict)
    return result


def _complete_run(
    cfg, evaluation, trainer, snapshot, fitted, placement, run_dir: Path, result: dict, started
):
    """Save the model and curves, test it beside pop, write metrics.json, mark the manifest completed."""
    from recctl.training.curves import plot_curves
    from recctl.training.fit import model_task

    model = fitted.model
    model_name = result["model"]
    seed = settings.seed(cfg)
    if model_task(model) == "ctr":
        result["protocol"] = snapshot.protocol("ctr")
        result["_monitor"] = "auc"
    model.save(run_dir / "model.keras")
    if fitted.history:
        plot_curves(fitted.history, run_dir / "curves.png", f"{model_name} on {snapshot.name}")

    from recctl.evaluation.report import evaluate_model, metrics_table

    splits = ("valid", "test") if trainer.evaluate_test else ("valid",)
    evaluated = evaluate_model(model, snapshot, evaluation, seed, splits)
    per_epoch = fitted.fit_seconds / fitted.epochs if fitted.epochs else None
    result["metrics"] = evaluated["metrics"]
    result["baseline"] = evaluated["baseline"]
    result["seconds"].update(
        fit=round(fitted.fit_seconds, 3),
        per_epoch=round(per_epoch, 3) if per_epoch else None,
        epochs=fitted.epochs,
    )
    params = int(model.count_params())
    if placement.multi_worker:  # lets anyone check that every worker ended with the chief's weights
        result["weights_digest"] = weights_digest(model)
    atomic_write_json(
        run_dir / "metrics.json",
        {
            "model": model_name,
            "dataset": result["dataset"],
            "protocol": result["protocol"],
            "metrics": evaluated["metrics"],
            "baseline": evaluated["baseline"],
            "evaluation": OmegaConf.to_container(evaluation),
            "seconds": result["seconds"],
            "best_epoch": fitted.best_epoch,
            "stopped_early": fitted.stopped_early,
            "params": params,
        },
    )
    update_manifest(
        run_dir,
        status="completed",
        completed_at=now_iso(),
        epochs=fitted.epochs,
        best_epoch=fitted.best_epoch,
        params=params,
        seconds={
            "fit": round(fitted.fit_seconds, 3),
            "total": round(time.perf_counter() - started, 3),
            "validation": round(fitted.validation_seconds, 3),
        },
        environment=environment(),
    )
    console.info(metrics_table(evaluated, result["protocol"], model_name))
    early = " (early stop)" if fitted.stopped_early else ""
    console.info(
        f"run: {run_dir}  ({fitted.epochs} epochs{early}, best epoch {fitted.best_epoch}, fit {fitted.fit_seconds:.1f} s)"
        if model.needs_training
        else f"run: {run_dir}  (no training: {model_name})"
    )
    return evaluated


def _check_sequence_order(cfg, model_cls) -> None:
    """A sequence model learns from the order of each user's interactions. Without timestamps that
    order is only the file's row order: the user must say it means time, not have it assumed."""
    d = cfg.dataset
    if (
        model_cls.input_kind == "sequence"
        and d.get("source") == "table"
        and d.get("columns", {}).get("timestamp") is None
        and not d.get("row_order_is_time")
    ):
        raise ConfigError(
            f"{model_cls.__name__} is a sequence model, but dataset {d.name} has no timestamp column "
            "(dataset.columns.timestamp=null): map one, or set dataset.row_order_is_time=true if the "
            "file's rows are in time order"
        )


def _warm_start_run(cfg, paths) -> Path | None:
    """`init_from=RUN|latest`: a completed run with the same model config (checked before any data
    is read)."""
    spec = cfg.get("init_from")
    if spec is None:
        return None
    from recctl.artifacts import resolve_run
    from recctl.training.warm_start import check_same_model

    run = resolve_run(str(spec), Path(paths.output_dir))
    check_same_model(run, cfg.model)
    return run


def _warm_start_line(report: dict) -> str:
    ids = ", ".join(
        f"{space}: {c['kept']} kept, {c['new']} new, {c['dropped']} dropped"
        for space, c in report["ids"].items()
    )
    return f"warm start from {report['run']}: {report['remapped']} id-indexed weights remapped ({ids}), {report['copied']} copied"


def _start_tracking(cfg, paths, run_dir: Path, model_name: str, snapshot):
    """logger=mlflow: an MLflow run mirroring this one (None for the other loggers)."""
    if cfg.logger.get("name") != "mlflow":
        return None
    from recctl.training.mlflow_logger import MlflowRun, flat_params

    tags = {
        "recctl.run_dir": str(run_dir.resolve()),
        "recctl.model": model_name,
        "recctl.fingerprint": snapshot.fingerprint,
    }
    if run_dir.parent.parent.name == "sweeps":
        tags["recctl.sweep"] = str(run_dir.parent.resolve())
    return MlflowRun(cfg.logger, Path(paths.output_dir), run_dir, flat_params(cfg), tags)


def _train_as_worker(cfg, trainer, seed, paths, placement, run_dir: Path, result: dict) -> dict:
    """A non-chief multi_worker process: it trains in lockstep with the chief but leaves no run folder
    (Hydra's, holding only its .hydra config, is removed); logs and checkpoints go to scratch space."""
    import tempfile

    from recctl.data.prepare import ensure_snapshot
    from recctl.training.fit import fit

    discard_job_folder(run_dir)
    result["role"] = "worker"
    snapshot, _ = ensure_snapshot(cfg.dataset, paths.data_dir, seed)
    result["dataset"] = {"name": snapshot.name, "fingerprint": snapshot.fingerprint}
    with tempfile.TemporaryDirectory(prefix="recctl-worker-") as scratch:
        fitted = fit(cfg, trainer, snapshot, Path(scratch), placement)
    result["seconds"].update(fit=round(fitted.fit_seconds, 3), epochs=fitted.epochs)
    result["weights_digest"] = weights_digest(fitted.model)
    console.info(f"worker done: {fitted.epochs} epochs in step with the chief; the chief writes the run")
    return result


def weights_digest(model) -> str:
    """sha256 over the model's weights: equal on every multi_worker worker when training was in step."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()
