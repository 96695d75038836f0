"""The `table` source (dataset=csv): interactions from one CSV/TSV/Parquet file, or a folder of
Parquet files (Hive-partitioned or not: docs/scale.md), with a column mapping, plus optional user and
item feature files keyed by id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from recctl.data.raw import RawData
from recctl.data.sources import Source, require
from recctl.data.sources.columns import _feature, _ids, _numbers, _text_cast, _timestamps
from recctl.data.sources.readers import _get, _make_reader, _require_file
from recctl.errors import ConfigError, DataError


def load_table(cfg: Any) -> RawData:
    """dataset=csv: interactions from a CSV/TSV/Parquet file (or a folder of Parquet files) plus
    optional user/item feature tables."""
    path = _require_file(_get(cfg, "path"), "dataset.path", folder_ok=True)
    sep = str(_get(cfg, "sep", ","))
    encoding = str(_get(cfg, "encoding", "utf-8"))
    header = bool(_get(cfg, "header", True))
    reader = _make_reader(
        path, str(_get(cfg, "format", "auto")), sep=sep, header=header, encoding=encoding, prefix="dataset"
    )
    columns = _get(cfg, "columns")
    refs = {role: _get(columns, role) for role in ("user", "item", "rating", "timestamp")}
    for role in ("user", "item"):
        if refs[role] is None or str(refs[role]).strip() == "":
            raise DataError(f"dataset.columns.{role} is required (the {role} id column)")
    resolved = {
        role: reader.resolve(ref, f"dataset.columns.{role}") for role, ref in refs.items() if ref is not None
    }
    table = reader.read(list(resolved.values()), as_string=[resolved["user"], resolved["item"]])
    if table.num_rows == 0:
        raise DataError(f"{path}: no data rows" + (" (only a header line)" if reader.header else ""))

    n = table.num_rows
    has_ratings = "rating" in resolved
    has_timestamps = "timestamp" in resolved
    interactions = pd.DataFrame(
        {
            "user_id": _ids(table, resolved["user"], reader),
            "item_id": _ids(table, resolved["item"], reader),
            "rating": _numbers(table, resolved["rating"], reader) if has_ratings else np.full(n, np.nan),
            "timestamp": (
                _timestamps(table, resolved["timestamp"], reader)
                if has_timestamps
                else np.full(n, -1, dtype="int64")
            ),
        }
    )
    files = [path]
    users = _load_features(_get(cfg, "user_features"), "user", sep, encoding, files)
    items = _load_features(_get(cfg, "item_features"), "item", sep, encoding, files)
    return RawData(
        interactions=interactions,
        users=users,
        items=items,
        files=files,
        has_timestamps=has_timestamps,
        has_ratings=has_ratings,
        stats={"source": "table", "path": str(path), "rows": n},
        locate=reader.where,
    )


def _load_features(
    spec: Any, kind: str, default_sep: str, encoding: str, files: list[Path]
) -> pd.DataFrame | None:
    """A side-feature table keyed by ``<kind>_id``: text columns become categorical strings."""
    prefix = f"dataset.{kind}_features"
    if not _get(spec, "path"):
        return None
    path = _require_file(_get(spec, "path"), f"{prefix}.path")
    sep = str(_get(spec, "sep", default_sep))
    reader = _make_reader(
        path, "auto", sep=sep, header=bool(_get(spec, "header", True)), encoding=encoding, prefix=prefix
    )
    id_ref = _get(spec, "id_column")
    id_name = reader.resolve(id_ref, f"{prefix}.id_column") if id_ref is not None else reader.names[0]
    wanted = _get(spec, "columns")
    if wanted is None:
        features = [name for name in reader.names if name != id_name]
    else:
        features = [reader.resolve(ref, f"{prefix}.columns") for ref in list(wanted)]
        features = [name for name in dict.fromkeys(features) if name != id_name]
    title = "title" if kind == "item" and "title" in reader.names and id_name != "title" else None
    features = [name for name in features if name != title]
    extra = [title] if title else []
    table = reader.read([id_name, *features, *extra], as_string=[id_name, *extra])
    if table.num_rows == 0:
        raise DataError(f"{path}: no data rows")

    id_column = f"{kind}_id"
    ids = _ids(table, id_name, reader)
    dup = np.flatnonzero(ids.duplicated().to_numpy())
    if dup.size:
        row = int(dup[0])
        raise DataError(f"{reader.where(row, id_name)}: {kind} id {ids.iloc[row]!r} appears more than once")
    out: dict[str, Any] = {id_column: ids}
    if title:
        out["title"] = pd.Series(pc.fill_null(_text_cast(table[title]), "").to_pandas(), dtype="str")
    for name in features:
        label = reader.output_name(name)
        if label in out:
            raise DataError(
                f"{reader.where(None, name)}: feature column {label!r} clashes with {label!r} "
                f"(rename it, or choose columns with {prefix}.columns)"
            )
        out[label] = _feature(table, name, reader, prefix)
    files.append(path)
    return pd.DataFrame(out)


def _existing_file(value: str, setting: str, folder_ok: bool = False) -> Path:
    """The raw file to hash; a folder (of Parquet files) where `folder_ok`: prepare hashes its files."""
    path = Path(value)
    if path.is_dir():
        if folder_ok:
            return path
        raise DataError(f"{value}: is a folder, not a file ({setting})")
    if not path.is_file():
        raise DataError(f"{value}: file not found ({setting})")
    return path


class TableSource(Source):
    def check(self, d: Any) -> None:
        require(bool(d.path), "dataset.path is required for dataset=csv (the interactions file)")
        require(bool(d.columns.user), "dataset.columns.user is required (the user id column)")
        require(bool(d.columns.item), "dataset.columns.item is required (the item id column)")
        require(len(d.sep) >= 1, "dataset.sep must not be empty")

    def in_time_order(self, d: Any) -> bool:
        return d.columns.timestamp is not None or bool(d.row_order_is_time)

    def check_before_read(self, d: Any) -> None:
        """Settings that need a column the table does not map are refused before the file is read."""
        if d.columns.rating:
            return
        for key in ("rating_threshold", "label_threshold"):
            if d.get(key) is not None:
                raise ConfigError(
                    f"dataset.{key}={d.get(key)} needs ratings, but dataset.columns.rating is null: map the "
                    f"rating column (dataset.columns.rating=NAME) or leave dataset.{key} null"
                )

    def files(self, d: Any) -> list[Path]:
        files = [_existing_file(d.path, "dataset.path", folder_ok=True)]
        for kind, table in (("user", d.user_features), ("item", d.item_features)):
            if table.path:
                files.append(_existing_file(table.path, f"dataset.{kind}_features.path"))
        return files

    def load(self, d: Any, seed: int) -> RawData:
        return load_table(d)


SOURCE = TableSource()
