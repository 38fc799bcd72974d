"""User datasets from CSV, TSV, JSONL or Parquet files, with configurable column names.

Files are untrusted input: they are size-checked before reading (``MAX_FILE_BYTES``, override with the
environment variable ``STARTPOINT_MAX_DATASET_MB``; a larger file is refused rather than streamed, because
stratified splits need every label count up front), decoded strictly (a non-UTF-8 byte is reported with its
offset and line) and parsed without evaluating anything. An optional ``split`` column (train / validation /
test) keeps the user's own splits; otherwise rows are split with the seed, see :mod:`startpoint.data.core`.

Memory: a UTF-8 CSV/TSV is checked in 1 MB blocks, then parsed by pyarrow's CSV reader into Arrow string
columns, only the columns the dataset uses, handed to polars without a copy (peak RSS of `startpoint recommend`
on a 230 MB CSV: see benchmarks/csv_memory.py). A header with a repeated or empty name gets pandas' names
(`text.1` for a repeat, `Unnamed: 2` for an empty one) and stays on that path; a column the dataset uses that
the header names twice is refused (which copy holds the data is a guess). Files pyarrow's reader would read
differently (ragged rows, other encodings, a line break in the last row) go through Python's `csv` module
instead, which reads them as pandas' parser did (short rows padded, a row with too many fields refused with its
line) and refuses a quote left open to the end of the file with the row it opens in.

Types, by the role of the column (`frame_to_raw`): the text must be text (Parquet bytes are decoded as UTF-8 or
refused with the row); a label column has one JSON type (all strings, integers, booleans or decimal numbers:
`1` and `1.0`, `true` and `"true"` would be classes that print alike), with the row of the first odd one named.
Labels that print alike but differ (zero-width characters, NFC vs NFD) are refused by the datasets layer.
"""

from __future__ import annotations

import codecs
import csv
import errno
import io
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from startpoint.data.core import (
    DatasetError,
    LabelledDataset,
    SplitCaps,
    _stripped,
    build_dataset,
)

MAX_FILE_BYTES = 256 * 1024 * 1024
ROW = "__source_row__"  # where a row came from (data row or JSONL line), for error messages
SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


SPREADSHEETS = {".xlsx": "an Excel workbook", ".xlsm": "an Excel workbook", ".xls": "an Excel workbook",
                ".ods": "an OpenDocument spreadsheet", ".numbers": "a Numbers spreadsheet"}
_EXPORT = "export the sheet as CSV (UTF-8) from the spreadsheet program (File > Save As / Download as CSV) and pass that file"
_TYPES = "a CSV, TSV, JSONL or Parquet file"


def resolve_data_path(path: str | Path) -> Path:
    """`path` made absolute (links followed); a symbolic-link loop is a DatasetError, not a pathlib traceback."""
    path = Path(path).expanduser()
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise DatasetError(
                f"{path}: a symbolic-link loop (the link leads back to itself); point --data at the real file"
            ) from None
    try:
        return path.resolve()
    except (RuntimeError, OSError) as err:  # Python < 3.13 raises RuntimeError('Symlink loop ...')
        raise DatasetError(f"{path}: cannot follow the path ({err}); point --data at the real file") from None


def max_file_bytes() -> int:
    env = os.environ.get("STARTPOINT_MAX_DATASET_MB")
    return int(float(env) * 1024 * 1024) if env else MAX_FILE_BYTES


def _looks_utf16(data: bytes) -> bool:
    """UTF-16 without a byte-order mark: text whose every second byte is NUL."""
    sample = data[:4096]
    return len(sample) >= 4 and max(sample[0::2].count(0), sample[1::2].count(0)) > len(sample) // 4


