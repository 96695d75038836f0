"""Tests for recctl.data.sources: every bad input must fail with one line naming file, line and column."""

from __future__ import annotations

import hashlib
import io
import os
import time
import urllib.error
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omegaconf import DictConfig, OmegaConf

from recctl.config import DatasetConfig
from recctl.data.sources import movielens
from recctl.data.sources.movielens import load_movielens_100k
from recctl.data.sources.readers import unescape_sep
from recctl.data.sources.table import load_table
from recctl.errors import DataError

REPO_ROOT = Path(__file__).resolve().parents[1]
GENRES = movielens._ML_GENRES


def ml100k_dir() -> Path:
    """The real MovieLens 100K files: $RECCTL_DATASETS/ml-100k, else ../shared/datasets/ml-100k.

    Missing data skips the test locally but fails it in CI, where a silent skip would hide a broken setup.
    """
    base = Path(os.environ.get("RECCTL_DATASETS") or REPO_ROOT.parent / "shared" / "datasets")
    if not base.is_absolute():
        base = REPO_ROOT / base
    folder = base / "ml-100k"
    if not all((folder / name).is_file() for name in ("u.data", "u.item", "u.user")):
        reason = f"MovieLens 100K not found in {folder} (set RECCTL_DATASETS to a folder containing ml-100k/)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return folder


def table_cfg(path: Path, **overrides: Any) -> DictConfig:
    """A dataset=csv section built from the real schema, so attribute names stay in sync with config.py."""
    base = OmegaConf.structured(DatasetConfig)
    return OmegaConf.merge(base, {"name": "t", "source": "table", "path": str(path), **overrides})


def ml_cfg(root: Path, download: bool = False) -> DictConfig:
    base = OmegaConf.structured(DatasetConfig)
    return OmegaConf.merge(
        base, {"name": "ml", "source": "movielens_100k", "root": str(root), "download": download}
    )


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def load_error(cfg: DictConfig) -> str:
    with pytest.raises(DataError) as info:
        load_table(cfg)
    message = str(info.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------------- separators


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("\\t", "\t"),
        ("tab", "\t"),
        ("TAB", "\t"),
        ("\\x01", "\x01"),
        ("\\u0001", "\x01"),
        (",", ","),
        ("\\|", "|"),
    ],
)
def test_unescape_sep(given: str, expected: str) -> None:
    assert unescape_sep(given) == expected


def test_tab_separator_given_as_backslash_t(tmp_path: Path) -> None:
    path = write(tmp_path / "r.tsv", "user\titem\trating\nu1\ti1\t4\nu2\ti2\t3.5\n")
    raw = load_table(table_cfg(path, sep="\\t", columns={"user": "user", "item": "item", "rating": "rating"}))
    assert raw.interactions["user_id"].tolist() == ["u1", "u2"]
    assert raw.interactions["rating"].tolist() == [4.0, 3.5]
    assert raw.has_ratings and not raw.has_timestamps
    assert raw.interactions["timestamp"].tolist() == [-1, -1]
    assert raw.interactions["timestamp"].dtype == np.int64
    assert raw.files == [path]


def test_crlf_and_quoted_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", b'user,item,rating\r\nu1,"Item, with comma",4\r\n"u2",i2,5\r\n')
    raw = load_table(table_cfg(path, columns={"rating": "rating"}))
    assert raw.interactions["item_id"].tolist() == ["Item, with comma", "i2"]
    assert raw.interactions["user_id"].tolist() == ["u1", "u2"]
    assert raw.interactions["rating"].tolist() == [4.0, 5.0]


def test_no_header_positional_columns_keep_leading_zeros(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "007,0042,5,100\n 7 ,42,3,200\n")
    cfg = table_cfg(path, header=False, columns={"user": 0, "item": "1", "rating": 2, "timestamp": 3})
    frame = load_table(cfg).interactions
    assert frame["user_id"].tolist() == ["007", "7"]
    assert frame["item_id"].tolist() == ["0042", "42"]
    assert frame["timestamp"].tolist() == [100, 200]
    assert frame["user_id"].dtype == "str"
    assert frame["rating"].dtype == np.float64


def test_rows_stay_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item,ts\nb,x,3\na,y,1\nb,z,1\n")
    frame = load_table(table_cfg(path, columns={"timestamp": "ts"})).interactions
    assert frame["item_id"].tolist() == ["x", "y", "z"]
    assert list(frame.index) == [0, 1, 2]


