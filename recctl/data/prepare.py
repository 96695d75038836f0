"""Turn a raw source into a content-addressed snapshot: data/processed/<dataset>/<fingerprint>/.

The fingerprint hashes the raw files' content (or the generator's settings) and every setting that
changes the result, so the same inputs always land in the same folder and a second `prepare` does
no work. The snapshot is written under a temporary name and renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from recctl import console
from recctl.artifacts import (
    MANIFEST,
    atomic_write_json,
    environment,
    file_digests,
    now_iso,
    publish_once,
    sha256_file,
    staging_dir,
)
from recctl.config import COLD_SPLITS, checked_dataset
from recctl.data import sources
from recctl.data.raw import RawData
from recctl.data.snapshot import Snapshot
from recctl.data.transform import build_tables
from recctl.errors import ConfigError, DataError

PREP_VERSION = 2  # 2: split tables sorted by (user, timestamp, row) so histories read in time order
# Settings that only say where the raw files are: their *content* is hashed instead.
_LOCATION_KEYS = ("root", "path", "download")


def ensure_snapshot(dataset_cfg: Any, data_dir: str | Path, seed: int) -> tuple[Snapshot, bool]:
    """Return the snapshot for these settings, preparing it first if it does not exist yet.

    The staging folder is made before the (possibly long) read and build: an unwritable data folder
    fails at once, and a killed prepare leaves only a hidden `.tmp-*` folder that the next writer
    removes. Concurrent prepares of the same data each build their own copy; the first rename wins
    and the others discard theirs (`publish_once`), so every one returns the same complete folder.
    """
    d = checked_dataset(dataset_cfg)
    source = sources.get(d.source)
    source.check_before_read(d)
    files = source.files(d)
    with console.stage(f"prepare {d.name}: hashing the raw files"):
        fp = fingerprint(d, seed, files)
    parent = Path(data_dir) / "processed" / d.name
    final = parent / fp
    if (final / MANIFEST).is_file():
        return Snapshot(final), False
    start = time.perf_counter()
    target = f"the dataset snapshot under {parent}"
    try:
        staged = staging_dir(parent)
    except OSError as exc:
        raise _write_error(exc, target, data_dir) from None
    writing = False
    try:
        with console.stage(f"prepare {d.name}: reading"):
            raw = source.load(d, seed)
        with console.stage(f"prepare {d.name}: filtering, indexing and splitting"):
            tables, stats = build_tables(raw, d, seed)
        _check_evaluable(stats, d, raw)
        writing = True
        with console.stage(f"prepare {d.name}: writing the snapshot"):
            _write_snapshot(staged, tables, stats, d, seed, fp, files)
        published = publish_once(staged, final)
    except BaseException as exc:
        shutil.rmtree(staged, ignore_errors=True)
        if writing and isinstance(exc, OSError):
            raise _write_error(exc, target, data_dir) from None
        raise
    seconds = time.perf_counter() - start
    if published:
        console.info(
            f"prepared {final} ({stats['n_users']} users, {stats['n_items']} items, "
            f"{stats['n_interactions']} interactions) in {seconds:.1f} s"
        )
    return Snapshot(final), published


def _write_error(exc: OSError, target: str, data_dir) -> BaseException:
    """A full disk or an unwritable data folder as a one-line error; any other OSError as it is."""
    from recctl.errors import output_error

    return output_error(exc, target, "paths.data_dir", data_dir) or exc


def snapshot_fingerprint(dataset_cfg: Any, seed: int) -> tuple[str, str]:
    """(dataset name, fingerprint) of the snapshot these settings make, without preparing it: the raw
    files are hashed, not parsed."""
    d = checked_dataset(dataset_cfg)
    return d.name, fingerprint(d, seed, sources.get(d.source).files(d))


def check_run_dataset(dataset_cfg: Any, run_manifest: dict, run: str, command: str) -> None:
    """A command that reads a finished run (evaluate, export, recommend) always uses the run's own
    snapshot: a model only scores the users and items it was trained on. Dataset settings given to it
    (`+dataset=... dataset.path=...`) that make another snapshot are refused, not silently ignored."""
    if dataset_cfg is None:
        return
    name, fp = snapshot_fingerprint(dataset_cfg, int(run_manifest.get("seed", 42)))
    if fp != run_manifest.get("fingerprint"):
        raise ConfigError(
            f"run={run} was trained on dataset {run_manifest.get('dataset')} (snapshot "
            f"{run_manifest.get('fingerprint')}), but the dataset settings given make snapshot {fp} ({name}): "
            f"{command} always uses the run's own data; drop the dataset overrides, or train on this data"
        )


def fingerprint(d: DictConfig, seed: int, files: list[Path]) -> str:
    source = sources.get(d.source)
    settings = OmegaConf.to_container(d, resolve=True)
    for key in _LOCATION_KEYS:
        settings.pop(key, None)
    settings.pop("row_order_is_time", None)  # a promise about the file checked by train; the data is the same
    if settings.get("ties") == "row":  # the rule of every snapshot made before the key: theirs stay valid
        settings.pop("ties")
    if settings.get("split") not in COLD_SPLITS:  # read by the cold splits only: other snapshots stay valid
        settings.pop("cold_share", None)
    if settings.get("split") != "time":  # read by split=time only
        settings.pop("time_cutoffs", None)
    for table in ("user_features", "item_features"):
        settings[table].pop("path", None)
    for section in source.unread_sections:
        settings.pop(section, None)
    payload = {
        "version": PREP_VERSION,
        "settings": settings,
        "seed": seed if (source.seeded or d.split == "random" or d.split in COLD_SPLITS) else None,
        "files": [raw_digest(f) for f in files],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def raw_digest(path: Path) -> str:
    """sha256 of a raw file; for a folder (of Parquet files, the table source), the sha256 of each part
    file's relative path and sha256 in sorted path order: adding, changing or renaming a part changes
    it, the order the file system lists them in does not, and a single file keeps its old digest."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    from recctl.data.sources.readers import parquet_parts

    lines = [f"{p.relative_to(path).as_posix()}\t{sha256_file(p)}\n" for p in parquet_parts(path)]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _source_entry(path: Path) -> dict[str, Any]:
    """A raw file (or folder) as the snapshot manifest records it."""
    if not path.is_dir():
        return {"path": str(path), "sha256": sha256_file(path), "bytes": path.stat().st_size}
    from recctl.data.sources.readers import parquet_parts

    parts = parquet_parts(path)
    return {
        "path": str(path),
        "sha256": raw_digest(path),
        "bytes": sum(p.stat().st_size for p in parts),
        "parts": len(parts),
    }