def _decode(path: Path, data: bytes, encoding: str) -> str:
    try:
        return data.decode("utf-8-sig" if _is_utf8(encoding) else encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        if _looks_utf16(data):
            raise DatasetError(
                f"{path}: UTF-16 text (no byte-order mark), not UTF-8; re-encode it to UTF-8 "
                f"(e.g. `iconv -f utf-16le -t utf-8 {path.name} > fixed_{path.name}`, or save it as 'CSV UTF-8')"
            ) from None
        raise DatasetError(
            f"{path}: not valid {encoding}: byte 0x{data[err.start]:02x} at byte offset {err.start} (line {line}). "
            f"Re-encode the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed_{path.name}` "
            "if it is Latin-1 / Windows-1252) or save it as 'CSV UTF-8'"
        ) from None


_BLOCK = 1 << 20  # bytes decoded at a time when checking a file's encoding


def _is_utf8(encoding: str) -> bool:
    return encoding.lower().replace("_", "-") in ("utf-8", "utf8")


def _check_utf8(path: Path) -> None:
    """Raise `_decode`'s error (offset, line, the fix) when the file is not valid UTF-8, holding one block at a time."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        with path.open("rb") as fh:
            while block := fh.read(_BLOCK):
                decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        _decode(path, path.read_bytes(), "utf-8")  # the bad file only: the whole-file decode names offset and line
        raise


def _check_header(path: Path, header: list[str], columns: Sequence[str] | None) -> None:
    """A column the dataset uses must be named once: with two, which one holds the data is a guess."""
    for name in dict.fromkeys(columns or ()):
        where = [i for i, h in enumerate(header, start=1) if h == name]
        if len(where) > 1:
            raise DatasetError(
                f"{path}: the header repeats the column {name!r} (columns {', '.join(map(str, where))}); "
                "which one holds the data is a guess: rename or remove the other one(s)"
            )


def _read_csv_arrow(path: Path, sep: str, columns: Sequence[str] | None, optional: Sequence[str]) -> pl.DataFrame | None:
    """Every cell as text (no missing-value guessing), read by pyarrow into Arrow
    strings and only `columns` plus those of `optional` the file has (every column when one of `columns` is
    missing, for the error message); None when pyarrow's
    reader might read the file differently (a header with empty or repeated names, rows with another number of
    fields than the header): the caller then uses `_read_csv_python`."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh, delimiter=sep), [])
    except (csv.Error, UnicodeDecodeError):
        return None
    if not header:
        return None
    _check_header(path, header, columns)
    if any("\n" in name or "\r" in name for name in header):
        return None  # a header spanning lines: skip_rows below counts lines
    names = _unique_names(header)  # a repeated (unused) or empty name: pandas' names, still read by pyarrow
    if columns is None or not set(columns) <= set(names):
        wanted = names
    else:
        wanted = [c for c in names if c in {*columns, *optional}]
    try:
        table = pacsv.read_csv(
            path,
            # one thread: its freed blocks are reused later
            read_options=pacsv.ReadOptions(use_threads=False, column_names=names, skip_rows=1),
            parse_options=pacsv.ParseOptions(delimiter=sep, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in names}, include_columns=wanted,
                strings_can_be_null=False, quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, ValueError, KeyError):
        return None
    if table.column_names != wanted:
        return None
    if table.num_rows and any(("\n" in v or "\r" in v) for v in (table.column(c)[-1].as_py() or "" for c in wanted)):
        return None  # a line break in the last row: maybe a quote left open to the end; the csv module tells
    # One chunk per column (the reader gives one per block): taking the splits' rows later then never
    # concatenates the blocks again, once per split. The blocks are freed right after.
    table = table.combine_chunks()
    frame = pl.from_arrow(table, rechunk=False)
    del table
    pa.default_memory_pool().release_unused()
    return frame


def _zip_kind(path: Path) -> str:
    """What a zip container holds: a spreadsheet, a document, or an archive of files."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            mimetype = archive.read("mimetype")[:80].decode("ascii", "replace") if "mimetype" in names else ""
    except (zipfile.BadZipFile, OSError, KeyError, RuntimeError, ValueError):
        return "a damaged zip archive"
    if any(n.startswith("xl/") for n in names):
        return "an Excel workbook (.xlsx)"
    if "opendocument.spreadsheet" in mimetype:
        return "an OpenDocument spreadsheet (.ods)"
    if any(n.startswith("word/") for n in names) or "opendocument.text" in mimetype:
        return "a word-processor document"
    shown = ", ".join(n for n in names[:3])
    return f"a zip archive ({len(names)} file(s){': ' + shown if shown else ''}{', ...' if len(names) > 3 else ''})"


def sniff(path: Path, head: bytes, kind: str | None, encoding: str = "utf-8") -> str | None:
    """Why a file is not the text table its name says (a spreadsheet, an archive, UTF-16, binary), or None.
    The text-encoding checks apply when UTF-8 is expected (an explicit other `encoding` is the caller's word)."""
    if path.suffix.lower() in SPREADSHEETS:
        return f"{path}: {SPREADSHEETS[path.suffix.lower()]}, not a text table; {_EXPORT}"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        what = _zip_kind(path)
        if "spreadsheet" in what or "workbook" in what:
            return f"{path}: {what} named {path.suffix or 'without an extension'}, not a text table; {_EXPORT}"
        if "document" in what:
            return f"{path}: {what}, not a data table; save the table as CSV (UTF-8) and pass that file"
        return f"{path}: {what}, not {_TYPES}; unzip it and pass the data file inside"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return f"{path}: an old-style Excel workbook (.xls), not a text table; {_EXPORT}"
    for magic, what, fix in (
        (b"\x1f\x8b", "gzip-compressed", f"`gunzip -k {path.name}`"),
        (b"BZh", "bzip2-compressed", f"`bunzip2 -k {path.name}`"),
        (b"\xfd7zXZ\x00", "xz-compressed", f"`unxz -k {path.name}`"),
        (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "extract it"),
        (b"%PDF", "a PDF document", "export the table as CSV"),
    ):
        if head.startswith(magic):
            return f"{path}: {what}, not {_TYPES}; {fix} and pass the data file"
    if kind != "parquet" and head.startswith(b"PAR1"):
        return f"{path}: a Parquet file named {path.suffix}; rename it to {path.stem}.parquet"
    if kind == "parquet" or not _is_utf8(encoding):
        return None  # pyarrow checks its own magic bytes; the caller named the encoding
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return (f"{path}: UTF-32 text (byte-order mark), not UTF-8; re-encode it "
                f"(`iconv -f utf-32 -t utf-8 {path.name} > fixed_{path.name}`)")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return (f"{path}: UTF-16 text (byte-order mark), not UTF-8; re-encode it "
                f"(`iconv -f utf-16 -t utf-8 {path.name} > fixed_{path.name}`, or save it as 'CSV UTF-8')")
    if _looks_utf16(head):
        return (f"{path}: UTF-16 text (no byte-order mark), not UTF-8; re-encode it "
                f"(`iconv -f utf-16le -t utf-8 {path.name} > fixed_{path.name}`, or save it as 'CSV UTF-8')")
    nul = head.find(b"\x00")
    if nul >= 0:
        return (f"{path}: binary data (NUL byte at offset {nul}), not a {(kind or 'text').upper()} text file; "
                f"give {_TYPES}")
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<!doctype html", b"<html")):
        return f"{path}: an HTML page, not {_TYPES} (a download that saved the web page?); download the raw file"
    return None


_INT64 = (-(2**63), 2**63 - 1)


def _column(name: str, values: list) -> pl.Series:
    """One JSONL field as a column: text, integers, floats or booleans when every value is one (missing ones
    null), else the Python values themselves (mixed types, lists, objects, integers beyond 64 bits), which
    `frame_to_raw` checks by the column's role."""
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {str}:
        return pl.Series(name, values, dtype=pl.String)
    if kinds <= {int} and all(_INT64[0] <= v <= _INT64[1] for v in values if v is not None):
        return pl.Series(name, values, dtype=pl.Int64)
    if kinds <= {bool}:
        return pl.Series(name, values, dtype=pl.Boolean)
    if kinds <= {float}:
        return pl.Series(name, values, dtype=pl.Float64)
    return pl.Series(name, values, dtype=pl.Object)


def _no_constant(name: str):
    raise ValueError(name)


def _read_jsonl(path: Path, text: str) -> pl.DataFrame:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, parse_constant=_no_constant)
        except ValueError as err:
            if not isinstance(err, json.JSONDecodeError):  # NaN / Infinity: Python's extension, not JSON
                raise DatasetError(
                    f"{path}: line {number} holds {err}, which is not JSON; write null (or a quoted string) instead"
                ) from None
            raise DatasetError(f"{path}: line {number} is not valid JSON ({err.msg}); each line must be one JSON object") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{path}: line {number} is a JSON {type(record).__name__}, not an object with named fields")
        record[ROW] = number
        records.append(record)
    names = list(dict.fromkeys(name for record in records for name in record))
    return pl.DataFrame([_column(name, [record.get(name) for record in records]) for name in names])


def _unique_names(header: list[str]) -> list[str]:
    """Column names as pandas' reader made them: an empty one is `Unnamed: <i>`, a repeat gets `.1`, `.2`, ..."""
    names: list[str] = []
    for i, name in enumerate(header):
        name = name or f"Unnamed: {i}"
        base, n = name, 0
        while name in names:
            n += 1
            name = f"{base}.{n}"
        names.append(name)
    return names


def _read_csv_python(path: Path, text: str, kind: str, columns: Sequence[str] | None = None) -> pl.DataFrame:
    """A CSV/TSV that pyarrow's reader would read differently, by Python's `csv` module: every cell as text,
    blank lines skipped, a short row padded with empty cells, a row with too many fields refused, a quote left
    open to the end of the file refused with the row it opens in."""
    sep = "\t" if kind == "tsv" else ","
    offset = [0]  # where the next line starts in `text`

    def lines():
        for line in io.StringIO(text, newline=""):
            offset[0] += len(line)
            yield line

    reader = csv.reader(lines(), delimiter=sep)
    last = (0, 0)  # (offset, data row) where the last record starts
    try:
        header = next((r for r in reader if r), None)
        if header is None:
            raise DatasetError(f"{path}: no columns found; the first line must be a header naming the columns")
        _check_header(path, header, columns)
        width = len(header)
        cells: list[list[str]] = [[] for _ in range(width)]
        start = offset[0]
        for record in reader:
            if not record:
                start = offset[0]
                continue
            last, start = (start, len(cells[0]) + 1), offset[0]
            if len(record) > width:
                raise DatasetError(
                    f"{path}: cannot parse as {kind.upper()}: Expected {width} fields in line {reader.line_num}, saw "
                    f"{len(record)}; quote fields that hold the separator ({'a tab' if kind == 'tsv' else 'a comma'}) "
                    "or a line break"
                )
            record += [""] * (width - len(record))
            for column, value in zip(cells, record):
                column.append(value)
    except csv.Error as err:
        raise DatasetError(
            f"{path}: cannot parse as {kind.upper()}: {err} (line {reader.line_num}); quote fields that hold the "
            f"separator ({'a tab' if kind == 'tsv' else 'a comma'}) or a line break"
        ) from None
    if last[1]:
        _check_open_quote(path, text, *last, sep)
    return pl.DataFrame([pl.Series(name, column, dtype=pl.String) for name, column in zip(_unique_names(header), cells)])


def _check_open_quote(path: Path, text: str, start: int, row: int, sep: str) -> None:
    """The csv module reads a quote that is never closed as a field running to the end of the file, silently:
    the last record, read strictly, says so."""
    try:
        for _ in csv.reader(io.StringIO(text[start:], newline=""), delimiter=sep, strict=True):
            pass
    except csv.Error as err:
        if "unexpected end of data" in str(err):
            line = text.count("\n", 0, start) + 1
            raise DatasetError(
                f"{path}: a quote (\") opened in row {row} (line {line}) is never closed, so the rest of the file "
                "would be read as one cell; close the quote, or double a quote that is part of the text (\"\")"
            ) from None


def _with_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with the data row number of each row (the header is not counted)."""
    return frame.with_columns(pl.int_range(1, len(frame) + 1, dtype=pl.Int64).alias(ROW))


def read_table(
    path: str | Path, *, encoding: str = "utf-8", columns: Sequence[str] | None = None, optional: Sequence[str] = ()
) -> pl.DataFrame:
    """Read a user file into a frame (strings as str); a `__source_row__` column says where each row came from.

    `columns` (and `optional`): a CSV/TSV that has all of `columns` is read with only those and the `optional`
    ones it has; the others are never held in memory. Other files are read whole."""
    path = Path(path).expanduser()
    if path.is_symlink() and not path.exists():
        resolve_data_path(path)  # a link loop says so; a dangling link is "not found" below
    if not path.exists():
        raise DatasetError(f"{path}: file not found; give the path of {_TYPES}")
    if path.is_dir():
        raise DatasetError(f"{path}: is a directory, not a file; give one {_TYPES.removeprefix('a ')} inside it")
    if not path.is_file():
        raise DatasetError(f"{path}: not a regular file (a device, pipe or socket); give {_TYPES}")
    kind = SUFFIXES.get(path.suffix.lower())
    if path.suffix.lower() in SPREADSHEETS:
        raise DatasetError(sniff(path, b"", kind))
    if kind is None:
        what = f"unknown file type {path.suffix!r}" if path.suffix else "no file-name extension"
        raise DatasetError(f"{path}: {what}; use one of {sorted(SUFFIXES)} (rename the file if it is one of them)")
    size, limit = path.stat().st_size, max_file_bytes()
    if size > limit:
        raise DatasetError(
            f"{path}: {size:,} bytes is above the {limit:,}-byte limit for dataset files; "
            "sample it down to fewer rows or raise STARTPOINT_MAX_DATASET_MB"
        )
    if size == 0:
        raise DatasetError(f"{path}: the file is empty; it needs a header and labelled rows")
    with path.open("rb") as fh:
        problem = sniff(path, fh.read(4096), kind, encoding)
    if problem:
        raise DatasetError(problem)
    if kind == "parquet":
        try:
            frame = pl.from_arrow(pq.read_table(path))
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise DatasetError(f"{path}: cannot read as Parquet ({err}); is it really a Parquet file?") from None
        return _with_rows(frame)
    if kind in ("csv", "tsv") and _is_utf8(encoding):
        _check_utf8(path)
        frame = _read_csv_arrow(path, "\t" if kind == "tsv" else ",", columns, optional)
        if frame is not None:
            return _with_rows(frame)
    text = _decode(path, path.read_bytes(), encoding)
    if kind == "jsonl":
        return _read_jsonl(path, text)
    return _with_rows(_read_csv_python(path, text, kind, columns))


def frame_to_raw(
    frame: pl.DataFrame, where: str, *, text_col: str, label_col: str, text_pair_col: str | None, split_col: str | None
) -> pl.DataFrame:
    """Pick and rename the user's columns; a missing one is reported with the columns that do exist."""
    columns = [c for c in frame.columns if c != ROW]
    _check_roles(where, text_col, label_col, text_pair_col)
    if split_col in (text_col, label_col, text_pair_col):
        split_col = None  # the column is used for something else
    if not len(frame):
        raise DatasetError(f"{where}: no data rows (columns: {columns}); add labelled rows")
    for role, name in (("text", text_col), ("label", label_col), ("text pair", text_pair_col)):
        if name is not None and name not in frame.columns:
            hint = _separator_hint(columns)
            raise DatasetError(
                f"{where}: no {role} column {name!r}; the columns are {columns}. "
                f"Pass --{role.replace(' ', '-')}-col <one of them>{hint}"
            )
    row = frame[ROW] if ROW in frame.columns else pl.int_range(1, len(frame) + 1, dtype=pl.Int64, eager=True)
    text = _text_column(frame[text_col], row, where, "text")
    label = _label_column(frame[label_col], row, where)
    _check_header_rows(text, label, row, where, text_col, label_col)
    raw = [text.alias("text"), label.alias("label"), row.alias("row")]
    if text_pair_col:
        raw.append(_text_column(frame[text_pair_col], row, where, "text pair").alias("text_pair"))
    if split_col and split_col in frame.columns:
        split = _stripped(frame[split_col])
        raw.append(pl.select(pl.when(split == "").then(None).otherwise(split)).to_series().alias("split"))
    return pl.DataFrame(raw)


def _check_roles(where: str, text_col: str, label_col: str, text_pair_col: str | None) -> None:
    """The text, the label and the text pair must be three different columns."""
    named = [(role, name) for role, name in (("text", text_col), ("label", label_col), ("text pair", text_pair_col))
             if name is not None]
    for i, (role, name) in enumerate(named):
        for other, other_name in named[:i]:
            if name == other_name:
                raise DatasetError(
                    f"{where}: --{other.replace(' ', '-')}-col and --{role.replace(' ', '-')}-col both name the "
                    f"column {name!r}; the {other} and the {role} must be different columns: give "
                    + {"label": "--label-col the column that holds the classes",
                       "text pair": "--text-pair-col the column that holds the second text"}[role]
                )


_JSON_KIND = {str: "a string", bool: "a boolean", int: "an integer", float: "a number with a decimal point"}


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=True)[:60]