# ------------------------------------------------------------------------------------------- bad input


def test_missing_column_lists_existing_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item,score\nu1,i1,4\n")
    message = load_error(table_cfg(path, columns={"rating": "rating"}))
    assert "dataset.columns.rating='rating'" in message
    assert "'user', 'item', 'score'" in message
    assert str(path) in message


def test_single_column_hints_at_separator(tmp_path: Path) -> None:
    path = write(tmp_path / "r.tsv", "user\titem\nu1\ti1\n")
    message = load_error(table_cfg(path))
    assert "single column" in message
    assert "dataset.sep='\\t'" in message


def test_non_numeric_rating_names_file_line_column(tmp_path: Path) -> None:
    # a blank line and a quoted field spanning two lines come first: the line must still be the real one
    text = 'user,item,rating,note\nu1,i1,4,\n\nu2,i2,5,"two\nlines"\nu3,i3,abc,\nu4,i4,1,\n'
    path = write(tmp_path / "ratings.csv", text)
    message = load_error(table_cfg(path, columns={"rating": "rating"}))
    assert message.startswith(f"{path}, line 6, column 'rating':")
    assert "'abc'" in message


def test_empty_rating_and_empty_id_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item,rating\nu1,i1,4\nu2,i2,\n")
    assert f"{path}, line 3, column 'rating': empty or missing value" in load_error(
        table_cfg(path, columns={"rating": "rating"})
    )
    path = write(tmp_path / "r2.csv", "user,item\nu1,i1\nu2,i2\n  ,i3\n")
    assert f"{path}, line 4, column 'user': empty id" in load_error(table_cfg(path))
    path = write(tmp_path / "r3.csv", 'user,item\nu1,"i1\nu2,i2\n')
    assert f"{path}, line 2, column 'item': id contains a line break" in load_error(table_cfg(path))


def test_wrong_field_count_reports_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item,rating\r\nu1,i1,4\r\n\r\nu2,i2,5,9\r\nu3,i3,1\r\n")
    message = load_error(table_cfg(path))
    assert message.startswith(f"{path}, line 4: expected 3 fields, found 4")
    path = write(tmp_path / "short.csv", "user,item,rating\nu1,i1,4\nu2,i2\n")
    assert f"{path}, line 3: expected 3 fields, found 2" in load_error(table_cfg(path))


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.csv", "")
    assert load_error(table_cfg(empty)) == f"{empty}: file is empty"
    header_only = write(tmp_path / "header.csv", "user,item\n")
    assert "no data rows" in load_error(table_cfg(header_only))
    missing = tmp_path / "nope.csv"
    assert load_error(table_cfg(missing)).startswith(f"{missing}: file not found")


def test_encoding_error_names_offset_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item\nu1,i1\nu2,caf\xe9\n".encode("latin-1"))
    message = load_error(table_cfg(path))
    assert message.startswith(f"{path}, line 3 (byte offset 22): not valid utf-8 text")
    assert "dataset.encoding" in message
    raw = load_table(table_cfg(path, encoding="latin-1"))
    assert raw.interactions["item_id"].tolist() == ["i1", "café"]


def test_non_numeric_timestamp(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "user,item,ts\nu1,i1,2020-01-01\nu2,i2,yesterday\n")
    message = load_error(table_cfg(path, columns={"timestamp": "ts"}))
    assert message.startswith(f"{path}, line 3, column 'ts': 'yesterday' is not a timestamp")


def test_iso_and_epoch_timestamps(tmp_path: Path) -> None:
    text = (
        "user,item,ts\n"
        "u1,i1,2020-01-01T00:00:00Z\n"
        "u1,i2,2020-01-01 01:00:00+01:00\n"
        "u1,i3,2020-01-02\n"
        "u1,i4,2020-01-01T00:00:30\n"
    )
    path = write(tmp_path / "r.csv", text)
    raw = load_table(table_cfg(path, columns={"timestamp": "ts"}))
    assert raw.interactions["timestamp"].tolist() == [1577836800, 1577836800, 1577923200, 1577836830]
    assert raw.has_timestamps and not raw.has_ratings
    assert raw.interactions["rating"].isna().all()
    path = write(tmp_path / "epoch.csv", "user,item,ts\nu1,i1,881250949\nu1,i2,2020-01-01\n")
    assert load_table(table_cfg(path, columns={"timestamp": "ts"})).interactions["timestamp"].tolist() == [
        881250949,
        1577836800,
    ]


