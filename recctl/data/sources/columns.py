"""Column converters: an Arrow column read from a source file -> ids, numbers, timestamps or features.

Each converter reports the first bad value by file, line and column (through the reader that read
it), because a silently coerced id or NaN rating would only surface much later as a wrong model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recctl.data.sources.readers import _one_line, _Reader
from recctl.errors import DataError


def _first_true(mask: pa.ChunkedArray | pa.Array) -> int | None:
    """Index of the first True (nulls count as False), without a Python loop over rows."""
    mask = pc.fill_null(mask, False)
    if not pc.any(mask).as_py():
        return None
    return int(pc.index(mask, True).as_py())


def _to_str_series(arr: pa.ChunkedArray | pa.Array) -> pd.Series:
    """Arrow strings -> pandas' string dtype (what ``dtype=str`` gives in pandas >= 3)."""
    return pd.Series(arr.to_pandas(), dtype="str")


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