def _decoded(values: pl.Series, row: pl.Series, where: str) -> pl.Series:
    """A binary column (Parquet bytes) as text when it is UTF-8; otherwise the row and byte that are not."""
    arrow = values.to_arrow()
    try:
        return pl.Series(values.name, pc.cast(arrow, pa.large_string()))
    except pa.ArrowInvalid:
        for i, value in enumerate(values.to_list()):
            try:
                (value or b"").decode("utf-8")
            except UnicodeDecodeError as err:
                raise DatasetError(
                    f"{where}: column {values.name!r} holds bytes, not text, and row {row[i]} is not UTF-8 (byte "
                    f"0x{value[err.start]:02x} at offset {err.start}); write the column as UTF-8 strings"
                ) from None
        raise


def _text_column(values: pl.Series, row: pl.Series, where: str, role: str) -> pl.Series:
    """The text (or text pair) column: text, or bytes that are UTF-8; a number, boolean, list or object in it
    is refused with its row (it is not a text; the column is probably the wrong one)."""
    if values.dtype in (pl.String, pl.Null) or isinstance(values.dtype, (pl.Categorical, pl.Enum)):
        return values
    if values.dtype == pl.Binary:
        return _decoded(values, row, where)
    if values.dtype != pl.Object:  # one type (numbers, booleans, lists): the first value that is there tells
        present = values.is_not_null().arg_true()
        if not len(present):
            return values
        values, row = values.gather(present[:1]), row.gather(present[:1])
    for i, value in enumerate(values.to_list()):
        if value is None or isinstance(value, str):
            continue
        what = ("a list" if isinstance(value, (list, tuple)) else "an object" if isinstance(value, dict)
                else "a boolean" if isinstance(value, bool) else "a number")
        raise DatasetError(
            f"{where}: row {row[i]} has {what} as the {role} ({_json(value) if what != 'an object' else '{...}'}), "
            f"not a string; the {role} column {values.name!r} must hold text: quote it (\"...\") if it is the "
            f"text, or pass --{role.replace(' ', '-')}-col with the column that holds the text"
        )
    return values