# ------------------------------------------------------------------------------------------------ parquet


def test_parquet_round_trip(tmp_path: Path) -> None:
    table = pa.table(
        {
            "u": pa.array([1, 2, 3], pa.int64()),
            "i": ["007", "8", "009"],
            "r": pa.array([1.5, 2, 3], pa.float32()),
            "t": pa.array([0, 86400, 86401], pa.timestamp("s")),
        }
    )
    path = tmp_path / "r.parquet"
    pq.write_table(table, path)
    cfg = table_cfg(path, columns={"user": "u", "item": "i", "rating": "r", "timestamp": "t"})
    frame = load_table(cfg).interactions
    assert frame["user_id"].tolist() == ["1", "2", "3"]
    assert frame["item_id"].tolist() == ["007", "8", "009"]
    assert frame["rating"].tolist() == [1.5, 2.0, 3.0]
    assert frame["timestamp"].tolist() == [0, 86400, 86401]
    message = message_of(lambda: load_table(table_cfg(path)))
    assert "dataset.columns.user='user' is not a column" in message and "'u', 'i', 'r', 't'" in message


def test_truncated_parquet(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"user": ["a"] * 100, "item": ["b"] * 100}), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert load_error(table_cfg(path)).startswith(f"{path}: not a valid Parquet file (")


def message_of(call: Any) -> str:
    with pytest.raises(DataError) as info:
        call()
    return str(info.value)


# ------------------------------------------------------------------------------------------ side features


def test_side_feature_tables(tmp_path: Path) -> None:
    inter = write(tmp_path / "r.csv", "user\titem\nu1\t01\nu2\t02\n")
    write(tmp_path / "users.csv", "uid,age,country,score\nu1,31,fr,0.5\nu2,40,de,1.5\n")
    write(
        tmp_path / "items.tsv",
        "item\ttitle\tyear\tgenre\tflag\n01\tHeat\t1995\tcrime\ttrue\n02\t1984\t1984\tsf\tfalse\n",
    )
    cfg = table_cfg(
        inter,
        sep="\\t",
        user_features={"path": str(tmp_path / "users.csv"), "id_column": "uid", "sep": ","},
        item_features={"path": str(tmp_path / "items.tsv"), "id_column": "item"},
    )
    raw = load_table(cfg)
    users, items = raw.users, raw.items
    assert users is not None and items is not None
    assert list(users.columns) == ["user_id", "age", "country", "score"]
    assert users["user_id"].tolist() == ["u1", "u2"]
    assert users["age"].dtype == np.int64 and users["score"].dtype == np.float64
    assert users["country"].dtype == "str"
    assert list(items.columns) == ["item_id", "title", "year", "genre", "flag"]
    assert items["item_id"].tolist() == ["01", "02"]
    assert items["title"].tolist() == ["Heat", "1984"]
    assert items["flag"].tolist() == [1, 0]
    assert raw.files == [inter, tmp_path / "users.csv", tmp_path / "items.tsv"]

    cfg.user_features.columns = ["country"]
    assert list(load_table(cfg).users.columns) == ["user_id", "country"]
    cfg.user_features.id_column = "user"
    message = message_of(lambda: load_table(cfg))
    assert (
        "dataset.user_features.id_column='user'" in message and "'uid', 'age', 'country', 'score'" in message
    )


def test_side_feature_errors(tmp_path: Path) -> None:
    inter = write(tmp_path / "r.csv", "user,item\nu1,i1\n")
    users = write(tmp_path / "users.csv", "user,age\nu1,3\nu1,4\n")
    cfg = table_cfg(inter, user_features={"path": str(users), "id_column": "user"})
    assert f"{users}, line 3, column 'user': user id 'u1' appears more than once" in message_of(
        lambda: load_table(cfg)
    )
    write(users, "user,age\nu1,3\nu2,\n")
    assert f"{users}, line 3, column 'age': empty value in a numeric" in message_of(lambda: load_table(cfg))
    cfg.user_features.path = str(tmp_path / "none.csv")
    assert "file not found" in message_of(lambda: load_table(cfg))


# ------------------------------------------------------------------------------------------ MovieLens 100K


