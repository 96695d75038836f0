"""The `movielens_100k` source: GroupLens' MovieLens 100K (u.data, u.item, u.user) from dataset.root,
downloaded and checked against pinned digests when the files are missing and dataset.download=true."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recctl.artifacts import sha256_file
from recctl.data.raw import RawData
from recctl.data.sources import Source
from recctl.data.sources.columns import _first_true, _to_str_series
from recctl.data.sources.readers import _CsvReader, _get, _one_line
from recctl.errors import ConfigError, DataError

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_PAGE = "https://grouplens.org/datasets/movielens/100k/"
# Pinned digests of the official GroupLens files; checked only after a download (local copies may be
# edited on purpose, e.g. to make a small test set).
ML100K_SHA256: dict[str, str] = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
}
DOWNLOAD_TIMEOUT_S = 20.0

_ML_REQUIRED = ("u.data", "u.item", "u.user")
_ML_OPTIONAL = ("u.genre", "u.info", "u.occupation")
_ML_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
_AGE_EDGES = (18, 25, 35, 45, 50, 56)
_AGE_LABELS = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
_INT_RE = r"^-?[0-9]+$"


def download_file(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Fetch ``url`` into ``dest``. Module-level so tests (and offline machines) can replace it."""
    request = urllib.request.Request(url, headers={"User-Agent": "recctl"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)


def _where_to_put(root: Path) -> str:
    if root.name == "ml-100k":
        return (
            f"download ml-100k.zip from {ML100K_PAGE} and unzip it into {root.parent} (it unpacks to {root})"
        )
    return f"download ml-100k.zip from {ML100K_PAGE} and copy the files of its ml-100k/ folder into {root}"


def _not_found(root: Path, missing: list[str], why: str) -> DataError:
    nested = root / "ml-100k"
    if all((nested / name).is_file() for name in _ML_REQUIRED):
        return DataError(
            f"MovieLens 100K not found in {root} (need {', '.join(_ML_REQUIRED)}) but it is in {nested}: "
            f"set dataset.root={nested}"
        )
    return DataError(
        f"MovieLens 100K not found in {root} (need {', '.join(_ML_REQUIRED)}; missing {', '.join(missing)}) "
        f"{why}: {_where_to_put(root)}, or set dataset.root=PATH"
    )


def _download_ml100k(root: Path, missing: list[str]) -> None:
    """Download, verify and install the files atomically: a failure never leaves a partial folder."""
    parent = root.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.download-", dir=parent))
    except OSError as exc:
        raise _not_found(root, missing, f"and it cannot be downloaded there ({_one_line(exc)})") from None
    try:
        archive = staging / "ml-100k.zip"
        try:
            download_file(ML100K_URL, archive, DOWNLOAD_TIMEOUT_S)
        except Exception as exc:  # offline, DNS, HTTP error, timeout, disk full: all mean "do it by hand"
            reason = f"{type(exc).__name__}: {_one_line(exc)}"
            raise _not_found(root, missing, f"and the download from {ML100K_URL} failed ({reason})") from None
        unpacked = staging / root.name
        unpacked.mkdir()
        try:
            with zipfile.ZipFile(archive) as zf:
                members = set(zf.namelist())
                for name in _ML_REQUIRED + _ML_OPTIONAL:
                    member = f"ml-100k/{name}"
                    if member not in members:
                        if name in _ML_REQUIRED:
                            raise _not_found(root, missing, f"and the downloaded zip has no {member}")
                        continue
                    with zf.open(member) as src, open(unpacked / name, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise _not_found(
                root, missing, f"and the downloaded file is not a valid zip ({_one_line(exc)})"
            ) from None
        for name in _ML_REQUIRED:
            got = sha256_file(unpacked / name)
            want = ML100K_SHA256[name]
            if got != want:
                raise DataError(
                    f"downloaded {name} from {ML100K_URL} has sha256 {got}, expected {want}: the download is "
                    f"corrupt or the file changed upstream; nothing was written to {root}. "
                    f"{_where_to_put(root)}, or set dataset.root=PATH"
                )
        try:
            _install(unpacked, root)
        except OSError as exc:
            raise _not_found(
                root, missing, f"and the download could not be moved there ({_one_line(exc)})"
            ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install(unpacked: Path, root: Path) -> None:
    """Rename the verified folder into place; into an existing folder, add only the files it lacks."""
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
    if not root.exists():
        try:
            os.rename(unpacked, root)
            return
        except OSError:
            if not root.is_dir():  # not a concurrent download that got there first
                raise
    for item in sorted(unpacked.iterdir()):
        target = root / item.name
        if not target.exists():
            os.replace(item, target)


def _ml_read(path: Path, names: list[str]) -> tuple[pa.Table, _CsvReader]:
    """One '|' or tab separated MovieLens file, every column as text (validated by the callers)."""
    sep = "\t" if path.name == "u.data" else "|"
    reader = _CsvReader(path, sep=sep, header=False, encoding="latin-1", quoting=False)
    reader.names = names
    table = reader.read(names, as_string=names)
    if table.num_rows == 0:
        raise DataError(f"{path}: no data rows")
    return table, reader


def _ml_ints(table: pa.Table, name: str, reader: _CsvReader) -> np.ndarray:
    arr = pc.utf8_trim_whitespace(table[name])
    bad = _first_true(pc.invert(pc.match_substring_regex(arr, _INT_RE)))
    if bad is not None:
        raise DataError(f"{_ml_where(reader, bad, name)}: expected an integer, found {arr[bad].as_py()!r}")
    try:
        return pc.cast(arr, pa.int64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowException, ValueError) as exc:
        raise DataError(f"{reader.path}, column {name}: {_one_line(exc)}") from None


def _ml_where(reader: _CsvReader, row: int, name: str) -> str:
    line = reader.record_line(row + 1)
    return f"{reader.path}, line {line if line is not None else row + 1}, column {name!r}"


def _ml_genres(root: Path) -> list[str]:
    """Genre names from u.genre ("name|index" lines), else the standard 19."""
    path = root / "u.genre"
    if not path.is_file():
        return list(_ML_GENRES)
    pairs: list[tuple[int, str]] = []
    with open(path, encoding="latin-1") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            name, _, index = line.rpartition("|")
            if not name or not re.fullmatch(r"[0-9]+", index):
                raise DataError(f"{path}, line {number}: expected 'name|index', found {line!r}")
            pairs.append((int(index), name))
    pairs.sort()
    if [i for i, _ in pairs] != list(range(len(pairs))) or not pairs:
        raise DataError(f"{path}: genre indexes must be 0..n-1, found {[i for i, _ in pairs]}")
    return [name for _, name in pairs]


def _safe_name(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_") or "x"


def load_movielens_100k(cfg: Any) -> RawData:
    """MovieLens 100K from ``cfg.root`` (u.data, u.item, u.user), downloading it when allowed and absent."""
    if not _get(cfg, "root"):
        raise DataError("dataset.root is not set: point it at the folder holding u.data, u.item and u.user")
    root = Path(str(_get(cfg, "root"))).expanduser()
    missing = [name for name in _ML_REQUIRED if not (root / name).is_file()]
    if missing:
        if not bool(_get(cfg, "download", False)):
            raise _not_found(root, missing, "and dataset.download=false")
        _download_ml100k(root, missing)

    ratings, reader = _ml_read(root / "u.data", ["user", "item", "rating", "timestamp"])
    interactions = pd.DataFrame(
        {
            "user_id": _to_str_series(pc.cast(pa.array(_ml_ints(ratings, "user", reader)), pa.string())),
            "item_id": _to_str_series(pc.cast(pa.array(_ml_ints(ratings, "item", reader)), pa.string())),
            "rating": _ml_ints(ratings, "rating", reader).astype("float64"),
            "timestamp": _ml_ints(ratings, "timestamp", reader),
        }
    )
    genres = _ml_genres(root)
    items = _ml_items(root / "u.item", genres)
    users = _ml_users(root / "u.user")
    files = [root / name for name in _ML_REQUIRED]
    if (root / "u.genre").is_file():
        files.append(root / "u.genre")
    return RawData(
        interactions=interactions,
        users=users,
        items=items,
        files=files,
        has_timestamps=True,
        has_ratings=True,
        stats={
            "source": "movielens_100k",
            "root": str(root),
            "rows": len(interactions),
            "users": len(users),
            "items": len(items),
        },
    )


def _ml_items(path: Path, genres: list[str]) -> pd.DataFrame:
    flags: list[str] = []
    for genre in genres:
        column = f"genre_{_safe_name(genre)}"
        while column in flags:  # two names that only differ in punctuation
            column += "_"
        flags.append(column)
    table, reader = _ml_read(path, ["item", "title", "release", "video", "url", *flags])
    ids = _ml_ints(table, "item", reader)
    release = pd.Series(pc.utf8_trim_whitespace(table["release"]).to_pandas(), dtype="str")
    year = pd.to_numeric(release.str.extract(r"(\d{4})\s*$")[0], errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan
    )
    known = ~np.isnan(year)
    decade = np.full(len(year), "unknown", dtype=object)
    decade[known] = np.char.add((year[known] // 10 * 10).astype("int64").astype(str), "s")
    out: dict[str, Any] = {
        "item_id": _to_str_series(pc.cast(pa.array(ids), pa.string())),
        "title": pd.Series(pc.utf8_trim_whitespace(table["title"]).to_pandas(), dtype="str"),
        "release_decade": pd.Series(decade, dtype="str"),
    }
    for column in flags:
        values = _ml_ints(table, column, reader)
        bad = np.flatnonzero((values != 0) & (values != 1))
        if bad.size:
            row = int(bad[0])
            raise DataError(f"{_ml_where(reader, row, column)}: expected 0 or 1, found {values[row]}")
        out[column] = values
    return _no_duplicate_ids(pd.DataFrame(out), "item_id", reader)


def _ml_users(path: Path) -> pd.DataFrame:
    table, reader = _ml_read(path, ["user", "age", "gender", "occupation", "zip"])
    ids = _ml_ints(table, "user", reader)
    age = _ml_ints(table, "age", reader)
    zips = pd.Series(pc.utf8_trim_whitespace(table["zip"]).to_pandas(), dtype="str")
    out = pd.DataFrame(
        {
            "user_id": _to_str_series(pc.cast(pa.array(ids), pa.string())),
            "age_group": pd.Series(_age_groups(age), dtype="str"),
            "gender": pd.Series(pc.utf8_trim_whitespace(table["gender"]).to_pandas(), dtype="str"),
            "occupation": pd.Series(pc.utf8_trim_whitespace(table["occupation"]).to_pandas(), dtype="str"),
            "zip_prefix": pd.Series(_zip_prefixes(zips), dtype="str"),
        }
    )
    return _no_duplicate_ids(out, "user_id", reader)


def _age_groups(age: np.ndarray) -> np.ndarray:
    return np.asarray(_AGE_LABELS)[np.searchsorted(_AGE_EDGES, age, side="right")]


def _zip_prefixes(zips: pd.Series) -> np.ndarray:
    """The first digit of a numeric zip code (a US region); "other" for the rest (Canadian codes)."""
    numeric = zips.str.fullmatch(r"[0-9]+").fillna(False).to_numpy(dtype=bool)
    return np.where(numeric, zips.str.slice(0, 1).to_numpy(dtype=object), "other")


def _no_duplicate_ids(frame: pd.DataFrame, column: str, reader: _CsvReader) -> pd.DataFrame:
    dup = np.flatnonzero(frame[column].duplicated().to_numpy())
    if dup.size:
        row = int(dup[0])
        raise DataError(
            f"{_ml_where(reader, row, 'id')}: id {frame[column].iloc[row]!r} appears more than once"
        )
    return frame


class MovieLensSource(Source):
    def user_features_from_raw(self, values: dict[str, str]) -> dict[str, str]:
        """u.user's own columns for a new user: `age` (years) -> `age_group`, `zip` -> `zip_prefix`."""
        values = dict(values)
        age = values.pop("age", None)
        if age:
            try:
                years = int(float(age))
            except ValueError:
                raise ConfigError(f"features.age is a number of years. Received: {age!r}") from None
            values.setdefault("age_group", str(_age_groups(np.array([years]))[0]))
        code = values.pop("zip", None)
        if code:
            values.setdefault("zip_prefix", str(_zip_prefixes(pd.Series([code], dtype="str"))[0]))
        return values

    def files(self, d: Any) -> list[Path]:
        root = Path(d.root or "data/raw/ml-100k")
        if not all((root / name).is_file() for name in _ML_REQUIRED):
            load_movielens_100k(d)  # downloads when allowed, else raises a DataError saying where to put them
        # u.genre (read when present) is not hashed: hashing it now would change every ml_100k fingerprint.
        return [root / name for name in _ML_REQUIRED]

    def load(self, d: Any, seed: int) -> RawData:
        return load_movielens_100k(d)


SOURCE = MovieLensSource()
