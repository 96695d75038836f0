"""Readers for delimited text (CSV/TSV, any single-byte separator), Parquet files and folders of them.

Why they are strict: everything downstream trusts the frames read here, so a bad file fails with one
line naming the file, the physical line and the column, not as a NaN loss an hour later. Reading is
vectorised with pyarrow (a 1M-row CSV loads in well under a second); line numbers are only worked
out, by re-scanning the file, for the first bad row. A compressed file (`.gz`, `.bz2`, `.xz`, `.zst`)
is read through its decompressor, so lines and columns in messages are those of the decompressed
text. A folder of Parquet files (Hive-partitioned or not, e.g. what Spark writes) is read as one
pyarrow dataset, its files in sorted relative-path order (`parquet_parts`).
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import lzma
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recctl.errors import DataError

_PARQUET_SUFFIXES = (".parquet", ".pq")
_SEP_NAMES = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}
_SEP_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "0": "\0", "\\": "\\"}


_DECOMPRESSORS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def open_binary(path: Path):
    """The file's bytes, decompressed when its suffix names a compression pandas reads."""
    suffix = path.suffix.lower()
    if suffix in _DECOMPRESSORS:
        return _DECOMPRESSORS[suffix](path, "rb")
    if suffix == ".zip":
        raise DataError(f"{path}: a zip archive is not read directly; unzip it, or gzip the file inside")
    if suffix in (".zst", ".zstd"):
        if not pa.Codec.is_available("zstd"):
            raise DataError(f"{path}: this pyarrow was built without zstd; decompress the file first")
        return io.BufferedReader(pa.input_stream(path, compression="zstd"))
    return open(path, "rb")


def _open_text(path: Path, encoding: str, errors: str = "strict"):
    return io.TextIOWrapper(open_binary(path), encoding=encoding, errors=errors, newline="")


def _compression_error(path: Path, exc: BaseException) -> DataError:
    return DataError(f"{path}: cannot be decompressed as {path.suffix} ({_one_line(exc)})")


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


def _require_file(value: Any, setting: str, folder_ok: bool = False) -> Path:
    if not value:
        raise DataError(f"{setting} is not set")
    path = Path(str(value)).expanduser()
    if not path.exists():
        raise DataError(f"{path}: file not found ({setting})")
    if path.is_dir():
        if folder_ok:
            return path
        raise DataError(f"{path}: is a folder, not a file ({setting})")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    return path


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
            with _open_text(self.path, self._py_encoding) as f:
                for row in self._csv_reader(f):
                    if row:
                        first = row
                        break
        except UnicodeDecodeError:
            raise self._encoding_error() from None
        except csv.Error as exc:
            raise DataError(f"{self.path}, line 1: cannot parse the first line ({_one_line(exc)})") from None
        except (OSError, EOFError, lzma.LZMAError, pa.ArrowException) as exc:
            raise _compression_error(self.path, exc) from None
        if first is None or (not any(field.strip() for field in first) and self._only_blank_lines()):
            raise DataError(f"{self.path}: file is empty (no lines with data)")
        if self.header:
            return list(first)
        return [str(i) for i in range(len(first))]

    def _only_blank_lines(self) -> bool:
        with _open_text(self.path, self._py_encoding, errors="replace") as f:
            return not any(line.strip() for line in f)

    def record_line(self, record: int) -> int | None:
        """Physical 1-based line where the ``record``-th non-empty record (header included) starts.

        Quoted fields may span lines and blank lines are skipped by the parser, so a row index is not a
        line number; this re-scan (only on the error path) makes the reported line the real one.
        """
        try:
            with _open_text(self.path, self._py_encoding, errors="replace") as f:
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
        except (csv.Error, OSError, EOFError, lzma.LZMAError):
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
            with open_binary(self.path) as stream:
                table = pacsv.read_csv(
                    stream,
                    read_options=read_options,
                    parse_options=parse_options,
                    convert_options=convert_options,
                )
        except UnicodeDecodeError:
            raise self._encoding_error() from None
        except (EOFError, lzma.LZMAError, gzip.BadGzipFile) as exc:
            raise _compression_error(self.path, exc) from None
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


class _NamedColumns:
    """Parquet columns are named: errors and outputs use the name itself."""

    def show(self, column: str) -> str:
        return f"column {column!r}"

    def output_name(self, column: str) -> str:
        return column


class _ParquetReader(_NamedColumns):
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


