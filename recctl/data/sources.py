"""Readers that turn files on disk into :class:`RawData`: MovieLens 100K and generic CSV/TSV/Parquet tables.

Why this module is strict: everything downstream (filtering, splitting, training) trusts these frames, so a
bad file must fail here with one line that names the file, the physical line and the column, rather than
as a NaN loss an hour later. Reading is vectorised with pyarrow (a 1M-row CSV loads in well under a
second); line numbers are only worked out, by re-scanning the file, for the first bad row.
"""

from __future__ import annotations

import codecs
import csv
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recctl.artifacts import sha256_file
from recctl.data.raw import RawData
from recctl.errors import DataError

__all__ = [
    "ML100K_PAGE",
    "ML100K_SHA256",
    "ML100K_URL",
    "download_file",
    "load_movielens_100k",
    "load_table",
    "unescape_sep",
]

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
_PARQUET_SUFFIXES = (".parquet", ".pq")
_SEP_NAMES = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}
_SEP_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "0": "\0", "\\": "\\"}
_INT_RE = r"^-?[0-9]+$"


# --------------------------------------------------------------------------------------------- helpers


def unescape_sep(sep: str) -> str:
    """Turn a separator as typed on a command line (``'\\t'``, ``'\\x01'``, ``tab``) into the character.

    Hydra passes ``dataset.sep='\\t'`` through as backslash + t, so escapes are decoded here. Known
    escapes: ``\\t \\n \\r \\0 \\\\ \\xHH \\uHHHH``; a backslash before any other character keeps that
    character (``'\\|'`` -> ``|``). Names: tab, comma, semicolon, pipe, space.
    """
    text = str(sep)
    named = _SEP_NAMES.get(text.strip().lower())
    if named is not None:
        return named
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 == len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        width = {"x": 2, "u": 4}.get(nxt)
        if width is not None:
            digits = text[i + 2 : i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise DataError(f"dataset.sep={text!r}: \\{nxt} needs {width} hex digits")
            out.append(chr(int(digits, 16)))
            i += 2 + width
            continue
        out.append(_SEP_ESCAPES.get(nxt, nxt))
        i += 2
    return "".join(out)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Attribute access that tolerates plain objects, dataclasses and OmegaConf nodes missing a key."""
    if obj is None:
        return default
    try:
        value = getattr(obj, name)
    except Exception:  # omegaconf raises its own AttributeError/KeyError subclasses
        return default
    return default if value is None else value


def _one_line(exc: BaseException | str) -> str:
    text = exc if isinstance(exc, str) else (str(exc) or type(exc).__name__)
    return " ".join(text.split())


def _show_sep(sep: str) -> str:
    return repr(sep)


def _check_sep(sep: str, setting: str) -> str:
    """pyarrow and the csv module both need one single-byte delimiter that is not a quote or newline."""
    if len(sep) != 1 or ord(sep) > 127 or sep in '"\r\n':
        raise DataError(f"{setting}={sep!r} must be one ASCII character (write a tab as '\\t', or use 'tab')")
    return sep


def _codec(encoding: str, setting: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise DataError(
            f"{setting}={encoding!r} is not a known text encoding (try utf-8 or latin-1)"
        ) from None


def _require_file(value: Any, setting: str) -> Path:
    if not value:
        raise DataError(f"{setting} is not set")
    path = Path(str(value)).expanduser()
    if not path.exists():
        raise DataError(f"{path}: file not found ({setting})")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a file ({setting})")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    return path


def _first_true(mask: pa.ChunkedArray | pa.Array) -> int | None:
    """Index of the first True (nulls count as False), without a Python loop over rows."""
    mask = pc.fill_null(mask, False)
    if not pc.any(mask).as_py():
        return None
    return int(pc.index(mask, True).as_py())


def _to_str_series(arr: pa.ChunkedArray | pa.Array) -> pd.Series:
    """Arrow strings -> pandas' string dtype (what ``dtype=str`` gives in pandas >= 3)."""
    return pd.Series(arr.to_pandas(), dtype="str")


# ---------------------------------------------------------------------------------------- table readers


class _CsvReader:
    """One delimited text file: header/column discovery, a vectorised read, and exact error locations."""

    def __init__(
        self,
        path: Path,
        *,
        sep: str,
        header: bool,
        encoding: str,
        sep_setting: str = "dataset.sep",
        encoding_setting: str = "dataset.encoding",
        quoting: bool = True,
    ) -> None:
        self.path = path
        self.sep = _check_sep(sep, sep_setting)
        self.header = bool(header)
        self.codec = _codec(encoding, encoding_setting)
        self.sep_setting = sep_setting
        self.encoding_setting = encoding_setting
        self.quoting = quoting
        self.names = self._discover_names()

    # -- text-level helpers

    @property
    def _py_encoding(self) -> str:
        # Python's utf-8 codec keeps a BOM as U+FEFF; pyarrow drops it. Drop it here too.
        return "utf-8-sig" if self.codec == "utf-8" else self.codec

    @property
    def _arrow_encoding(self) -> str:
        return "utf8" if self.codec in ("utf-8", "utf-8-sig") else self.codec

    def _csv_reader(self, f: Any) -> Any:
        if self.quoting:
            return csv.reader(f, delimiter=self.sep, quotechar='"', doublequote=True, strict=False)
        return csv.reader(f, delimiter=self.sep, quoting=csv.QUOTE_NONE)

    def _discover_names(self) -> list[str]:
        """Read the first record: header names, or "0".."n-1" when there is no header."""
        first: list[str] | None = None
        try:
            with open(self.path, encoding=self._py_encoding, newline="") as f:
                for row in self._csv_reader(f):
                    if row:
                        first = row
                        break
        except UnicodeDecodeError:
            raise self._encoding_error() from None
        except csv.Error as exc:
            raise DataError(f"{self.path}, line 1: cannot parse the first line ({_one_line(exc)})") from None
        if first is None or (not any(field.strip() for field in first) and self._only_blank_lines()):
            raise DataError(f"{self.path}: file is empty (no lines with data)")
        if self.header:
            return list(first)
        return [str(i) for i in range(len(first))]

    def _only_blank_lines(self) -> bool:
        with open(self.path, encoding=self._py_encoding, errors="replace") as f:
            return not any(line.strip() for line in f)

    def record_line(self, record: int) -> int | None:
        """Physical 1-based line where the ``record``-th non-empty record (header included) starts.

        Quoted fields may span lines and blank lines are skipped by the parser, so a row index is not a
        line number; this re-scan (only on the error path) makes the reported line the real one.
        """
        try:
            with open(self.path, encoding=self._py_encoding, errors="replace", newline="") as f:
                reader = self._csv_reader(f)
                seen = 0
                previous_end = 0
                for row in reader:
                    start = previous_end + 1
                    previous_end = reader.line_num
                    if not row:
                        continue
                    seen += 1
                    if seen == record:
                        return start
        except (csv.Error, OSError):
            return None
        return None

    def where(self, row: int | None, column: str | None = None) -> str:
        """`path, line N, column 'c'` for a 0-based data row (None = the file as a whole)."""
        parts = [str(self.path)]
        if row is not None:
            record = row + 1 + (1 if self.header else 0)
            line = self.record_line(record)
            parts.append(f"line {line}" if line is not None else f"record {record}")
        if column is not None:
            parts.append(self.show(column))
        return ", ".join(parts)

    def show(self, column: str) -> str:
        return f"column {column!r}" if self.header else f"column {column} (0-based)"

    def output_name(self, column: str) -> str:
        return column if self.header else f"col{column}"

    def _encoding_error(self) -> DataError:
        found = _find_decode_error(self.path, self.codec)
        if found is None:
            return DataError(
                f"{self.path}: not valid {self.codec} text; set {self.encoding_setting} (e.g. latin-1)"
            )
        offset, line, bad, reason = found
        return DataError(
            f"{self.path}, line {line} (byte offset {offset}): not valid {self.codec} text "
            f"({reason}, byte(s) {bad.hex(' ')}); set {self.encoding_setting} to the file's encoding, "
            f"e.g. {self.encoding_setting}=latin-1"
        )

    # -- columns

    def resolve(self, ref: Any, setting: str) -> str:
        """Map a configured column (name, or 0-based position without a header) to the table's name."""
        if isinstance(ref, bool):
            raise DataError(f"{setting}={ref!r} is not a column name or position")
        if isinstance(ref, int) or not self.header:
            text = str(ref).strip()
            if not re.fullmatch(r"[0-9]+", text):
                raise DataError(
                    f"{setting}={ref!r}: {self.path} has no header ({self._header_setting()}=false), "
                    f"so columns are 0-based positions 0..{len(self.names) - 1}" + self._single_column_hint()
                )
            pos = int(text)
            if pos >= len(self.names):
                raise DataError(
                    f"{setting}={ref!r}: {self.path} has {len(self.names)} column(s) "
                    f"(positions 0..{len(self.names) - 1})" + self._single_column_hint()
                )
            return self.names[pos]
        name = str(ref)
        if self.names.count(name) == 1:
            return name
        if self.names.count(name) > 1:
            raise DataError(f"{setting}={name!r}: {self.path} has more than one column named {name!r}")
        stripped = [n for n in self.names if n.strip() == name.strip()]
        if len(stripped) == 1:
            return stripped[0]
        listing = ", ".join(repr(n) for n in self.names)
        raise DataError(
            f"{setting}={name!r} is not a column of {self.path}; its columns are: {listing}"
            + self._single_column_hint()
        )

    def _header_setting(self) -> str:
        return self.sep_setting.rsplit(".", 1)[0] + ".header"

    def _single_column_hint(self) -> str:
        if len(self.names) != 1 or not self.header:
            return ""
        text = self.names[0]
        for cand, label in (("\t", "\\t"), (",", ","), (";", ";"), ("|", "|")):
            if cand != self.sep and cand in text:
                return (
                    f" (the file parsed into a single column with {self.sep_setting}={_show_sep(self.sep)}; "
                    f"it looks {label!r}-separated: try {self.sep_setting}='{label}')"
                )
        return f" (the file parsed into a single column: is {self.sep_setting}={_show_sep(self.sep)} right?)"

    # -- reading

    def read(self, include: list[str], as_string: list[str]) -> pa.Table:
        """Parse the file with pyarrow; ``as_string`` columns are kept verbatim (ids keep leading zeros)."""
        bad_rows: list[Any] = []

        def on_bad_row(row: Any) -> str:
            bad_rows.append(row)
            return "error"

        read_options = pacsv.ReadOptions(
            use_threads=False,
            encoding=self._arrow_encoding,
            column_names=None if self.header else list(self.names),
        )
        parse_options = pacsv.ParseOptions(
            delimiter=self.sep,
            quote_char='"' if self.quoting else False,
            double_quote=True,
            newlines_in_values=self.quoting,
            ignore_empty_lines=True,
            invalid_row_handler=on_bad_row,
        )
        convert_options = pacsv.ConvertOptions(
            include_columns=list(dict.fromkeys(include)),
            column_types={name: pa.string() for name in as_string},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        try:
            table = pacsv.read_csv(
                self.path,
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
        except UnicodeDecodeError:
            raise self._encoding_error() from None
        except (pa.ArrowException, OSError, ValueError) as exc:
            if bad_rows:
                raise self._field_count_error(bad_rows[0]) from None
            text = _one_line(exc)
            if "UTF8" in text or "UTF-8" in text or "decode" in text.lower():
                raise self._encoding_error() from None
            if "Empty CSV file" in text:
                raise DataError(f"{self.path}: file is empty (no lines with data)") from None
            raise DataError(f"{self.path}: cannot be read as delimited text ({text})") from None
        for name in table.column_names:
            if pa.types.is_binary(table[name].type) or pa.types.is_large_binary(table[name].type):
                raise self._encoding_error()
        return table

    def _field_count_error(self, row: Any) -> DataError:
        record = getattr(row, "number", None)
        line = self.record_line(record) if record is not None else None
        where = f"{self.path}, line {line}" if line is not None else str(self.path)
        quoting = " and quoting" if self.quoting else ""
        return DataError(
            f"{where}: expected {row.expected_columns} fields, found {row.actual_columns} "
            f"(check {self.sep_setting}={_show_sep(self.sep)}{quoting})"
        )


class _ParquetReader:
    """A Parquet file; rows are reported 1-based since Parquet has no lines."""

    header = True

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file = pq.ParquetFile(path)
            self.names = list(self._file.schema_arrow.names)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DataError(f"{path}: not a valid Parquet file ({_one_line(exc)})") from None

    def resolve(self, ref: Any, setting: str) -> str:
        name = str(ref)
        if name in self.names:
            return name
        if isinstance(ref, int) and 0 <= ref < len(self.names):
            return self.names[ref]
        listing = ", ".join(repr(n) for n in self.names)
        raise DataError(f"{setting}={name!r} is not a column of {self.path}; its columns are: {listing}")

    def read(self, include: list[str], as_string: list[str]) -> pa.Table:
        try:
            return self._file.read(columns=list(dict.fromkeys(include)))
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DataError(f"{self.path}: not a valid Parquet file ({_one_line(exc)})") from None

    def where(self, row: int | None, column: str | None = None) -> str:
        parts = [str(self.path)]
        if row is not None:
            parts.append(f"row {row + 1}")
        if column is not None:
            parts.append(self.show(column))
        return ", ".join(parts)

    def show(self, column: str) -> str:
        return f"column {column!r}"

    def output_name(self, column: str) -> str:
        return column


_Reader = _CsvReader | _ParquetReader


def _find_decode_error(path: Path, codec: str) -> tuple[int, int, bytes, str] | None:
    """(byte offset, 1-based line, offending bytes, reason) of the first undecodable byte, streaming."""
    decoder = codecs.getincrementaldecoder(codec)("strict")
    consumed = 0
    newlines = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            final = not chunk
            try:
                decoder.decode(chunk, final=final)
            except UnicodeDecodeError as exc:
                carried = len(exc.object) - len(chunk)  # bytes buffered from the previous chunk
                offset = consumed - carried + exc.start
                before = bytes(exc.object[: exc.start])
                line = newlines - before[:carried].count(b"\n") + before.count(b"\n") + 1
                return offset, line, bytes(exc.object[exc.start : exc.end]), exc.reason
            if final:
                return None
            consumed += len(chunk)
            newlines += chunk.count(b"\n")


def _make_reader(path: Path, fmt: str, *, sep: str, header: bool, encoding: str, prefix: str) -> _Reader:
    fmt = (fmt or "auto").lower()
    if fmt == "auto":
        fmt = "parquet" if path.suffix.lower() in _PARQUET_SUFFIXES else "csv"
    if fmt == "parquet":
        return _ParquetReader(path)
    if fmt != "csv":
        raise DataError(f"{prefix}.format must be auto, csv or parquet. Received: {fmt!r}")
    return _CsvReader(
        path,
        sep=_check_sep(unescape_sep(sep), f"{prefix}.sep"),
        header=header,
        encoding=encoding,
        sep_setting=f"{prefix}.sep",
        encoding_setting="dataset.encoding",
    )


# ------------------------------------------------------------------------------------ column converters


def _ids(table: pa.Table, name: str, reader: _Reader) -> pd.Series:
    """Ids as trimmed strings; empty or missing ids are an error (they would merge unrelated rows)."""
    arr = table[name]
    typ = arr.type
    if pa.types.is_floating(typ):
        nan = _first_true(pc.is_nan(arr))
        if nan is not None:
            raise DataError(f"{reader.where(nan, name)}: empty id (NaN)")
        integral = pc.all(pc.fill_null(pc.equal(pc.floor(arr), arr), True)).as_py()
        if integral:
            arr = pc.cast(arr, pa.int64(), safe=False)
    if pa.types.is_dictionary(typ):
        arr = pc.cast(arr, typ.value_type)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        try:
            arr = pc.cast(arr, pa.string())
        except (pa.ArrowException, ValueError) as exc:
            raise DataError(
                f"{reader.where(None, name)}: ids cannot be read as text ({_one_line(exc)})"
            ) from None
    arr = pc.utf8_trim_whitespace(arr)
    empty = pc.or_kleene(pc.is_null(arr), pc.equal(arr, ""))
    bad = _first_true(empty)
    if bad is not None:
        raise DataError(f"{reader.where(bad, name)}: empty id")
    broken = _first_true(pc.match_substring_regex(arr, "[\r\n]"))
    if broken is not None:
        raise DataError(
            f"{reader.where(broken, name)}: id contains a line break (a quote that is never closed?)"
        )
    return _to_str_series(arr)


def _text_values(arr: pa.ChunkedArray) -> pd.Series:
    """Any arrow column as trimmed text (for parsing numbers/dates and for quoting a bad value)."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    return pd.Series(pc.utf8_trim_whitespace(arr).to_pandas(), dtype="str")


def _bad_value(reader: _Reader, row: int, column: str, text: Any, what: str) -> DataError:
    if text is None or pd.isna(text) or str(text).strip() == "":
        return DataError(f"{reader.where(row, column)}: empty or missing value, expected {what}")
    return DataError(f"{reader.where(row, column)}: {str(text)!r} is not {what}")


def _numbers(table: pa.Table, name: str, reader: _Reader, what: str = "a finite number") -> np.ndarray:
    """A finite float64 column; the first empty, non-numeric or infinite value is reported."""
    arr = table[name]
    typ = arr.type
    if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        text: pd.Series | None = None
    else:
        text = _text_values(arr)
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        row = int(bad[0])
        shown = text.iloc[row] if text is not None else (None if np.isnan(values[row]) else values[row])
        raise _bad_value(reader, row, name, shown, what)
    return values.astype("float64", copy=False)


def _timestamps(table: pa.Table, name: str, reader: _Reader) -> np.ndarray:
    """Epoch seconds (int64) from integers, ISO-8601 strings, dates or Arrow timestamps (naive = UTC)."""
    arr = table[name]
    typ = arr.type
    what = "a timestamp (epoch seconds or an ISO-8601 date/time)"
    if pa.types.is_integer(typ):
        bad = _first_true(pc.is_null(arr))
        if bad is not None:
            raise _bad_value(reader, bad, name, None, what)
        return pc.cast(arr, pa.int64()).to_numpy(zero_copy_only=False)
    if pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        return np.floor(_numbers(table, name, reader, what)).astype("int64")
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
        bad = _first_true(pc.is_null(arr))
        if bad is not None:
            raise _bad_value(reader, bad, name, None, what)
        if pa.types.is_date(typ):
            days = pc.cast(pc.cast(arr, pa.date32()), pa.int32()).to_numpy(zero_copy_only=False)
            return days.astype("int64") * 86400
        seconds = pc.cast(arr, pa.timestamp("s", tz=typ.tz), safe=False)
        return pc.cast(seconds, pa.int64()).to_numpy(zero_copy_only=False)
    text = _text_values(arr)
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    is_number = np.isfinite(numbers)
    seconds = np.zeros(len(text), dtype="int64")
    seconds[is_number] = np.floor(numbers[is_number]).astype("int64")
    if is_number.all():
        return seconds
    # Everything that is not epoch seconds must be an ISO-8601 date/time (a column may mix both).
    dates = text[~is_number]
    parsed = pd.to_datetime(dates, format="ISO8601", utc=True, errors="coerce")
    unparsed = np.zeros(len(text), dtype=bool)
    unparsed[~is_number] = parsed.isna().to_numpy()
    missing = np.flatnonzero(unparsed)
    if missing.size:
        row = int(missing[0])
        raise _bad_value(reader, row, name, text.iloc[row], what)
    epoch = pd.Timestamp(0, tz="UTC")
    seconds[~is_number] = ((parsed - epoch) // pd.Timedelta(seconds=1)).to_numpy(dtype="int64")
    return seconds


# ------------------------------------------------------------------------------------------ generic table


def load_table(cfg: Any) -> RawData:
    """dataset=csv: interactions from a CSV/TSV/Parquet file plus optional user/item feature tables."""
    path = _require_file(_get(cfg, "path"), "dataset.path")
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


def _text_cast(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(arr.type):
        arr = pc.cast(arr, arr.type.value_type)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    return pc.utf8_trim_whitespace(arr)


def _feature(table: pa.Table, name: str, reader: _Reader, prefix: str) -> pd.Series:
    """Numbers (and booleans as 0/1) stay numeric and must be complete; everything else is categorical."""
    arr = table[name]
    typ = arr.type
    if pa.types.is_boolean(typ):
        arr = pc.cast(arr, pa.int64())
        typ = arr.type
    if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        missing = pc.is_null(arr)
        if pa.types.is_floating(typ):
            missing = pc.or_kleene(missing, pc.is_nan(arr))
        bad = _first_true(missing)
        if bad is not None:
            raise DataError(
                f"{reader.where(bad, name)}: empty value in a numeric feature column "
                f"(fill it in, or leave the column out with {prefix}.columns)"
            )
        if pa.types.is_integer(typ):
            return pd.Series(pc.cast(arr, pa.int64()).to_numpy(zero_copy_only=False))
        return pd.Series(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False))
    if pa.types.is_null(typ):
        return pd.Series([""] * len(arr), dtype="str")
    try:
        text = _text_cast(arr)
    except (pa.ArrowException, ValueError) as exc:
        raise DataError(f"{reader.where(None, name)}: cannot be read as text ({_one_line(exc)})") from None
    return pd.Series(pc.fill_null(text, "").to_pandas(), dtype="str")


# ------------------------------------------------------------------------------------------ MovieLens 100K


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
    numeric_zip = zips.str.fullmatch(r"[0-9]+").fillna(False).to_numpy(dtype=bool)
    out = pd.DataFrame(
        {
            "user_id": _to_str_series(pc.cast(pa.array(ids), pa.string())),
            "age_group": pd.Series(
                np.asarray(_AGE_LABELS)[np.searchsorted(_AGE_EDGES, age, side="right")], dtype="str"
            ),
            "gender": pd.Series(pc.utf8_trim_whitespace(table["gender"]).to_pandas(), dtype="str"),
            "occupation": pd.Series(pc.utf8_trim_whitespace(table["occupation"]).to_pandas(), dtype="str"),
            "zip_prefix": pd.Series(
                np.where(numeric_zip, zips.str.slice(0, 1).to_numpy(dtype=object), "other"), dtype="str"
            ),
        }
    )
    return _no_duplicate_ids(out, "user_id", reader)


def _no_duplicate_ids(frame: pd.DataFrame, column: str, reader: _CsvReader) -> pd.DataFrame:
    dup = np.flatnonzero(frame[column].duplicated().to_numpy())
    if dup.size:
        row = int(dup[0])
        raise DataError(
            f"{_ml_where(reader, row, 'id')}: id {frame[column].iloc[row]!r} appears more than once"
        )
    return frame
