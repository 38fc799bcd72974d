"""User datasets from CSV, TSV, JSONL or Parquet files, with configurable column names.

Files are untrusted input: they are size-checked before reading (``MAX_FILE_BYTES``, override with the
environment variable ``STARTPOINT_MAX_DATASET_MB``; a larger file is refused rather than streamed, because
stratified splits need every label count up front), decoded strictly (a non-UTF-8 byte is reported with its
offset and line) and parsed without evaluating anything. An optional ``split`` column (train / validation /
test) keeps the user's own splits; otherwise rows are split with the seed, see :mod:`pipelines.data.core`.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from pipelines.data.core import DatasetError, LabelledDataset, SplitCaps, build_dataset

MAX_FILE_BYTES = 256 * 1024 * 1024
ROW = "__source_row__"  # where a row came from (data row or JSONL line), for error messages
SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def max_file_bytes() -> int:
    env = os.environ.get("STARTPOINT_MAX_DATASET_MB")
    return int(float(env) * 1024 * 1024) if env else MAX_FILE_BYTES


def _decode(path: Path, data: bytes, encoding: str) -> str:
    try:
        return data.decode("utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DatasetError(
            f"{path}: not valid {encoding}: byte 0x{data[err.start]:02x} at byte offset {err.start} (line {line}). "
            f"Re-encode the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed_{path.name}`) "
            "or pass encoding='latin-1' if that is what it is"
        ) from None


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetError(f"{path}: line {number} is not valid JSON ({err.msg}); each line must be one JSON object") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{path}: line {number} is a JSON {type(record).__name__}, not an object with named fields")
        record[ROW] = number
        records.append(record)
    return pd.DataFrame.from_records(records)


def read_table(path: str | Path, *, encoding: str = "utf-8") -> pd.DataFrame:
    """Read a user file into a frame (strings as str); a `__source_row__` column says where each row came from."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path}: file not found; give the path of a CSV, TSV, JSONL or Parquet file")
    if path.is_dir():
        raise DatasetError(f"{path}: is a folder; give one CSV, TSV, JSONL or Parquet file")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DatasetError(f"{path}: unknown file type {path.suffix!r}; use one of {sorted(SUFFIXES)}")
    size, limit = path.stat().st_size, max_file_bytes()
    if size > limit:
        raise DatasetError(
            f"{path}: {size:,} bytes is above the {limit:,}-byte limit for dataset files; "
            "sample it down to fewer rows or raise STARTPOINT_MAX_DATASET_MB"
        )
    if size == 0:
        raise DatasetError(f"{path}: the file is empty; it needs a header and labelled rows")
    if kind == "parquet":
        try:
            frame = pq.read_table(path).to_pandas()
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise DatasetError(f"{path}: cannot read as Parquet ({err}); is it really a Parquet file?") from None
        frame[ROW] = range(1, len(frame) + 1)
        return frame
    text = _decode(path, path.read_bytes(), encoding)
    if kind == "jsonl":
        return _read_jsonl(path, text)
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep="\t" if kind == "tsv" else ",", dtype=str, keep_default_na=False, na_filter=False
        )
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{path}: no columns found; the first line must be a header naming the columns") from None
    except pd.errors.ParserError as err:
        raise DatasetError(f"{path}: cannot parse as {kind.upper()}: {err}") from None
    frame[ROW] = range(1, len(frame) + 1)  # data row number; the header is not counted
    return frame


def frame_to_raw(
    frame: pd.DataFrame, where: str, *, text_col: str, label_col: str, text_pair_col: str | None, split_col: str | None
) -> pd.DataFrame:
    """Pick and rename the user's columns; a missing one is reported with the columns that do exist."""
    columns = [c for c in frame.columns if c != ROW]
    if not len(frame):
        raise DatasetError(f"{where}: no data rows (columns: {columns}); add labelled rows")
    for role, name in (("text", text_col), ("label", label_col), ("text pair", text_pair_col)):
        if name is not None and name not in frame.columns:
            raise DatasetError(
                f"{where}: no {role} column {name!r}; the columns are {columns}. "
                f"Pass {role.replace(' ', '_')}_col=<one of them>"
            )
    raw = pd.DataFrame({"text": frame[text_col], "label": frame[label_col], "row": frame[ROW] if ROW in frame else range(1, len(frame) + 1)})
    if text_pair_col:
        raw["text_pair"] = frame[text_pair_col]
    if split_col and split_col in frame.columns:
        raw["split"] = frame[split_col].map(lambda s: str(s).strip() or None)
    return raw


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
    path = Path(path).expanduser().resolve()
    frame = read_table(path, encoding=encoding)
    raw = frame_to_raw(frame, str(path), text_col=text_col, label_col=label_col, text_pair_col=text_pair_col, split_col=split_col)
    return build_dataset(
        raw,
        dataset_id=dataset_id or path.stem,
        source=f"file:{path}",
        caps=caps,
        seed=seed,
        task_group=task_group,
        where=str(path),
    )
