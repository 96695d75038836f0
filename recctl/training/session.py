"""What `recctl train` does around `fit`: complete the run (model, curves, test metrics beside pop,
manifest), apply the quality gate, and the non-chief multi_worker path, which writes no run."""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import OmegaConf

from recctl import console
from recctl.errors import RecctlError
from recctl.evaluation.gate import check_gate
from recctl.evaluation.tasks import task_of
from recctl.plan import TrainPlan
from recctl.runs import RunFolder
from recctl.training.fit import FitResult, fit
from recctl.training.hparams import write_hparams, writes_tensorboard
from recctl.training.strategy import Placement

# A family fitted from the data as it is built (pop, EASE, kNN): what its manifest says about training.
NO_EPOCHS = "fitted in closed form from the training split: trainer and optimizer settings do not apply"


def complete_run(
    plan: TrainPlan,
    snapshot,
    fitted: FitResult,
    placement: Placement,
    folder: RunFolder,
    result: dict,
    started,
) -> dict:
    """Save the model and curves, test it beside pop, write metrics.json, mark the manifest completed."""
    from recctl.evaluation.report import evaluate_model
    from recctl.evaluation.tables import metrics_table
    from recctl.training.curves import plot_curves

    model = fitted.model
    model_name = result["model"]
    task = task_of(model)
    result["protocol"] = task.protocol(snapshot, plan.evaluation)
    result["_monitor"] = task.monitor(plan.trainer.monitor)
    model.save(folder.model)
    if fitted.history:
        plot_curves(fitted.history, folder.curves, f"{model_name} on {snapshot.name}")

    splits = ("valid", "test") if plan.trainer.evaluate_test else ("valid",)
    evaluated = evaluate_model(model, snapshot, plan.evaluation, plan.seed, splits)
    per_epoch = fitted.fit_seconds / fitted.epochs if fitted.epochs else None
    result["metrics"] = evaluated["metrics"]
    result["baseline"] = evaluated["baseline"]
    result["intervals"] = evaluated["intervals"]
    result["seconds"].update(
        fit=round(fitted.fit_seconds, 3),
        per_epoch=round(per_epoch, 3) if per_epoch else None,
        epochs=fitted.epochs,
    )
    params = int(model.count_params())
    if placement.multi_worker:  # lets anyone check that every worker ended with the chief's weights
        result["weights_digest"] = weights_digest(model)
    folder.write_evaluation(
        {
            "model": model_name,
            "dataset": result["dataset"],
            "protocol": result["protocol"],
            "metrics": evaluated["metrics"],
            "baseline": evaluated["baseline"],
            "intervals": evaluated["intervals"],
            "evaluation_digests": evaluated["digests"],
            "evaluation": OmegaConf.to_container(plan.evaluation),
            "seconds": result["seconds"],
            "best_epoch": fitted.best_epoch,
            "stopped_early": fitted.stopped_early,
            **({"pruned_at_epoch": fitted.pruned_at_epoch} if fitted.pruned_at_epoch else {}),
            "params": params,
        },
        evaluated["per_user"],
    )
    if writes_tensorboard(plan.logger):
        write_hparams(folder.tensorboard / "hparams", plan.config, evaluated, str(folder.path), fitted.epochs)
    closed_form = {} if model.needs_training else {"training": NO_EPOCHS}
    folder.complete(
        **closed_form,
        epochs=fitted.epochs,
        best_epoch=fitted.best_epoch,
        **({"pruned_at_epoch": fitted.pruned_at_epoch} if fitted.pruned_at_epoch else {}),
        params=params,
        seconds={
            "fit": round(fitted.fit_seconds, 3),
            "total": round(time.perf_counter() - started, 3),
            "validation": round(fitted.validation_seconds, 3),
        },
    )
    console.info(metrics_table(evaluated, result["protocol"], model_name))
    early = " (early stop)" if fitted.stopped_early else ""
    early = " (pruned by Optuna)" if fitted.pruned_at_epoch else early
    console.info(
        f"run: {folder.path}  ({fitted.epochs} epochs{early}, best epoch {fitted.best_epoch}, fit {fitted.fit_seconds:.1f} s)"
        if model.needs_training
        else f"run: {folder.path}  (no training: {model_name})"
    )
    return evaluated


def apply_gate(plan: TrainPlan, evaluated: dict, folder: RunFolder) -> None:
    """The quality gate on a completed run; its manifest says how it went (sweeps read it)."""
    try:
        verdict = check_gate(plan.gate, evaluated["metrics"], evaluated["baseline"], evaluated["task"])
    except RecctlError as exc:
        folder.record_gate(False, str(exc))
        raise
    if verdict:
        folder.record_gate(True, verdict)
        console.info(verdict)


def train_as_worker(plan: TrainPlan, placement: Placement, result: dict) -> dict:
    """A non-chief multi_worker process: it trains in lockstep with the chief but leaves no run folder
    (Hydra's, holding only its .hydra config, is removed); logs and checkpoints go to scratch space."""
    import tempfile

    from recctl.artifacts import discard_job_folder
    from recctl.data.prepare import ensure_snapshot

    discard_job_folder(plan.run_dir)
    result["role"] = "worker"
    snapshot, _ = ensure_snapshot(plan.dataset, plan.paths.data_dir, plan.seed)
    result["dataset"] = {"name": snapshot.name, "fingerprint": snapshot.fingerprint}
    with tempfile.TemporaryDirectory(prefix="recctl-worker-") as scratch:
        fitted = fit(plan, snapshot, RunFolder(Path(scratch)), placement)
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