def fake_ml_files() -> dict[str, bytes]:
    """A tiny, well-formed MovieLens 100K in the original formats (u.item is latin-1)."""
    flags = ["0"] * 19
    flags_a = "|".join(["0", "1", *flags[2:]])
    flags_b = "|".join(["0", "0", "0", "0", "0", "0", "0", "0", "1", *flags[9:]])
    return {
        "u.data": b"1\t10\t5\t881250949\n2\t10\t3\t881250950\n1\t20\t4\t881250949\n",
        "u.item": (
            f"10|Heat (1995)|01-Jan-1995||http://x|{flags_a}\n"
            f"20|Misérables, Les (1995)|||http://y|{flags_b}\n"
        ).encode("latin-1"),
        "u.user": b"1|24|M|technician|85711\n2|17|F|other|T8H1N\n",
        "u.genre": "".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)).encode("latin-1") + b"\n",
    }


def write_ml(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_fake_movielens_features(tmp_path: Path) -> None:
    raw = load_movielens_100k(ml_cfg(write_ml(tmp_path / "ml-100k", fake_ml_files())))
    inter = raw.interactions
    assert inter["user_id"].tolist() == ["1", "2", "1"]
    assert inter["item_id"].tolist() == ["10", "10", "20"]
    assert inter["rating"].tolist() == [5.0, 3.0, 4.0]
    assert inter["timestamp"].tolist() == [881250949, 881250950, 881250949]
    assert raw.users is not None and raw.items is not None
    assert raw.users.to_dict("list") == {
        "user_id": ["1", "2"],
        "age_group": ["18-24", "<18"],
        "gender": ["M", "F"],
        "occupation": ["technician", "other"],
        "zip_prefix": ["8", "other"],
    }
    items = raw.items
    assert items["title"].tolist() == ["Heat (1995)", "Misérables, Les (1995)"]
    assert items["release_decade"].tolist() == ["1990s", "unknown"]
    assert items["genre_action"].tolist() == [1, 0]
    assert items["genre_drama"].tolist() == [0, 1]
    assert {"genre_children_s", "genre_film_noir", "genre_sci_fi"} <= set(items.columns)


def test_movielens_bad_content(tmp_path: Path) -> None:
    files = fake_ml_files()
    files["u.data"] = b"1\t10\t5\t881250949\n2\tx10\t3\t881250950\n"
    root = write_ml(tmp_path / "ml-100k", files)
    message = message_of(lambda: load_movielens_100k(ml_cfg(root)))
    assert message == f"{root / 'u.data'}, line 2, column 'item': expected an integer, found 'x10'"
    (root / "u.data").write_bytes(b"1\t10\t5\t881250949\n2\t10\t3\n")
    assert f"{root / 'u.data'}, line 2: expected 4 fields, found 3" in message_of(
        lambda: load_movielens_100k(ml_cfg(root))
    )


def fake_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"ml-100k/{name}", data)
    return buffer.getvalue()


def pin_fake_hashes(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]) -> None:
    for name in ("u.data", "u.item", "u.user"):
        monkeypatch.setitem(movielens.ML100K_SHA256, name, hashlib.sha256(files[name]).hexdigest())


def test_download_success_installs_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = fake_ml_files()
    pin_fake_hashes(monkeypatch, files)
    calls: list[str] = []

    def fake_download(url: str, dest: Path, timeout: float) -> None:
        calls.append(url)
        dest.write_bytes(fake_zip(files))

    monkeypatch.setattr(movielens, "download_file", fake_download)
    root = tmp_path / "raw" / "ml-100k"
    raw = load_movielens_100k(ml_cfg(root, download=True))
    assert calls == [movielens.ML100K_URL]
    assert len(raw.interactions) == 3
    assert sorted(p.name for p in root.iterdir()) == ["u.data", "u.genre", "u.item", "u.user"]
    assert [p.name for p in root.parent.iterdir()] == ["ml-100k"]  # no staging folder left behind
    load_movielens_100k(ml_cfg(root, download=True))  # present now: no second download
    assert len(calls) == 1


def test_download_failure_says_where_to_put_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, dest: Path, timeout: float) -> None:
        dest.write_bytes(b"partial")
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(movielens, "download_file", offline)
    root = tmp_path / "raw" / "ml-100k"
    message = message_of(lambda: load_movielens_100k(ml_cfg(root, download=True)))
    assert message.startswith(f"MovieLens 100K not found in {root} (need u.data, u.item, u.user")
    assert "the download from" in message and "name resolution" in message
    assert "https://grouplens.org/datasets/movielens/100k/" in message and "dataset.root=PATH" in message
    assert not root.exists() and list(root.parent.iterdir()) == []
    message = message_of(lambda: load_movielens_100k(ml_cfg(root, download=False)))
    assert "dataset.download=false" in message and "unzip it into" in message