def _check_evaluable(stats: dict, d: DictConfig, raw: RawData) -> None:
    """A validation or test split that came out empty would give no metric at all: refuse the data."""
    ratios = dict(zip(("valid", "test"), d.split_ratio[1:], strict=True))
    needed = ("loo", *COLD_SPLITS)
    empty = [s for s in ("valid", "test") if stats[s] == 0 and (d.split in needed or ratios[s] > 0)]
    if not empty:
        return
    if d.split in COLD_SPLITS:
        raise DataError(
            f"dataset.split={d.split} with dataset.cold_share={d.cold_share} holds out no "
            f"{COLD_SPLITS[d.split]} for the {' and '.join(empty)} split ({stats['n_users']} users, "
            f"{stats['n_items']} items): raise dataset.cold_share"
        )
    filtered = d.rating_threshold is not None or d.min_user_interactions > 1 or d.min_item_interactions > 1
    where = f"{raw.files[0]}: " if raw.files else ""
    raise DataError(
        f"{where}no user has the 3 interactions that a validation and a test item need"
        f"{' after filtering' if filtered else ''} ({stats['n_users']} users, {stats['n_interactions']} "
        f"interactions): the {' and '.join(empty)} split{'s' if len(empty) > 1 else ''} would be empty"
    )


def _write_snapshot(
    folder: Path, tables, stats, d: DictConfig, seed: int, fp: str, files: list[Path]
) -> None:
    for name, table in tables.items():
        table.to_parquet(folder / f"{name}.parquet", index=False)
    atomic_write_json(folder / "stats.json", stats)
    atomic_write_json(
        folder / MANIFEST,
        {
            "kind": "snapshot",
            "status": "completed",
            "dataset": d.name,
            "fingerprint": fp,
            "created_at": now_iso(),
            "seed": seed,
            "prep_version": PREP_VERSION,
            "source_files": [_source_entry(f) for f in files],
            "config": OmegaConf.to_container(d, resolve=True),
            "environment": environment(),
            # Digests of the snapshot's own files (Snapshot.verify): a copy or a disk can be checked.
            "files": file_digests(folder),
        },
    )
