"""Fit a model on a snapshot: compile, input pipeline, callbacks, timing. Returns the fitted model."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from recctl import console
from recctl.data.pipelines import (
    EpochClock,
    id_training_dataset,
    labeled_pairs_dataset,
    sequence_training_dataset,
    user_vector_training_dataset,
)
from recctl.data.snapshot import Snapshot
from recctl.errors import ConfigError, RecctlError
from recctl.evaluation.pointwise import pointwise_metrics, probability_function
from recctl.evaluation.ranking import evaluate_split
from recctl.evaluation.report import score_function
from recctl.training import checkpoints
from recctl.training.callbacks import AdvanceClock, EpochCheckpoint, EpochLines, NanGuard, RankingValidation
from recctl.training.factory import build_model, build_optimizer
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


def seed_everything(seed: int, deterministic: bool) -> None:
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def fit(
    cfg,
    trainer,
    snapshot: Snapshot,
    run_dir: Path,
    placement: Placement,
    extra_callbacks=(),
    resume_from: Path | None = None,
    init_from: Path | None = None,
) -> FitResult:
    """Train under `placement.strategy`; `run_dir` receives history, TensorBoard and checkpoints
    (a scratch folder on multi_worker's non-chief workers).

    `resume_from`: a checkpoint folder of this run to continue from (training/checkpoints.py).
    `init_from`: a completed run whose weights start this one (training/warm_start.py).
    """
    seed_everything(int(cfg.seed), trainer.deterministic)
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
    set_precision(cfg.strategy.get("mixed_precision"))
    with strategy.scope():
        model = build_model(cfg.model, snapshot)
        if not model.needs_training:
            return FitResult(model=model)
        optimizer = build_optimizer(cfg.optimizer)
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

            warm = carry_over(model, init_from, snapshot)
        state = checkpoints.restore(resume_from, model) if resume_from is not None else {}
    start_epoch = int(state.get("epoch", 0))
    clock = EpochClock(start_epoch)
    dataset = _training_data(model, snapshot, trainer, int(cfg.seed), replicas, clock)

    if model_task(model) == "ctr":  # labelled rows: validate on AUC
        monitor = "auc"
        prob_fn = probability_function(model)

        def validate():
            return pointwise_metrics(prob_fn, snapshot, "valid")
    else:
        monitor = trainer.monitor
        k = int(monitor.split("@")[1])
        name = monitor.split("@")[0]
        score_fn = score_function(model, snapshot, "valid")
        batch = model.scoring_batch_size(int(cfg.evaluation.batch_size))

        def validate():
            return evaluate_split(
                score_fn, snapshot, "valid", [k], sorted({name, "ndcg", "hr"}), batch, with_auc=False
            )

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
    )
    if resume_from is not None:
        validation.restore(state.get("validation") or {}, state.get("best_weights"), model.get_weights())
        _truncate_history(run_dir / "history.csv", start_epoch)
    nan_guard = NanGuard()
    callbacks: list[keras.callbacks.Callback] = [
        AdvanceClock(clock),
        nan_guard,
        validation,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resume_from is not None),
    ]
    if cfg.logger.get("name") == "tensorboard":
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), write_graph=False))
    if trainer.checkpoint:
        callbacks.append(EpochCheckpoint(run_dir / "checkpoints", validation, state.get("fit_seconds", 0.0)))
    verbose = _verbosity(trainer.verbose)
    if verbose == 0 and trainer.verbose != "quiet":
        callbacks.append(EpochLines(int(trainer.epochs)))
    callbacks.extend(extra_callbacks)

    start = time.perf_counter()
    try:
        history = model.fit(
            dataset,
            epochs=int(trainer.epochs),
            initial_epoch=start_epoch,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,
        )
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
        logged = _read_history(run_dir / "history.csv") or logged
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
    )


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


def model_task(model) -> str:
    return getattr(model, "task", "ranking")


def _jit(trainer, model, placement: Placement) -> bool:
    """XLA: the family's measured preference under `auto`; off where it cannot run."""
    if trainer.jit_compile in (True, False):
        return trainer.jit_compile
    if placement.name in ("mirrored", "multi_worker") or trainer.deterministic:
        return False  # XLA cannot span replicas' devices; Keras turns it off under op determinism
    return model.jit_compile_default


def _training_data(
    model, snapshot: Snapshot, trainer, seed: int, replicas: int = 1, clock: EpochClock | None = None
) -> tf.data.Dataset:
    if model_task(model) == "ctr":
        if not snapshot.has_labels:
            raise ConfigError(
                "model.task=ctr needs labelled rows: set dataset.label_threshold (e.g. 4; lower ratings become "
                "negatives) and usually dataset.split=random, or use experiment=ml100k_ctr"
            )
        users, items = snapshot.pairs("train")
        return labeled_pairs_dataset(
            users, items, snapshot.labels("train"), int(trainer.batch_size), seed, clock
        )
    if model.input_kind == "id":
        users, items = snapshot.pairs("train")
        if len(users) == 0:
            raise RecctlError("the training split is empty")
        return id_training_dataset(
            users,
            items,
            snapshot.n_items,
            int(trainer.batch_size),
            model.num_negatives,
            seed,
            clock,
            shared_negatives=getattr(model, "shared_negatives", False),
        )
    if model.input_kind == "sequence":
        try:
            return sequence_training_dataset(
                snapshot,
                model.training_mode,
                model.max_length,
                int(trainer.batch_size),
                model.num_negatives,
                seed,
                clock,
                full_softmax=model.full_softmax,
            )
        except ValueError as exc:
            raise RecctlError(str(exc)) from None
    if model.input_kind == "user_vector":
        batch_size = int(trainer.batch_size)
        micro = int(getattr(model, "micro_batch_size", 0) or 0)
        if replicas > 1 and micro:
            # Over replicas the model cannot loop over micro-batches inside one step (the optimizer's
            # cross-replica sync cannot sit in a loop), so the pipeline yields them: same updates.
            if micro % replicas:
                raise ConfigError(
                    f"model.micro_batch_size={micro} is global and must split evenly over {replicas} replicas"
                )
            batch_size = micro
        return user_vector_training_dataset(snapshot, batch_size, seed, clock)
    raise ConfigError(f"no input pipeline for input kind {model.input_kind!r}")


def _verbosity(setting: str) -> int:
    if setting == "progress" or (setting == "auto" and console.interactive()):
        return 1
    return 0