def test_download_checksum_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = fake_ml_files()
    pin_fake_hashes(monkeypatch, files)
    monkeypatch.setitem(movielens.ML100K_SHA256, "u.user", "0" * 64)
    monkeypatch.setattr(
        movielens, "download_file", lambda url, dest, timeout: dest.write_bytes(fake_zip(files))
    )
    root = tmp_path / "ml-100k"
    message = message_of(lambda: load_movielens_100k(ml_cfg(root, download=True)))
    assert message.startswith("downloaded u.user from") and "expected " + "0" * 64 in message
    assert not root.exists() and list(tmp_path.iterdir()) == []


def test_real_movielens_100k() -> None:
    raw = load_movielens_100k(ml_cfg(ml100k_dir()))
    inter = raw.interactions
    assert len(inter) == 100_000
    assert inter["user_id"].nunique() == 943 and inter["item_id"].nunique() == 1682
    assert inter.iloc[0].tolist() == ["196", "242", 3.0, 881250949]
    assert inter["rating"].dtype == np.float64 and inter["timestamp"].dtype == np.int64
    assert raw.users is not None and raw.items is not None
    assert list(raw.users.columns) == ["user_id", "age_group", "gender", "occupation", "zip_prefix"]
    expected_genres = [f"genre_{movielens._safe_name(g)}" for g in GENRES]
    assert list(raw.items.columns) == ["item_id", "title", "release_decade", *expected_genres]
    assert len(raw.users) == 943 and len(raw.items) == 1682
    assert raw.items.loc[raw.items["item_id"] == "543", "title"].item() == "Misérables, Les (1995)"
    assert set(raw.users["zip_prefix"]) <= {*"0123456789", "other"}


@pytest.mark.slow
def test_one_million_rows_is_fast(tmp_path: Path) -> None:
    n = 1_000_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "user": np.char.zfill(rng.integers(0, 50_000, n).astype(str), 6),
            "item": rng.integers(0, 20_000, n).astype(str),
            "rating": rng.integers(1, 6, n),
            "ts": rng.integers(800_000_000, 900_000_000, n),
        }
    )
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    start = time.perf_counter()
    raw = load_table(table_cfg(path, columns={"rating": "rating", "timestamp": "ts"}))
    assert time.perf_counter() - start < 3.0
    assert len(raw.interactions) == n and raw.interactions["user_id"].str.len().eq(6).all()


# ------------------------------------------------------------------------------------- compressed files


def _compressed(path: Path, data: bytes) -> Path:
    import bz2
    import gzip
    import lzma

    openers = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
    if path.suffix in openers:
        with openers[path.suffix](path, "wb") as f:
            f.write(data)
    else:  # .zst through pyarrow's codec
        with pa.output_stream(path, compression="zstd") as f:
            f.write(data)
    return path


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zst"])
def test_compressed_files_read_like_the_plain_one(tmp_path: Path, suffix: str) -> None:
    text = "user,item,rating\n" + "".join(f"u{i % 9},i{i % 7},{1 + i % 5}\n" for i in range(200))
    plain = load_table(table_cfg(write(tmp_path / "r.csv", text), columns={"rating": "rating"}))
    packed = _compressed(tmp_path / f"r.csv{suffix}", text.encode())
    got = load_table(table_cfg(packed, columns={"rating": "rating"}))
    pd.testing.assert_frame_equal(got.interactions, plain.interactions)
    # errors name the line and column of the decompressed text
    bad = _compressed(tmp_path / f"bad.csv{suffix}", text.replace("u3,i3,4", "u3,i3,abc").encode())
    assert load_error(table_cfg(bad, columns={"rating": "rating"})).startswith(
        f"{bad}, line 5, column 'rating':"
    )


def test_a_truncated_archive_is_named_as_such(tmp_path: Path) -> None:
    whole = _compressed(tmp_path / "r.csv.gz", b"user,item\n" + b"u1,i1\n" * 5000)
    cut = write(tmp_path / "cut.csv.gz", whole.read_bytes()[:100])
    assert "cannot be decompressed as .gz" in load_error(table_cfg(cut))
