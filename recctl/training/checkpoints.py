"""Per-epoch checkpoints that a killed run resumes from (`recctl train resume=RUN`).

A checkpoint holds everything the next epoch depends on: the weights, the optimizer's slots and
step count, the random-seed states of the model's layers (dropout, noise), the validation
callback's state (best value, patience, best weights) and the epoch. The epoch is also the data
position: each epoch's batches are a pure function of (seed, epoch) (data/pipelines.py), so a run
resumed after epoch N sees what an uninterrupted run saw.

Layout: `<run>/checkpoints/epoch-0003/{weights,optimizer,seeds[,best]}.npz + state.json`. Each
is written into a hidden staging folder and renamed into place, then older ones are removed: the
newest complete checkpoint survives a kill at any instruction. Arrays only, loaded with
`allow_pickle=False`: nothing in a checkpoint can run code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path

import numpy as np

from recctl.errors import RecctlError

_NAME = re.compile(r"^epoch-(\d+)$")


def latest(folder: Path) -> Path | None:
    """The newest complete checkpoint under `folder` (staging folders are hidden, so never picked)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    found = [(n, p) for n, p in found if (p / "state.json").is_file()]
    return max(found)[1] if found else None


def seed_variables(model) -> list:
    """The model's random-seed states: variables that are neither weights nor optimizer slots."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def save(folder: Path, model, epoch: int, state: dict, best_weights: list | None) -> Path:
    """Write the checkpoint for `epoch` completed epochs; returns its folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".tmp-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        _savez(staging / "weights.npz", model.get_weights())
        optimizer = getattr(model, "optimizer", None)
        _savez(staging / "optimizer.npz", [np.asarray(v) for v in optimizer.variables] if optimizer else [])
        _savez(staging / "seeds.npz", [np.asarray(v) for v in seed_variables(model)])
        if best_weights is not None:
            _savez(staging / "best.npz", best_weights)
        with open(staging / "state.json", "w", encoding="utf-8") as fh:
            json.dump({"epoch": int(epoch), **state}, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        target = folder / f"epoch-{epoch:04d}"
        if target.exists():  # the same epoch again (a resumed run redoing it): replace it
            shutil.rmtree(target)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for old in folder.iterdir():
        m = _NAME.match(old.name)
        if m and int(m.group(1)) < epoch:
            shutil.rmtree(old, ignore_errors=True)
    return target


def restore(checkpoint: Path, model) -> dict:
    """Load weights, optimizer slots and seed states into a freshly built, compiled `model` (call it
    under the strategy's scope). Returns the checkpoint's state (epoch, validation, seconds)."""
    checkpoint = Path(checkpoint)
    try:
        state = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
        weights = _loadz(checkpoint / "weights.npz")
        slots = _loadz(checkpoint / "optimizer.npz")
        seeds = _loadz(checkpoint / "seeds.npz")
    except (OSError, ValueError) as exc:
        raise RecctlError(f"resume: checkpoint {checkpoint} is unreadable ({exc})") from None
    _assign(model.weights, weights, "weights", checkpoint)
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    _assign(optimizer.variables, slots, "optimizer state", checkpoint)
    _assign(seed_variables(model), seeds, "seed states", checkpoint)
    best = checkpoint / "best.npz"
    state["best_weights"] = _loadz(best) if best.is_file() else None
    return state


def _assign(variables: list, arrays: list[np.ndarray], what: str, checkpoint: Path) -> None:
    if len(variables) != len(arrays):
        raise RecctlError(
            f"resume: checkpoint {checkpoint} holds {len(arrays)} {what} arrays, the model has "
            f"{len(variables)}: it was written by another model or recctl version"
        )
    for variable, value in zip(variables, arrays, strict=True):
        if tuple(variable.shape) != value.shape:
            raise RecctlError(
                f"resume: {what} {variable.path} has shape {tuple(variable.shape)} here but "
                f"{value.shape} in {checkpoint}"
            )
        variable.assign(value)


def _savez(path: Path, arrays: list) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, *[np.asarray(a) for a in arrays])
        fh.flush()
        os.fsync(fh.fileno())


def _loadz(path: Path) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]
