"""Open a finished run: its saved config, its dataset snapshot and its model (safe-mode .keras)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from recctl.artifacts import read_manifest
from recctl.data.snapshot import Snapshot
from recctl.errors import RunNotFoundError


@dataclass
class LoadedRun:
    path: Path
    config: object
    manifest: dict
    snapshot: Snapshot
    model: object
    model_name: str
    seed: int


def load_run(run_dir: Path, with_model: bool = True) -> LoadedRun:
    manifest = read_manifest(run_dir)
    config = OmegaConf.load(run_dir / "config.yaml")
    snapshot = _snapshot_of(run_dir, manifest, config)
    model = load_model(run_dir / "model.keras") if with_model else None
    return LoadedRun(
        run_dir,
        config,
        manifest,
        snapshot,
        model,
        manifest.get("model", "model"),
        int(config.get("seed", 42)),
    )


def load_model(path: Path):
    import keras

    import recctl.models.registry  # noqa: F401  (registers every recctl model class for safe-mode loading)

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:
        raise RunNotFoundError(
            f"{path}: the model could not be loaded ({str(exc).splitlines()[0]})"
        ) from None


def _snapshot_of(run_dir: Path, manifest: dict, config) -> Snapshot:
    """The run's own snapshot; re-prepared from the run's dataset config if it was deleted."""
    path = Path(manifest.get("snapshot", ""))
    if path.is_dir() and (path / "manifest.json").is_file():
        return Snapshot(path)
    from recctl.data.prepare import ensure_snapshot

    snapshot, _ = ensure_snapshot(config.dataset, config.paths.data_dir, int(config.seed))
    if snapshot.fingerprint != manifest.get("fingerprint"):
        raise RunNotFoundError(
            f"run {run_dir}: its dataset snapshot {manifest.get('fingerprint')} is gone and the data now gives "
            f"{snapshot.fingerprint} (the raw files changed): train again on the current data"
        )
    return snapshot
