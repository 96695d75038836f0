"""Fit a model on a snapshot, as a train plan says: compile, input pipeline, callbacks, timing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from recctl import console
from recctl.data.pipelines import EpochClock, training_dataset
from recctl.data.snapshot import Snapshot
from recctl.errors import ConfigError, RecctlError
from recctl.evaluation.tasks import task_of
from recctl.plan import TrainPlan
from recctl.runs import RunFolder
from recctl.training import checkpoints
from recctl.training.callbacks import AdvanceClock, EpochCheckpoint, EpochLines, NanGuard, RankingValidation
from recctl.training.factory import build_model, build_optimizer
from recctl.training.hparams import writes_tensorboard
from recctl.training.interrupt import deferred_interrupts, raise_if_requested, stoppable_callbacks
from recctl.training.pruning import trial_callback
from recctl.training.strategy import Placement, set_precision, steps_per_execution


@dataclass
class FitResult:
    model: keras.Model
    history: dict[str, list[float]] = field(default_factory=dict)
    fit_seconds: float = 0.0
    epochs: int = 0
    best_epoch: int | None = None
    stopped_early: bool = False
    validation_seconds: float = 0.0
    resumed_at_epoch: int | None = None
    warm_start: dict | None = None
    pruned_at_epoch: int | None = None  # an Optuna sweep's pruner stopped this trial (training/pruning.py)


def seed_everything(seed: int, deterministic: bool) -> None:
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def fit(
    plan: TrainPlan,
    snapshot: Snapshot,
    folder: RunFolder,
    placement: Placement,
    extra_callbacks=(),
    resume_from: Path | None = None,
    init_from: Path | None = None,
) -> FitResult:
    """Train under `placement.strategy`; `folder` receives history, TensorBoard and checkpoints
    (a scratch folder on multi_worker's non-chief workers).

    `resume_from`: a checkpoint folder of this run to continue from (training/checkpoints.py).
    `init_from`: a completed run whose weights start this one (training/warm_start.py).
    """
    trainer = plan.trainer
    seed_everything(plan.seed, trainer.deterministic)
    strategy = placement.strategy
    replicas = placement.replicas
    batch_size = int(trainer.batch_size)
    if batch_size % replicas:
        raise ConfigError(
            f"trainer.batch_size={batch_size} is global and must split evenly over {replicas} replicas"
        )
    if replicas > 1:
        console.info(
            f"batch: {batch_size} global = {batch_size // replicas} per replica x {replicas} replicas"
        )
    set_precision(plan.strategy.mixed_precision)
    with strategy.scope():
        built = time.perf_counter()
        model = build_model(plan.model, snapshot)
        if not model.needs_training:  # fitted from the data as it was built (pop, EASE, kNN)
            return FitResult(model=model, fit_seconds=time.perf_counter() - built)
        optimizer = build_optimizer(plan.optimizer)
        jit = _jit(trainer, model, placement)
        model.compile(
            optimizer=optimizer,
            loss=model.training_loss(),
            jit_compile=jit,
            steps_per_execution=steps_per_execution(trainer, placement),
        )
        warm = None
        if init_from is not None:
            from recctl.training.warm_start import carry_over

            warm = carry_over(model, init_from, snapshot, trainer.carry_optimizer)
        state = checkpoints.restore(resume_from, model) if resume_from is not None else {}
    start_epoch = int(state.get("epoch", 0))
    clock = EpochClock(start_epoch)
    dataset = training_dataset(model, snapshot, batch_size, plan.seed, replicas, clock)

    task = task_of(model)
    monitor = task.monitor(trainer.monitor)
    validate = task.validator(model, snapshot, monitor, int(plan.evaluation.batch_size))
    if placement.multi_worker:  # every worker must take the same early-stopping decision
        validate = _agreed(validate, strategy)
    validation = RankingValidation(
        validate,
        monitor,
        trainer.patience,
        trainer.min_delta,
        trainer.early_stopping,
        trainer.restore_best,
        trainer.validate_every,
        trainer.min_updates,
        lower_is_better=task.lower_is_better,
    )
    if resume_from is not None:
        validation.restore(state.get("validation") or {}, state.get("best_weights"), model.get_weights())
        _truncate_history(folder.history, start_epoch)
    nan_guard = NanGuard()
    trial = trial_callback(monitor)
    callbacks: list[keras.callbacks.Callback] = [
        AdvanceClock(clock),
        nan_guard,
        validation,
        *([trial] if trial is not None else []),
        keras.callbacks.CSVLogger(str(folder.history), append=resume_from is not None),
    ]
    if writes_tensorboard(plan.logger):
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(folder.tensorboard), write_graph=False))
    if trainer.checkpoint:
        callbacks.append(EpochCheckpoint(folder.checkpoints, validation, state.get("fit_seconds", 0.0)))
    verbose = _verbosity(trainer.verbose)
    if verbose == 0 and trainer.verbose != "quiet":
        callbacks.append(EpochLines(int(trainer.epochs)))
    callbacks.extend(extra_callbacks)

    callback_list = stoppable_callbacks(
        callbacks, model, int(trainer.epochs), _known_steps(dataset), verbose
    )
    start = time.perf_counter()
    try:
        with deferred_interrupts():
            history = model.fit(
                dataset,
                epochs=int(trainer.epochs),
                initial_epoch=start_epoch,
                callbacks=callback_list,
                verbose=verbose,
                shuffle=False,
            )
        raise_if_requested()
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as exc:
        if not placement.multi_worker:
            raise
        detail = " ".join(str(exc).split())
        lost = (
            detail.split("unhealthy (stopped sending heartbeats):")[-1].split()[0]
            if "unhealthy" in detail
            else ""
        )
        raise RecctlError(
            "multi_worker: training aborted, a worker stopped responding"
            + (f" ({lost})" if lost.startswith("/job:") else "")
            + "; restart every worker (the chief's run is marked failed)"
        ) from None
    fit_seconds = time.perf_counter() - start + float(state.get("fit_seconds", 0.0))
    if nan_guard.nan_epoch is not None:
        where = f"epoch {nan_guard.nan_epoch}" if nan_guard.nan_epoch > 0 else "the first epoch"
        raise RecctlError(
            f"training loss became NaN in {where}: stopped (try a lower optimizer.learning_rate)"
        )
    logged = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    if resume_from is not None:  # the epochs before the kill come from history.csv
        logged = _read_history(folder.history) or logged
    epochs = len(logged.get("loss", []))
    return FitResult(
        model=model,
        history=logged,
        fit_seconds=fit_seconds,
        epochs=epochs,
        best_epoch=validation.best_epoch + 1 if validation.best_epoch >= 0 else None,
        stopped_early=validation.stopped_early,
        validation_seconds=validation.seconds,
        resumed_at_epoch=start_epoch if resume_from is not None else None,
        warm_start=warm,
        pruned_at_epoch=trial.pruned_at_epoch if trial is not None else None,
    )


def _known_steps(dataset) -> int | None:
    """Batches per epoch when tf.data knows them (the progress bar's target), else None."""
    try:
        steps = int(dataset.cardinality())
    except (AttributeError, TypeError, ValueError):
        return None
    return steps if steps >= 0 else None


def _truncate_history(path: Path, epochs: int) -> None:
    """Keep history.csv's first `epochs` rows: a row written after the checkpoint is redone."""
    if not path.is_file():
        return
    from recctl.artifacts import atomic_write_text

    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    atomic_write_text(path, "".join(lines[: 1 + epochs]))


def _read_history(path: Path) -> dict[str, list[float]]:
    import csv

    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    keys = [k for k in (rows[0].keys() if rows else []) if k != "epoch"]
    return {k: [float(r[k]) if r[k] not in ("", None) else float("nan") for r in rows] for k in keys}


def _agreed(validate, strategy):
    """Average each validation figure over the workers: identical weights give identical figures,
    but one worker stopping while another trains on would leave the other waiting in a collective."""

    def agreed():
        logs = validate()
        out = {}
        for key, value in sorted(logs.items()):
            per_replica = strategy.experimental_distribute_values_from_function(
                lambda _ctx, v=value: tf.constant(float(v), tf.float64)
            )
            out[key] = float(strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None))
        return out

    return agreed


def _jit(trainer, model, placement: Placement) -> bool:
    """XLA: the family's measured preference under `auto`; off where it cannot run."""
    if trainer.jit_compile in (True, False):
        return trainer.jit_compile
    if placement.replicated or trainer.deterministic:
        return False  # XLA cannot span replicas' devices; Keras turns it off under op determinism
    return model.jit_compile_default


def _verbosity(setting: str) -> int:
    if setting == "progress" or (setting == "auto" and console.interactive()):
        return 1
    return 0