def parquet_parts(folder: Path) -> list[Path]:
    """The Parquet files under `folder` (any depth), sorted by relative POSIX path: the order rows are
    read in and the fingerprint hashes them in, whatever order the file system lists them. Names and
    folders starting with `.` or `_` (Spark's `_SUCCESS`, `_temporary/`, `.crc` files) are skipped,
    as pyarrow's dataset discovery skips them."""
    folder = Path(folder)
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith((".", "_")) for part in rel.parts):
            continue
        if path.suffix.lower() in _PARQUET_SUFFIXES and path.is_file():
            found.append((rel.as_posix(), path))
    return [path for _, path in sorted(found)]


class _ParquetFolderReader(_NamedColumns):
    """A folder of Parquet files read as one pyarrow dataset (Hive partitions `key=value/` become
    columns). Every file must hold each mapped column with one type; rows are reported by file."""

    header = True

    def __init__(self, folder: Path, setting: str = "dataset.path") -> None:
        self.path = folder
        self.parts = parquet_parts(folder)
        if not self.parts:
            raise DataError(
                f"{folder}: no Parquet files (*.parquet, *.pq) in this folder or its subfolders ({setting})"
            )
        self._schemas: list[pa.Schema] = []
        rows = []
        for part in self.parts:
            try:
                meta = pq.read_metadata(part)
                self._schemas.append(meta.schema.to_arrow_schema())
                rows.append(meta.num_rows)
            except (pa.ArrowException, OSError, ValueError) as exc:
                raise DataError(f"{part}: not a valid Parquet file ({_one_line(exc)})") from None
        self._ends = np.cumsum(rows)
        import pyarrow.dataset as ds

        try:
            # One dataset over the sorted file list: its schema is the first file's, then the Hive
            # partition keys (`key=value/` folders) as columns; fragments are read in list order.
            self._dataset = ds.dataset(
                [str(p) for p in self.parts],
                format="parquet",
                partitioning="hive",
                partition_base_dir=str(folder),
            )
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DataError(f"{folder}: cannot be read as a Parquet dataset ({_one_line(exc)})") from None
        self.names = list(self._dataset.schema.names)
        file_names = set(self._schemas[0].names)
        self.partition_keys = [name for name in self.names if name not in file_names]

    def resolve(self, ref: Any, setting: str) -> str:
        name = str(ref)
        if name not in self.names:
            if isinstance(ref, int) and 0 <= ref < len(self.names):
                name = self.names[ref]
            else:
                listing = ", ".join(repr(n) for n in self.names)
                raise DataError(
                    f"{setting}={name!r} is not a column of the Parquet folder {self.path}; "
                    f"its columns are: {listing}"
                )
        if name in self.partition_keys:
            return name
        first = self._schemas[0].field(name).type
        for part, schema in zip(self.parts, self._schemas, strict=True):
            if name not in schema.names:
                listing = ", ".join(repr(n) for n in schema.names)
                raise DataError(
                    f"{setting}={name!r} is not a column of {part} (every file of the Parquet folder "
                    f"{self.path} needs it); its columns are: {listing}"
                )
            typ = schema.field(name).type
            if typ != first:
                raise DataError(
                    f"{part}, column {name!r}: {typ} here but {first} in {self.parts[0]} (the files of a "
                    f"Parquet folder need one schema: rewrite them with one type for {name!r})"
                )
        return name

    def read(self, include: list[str], as_string: list[str]) -> pa.Table:
        try:
            return self._dataset.to_table(columns=list(dict.fromkeys(include)))
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DataError(f"{self.path}: cannot be read as a Parquet dataset ({_one_line(exc)})") from None

    def where(self, row: int | None, column: str | None = None) -> str:
        """`<file>, row N, column 'c'`: the file of the folder the 0-based dataset row is in."""
        if row is None:
            parts = [str(self.path)]
        else:
            index = int(np.searchsorted(self._ends, row, side="right"))
            start = int(self._ends[index - 1]) if index else 0
            parts = [str(self.parts[index]), f"row {row - start + 1}"]
        if column is not None:
            parts.append(self.show(column))
        return ", ".join(parts)


_Reader = _CsvReader | _ParquetReader | _ParquetFolderReader


def _find_decode_error(path: Path, codec: str) -> tuple[int, int, bytes, str] | None:
    """(byte offset, 1-based line, offending bytes, reason) of the first undecodable byte, streaming."""
    decoder = codecs.getincrementaldecoder(codec)("strict")
    consumed = 0
    newlines = 0
    with open_binary(path) as f:
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
    if path.is_dir():
        if fmt not in ("auto", "parquet"):
            raise DataError(
                f"{path}: is a folder; a folder is read as Parquet files only ({prefix}.format={fmt!r}: "
                f"set {prefix}.format=parquet or auto, or point {prefix}.path at one file)"
            )
        return _ParquetFolderReader(path, f"{prefix}.path")
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
