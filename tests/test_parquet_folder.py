"""dataset.path = a folder of Parquet files (issue #19 part 5): one pyarrow dataset, the same column
mapping and errors as one file, a fingerprint over every part, and a snapshot that does not depend on
how the rows were cut into parts (docs/scale.md)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recctl.data.prepare import ensure_snapshot, snapshot_fingerprint
from recctl.data.snapshot import Snapshot
from recctl.data.sources.readers import parquet_parts
from recctl.data.sources.table import load_table
from recctl.errors import DataError

TABLES = ("train", "valid", "test", "users", "items")
TIES = "hash"  # the default; under "row" the shuffled-parts test fails (checked by hand)
COLUMNS = {"user": "user", "item": "item", "rating": "rating", "timestamp": "ts"}


def rows(n_users: int = 120, per_user: int = 12, seed: int = 0) -> pa.Table:
    """Unique (user, item) pairs with many tied timestamps, so `ties: hash` has work to do."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(60, size=per_user, replace=False) for _ in range(n_users)])
    return pa.table(
        {
            "user": pa.array([f"u{u:04d}" for u in users]),
            "item": pa.array(items.astype(np.int64)),
            "rating": pa.array(rng.integers(1, 6, size=len(users)).astype(np.float64)),
            "ts": pa.array(1_700_000_000 + (np.tile(np.arange(per_user), n_users) // 3) * 60),
            "extra": pa.array(np.zeros(len(users))),  # never mapped: never read
        }
    )


def write_folder(table: pa.Table, folder: Path, assignment: np.ndarray) -> Path:
    """Rows into Hive partitions `bucket=K/part-K.parquet`, each keeping the rows' relative order."""
    for k in np.unique(assignment):
        sub = folder / f"bucket={int(k)}"
        sub.mkdir(parents=True)
        pq.write_table(table.filter(pa.array(assignment == k)), sub / f"part-{int(k):03d}.parquet")
    (folder / "_SUCCESS").write_bytes(b"")  # what Spark leaves: skipped
    return folder


def spec(path: Path, **extra) -> dict:
    return {"name": "t", "source": "table", "path": str(path), "columns": dict(COLUMNS), **extra}


def split_rows(snap: Snapshot, name: str) -> pd.DataFrame:
    """A split with original ids, in a canonical order, without the file-row column."""
    table = snap.split(name)
    users, items = snap.user_ids, snap.item_ids
    out = pd.DataFrame(
        {
            "user_id": users[table["user"].to_numpy()],
            "item_id": items[table["item"].to_numpy()],
            "timestamp": table["timestamp"].to_numpy(),
            "rating": table["rating"].to_numpy(),
        }
    )
    return out.sort_values(["user_id", "item_id"]).reset_index(drop=True)


def table_digests(snap: Snapshot) -> dict:
    files = json.loads((snap.path / "manifest.json").read_text())["files"]
    return {name: files[f"{name}.parquet"]["sha256"] for name in TABLES}


def test_folder_reads_like_the_same_rows_in_one_file(tmp_path: Path) -> None:
    table = rows()
    assignment = np.arange(table.num_rows) % 5
    folder = write_folder(table, tmp_path / "parts", assignment)
    # The one-file twin: the same rows in the order the folder is read (sorted relative paths).
    one = tmp_path / "one.parquet"
    order = np.concatenate([np.flatnonzero(assignment == k) for k in range(5)])
    pq.write_table(table.take(pa.array(order)), one)

    from_folder, _ = ensure_snapshot(spec(folder), tmp_path / "data", seed=1)
    from_file, _ = ensure_snapshot(spec(one), tmp_path / "data", seed=1)
    assert from_folder.path != from_file.path  # the raw-file part of the fingerprint differs
    # Everything else is the same to the byte: splits (file rows included), id maps.
    assert table_digests(from_folder) == table_digests(from_file)
    manifest = json.loads((from_folder.path / "manifest.json").read_text())
    (entry,) = manifest["source_files"]
    assert entry["parts"] == 5 and entry["path"] == str(folder)

    raw = load_table(_cfg(spec(folder)))
    assert len(raw.interactions) == table.num_rows  # _SUCCESS skipped, extra column unread
    assert raw.interactions["user_id"].tolist() == table.take(pa.array(order))["user"].to_pylist()


def test_shuffled_parts_give_the_same_split(tmp_path: Path) -> None:
    table = rows(seed=2)
    rng = np.random.default_rng(7)
    snaps = []
    for trial, n_parts in enumerate((3, 8)):
        perm = rng.permutation(table.num_rows)  # rows in another order, cut another way
        folder = write_folder(
            table.take(pa.array(perm)), tmp_path / f"f{trial}", rng.integers(0, n_parts, len(perm))
        )
        snaps.append(ensure_snapshot(spec(folder, ties=TIES), tmp_path / "data", seed=1)[0])
    for name in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(split_rows(snaps[0], name), split_rows(snaps[1], name))
    assert table_digests(snaps[0])["users"] == table_digests(snaps[1])["users"]


def test_fingerprint_covers_every_part(tmp_path: Path) -> None:
    folder = write_folder(rows(), tmp_path / "parts", np.arange(rows().num_rows) % 4)
    before = snapshot_fingerprint(spec(folder), 1)[1]
    moved = shutil.copytree(folder, tmp_path / "elsewhere")
    assert snapshot_fingerprint(spec(moved), 1)[1] == before  # where the folder is does not count
    extra = folder / "bucket=9"
    extra.mkdir()
    pq.write_table(rows(n_users=2, seed=5), extra / "late.parquet")
    added = snapshot_fingerprint(spec(folder), 1)[1]
    assert added != before
    (extra / "late.parquet").rename(extra / "renamed.parquet")
    assert snapshot_fingerprint(spec(folder), 1)[1] != added
    (folder / "_tmp.parquet").write_bytes(b"not read")  # `_`-prefixed: not a part
    assert [p.name for p in parquet_parts(folder)][-1] == "renamed.parquet"


def _cfg(d: dict):
    from omegaconf import OmegaConf

    from recctl.config import DatasetConfig

    return OmegaConf.merge(OmegaConf.structured(DatasetConfig), d)


def _error(d: dict) -> str:
    with pytest.raises(DataError) as info:
        load_table(_cfg(d))
    assert "\n" not in str(info.value)
    return str(info.value)


def test_bad_folders_name_the_file_and_column(tmp_path: Path) -> None:
    good = rows(n_users=4)
    mixed = write_folder(good, tmp_path / "mixed", np.arange(good.num_rows) % 2)
    other = good.set_column(1, "item", pa.array([str(v) for v in good["item"].to_pylist()]))
    pq.write_table(other, mixed / "bucket=1" / "part-zzz.parquet")
    message = _error(spec(mixed))
    assert "part-zzz.parquet, column 'item': string here but int64 in" in message

    lacking = write_folder(good, tmp_path / "lacking", np.arange(good.num_rows) % 2)
    pq.write_table(good.drop_columns(["ts"]), lacking / "bucket=1" / "part-zzz.parquet")
    message = _error(spec(lacking))
    assert message.startswith("dataset.columns.timestamp='ts' is not a column of ") and "part-zzz" in message

    broken = write_folder(good, tmp_path / "broken", np.zeros(good.num_rows))
    (broken / "bucket=0" / "bad.parquet").write_bytes(b"PAR1 not really")
    assert "bad.parquet: not a valid Parquet file" in _error(spec(broken))

    empty_ids = good.set_column(0, "user", pa.array([""] * good.num_rows))
    holes = write_folder(good, tmp_path / "holes", np.zeros(good.num_rows))
    pq.write_table(empty_ids, holes / "bucket=0" / "part-zzz.parquet")
    assert _error(spec(holes)) == f"{holes / 'bucket=0' / 'part-zzz.parquet'}, row 1, column 'user': empty id"

    csv = _error(spec(mixed, format="csv"))
    assert "is a folder; a folder is read as Parquet files only" in csv


def _prepare(monkeypatch: pytest.MonkeyPatch, cwd: Path, *args: str) -> tuple[int, str]:
    """`recctl prepare ...` through the CLI's own entry point, in this process (as test_bad_inputs)."""
    from recctl.runner import run_command

    monkeypatch.chdir(cwd)
    for key, value in (("HYDRA_FULL_ERROR", "1"), ("RECCTL_JSON_MODE", "0"), ("TF_CPP_MIN_LOG_LEVEL", "2")):
        monkeypatch.setenv(key, os.environ.get(key, value))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_command("prepare", ["dataset=csv", *args, "paths.data_dir=data"])
    return code, err.getvalue() + out.getvalue()


def test_cli_refuses_an_empty_folder_and_a_missing_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    (empty / "bucket=0").mkdir(parents=True)
    (empty / "_SUCCESS").write_bytes(b"")
    code, text = _prepare(monkeypatch, tmp_path, f"dataset.path={empty}")
    assert code == 2
    lines = [line for line in text.splitlines() if "no Parquet files" in line]
    assert lines and str(empty) in lines[0]

    folder = write_folder(rows(n_users=30), tmp_path / "parts", np.arange(360) % 3)
    code, text = _prepare(monkeypatch, tmp_path, f"dataset.path={folder}", "dataset.columns.item=movie")
    assert code == 2
    assert "dataset.columns.item='movie' is not a column of the Parquet folder" in text
    assert not list((tmp_path / "data").glob("processed/*/*"))  # nothing half-written

    code, text = _prepare(monkeypatch, tmp_path, f"dataset.path={folder}", "dataset.columns.timestamp=ts")
    assert code == 0, text
    (snap,) = (tmp_path / "data" / "processed" / "csv").iterdir()
    assert Snapshot(snap).n_users == 30
