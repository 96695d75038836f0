"""`recctl train init_from=RUN`: start from a trained run's weights, carried over id by id.

Periodic retraining prepares a new snapshot whose id maps differ from the old one: new users and
items arrive, some leave, and every index after them shifts. Copying an embedding table by shape
would silently hand users each other's rows, so each family declares which weights are indexed by
ids (`Recommender.id_axes`) and those are remapped through the two snapshots' original ids:
- a known user, item or category value keeps its trained row;
- a new one keeps its fresh initialisation;
- one that left is dropped.
Tables the data fills (`Recommender.data_tables`: popularity, side features) come from the new
snapshot. Every other weight is copied as it is, so the model config must be the same.

The optimizer starts fresh unless `trainer.carry_optimizer=true`: then its state (step count and
slots: Adam's m and v, ...) comes from the run's `model.keras` (the state after its last epoch;
else its newest checkpoint), each slot remapped like the weight it belongs to (a new id's slot
rows are zeros, as a fresh optimizer's), the learning rate left as this run's config sets it. The
optimizer class must be the source run's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from recctl.artifacts import MANIFEST, read_manifest
from recctl.data.snapshot import Snapshot
from recctl.errors import ConfigError
from recctl.models.base import IdAxis
from recctl.runs import RunFolder, resolve_run
from recctl.training.resume import upgrade_saved_config


def warm_start_run(
    spec, output_dir: Path, model_cfg, optimizer_cfg=None, carry_optimizer: bool = False
) -> Path | None:
    """`init_from=RUN|latest`: a completed run with the same model config (and, with
    carry_optimizer, the same optimizer class and a saved optimizer state), checked before any
    data is read; None without init_from (carry_optimizer then has nothing to carry)."""
    if spec is None:
        return None
    run = resolve_run(str(spec), output_dir)
    check_same_model(run, model_cfg)
    if carry_optimizer:
        check_same_optimizer(run, optimizer_cfg)
    return run


def check_same_optimizer(run_dir: Path, optimizer_cfg) -> None:
    """trainer.carry_optimizer=true: the run was trained by the same optimizer class, and saved its state."""
    saved = upgrade_saved_config(OmegaConf.load(RunFolder(Path(run_dir)).config)).get("optimizer") or {}
    ours = str((optimizer_cfg or {}).get("_target_", ""))
    theirs = str(saved.get("_target_", ""))
    if ours != theirs:
        raise ConfigError(
            f"trainer.carry_optimizer=true: init_from={run_dir} was trained with {theirs or 'no optimizer'}, "
            f"this run uses {ours}; an optimizer state only carries to the same class (or set "
            "trainer.carry_optimizer=false)"
        )
    if saved_optimizer_state(Path(run_dir), load=False) is None:
        raise ConfigError(
            f"trainer.carry_optimizer=true: init_from={run_dir} has no optimizer state saved (none in its "
            "model.keras, no checkpoint); warm-start it with trainer.carry_optimizer=false"
        )


def saved_optimizer_state(run_dir: Path, load: bool = True) -> tuple[str, list[np.ndarray]] | None:
    """(where, the optimizer's variables in `optimizer.variables` order) of a finished run: from
    model.keras (Keras saves a compiled model's optimizer in `optimizer/vars/<i>` of
    model.weights.h5), else from its newest checkpoint's optimizer.npz; None when neither has one.
    With load=False the arrays are not read (the list is empty)."""
    import zipfile

    import h5py

    from recctl.training import checkpoints

    folder = RunFolder(run_dir)
    try:
        with zipfile.ZipFile(folder.model) as archive, archive.open("model.weights.h5") as raw:
            with h5py.File(raw, "r") as weights:
                group = weights.get("optimizer/vars")
                if group is not None and len(group):
                    arrays = [np.asarray(group[str(i)]) for i in range(len(group))] if load else []
                    return "model.keras", arrays
    except (OSError, KeyError, zipfile.BadZipFile):
        pass
    checkpoint = checkpoints.latest(folder.checkpoints)
    path = checkpoint / "optimizer.npz" if checkpoint is not None else None
    if path is None or not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        if not data.files:
            return None
        arrays = [data[f"arr_{i}"] for i in range(len(data.files))] if load else []
    return str(path.relative_to(run_dir)), arrays


def check_same_model(run_dir: Path, model_cfg) -> None:
    """The run's model config (its config.yaml) must equal this one: weights only fit their model."""
    saved = upgrade_saved_config(OmegaConf.load(RunFolder(Path(run_dir)).config)).get("model")
    ours = OmegaConf.to_container(model_cfg, resolve=True)
    theirs = OmegaConf.to_container(saved, resolve=True) if saved is not None else {}
    for key in sorted(set(ours) | set(theirs)):
        if ours.get(key) != theirs.get(key):
            raise ConfigError(
                f"init_from={run_dir}: model.{key} is {ours.get(key)!r} here but {theirs.get(key)!r} in "
                "that run; warm start needs the same model config"
            )


def previous_snapshot(run_dir: Path) -> Snapshot:
    manifest = read_manifest(run_dir)
    path = Path(manifest.get("snapshot") or "")
    if not (path / MANIFEST).is_file():
        raise ConfigError(
            f"init_from={run_dir}: its data snapshot {path} is gone, so its ids cannot be matched "
            "(run `recctl prepare` with that run's dataset config to rebuild it)"
        )
    return Snapshot(path)


def space_ids(snapshot: Snapshot, space: str) -> np.ndarray:
    """The original keys behind the rows of an id space, in row order."""
    if space == "user":
        return snapshot.user_ids
    if space == "item":
        return snapshot.item_ids
    who, j = space.split("_cat:")
    table = snapshot.users if who == "user" else snapshot.items
    columns = [c for c in table.columns if c.startswith("cat__")]
    values = snapshot.stats["features"][who]["categorical"][columns[int(j)][5:]]
    return np.asarray([str(v) for v in values], dtype=object)


def carry_over(model, run_dir: Path, snapshot: Snapshot, carry_optimizer: bool = False) -> dict:
    """Set `model`'s weights (and with carry_optimizer, its compiled optimizer's state) from the
    run's model; returns what was carried over (for the manifest)."""
    import keras

    import recctl.models.registry  # noqa: F401  (registers the classes for safe-mode loading)

    old_snapshot = previous_snapshot(run_dir)
    old_model = keras.saving.load_model(RunFolder(Path(run_dir)).model, safe_mode=True, compile=False)
    axes = model.id_axes()
    new_weights, old_weights = model.weights, old_model.weights
    if len(new_weights) != len(old_weights):
        raise ConfigError(
            f"init_from={run_dir}: that model has {len(old_weights)} weights, this one {len(new_weights)}"
        )
    report: dict = {"run": str(run_dir), "copied": 0, "remapped": 0, "rebuilt_from_data": []}
    spaces: dict[str, dict] = {}
    for new, old in zip(new_weights, old_weights, strict=True):
        key = _key(new.path, model.name)
        if key != _key(old.path, old_model.name):
            raise ConfigError(f"init_from={run_dir}: weight {old.path} there, {new.path} here")
        value = np.asarray(old)
        if key.split("/")[-1] in model.data_tables:
            report["rebuilt_from_data"].append(key)
            continue
        axis = axes.get(key)
        if axis is None:
            if tuple(new.shape) != value.shape:
                raise ConfigError(
                    f"init_from={run_dir}: {key} has shape {value.shape} there and {tuple(new.shape)} "
                    "here (a side feature with another width?)"
                )
            new.assign(value)
            report["copied"] += 1
            continue
        counts = spaces.setdefault(axis.space, _match(old_snapshot, snapshot, axis.space))
        new.assign(_remap(value, np.asarray(new), axis, counts["positions"], key, run_dir))
        report["remapped"] += 1
    if carry_optimizer:
        report["optimizer"] = _carry_optimizer(model, run_dir, old_snapshot, snapshot, spaces)
    report["ids"] = {space: {k: v for k, v in c.items() if k != "positions"} for space, c in spaces.items()}
    return report


def _carry_optimizer(model, run_dir: Path, old_snapshot: Snapshot, snapshot: Snapshot, spaces: dict) -> dict:
    """Set the compiled optimizer's variables from the run's saved state. A slot (named
    `<weight path>_<slot>` by Keras) is remapped on the id axes of its weight, new ids getting
    zeros; the step count is copied; the learning rate stays this run's."""
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    found = saved_optimizer_state(Path(run_dir))
    if found is None:  # checked by the plan; a run changed since
        raise ConfigError(f"trainer.carry_optimizer=true: init_from={run_dir} has no optimizer state saved")
    source, arrays = found
    variables = list(optimizer.variables)
    if len(arrays) != len(variables):
        raise ConfigError(
            f"trainer.carry_optimizer=true: init_from={run_dir} saved {len(arrays)} optimizer variables, this "
            f"optimizer has {len(variables)} (other optimizer settings or mixed precision?)"
        )
    owners = sorted(
        ((w.path.replace("/", "_") + "_", w) for w in model.trainable_variables), key=lambda p: -len(p[0])
    )
    axes = model.id_axes()
    report = {"from": source, "copied": 0, "remapped": 0}
    for variable, value in zip(variables, arrays, strict=True):
        name = variable.name
        if name == "learning_rate":
            continue
        owner = next((w for prefix, w in owners if name.startswith(prefix)), None)
        axis = axes.get(_key(owner.path, model.name)) if owner is not None else None
        if axis is None:
            if tuple(variable.shape) != value.shape:
                raise ConfigError(
                    f"trainer.carry_optimizer=true: optimizer variable {name} has shape {value.shape} in "
                    f"init_from={run_dir} and {tuple(variable.shape)} here"
                )
            variable.assign(value)
            report["copied"] += 1
            continue
        counts = spaces.setdefault(axis.space, _match(old_snapshot, snapshot, axis.space))
        zeros = np.zeros(tuple(variable.shape), dtype=value.dtype)
        variable.assign(_remap(value, zeros, axis, counts["positions"], f"optimizer {name}", run_dir))
        report["remapped"] += 1
    report["iterations"] = int(np.asarray(optimizer.iterations))
    return report


def describe(report: dict) -> str:
    """The line train prints about what `carry_over` did."""
    ids = ", ".join(
        f"{space}: {c['kept']} kept, {c['new']} new, {c['dropped']} dropped"
        for space, c in report["ids"].items()
    )
    line = f"warm start from {report['run']}: {report['remapped']} id-indexed weights remapped ({ids}), {report['copied']} copied"
    carried = report.get("optimizer")
    if carried:
        line += f"; optimizer state from its {carried['from']} (step {carried['iterations']}, {carried['remapped']} slots remapped)"
    return line


def _key(path: str, model_name: str) -> str:
    prefix = f"{model_name}/"
    return path[len(prefix) :] if path.startswith(prefix) else path


def _match(old_snapshot: Snapshot, new_snapshot: Snapshot, space: str) -> dict:
    old_ids, new_ids = space_ids(old_snapshot, space), space_ids(new_snapshot, space)
    positions = pd.Index(old_ids).get_indexer(new_ids)
    kept = int((positions >= 0).sum())
    return {"positions": positions, "kept": kept, "new": len(new_ids) - kept, "dropped": len(old_ids) - kept}


def _remap(
    old: np.ndarray, fresh: np.ndarray, axis: IdAxis, positions: np.ndarray, key: str, run_dir
) -> np.ndarray:
    """Rows of `fresh` for known ids replaced by their rows in `old`; special rows carried over."""
    old_rows, out = np.moveaxis(old, axis.axis, 0), np.moveaxis(fresh.copy(), axis.axis, 0)
    n_old = old_rows.shape[0] - axis.leading - axis.trailing
    if n_old < 0 or out.shape[0] - axis.leading - axis.trailing != len(positions):
        raise ConfigError(f"init_from={run_dir}: {key} does not have one row per {axis.space} id")
    if old_rows.shape[1:] != out.shape[1:]:
        raise ConfigError(
            f"init_from={run_dir}: {key} has rows of shape {old_rows.shape[1:]} there, {out.shape[1:]} here"
        )
    if positions.size and positions.max() >= n_old:
        raise ConfigError(f"init_from={run_dir}: {key} has fewer rows than that run's {axis.space} ids")
    known = np.flatnonzero(positions >= 0)
    out[axis.leading + known] = old_rows[axis.leading + positions[known]]
    out[: axis.leading] = old_rows[: axis.leading]
    if axis.trailing:
        out[out.shape[0] - axis.trailing :] = old_rows[old_rows.shape[0] - axis.trailing :]
    return np.moveaxis(out, 0, axis.axis)
