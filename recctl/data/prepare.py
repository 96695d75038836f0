"""Turn a raw source into a content-addressed snapshot: data/processed/<dataset>/<fingerprint>/.

The fingerprint hashes the raw files' content (or the generator's settings) and every setting that
changes the result, so the same inputs always land in the same folder and a second `prepare` does
no work. The snapshot is written under a temporary name and renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
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
from recctl.config import DatasetConfig, validate_dataset
from recctl.data.raw import RawData
from recctl.data.snapshot import Snapshot
from recctl.errors import ConfigError, DataError

PREP_VERSION = 2  # 2: split tables sorted by (user, timestamp, row) so histories read in time order
# Settings that only say where the raw files are: their *content* is hashed instead.
_LOCATION_KEYS = ("root", "path", "download")


def dataset_settings(dataset_cfg: Any) -> DictConfig:
    """The dataset section merged onto its schema: typos and wrong types fail here, before any work."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(DatasetConfig), dataset_cfg)
    except Exception as exc:  # omegaconf.ValidationError / ConfigKeyError
        raise ConfigError(f"dataset: {str(exc).splitlines()[0]}") from None
    validate_dataset(merged)
    check_dataset_name(merged.name)
    return merged


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_dataset_name(name: Any) -> None:
    """`dataset.name` becomes the folder data/processed/<name>/: one plain path component only,
    so a name such as `../../x` or `/etc` cannot place a snapshot outside the data folder."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            "dataset.name must be a plain folder name (letters, digits, '.', '_', '-'; no '/' or '..'). "
            f"Received: {name!r}"
        )


def ensure_snapshot(dataset_cfg: Any, data_dir: str | Path, seed: int) -> tuple[Snapshot, bool]:
    """Return the snapshot for these settings, preparing it first if it does not exist yet.

    The staging folder is made before the (possibly long) read and build: an unwritable data folder
    fails at once, and a killed prepare leaves only a hidden `.tmp-*` folder that the next writer
    removes. Concurrent prepares of the same data each build their own copy; the first rename wins
    and the others discard theirs (`publish_once`), so every one returns the same complete folder.
    """
    d = dataset_settings(dataset_cfg)
    _check_columns(d)
    files = _source_files(d)
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
        raw = _load_raw(d, seed)
        tables, stats = build_tables(raw, d, seed)
        _check_evaluable(stats, d, raw)
        writing = True
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
    from recctl.settings import output_error

    return output_error(exc, target, "paths.data_dir", data_dir) or exc


def snapshot_fingerprint(dataset_cfg: Any, seed: int) -> tuple[str, str]:
    """(dataset name, fingerprint) of the snapshot these settings make, without preparing it: the raw
    files are hashed, not parsed."""
    d = dataset_settings(dataset_cfg)
    return d.name, fingerprint(d, seed, _source_files(d))


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
    settings = OmegaConf.to_container(d, resolve=True)
    for key in _LOCATION_KEYS:
        settings.pop(key, None)
    settings.pop("row_order_is_time", None)  # a promise about the file checked by train; the data is the same
    for table in ("user_features", "item_features"):
        settings[table].pop("path", None)
    if d.source != "synthetic":
        settings.pop("synthetic", None)
    payload = {
        "version": PREP_VERSION,
        "settings": settings,
        "seed": seed if (d.source == "synthetic" or d.split == "random") else None,
        "files": [sha256_file(f) for f in files],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _source_files(d: DictConfig) -> list[Path]:
    """The raw files a source reads (fetching MovieLens first when it is missing)."""
    if d.source == "synthetic":
        return []
    if d.source == "movielens_100k":
        root = Path(d.root or "data/raw/ml-100k")
        names = ("u.data", "u.item", "u.user")
        if not all((root / n).is_file() for n in names):
            from recctl.data.sources import load_movielens_100k

            load_movielens_100k(d)  # downloads when allowed, else raises a DataError saying where to put them
        return [root / n for n in names]
    files = [_existing_file(d.path, "dataset.path")]
    for kind, table in (("user", d.user_features), ("item", d.item_features)):
        if table.path:
            files.append(_existing_file(table.path, f"dataset.{kind}_features.path"))
    return files


def _existing_file(value: str, setting: str) -> Path:
    path = Path(value)
    if path.is_dir():
        raise DataError(f"{value}: is a folder, not a file ({setting})")
    if not path.is_file():
        raise DataError(f"{value}: file not found ({setting})")
    return path


def _check_columns(d: DictConfig) -> None:
    """Settings that need a column the table does not map are refused before the file is read."""
    if d.source != "table" or d.columns.rating:
        return
    for key in ("rating_threshold", "label_threshold"):
        if d.get(key) is not None:
            raise ConfigError(
                f"dataset.{key}={d.get(key)} needs ratings, but dataset.columns.rating is null: map the "
                f"rating column (dataset.columns.rating=NAME) or leave dataset.{key} null"
            )


def _check_evaluable(stats: dict, d: DictConfig, raw: RawData) -> None:
    """A validation or test split that came out empty would give no metric at all: refuse the data."""
    ratios = dict(zip(("valid", "test"), d.split_ratio[1:], strict=True))
    empty = [s for s in ("valid", "test") if stats[s] == 0 and (d.split == "loo" or ratios[s] > 0)]
    if not empty:
        return
    filtered = d.rating_threshold is not None or d.min_user_interactions > 1 or d.min_item_interactions > 1
    where = f"{raw.files[0]}: " if raw.files else ""
    raise DataError(
        f"{where}no user has the 3 interactions that a validation and a test item need"
        f"{' after filtering' if filtered else ''} ({stats['n_users']} users, {stats['n_interactions']} "
        f"interactions): the {' and '.join(empty)} split{'s' if len(empty) > 1 else ''} would be empty"
    )


def _load_raw(d: DictConfig, seed: int) -> RawData:
    if d.source == "synthetic":
        from recctl.data.synthetic import generate

        return generate(d.synthetic, seed)
    from recctl.data import sources

    if d.source == "movielens_100k":
        return sources.load_movielens_100k(d)
    return sources.load_table(d)


def build_tables(raw: RawData, d: DictConfig, seed: int) -> tuple[dict[str, pd.DataFrame], dict]:
    """Deduplicate, convert to implicit, k-core filter, index and split. Pure: no files."""
    inter = raw.interactions.reset_index(drop=True)
    stats: dict[str, Any] = {"raw_interactions": len(inter)}
    if len(inter) == 0:
        raise DataError("the interactions table is empty")
    # Ids become integer codes once (first-appearance order); every later step works on integers,
    # which is most of what makes prepare run at ~1 M interactions/s (BENCHMARKS.md, section 11).
    u_codes, u_uniques = pd.factorize(inter["user_id"])
    i_codes, i_uniques = pd.factorize(inter["item_id"])
    inter = inter.assign(
        row=np.arange(len(inter), dtype=np.int64),
        u_code=u_codes.astype(np.int64),
        i_code=i_codes.astype(np.int64),
    )
    pair_key = pd.Series(inter["u_code"].to_numpy() * max(len(i_uniques), 1) + inter["i_code"].to_numpy())
    repeat = pair_key.duplicated(keep="first").to_numpy()
    stats["duplicate_rows"] = int(repeat.sum())
    if stats["duplicate_rows"]:
        n_dup = stats["duplicate_rows"]
        row = int(np.flatnonzero(repeat)[0])
        user, item = inter["user_id"].iat[row], inter["item_id"].iat[row]
        if d.duplicates == "error":
            first = int(np.flatnonzero(pair_key.to_numpy() == pair_key.iat[row])[0])
            raise DataError(
                f"{_locate(raw, row)}: duplicate (user, item) row: user {user!r}, item {item!r} first at "
                f"{_locate(raw, first)}; {n_dup} duplicate row{'s' if n_dup > 1 else ''} in all "
                "(dataset.duplicates=error; keep_first, keep_last or keep_all accept them)"
            )
        if d.duplicates == "keep_first":
            inter = inter[~repeat]
        elif d.duplicates == "keep_last":
            inter = inter[~pair_key.duplicated(keep="last").to_numpy()]
        kept = {"keep_first": "kept the first of each", "keep_last": "kept the last of each"}
        console.warn(
            f"{n_dup} duplicate (user, item) row{'s' if n_dup > 1 else ''} (e.g. user {user!r}, item {item!r}): "
            f"{kept.get(d.duplicates, 'kept them all')} (dataset.duplicates={d.duplicates})"
        )
    users_before = _distinct(inter["u_code"])

    if d.rating_threshold is not None:
        if not raw.has_ratings:
            raise ConfigError("dataset.rating_threshold is set but the data has no rating column")
        inter = inter[inter["rating"] >= d.rating_threshold]
        stats["after_threshold"] = len(inter)
        if len(inter) == 0:
            raise DataError(f"no interactions have rating >= {d.rating_threshold} (dataset.rating_threshold)")

    if d.label_threshold is not None and not raw.has_ratings:
        raise ConfigError("dataset.label_threshold is set but the data has no rating column")

    inter = _kcore(inter, d.min_user_interactions, d.min_item_interactions)
    filters = ", ".join(
        f"dataset.{key}={d.get(key)}"
        for key in ("rating_threshold", "min_user_interactions", "min_item_interactions")
        if d.get(key) not in (None, 0)
    )
    if len(inter) == 0:
        raise DataError(f"every user was filtered out ({filters}): no interactions are left")
    dropped = users_before - _distinct(inter["u_code"])
    if dropped:
        console.warn(
            f"{dropped} of {users_before} users have no interactions left after {filters}: they are left out"
        )

    user_ids, user_of_code = _index_ids(inter["u_code"].to_numpy(), u_uniques)
    item_ids, item_of_code = _index_ids(inter["i_code"].to_numpy(), i_uniques)
    frame = pd.DataFrame(
        {
            "user": user_of_code[inter["u_code"].to_numpy()],
            "item": item_of_code[inter["i_code"].to_numpy()],
            "rating": inter["rating"].to_numpy(np.float32),
            "timestamp": inter["timestamp"].to_numpy(np.int64),
            "row": inter["row"].to_numpy(np.int64),
        }
    )
    # Binary labels for the CTR task: every row kept, positive when rating >= label_threshold
    # (without a label threshold every interaction is a positive).
    if d.label_threshold is not None:
        frame["label"] = (frame["rating"].to_numpy() >= d.label_threshold).astype(np.int8)
    else:
        frame["label"] = np.ones(len(frame), np.int8)
    if d.split in ("loo", "temporal") and not raw.has_timestamps:
        console.warn(
            f"dataset.split={d.split} without timestamps: users' interactions are ordered by file row"
        )
    order = np.lexsort((frame["row"].to_numpy(), frame["timestamp"].to_numpy(), frame["user"].to_numpy()))
    frame = frame.iloc[order].reset_index(drop=True)  # each user's rows in time order (sequence models)
    part = split_assignments(frame, d.split, list(d.split_ratio), seed)
    tables = {
        name: frame[part == code].reset_index(drop=True)
        for code, name in enumerate(("train", "valid", "test"))
    }

    users = pd.DataFrame({"user": np.arange(len(user_ids), dtype=np.int32), "user_id": user_ids})
    items = pd.DataFrame({"item": np.arange(len(item_ids), dtype=np.int32), "item_id": item_ids})
    features: dict[str, Any] = {}
    users, features["user"] = _encode_features(users, raw.users, "user_id")
    items, features["item"] = _encode_features(items, raw.items, "item_id")
    tables["users"], tables["items"] = users, items

    n_inter = len(frame)
    stats.update(
        n_users=len(user_ids),
        n_items=len(item_ids),
        n_interactions=n_inter,
        density=n_inter / (len(user_ids) * len(item_ids)),
        split=d.split,
        train=len(tables["train"]),
        valid=len(tables["valid"]),
        test=len(tables["test"]),
        valid_users=int(tables["valid"]["user"].nunique()),
        test_users=int(tables["test"]["user"].nunique()),
        has_timestamps=raw.has_timestamps,
        has_ratings=raw.has_ratings,
        label_threshold=d.label_threshold,
        positive_rate=float(frame["label"].mean()),
        features=features,
        source_stats=raw.stats,
    )
    return tables, stats


def _locate(raw: RawData, row: int) -> str:
    """Where a 0-based interactions row is in the source ("ratings.csv, line 7"), for messages."""
    return raw.locate(row) if raw.locate is not None else f"interaction row {row + 1}"


def split_assignments(frame: pd.DataFrame, split: str, ratio: list[float], seed: int) -> np.ndarray:
    """0/1/2 (train/valid/test) per row.

    loo: per user, ordered by (timestamp, original row), the last interaction is test and the
    second-last valid; users with fewer than 3 interactions stay entirely in train.
    temporal: the same order, the last `ratio[2]` share test and the `ratio[1]` before it valid.
    random: the same per-user shares over a seeded random order.
    """
    users = frame["user"].to_numpy()
    if split == "random":
        key = np.random.default_rng(seed).random(len(frame))
        order = np.lexsort((key, users))
    else:
        order = np.lexsort((frame["row"].to_numpy(), frame["timestamp"].to_numpy(), users))
    sorted_users = users[order]
    counts = np.bincount(users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(order)) - starts[sorted_users]
    n = counts[sorted_users]
    from_end = n - 1 - position
    if split == "loo":
        n_valid = np.where(n >= 3, 1, 0)
        n_test = np.where(n >= 3, 1, 0)
    else:
        n_test = (
            np.where(n >= 3, np.maximum(1, np.round(n * ratio[2])), 0).astype(np.int64)
            if ratio[2] > 0
            else 0 * n
        )
        n_valid = (
            np.where(n >= 3, np.maximum(1, np.round(n * ratio[1])), 0).astype(np.int64)
            if ratio[1] > 0
            else 0 * n
        )
        too_many = n_test + n_valid >= n
        n_valid = np.where(too_many, np.minimum(n_valid, 1), n_valid)
        n_test = np.where(too_many & (n_test + n_valid >= n), np.minimum(n_test, 1), n_test)
    part_sorted = np.where(from_end < n_test, 2, np.where(from_end < n_test + n_valid, 1, 0)).astype(np.int8)
    part = np.empty(len(frame), dtype=np.int8)
    part[order] = part_sorted
    return part


def _kcore(inter: pd.DataFrame, min_user: int, min_item: int) -> pd.DataFrame:
    if min_user <= 1 and min_item <= 1:
        return inter
    while True:
        before = len(inter)
        for column, least in (("i_code", min_item), ("u_code", min_user)):
            if least > 1:
                codes = inter[column].to_numpy()
                inter = inter[np.bincount(codes)[codes] >= least]
        if len(inter) == before or len(inter) == 0:
            return inter


def _distinct(codes: pd.Series) -> int:
    return int(np.count_nonzero(np.bincount(codes.to_numpy()))) if len(codes) else 0


def _index_ids(codes: np.ndarray, uniques) -> tuple[np.ndarray, np.ndarray]:
    """(the ids still present, in natural order; code -> their index, -1 for ids filtered out)."""
    present = np.flatnonzero(np.bincount(codes, minlength=len(uniques)))
    ids = _natural_sorted(np.asarray(uniques)[present])
    index_of_code = np.full(len(uniques), -1, np.int32)
    index_of_code[pd.Index(np.asarray(uniques, dtype=object).astype(str)).get_indexer(ids)] = np.arange(
        len(ids), dtype=np.int32
    )
    return ids, index_of_code


def _natural_sorted(values: np.ndarray) -> np.ndarray:
    """Numeric ids in numeric order ("2" before "10"), others lexicographically."""
    values = np.asarray(values, dtype=object)
    as_str = pd.Series(values, dtype="string")
    if as_str.str.fullmatch(r"\d{1,18}").all():
        return values[np.argsort(as_str.astype("int64").to_numpy(), kind="stable")].astype(str)
    return np.sort(values.astype(str))


def _encode_features(
    base: pd.DataFrame, table: pd.DataFrame | None, id_col: str
) -> tuple[pd.DataFrame, dict]:
    """Categorical columns -> int codes (0 = unknown), numeric columns -> float32 (standardised unless 0/1)."""
    spec: dict[str, Any] = {"categorical": {}, "numeric": {}}
    if table is None or len(table) == 0:
        return base, spec
    table = table.drop_duplicates(subset=[id_col], keep="first").set_index(id_col)
    table.index = table.index.astype(str)
    aligned = table.reindex(base[id_col].to_numpy())
    out = base.copy()
    if "title" in aligned.columns:
        out["title"] = aligned["title"].fillna("").astype(str).to_numpy()
    for col in aligned.columns:
        if col == "title":
            continue
        values = aligned[col]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
            finite = arr[np.isfinite(arr)]
            binary = finite.size > 0 and np.isin(finite, (0.0, 1.0)).all()
            mean = 0.0 if binary or finite.size == 0 else float(finite.mean())
            std = 1.0 if binary or finite.size == 0 else float(finite.std() or 1.0)
            out[f"num__{col}"] = np.nan_to_num((arr - mean) / std, nan=0.0).astype(np.float32)
            spec["numeric"][col] = {"mean": mean, "std": std}
        else:
            strings = values.astype("string")
            vocab = sorted(strings.dropna().unique().tolist())
            codes = pd.Series(np.arange(1, len(vocab) + 1, dtype=np.int32), index=vocab)
            out[f"cat__{col}"] = codes.reindex(strings.fillna("\0").to_numpy()).fillna(0).to_numpy(np.int32)
            spec["categorical"][col] = vocab
    return out, spec


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
            "source_files": [
                {"path": str(f), "sha256": sha256_file(f), "bytes": f.stat().st_size} for f in files
            ],
            "config": OmegaConf.to_container(d, resolve=True),
            "environment": environment(),
            # Digests of the snapshot's own files (Snapshot.verify): a copy or a disk can be checked.
            "files": file_digests(folder),
        },
    )
