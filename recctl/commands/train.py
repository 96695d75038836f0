"""recctl train: snapshot -> fitted model -> run folder (config, model, history, curves, metrics).

Besides `run`, the module gives the runner its train-specific hooks (recctl/runner.py): what an
interrupted run prints, where a traceback goes, and how a failed run is recorded.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

from recctl import console
from recctl.errors import ConfigError
from recctl.runs import RunFolder


def run(cfg, result: dict) -> dict:
    from hydra.core.hydra_config import HydraConfig

    from recctl.plan import train_plan

    plan = train_plan(cfg, HydraConfig.get())  # every check, before any data is read or folder filled

    # Where training runs; a TPU or device that is not here fails now, before any data is read.
    from recctl.training.factory import check_model
    from recctl.training.strategy import make_strategy

    placement = make_strategy(plan.strategy)
    check_model(plan.model)  # builds a stand-in model: after the strategy has set up the devices
    if plan.resume is not None and placement.multi_worker:
        raise ConfigError("resume= is not supported under strategy=multi_worker yet: train the job again")
    from recctl.training import session

    if not placement.is_chief:
        return session.train_as_worker(plan, placement, result)
    result["model"] = plan.model_name
    result["_monitor"] = plan.trainer.monitor
    started = time.perf_counter()

    from recctl.data.prepare import ensure_snapshot
    from recctl.evaluation.tasks import ranking_protocol

    snapshot, _ = ensure_snapshot(plan.dataset, plan.paths.data_dir, plan.seed)
    result["dataset"] = {"name": snapshot.name, "fingerprint": snapshot.fingerprint}
    if (plan.model.get("task") or "ranking") == "ranking":
        from recctl.config import check_cutoffs

        check_cutoffs(plan.evaluation, snapshot.n_items, f"snapshot {snapshot.path}")
    result["protocol"] = ranking_protocol(snapshot)
    folder = RunFolder(plan.run_dir)
    command = "recctl train " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if plan.resume is not None:
        plan.resume.start(snapshot, command)
    else:
        folder.start(plan.config, command, list(plan.overrides), plan.model_name, snapshot, plan.seed)
    # From here on the run folder is the run's: a failure is recorded in its manifest. Before (bad
    # data, a changed snapshot), the runner removes the invocation's empty folder instead.
    result["run_dir"] = str(folder.path)
    console.info(f"run folder: {folder.path}" + _tensorboard_hint(plan, folder))

    from recctl.training.fit import fit
    from recctl.training.mlflow_logger import start_tracking
    from recctl.training.warm_start import describe

    tracker = start_tracking(plan, folder, snapshot)
    try:
        fitted = fit(
            plan,
            snapshot,
            folder,
            placement,
            [tracker.callback()] if tracker else [],
            resume_from=plan.resume_from,
            init_from=plan.init_from,
        )
        if fitted.warm_start:
            folder.update(init_from=fitted.warm_start)
            console.info(describe(fitted.warm_start))
        evaluated = session.complete_run(plan, snapshot, fitted, placement, folder, result, started)
    except BaseException:
        if tracker:
            tracker.finish(None, status="FAILED")
        raise
    if tracker:
        tracker.finish(evaluated)
    session.apply_gate(plan, evaluated, folder)
    return result


def _tensorboard_hint(plan, folder: RunFolder) -> str:
    from recctl.training.hparams import writes_tensorboard

    return f"  (tensorboard --logdir {folder.tensorboard})" if writes_tensorboard(plan.logger) else ""


# ---------------------------------------------------------------------------------- runner hooks


def interrupted_message(result: dict) -> str:
    """Ctrl-C or SIGTERM: a run that started keeps its last checkpoint, and says how to go on."""
    run_dir = None if result.get("role") else result.get("run_dir")
    return (
        f"interrupted: the last epoch's checkpoint is kept; continue with `recctl train resume={run_dir}`"
        if run_dir
        else "interrupted"
    )


def error_log_folder(result: dict, job_dir: Path) -> Path | None:
    """Where an unexpected failure's traceback goes: the run's folder, or the job's before it started
    (a non-chief worker has neither)."""
    if result.get("run_dir"):
        return Path(result["run_dir"])
    return None if result.get("role") else job_dir


def record_failure(result: dict, job_dir: Path, multirun: bool) -> None:
    """A run that failed says so in its manifest; a single run rejected before it started (bad
    config or data) leaves no folder behind, while a sweep job keeps one so the sweep lists it."""
    from recctl.artifacts import discard_job_folder

    if result.get("role"):
        return
    status = "interrupted" if result.get("status") == "interrupted" else "failed"
    try:
        if result.get("run_dir"):
            RunFolder(Path(result["run_dir"])).fail(status, result.get("error"))
        elif multirun:
            RunFolder(job_dir).fail(status, result.get("error"), started=False)
        else:
            discard_job_folder(job_dir)
    except OSError:
        pass