def _label_column(values: pl.Series, row: pl.Series, where: str) -> pl.Series:
    """One JSON type per label column: all strings, all integers, all booleans or all decimal numbers (a
    list or object is left to the datasets layer's multi-label message). Mixed types are refused with the first
    row of the rarer type, because `1` and `1.0`, or `true` and `"true"`, would be two classes that print alike;
    an integer beyond 64 bits is refused too (quote it)."""
    if values.dtype == pl.Binary:
        return _decoded(values, row, where)
    if values.dtype != pl.Object:
        return values
    items = values.to_list()
    kinds: dict[type, list[int]] = {}
    for i, value in enumerate(items):
        if value is None or isinstance(value, (list, tuple, dict, set)):
            continue
        kind = float if isinstance(value, float) else bool if isinstance(value, bool) else type(value)
        kinds.setdefault(kind if kind in _JSON_KIND else str, []).append(i)
        if kind is int and not _INT64[0] <= value <= _INT64[1]:
            raise DatasetError(
                f"{where}: row {row[i]} has the label {str(value)[:40]}, an integer beyond the 64-bit range; if it "
                "is a class name, write every label as a string (\"...\")"
            )
    if len(kinds) > 1:
        common, *rest = sorted(kinds, key=lambda k: (-len(kinds[k]), list(_JSON_KIND).index(k)))
        odd = min(rest, key=lambda k: kinds[k][0])
        i, j = kinds[odd][0], kinds[common][0]
        pair = {frozenset({int, float}): "1 and 1.0", frozenset({bool, str}): 'true and "true"'}.get(
            frozenset({odd, common}), '3 and "3"')
        plural = {str: "strings", bool: "booleans", int: "integers", float: "decimal numbers"}
        counts = ", ".join(f"{len(kinds[k])} {plural[k] if len(kinds[k]) > 1 else plural[k][:-1]}"
                           for k in (common, *rest))
        raise DatasetError(
            f"{where}: row {row[i]} has the label {_json(items[i])} ({_JSON_KIND[odd]}) but row {row[j]} has "
            f"{_json(items[j])} ({_JSON_KIND[common]}); the label column mixes JSON types ({counts}) and {pair} "
            "would be two classes that print alike: write every label with one type, e.g. all strings"
        )
    return values


