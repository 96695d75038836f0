"""Keras callbacks recctl adds to every fit: ranking validation with early stopping, epoch lines,
per-epoch checkpoints."""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras
import numpy as np

from recctl import console


class RankingValidation(keras.callbacks.Callback):
    """The task's validation every `every` epochs; early stopping and best-weight restoring on
    `monitor` (higher is better unless `lower_is_better`: rmse).

    Writes `val_<metric>` into the epoch logs so history.csv, TensorBoard and the epoch lines see it.
    Early stopping waits for `min_updates` optimizer updates: on a small dataset an epoch is a few
    updates, and some models (NeuMF) sit on a popularity plateau for the first few hundred.
    """

    def __init__(
        self,
        evaluate_fn,
        monitor: str,
        patience: int,
        min_delta: float,
        early_stopping: bool,
        restore_best: bool,
        every: int = 1,
        min_updates: int = 0,
        lower_is_better: bool = False,
    ):
        super().__init__()
        self.sign = -1.0 if lower_is_better else 1.0
        self.min_updates = int(min_updates)
        self.evaluate_fn = evaluate_fn
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.early_stopping = early_stopping
        self.restore_best = restore_best
        self.every = max(1, every)
        self.best = -self.sign * math.inf
        self.best_epoch = -1
        self.best_weights = None
        self.wait = 0
        self.stopped_early = False
        self.seconds = 0.0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if (epoch + 1) % self.every:
            return
        start = time.perf_counter()
        metrics = self.evaluate_fn()
        self.seconds += time.perf_counter() - start
        for key, value in metrics.items():
            logs[f"val_{key}"] = value
        value = metrics[self.monitor]
        if self.sign * value > self.sign * self.best + self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.early_stopping and self.wait >= self.patience and self._updates() >= self.min_updates:
                self.stopped_early = True
                self.model.stop_training = True

    def state(self) -> dict:
        """What a checkpoint keeps of this callback (best weights travel separately, as arrays)."""
        best = self.best if math.isfinite(self.best) else None
        return {"best": best, "best_epoch": self.best_epoch, "wait": self.wait, "seconds": self.seconds}

    def restore(self, state: dict, best_weights: list | None, current_weights: list) -> None:
        self.best = -self.sign * math.inf if state.get("best") is None else float(state["best"])
        self.best_epoch = int(state.get("best_epoch", -1))
        self.wait = int(state.get("wait", 0))
        self.seconds = float(state.get("seconds", 0.0))
        if self.restore_best and self.best_epoch >= 0:
            # no best.npz: the checkpoint's own epoch was the best, so its weights are the best ones
            self.best_weights = best_weights if best_weights is not None else current_weights

    def _updates(self) -> int:
        optimizer = getattr(self.model, "optimizer", None)
        return int(optimizer.iterations.numpy()) if optimizer is not None else 0

    def on_train_end(self, logs=None):
        if self.restore_best and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class EpochLines(keras.callbacks.Callback):
    """One plain line per epoch (used when stdout is not a terminal, or with --json on stderr)."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self.start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = [f"epoch {epoch + 1}/{self.epochs}", f"{time.perf_counter() - self.start:.1f}s"]
        parts += [f"{k}={_fmt(v)}" for k, v in logs.items() if k == "loss" or k.startswith("val_")]
        console.info("  ".join(parts))


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch, a resumable checkpoint (training/checkpoints.py) under `folder`.

    Runs after RankingValidation, so the validation state it saves includes this epoch's result.
    `seconds_before` is the fit time of the epochs a resumed run already did.
    """

    def __init__(self, folder: Path, validation: RankingValidation, seconds_before: float = 0.0):
        super().__init__()
        self.folder = Path(folder)
        self.validation = validation
        self.seconds_before = seconds_before
        self.started = time.perf_counter()

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        from recctl.training import checkpoints

        v = self.validation
        best_is_now = v.best_epoch == epoch
        checkpoints.save(
            self.folder,
            self.model,
            epoch + 1,
            {
                "fit_seconds": self.seconds_before + time.perf_counter() - self.started,
                "validation": v.state(),
            },
            None if best_is_now or v.best_weights is None else v.best_weights,
        )


class AdvanceClock(keras.callbacks.Callback):
    """Tells the input pipeline which epoch starts, before Keras opens that epoch's iterator."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def on_epoch_begin(self, epoch, logs=None):
        self.clock.set(epoch)


class NanGuard(keras.callbacks.Callback):
    """Stops at the first NaN/inf loss and remembers where (TerminateOnNaN, with the reason kept)."""

    def __init__(self):
        super().__init__()
        self.nan_epoch: int | None = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self.nan_epoch = -1
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self.nan_epoch = epoch + 1
            self.model.stop_training = True


def _fmt(value) -> str:
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return str(value)