def _check_header_rows(text: pl.Series, label: pl.Series, row: pl.Series, where: str, text_col: str,
                       label_col: str) -> None:
    """A data row that repeats the header (files joined together): its label would become a class."""
    if text.dtype != pl.String or label.dtype != pl.String:
        return
    candidates = (label.str.strip_chars() == label_col).fill_null(False)  # labels are short; texts are not copied
    if not candidates.any():
        return
    again = text.filter(candidates).str.strip_chars() == text_col
    if again.any():
        rows = row.filter(candidates).filter(again.fill_null(False))
        raise DatasetError(
            f"{where}: row {rows[0]} repeats the header ({text_col!r}, {label_col!r}) "
            f"({len(rows)} such row{'s' if len(rows) > 1 else ''}); files joined together? remove the repeated "
            "header line(s)"
        )


def _separator_hint(columns: list) -> str:
    """When the header came out as one column, what separator the file probably uses."""
    if len(columns) != 1:
        return ""
    header = str(columns[0])
    for sep, name in (("\t", "tab"), (";", "semicolon"), ("|", "pipe")):
        if sep in header:
            fix = "name it .tsv" if sep == "\t" else "re-export it with commas"
            return f" (the header is one column holding {name}s: the file looks {name}-separated; {fix})"
    return ""


def load_file(
    path: str | Path,
    *,
    text_col: str = "text",
    label_col: str = "label",
    text_pair_col: str | None = None,
    caps: SplitCaps | None = None,
    seed: int = 0,
    dataset_id: str | None = None,
    split_col: str | None = "split",
    encoding: str = "utf-8",
    task_group: str = "other",
) -> LabelledDataset:
    """A labelled dataset from one user file; `split_col` (if the file has it) keeps the user's splits."""
    path = resolve_data_path(path)
    _check_roles(str(path), text_col, label_col, text_pair_col)  # before reading: the columns read depend on them
    used = [c for c in (text_col, label_col, text_pair_col) if c is not None]
    frame = read_table(path, encoding=encoding, columns=used, optional=[split_col] if split_col else [])
    raw = [frame_to_raw(frame, str(path), text_col=text_col, label_col=label_col, text_pair_col=text_pair_col,
                        split_col=split_col)]
    del frame
    # build_dataset gets the only reference to the raw rows (popped: no local keeps them) and drops them once cleaned.
    return build_dataset(
        raw.pop(),
        dataset_id=dataset_id or path.stem,
        source=f"file:{path}",
        caps=caps,
        seed=seed,
        task_group=task_group,
        where=str(path),
    )
