"""The Parquet results lake: where every run and import writes, on any fsspec filesystem.

Layout: ``<lake>/<table>/<origin>/<...>.parquet``, one file per unit of work (a finetune run, a probe, an
imported architecture). Files are written to a temporary name and renamed into place, so a killed run leaves
no partial file that the loader would read; readers skip anything that is not ``*.parquet``.
Independent writers never touch the same file, which is what lets partitions run on many machines at once.

Faults: a write that fails (disk full included) removes its temporary file, and disk full is named as such. A file
that is not valid Parquet (truncated, overwritten) is named in the error; a reader that passes ``quarantine=``
(the warehouse load does) moves it to ``<lake>/_quarantine/<table>/...`` instead and reports it, so one bad file
does not stop every reload. Quarantined files are kept for inspection: rerun the job that wrote it to replace it.
"""

from __future__ import annotations

import datetime as dt
import errno
import posixpath
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from startpoint.schema import TABLES, TableSpec


def _fs(lake_url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, root = fsspec.core.url_to_fs(lake_url)
    return fs, root.rstrip("/")


def conform(spec: TableSpec, data: pa.Table | Iterable[Mapping[str, Any]], ingested_at: dt.datetime | None = None) -> pa.Table:
    """Cast rows to the table's schema; columns the schema does not know are a programming error."""
    if not isinstance(data, pa.Table):
        rows = list(data)
        unknown = sorted({k for r in rows for k in r} - set(spec.schema.names))
        if unknown:
            raise ValueError(f"{spec.name}: unknown column(s) {unknown}; add them to startpoint/schema.py")
        data = pa.Table.from_pylist(rows, schema=spec.schema.remove(spec.schema.get_field_index("ingested_at")))
    unknown = sorted(set(data.column_names) - set(spec.schema.names))
    if unknown:
        raise ValueError(f"{spec.name}: unknown column(s) {unknown}; add them to startpoint/schema.py")
    stamp = ingested_at or dt.datetime.now(dt.timezone.utc)
    columns = []
    for field in spec.schema:
        if field.name in data.column_names:
            columns.append(data.column(field.name).cast(field.type))
        elif field.name == "ingested_at":
            columns.append(pa.array([stamp] * data.num_rows, type=field.type))
        else:
            columns.append(pa.nulls(data.num_rows, type=field.type))
    return pa.Table.from_arrays(columns, schema=spec.schema)


def write(lake_url: str, table: str, relpath: str, data: pa.Table | Iterable[Mapping[str, Any]]) -> str:
    """Atomically write one Parquet file ``<lake>/<table>/<relpath>.parquet``; returns its path."""
    spec = TABLES[table]
    arrow = conform(spec, data)
    fs, root = _fs(lake_url)
    final = posixpath.join(root, table, relpath + ".parquet")
    if _object_store(fs):
        return _put_whole(fs, final, arrow)
    fs.makedirs(posixpath.dirname(final), exist_ok=True)
    tmp = posixpath.join(posixpath.dirname(final), f".{posixpath.basename(final)}.{uuid.uuid4().hex}.tmp")
    try:
        with fs.open(tmp, "wb") as fh:
            pq.write_table(arrow, fh)
        fs.mv(tmp, final)
    except BaseException as exc:
        try:
            fs.rm(tmp)
        except Exception:  # never written, or already renamed
            pass
        if disk_full(exc):
            raise OSError(errno.ENOSPC, f"disk full writing {final} ({' '.join(str(exc).split())[:200]}); "
                          "its temporary file was removed: free space and rerun") from exc
        raise
    return final


# Object stores (S3 and its kin) have no rename: fsspec's `mv` is a copy then a delete, so a writer killed between
# the two would leave its temporary object behind. But a PUT there is atomic: the object appears whole or not at
# all. So on an object store a file is serialized in memory and stored with one PUT under its final name.
_OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl"}


def _object_store(fs: fsspec.AbstractFileSystem) -> bool:
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return bool(_OBJECT_STORES.intersection(protocols))


def _put_whole(fs: fsspec.AbstractFileSystem, final: str, arrow: pa.Table, **parquet_options: Any) -> str:
    sink = pa.BufferOutputStream()
    pq.write_table(arrow, sink, **parquet_options)
    fs.pipe_file(final, sink.getvalue().to_pybytes())
    return final


def disk_full(exc: BaseException) -> bool:
    """ENOSPC, whether as an OSError or as text inside a DuckDB or Arrow error."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return "no space left on device" in text or "disk quota exceeded" in text


def exists(lake_url: str, table: str, relpath: str) -> bool:
    """Whether a unit of work's file is in the lake: as its own file, or merged into a compacted file."""
    fs, root = _fs(lake_url)
    if fs.exists(posixpath.join(root, table, relpath + ".parquet")):
        return True
    return _compacted_rows(fs, root, table, relpath, exact=True).num_rows > 0


def exists_under(lake_url: str, table: str, prefix: str) -> bool:
    """Whether any unit under the folder ``prefix`` is in the lake: a file there, or rows merged from there into a
    compacted file (a listing alone misses those once a compaction has run)."""
    if list_files(lake_url, table, prefix):
        return True
    fs, root = _fs(lake_url)
    return _compacted_rows(fs, root, table, prefix, exact=False).num_rows > 0


def list_files(lake_url: str, table: str, prefix: str = "") -> list[str]:
    """Complete Parquet files of a table (temporary files of runs in flight are skipped)."""
    fs, root = _fs(lake_url)
    base = posixpath.join(root, table, prefix) if prefix else posixpath.join(root, table)
    if not fs.exists(base):
        return []
    found = fs.find(base)
    return sorted(p for p in found if _complete(p))


def _complete(path: str) -> bool:
    return path.endswith(".parquet") and not posixpath.basename(path).startswith(".")


@dataclass(frozen=True)
class FileInfo:
    """A lake file as the incremental loader remembers it: a change of size or stamp means it was rewritten."""
    path: str
    size: int
    stamp: str


def list_file_info(lake_url: str, table: str) -> list[FileInfo]:
    """Like :func:`list_files` for a whole table, with each file's size and modification stamp (one listing)."""
    fs, root = _fs(lake_url)
    base = posixpath.join(root, table)
    if not fs.exists(base):
        return []
    found = fs.find(base, detail=True)
    out = []
    for path, info in found.items():
        if _complete(path):
            stamp = [info.get(k) for k in ("mtime", "LastModified", "last_modified", "created", "ETag", "etag")]
            out.append(FileInfo(path, int(info.get("size") or 0), "|".join(str(v) for v in stamp if v)))
    return sorted(out, key=lambda f: f.path)


def is_local(lake_url: str) -> bool:
    fs, _ = _fs(lake_url)
    return "file" in ((fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol))


def duckdb_path(lake_url: str, path: str) -> str:
    """The name DuckDB reads a lake file by: the path itself for a local lake, ``<protocol>://path`` otherwise
    (the fsspec filesystem is registered with the DuckDB connection under that protocol)."""
    fs, _ = _fs(lake_url)
    return path if is_local(lake_url) else fs.unstrip_protocol(path)


def filesystem(lake_url: str) -> fsspec.AbstractFileSystem:
    return _fs(lake_url)[0]


def remove(lake_url: str, paths: Iterable[str]) -> None:
    fs, _ = _fs(lake_url)
    for path in paths:
        fs.rm(path)


QUARANTINE = "_quarantine"


class CorruptFileError(ValueError):
    """A lake file that is not valid Parquet; the message names it."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: not a valid Parquet file ({reason}); delete it, or rerun the job that wrote it")
        self.path, self.reason = path, reason


@dataclass(frozen=True)
class Quarantined:
    table: str
    path: str
    moved_to: str
    reason: str


def _corrupt(exc: BaseException) -> bool:
    """Invalid content (Arrow's 'Invalid' status, or an IO status without an OS errno such as a bad page), as
    opposed to a failing filesystem (ENOENT, EACCES, EIO, network), which may pass and is never quarantined."""
    return isinstance(exc, pa.ArrowInvalid) or (type(exc) is OSError and exc.errno is None)


def quarantine_file(lake_url: str, path: str) -> str:
    """Move a lake file to ``<lake>/_quarantine/<same relative path>`` (a timestamp is added on a clash)."""
    fs, root = _fs(lake_url)
    rel = posixpath.relpath(path, root)
    dest = posixpath.join(root, QUARANTINE, rel)
    if fs.exists(dest):
        dest = f"{dest}.{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%f}"
    fs.makedirs(posixpath.dirname(dest), exist_ok=True)
    fs.mv(path, dest)
    return dest


def read(lake_url: str, table: str, prefix: str = "", quarantine: list[Quarantined] | None = None) -> pa.Table:
    """All files of a table, each cast to the canonical schema (older files may lack newer columns). With a
    ``prefix`` below the origin folder, the rows merged into that origin's compacted files from files under the
    prefix are included too, so compaction changes no reader's answer.

    A file that is not valid Parquet raises :class:`CorruptFileError` naming it; with a ``quarantine`` list, the
    file is moved under ``<lake>/_quarantine/`` instead, recorded in the list, and the other files are read."""
    spec = TABLES[table]
    fs, root = _fs(lake_url)
    parts = []
    for path in list_files(lake_url, table, prefix):
        data = read_file(lake_url, table, path, quarantine)
        if data is not None:
            parts.append(data)
    if prefix.strip("/") and "/" in prefix.strip("/"):
        merged = _compacted_rows(fs, root, table, prefix, exact=prefix.endswith(".parquet"))
        if merged.num_rows:
            parts.append(merged)
    if not parts:
        return spec.schema.empty_table()
    return pa.concat_tables(parts)


def read_file(lake_url: str, table: str, path: str, quarantine: list[Quarantined] | None = None) -> pa.Table | None:
    """One lake file cast to the table's schema; a corrupt one raises :class:`CorruptFileError`, or with a
    ``quarantine`` list is moved to ``_quarantine``, recorded, and gives None. Filesystem errors are raised as such."""
    data = read_raw(lake_url, table, path, quarantine)
    if data is None:
        return None
    try:
        return conform(TABLES[table], data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def read_raw(lake_url: str, table: str, path: str, quarantine: list[Quarantined] | None = None) -> pa.Table | None:
    """One lake file as written (without compaction's ``_lake_file``), not yet cast to the schema; corrupt files
    are handled as in :func:`read_file`."""
    fs, _ = _fs(lake_url)
    try:
        if is_local(lake_url):  # Arrow's own file reader: a fraction of the cost of a Python file object
            data = pq.ParquetFile(path).read(use_threads=False)
        else:
            with fs.open(path, "rb") as fh:
                data = pq.ParquetFile(fh).read(use_threads=False)
    except Exception as exc:
        if not _corrupt(exc):
            if isinstance(exc, OSError) and exc.errno:
                raise OSError(exc.errno, f"cannot read lake file {path}: {exc.strerror or exc}") from exc
            exc.add_note(f"while reading lake file {path}")
            raise
        reason = " ".join(re.sub(r"Could not open Parquet input source '[^']*': ", "", str(exc)).split())
        if quarantine is None:
            raise CorruptFileError(path, reason) from exc
        try:
            moved = quarantine_file(lake_url, path)
        except FileNotFoundError:  # another loader moved it first
            return None
        quarantine.append(Quarantined(table, path, moved, reason))
        return None
    if LAKE_FILE in data.column_names:
        data = data.drop_columns([LAKE_FILE])
    return data


# Compaction ------------------------------------------------------------------------------------------------------
#
# Writers keep writing one file per unit of work (a run, a probe); :func:`compact` merges an origin's small files
# into ``<lake>/<table>/<origin>/_compacted/<stamp>-<id>.parquet`` files of up to ``max_rows`` rows each. Every row
# keeps its ``ingested_at`` and gains a ``_lake_file`` column (the relpath it was written under, e.g.
# ``local/<model>/<target>/<hash>-seed0``), sorted, so :func:`exists` and :func:`read` with a prefix still find a
# merged unit of work (skip-on-rerun keeps working) by reading only the row groups whose statistics match.
#
# Order: a compacted file is renamed into place before its sources are removed. A reader listing in between sees
# those rows twice, with the same key and the same ``ingested_at``; the warehouse keeps one row per key, so it never
# counts them twice, and no row is ever absent. A compaction killed in between leaves the same harmless duplicates,
# and the next compaction merges the leftover sources again.
#
# Bound: every compaction writes at most one file of fewer than ``max_rows`` rows (its last), so small compacted
# files would pile up one per compaction. So a compaction also merges the origin's small compacted files (fewer
# than ``max_rows // 4`` rows by their Parquet footers) when there are at least two, in the same order (new file
# first, then the old ones removed). An origin thus holds at most two small compacted files after any compaction,
# plus files of at least ``max_rows // 4`` rows each. Rows of one write of a unit of work (same ``_lake_file``, same
# ``ingested_at``) met in two inputs, the copies a killed compaction left, are kept once.

COMPACTED = "_compacted"
LAKE_FILE = "_lake_file"


@dataclass
class Compaction:
    table: str
    origin: str
    sources: int  # per-unit files merged and removed
    written: list[str]  # compacted files written
    rows: int  # rows written to compacted files
    skipped: list[str]  # sources left in place: not valid Parquet (the warehouse load quarantines them)
    merged_compacted: int = 0  # small compacted files merged again and removed
    files_before: int = 0  # the origin's files (per-unit and compacted) before

    @property
    def files_after(self) -> int:
        return self.files_before - self.sources - self.merged_compacted + len(self.written)

    def line(self) -> str:
        """What one compaction did, in one line (the CLI prints it, the job logs it)."""
        return (f"{self.table}/{self.origin}: {self.files_before:,} files -> {self.files_after:,}, {self.rows:,} rows "
                f"({self.sources:,} per-unit and {self.merged_compacted:,} small compacted files merged"
                + (f"; {len(self.skipped)} corrupt file(s) left for the load to quarantine" if self.skipped else "")
                + ")")


def _compacted_files(fs: fsspec.AbstractFileSystem, root: str, table: str, origin: str) -> list[str]:
    folder = posixpath.join(root, table, origin, COMPACTED)
    if not fs.exists(folder):
        return []
    return sorted(p for p in fs.ls(folder, detail=False) if _complete(p))


def _compacted_rows(fs: fsspec.AbstractFileSystem, root: str, table: str, relpath: str, exact: bool) -> pa.Table:
    """Rows merged from ``relpath`` (exact) or from files under the folder ``relpath`` into compacted files."""
    rel = relpath.strip("/")
    if exact and rel.endswith(".parquet"):
        rel = rel[: -len(".parquet")]
    origin = rel.split("/", 1)[0]
    filters = [(LAKE_FILE, "=", rel)] if exact else [(LAKE_FILE, ">", rel + "/"), (LAKE_FILE, "<", rel + "/\uffff")]
    parts = []
    for path in _compacted_files(fs, root, table, origin):
        with fs.open(path, "rb") as fh:
            data = pq.read_table(fh, filters=filters)
        if data.num_rows:
            parts.append(conform(TABLES[table], data.drop_columns([LAKE_FILE])))
    return pa.concat_tables(parts) if parts else TABLES[table].schema.empty_table()


def write_compacted(lake_url: str, table: str, origin: str, data: pa.Table, row_group_size: int = 100_000) -> str:
    """Atomically write one compacted file of ``origin``: ``data`` has the table's columns (ingested_at included)
    plus ``_lake_file``; rows are sorted by ``_lake_file`` so lookups read few row groups."""
    spec = TABLES[table]
    if LAKE_FILE not in data.column_names:
        raise ValueError(f"{table}: a compacted file needs the {LAKE_FILE} column")
    files = data.column(LAKE_FILE).cast(pa.string())
    arrow = conform(spec, data.drop_columns([LAKE_FILE]), ingested_at=None)
    arrow = arrow.append_column(LAKE_FILE, files)
    arrow = arrow.sort_by(LAKE_FILE)
    fs, root = _fs(lake_url)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    final = posixpath.join(root, table, origin, COMPACTED, f"{stamp}-{uuid.uuid4().hex[:8]}.parquet")
    if _object_store(fs):  # one PUT, as in `write`
        return _put_whole(fs, final, arrow, row_group_size=row_group_size)
    fs.makedirs(posixpath.dirname(final), exist_ok=True)
    tmp = posixpath.join(posixpath.dirname(final), f".{posixpath.basename(final)}.tmp")
    try:
        with fs.open(tmp, "wb") as fh:
            pq.write_table(arrow, fh, row_group_size=row_group_size)
        fs.mv(tmp, final)
    except BaseException as exc:
        try:
            fs.rm(tmp)
        except Exception:
            pass
        if disk_full(exc):
            raise OSError(errno.ENOSPC, f"disk full writing {final} ({' '.join(str(exc).split())[:200]}); "
                          "its temporary file was removed and no source file was touched: free space and rerun") from exc
        raise
    return final


def _small_compacted(fs: fsspec.AbstractFileSystem, root: str, table: str, origin: str, max_rows: int) -> list[str]:
    """The origin's compacted files of fewer than ``max_rows // 4`` rows, by their Parquet footers (no data read)."""
    small = []
    for path in _compacted_files(fs, root, table, origin):
        try:
            with fs.open(path, "rb") as fh:
                n = pq.ParquetFile(fh).metadata.num_rows
        except Exception as exc:
            if not _corrupt(exc):
                raise
            continue  # not valid Parquet: left for the load to quarantine
        if n < max_rows // 4:
            small.append(path)
    return small


def _read_compacted(fs: fsspec.AbstractFileSystem, path: str) -> pa.Table | None:
    """A compacted file with its ``_lake_file`` column; None when it is not valid Parquet."""
    try:
        with fs.open(path, "rb") as fh:
            return pq.ParquetFile(fh).read(use_threads=False)
    except Exception as exc:
        if not _corrupt(exc):
            raise
        return None


def _unseen(data: pa.Table, seen: set[str]) -> pa.Table:
    """Drop the rows of a unit-of-work write (``_lake_file`` and ``ingested_at``) already taken from another input,
    and remember this input's writes."""
    stamps = pc.cast(pc.cast(data.column("ingested_at"), pa.int64()), pa.string())
    writes = pc.binary_join_element_wise(data.column(LAKE_FILE), stamps, "|")
    unique = [w for w in pc.unique(writes).to_pylist() if w is not None]
    repeated = [w for w in unique if w in seen]
    seen.update(unique)
    if repeated:
        data = data.filter(pc.fill_null(pc.invert(pc.is_in(writes, value_set=pa.array(repeated))), True))
    return data


def compact(lake_url: str, table: str, origin: str, max_rows: int = 1_000_000, min_files: int = 2) -> Compaction:
    """Merge the per-unit files of ``<table>/<origin>/`` into compacted files of up to ``max_rows`` rows, then
    remove them (see the order above); the origin's small compacted files are merged with them when there are at
    least two, so their number stays bounded. A source that is not valid Parquet is left in place for the warehouse
    load to quarantine and name. Fewer than ``min_files`` per-unit files: nothing is done."""
    fs, root = _fs(lake_url)
    origin = origin.strip("/")
    if not origin or "/" in origin or origin.startswith("_"):
        raise ValueError(f"compact: origin must be one folder name under {table}/ (e.g. 'local'), not {origin!r}")
    if (table, origin) in NOT_COMPACTED:
        raise ValueError(f"compact: {table}/{origin} holds one snapshot file per architecture, read back by its path; "
                         "it is never compacted")
    base = posixpath.join(root, table, origin)
    sources = [p for p in list_files(lake_url, table, origin) if posixpath.dirname(p) != posixpath.join(base, COMPACTED)]
    compacted = _compacted_files(fs, root, table, origin)
    result = Compaction(table, origin, 0, [], 0, [], files_before=len(sources) + len(compacted))
    if len(sources) < min_files:
        return result
    small = _small_compacted(fs, root, table, origin, max_rows)
    if len(small) < 2:
        small = []
    batch: list[pa.Table] = []
    batch_paths: list[str] = []
    rows = 0
    seen: set[str] = set()
    merged = set(small)

    def flush() -> None:
        nonlocal batch, batch_paths, rows
        if batch_paths:
            if rows:
                result.written.append(write_compacted(lake_url, table, origin, pa.concat_tables(batch)))
            for path in batch_paths:  # only after the compacted file is in place
                fs.rm(path)
            result.merged_compacted += sum(p in merged for p in batch_paths)
            result.sources += sum(p not in merged for p in batch_paths)
            result.rows += rows
        batch, batch_paths, rows = [], [], 0

    for path in [*small, *sources]:  # older rows first; each input goes whole into one compacted file
        if path in merged:
            data = _read_compacted(fs, path)
            if data is None:
                continue
            data = pa.Table.from_arrays(  # the table's schema (older files may lack newer columns) plus _lake_file
                [*conform(TABLES[table], data.drop_columns([LAKE_FILE])).columns, data.column(LAKE_FILE)],
                names=[*TABLES[table].schema.names, LAKE_FILE])
        else:
            try:
                data = read_file(lake_url, table, path)
            except CorruptFileError:
                result.skipped.append(path)
                continue
            rel = posixpath.relpath(path, posixpath.join(root, table))[: -len(".parquet")]
            data = data.append_column(LAKE_FILE, pa.array([rel] * data.num_rows, type=pa.string()))
        data = _unseen(data, seen)
        batch.append(data)
        batch_paths.append(path)
        rows += data.num_rows
        if rows >= max_rows:
            flush()
    flush()
    return result


# Origins never compacted: the Hub catalog keeps one snapshot file per architecture, replaced whole by each listing
# and read back by its path (the previous listing, for models gone from the Hub); their count is the number of
# architectures, bounded already.
NOT_COMPACTED = frozenset({("hub_models", "hub")})


def unit_file_counts(lake_url: str) -> list[tuple[str, str, int]]:
    """(table, origin, per-unit files) for every origin folder of every table: files outside ``_compacted``, temporary
    files, the quarantine and the origins of ``NOT_COMPACTED`` left out (one listing per table)."""
    _, root = _fs(lake_url)
    counts = []
    for table in TABLES:
        per_origin: dict[str, int] = {}
        for path in list_files(lake_url, table):
            parts = posixpath.relpath(path, posixpath.join(root, table)).split("/")
            if len(parts) < 2 or parts[0].startswith("_") or parts[1] == COMPACTED:
                continue  # a file directly under the table has no origin to compact into
            per_origin[parts[0]] = per_origin.get(parts[0], 0) + 1
        counts.extend((table, origin, n) for origin, n in sorted(per_origin.items())
                      if (table, origin) not in NOT_COMPACTED)
    return counts


def compaction_due(lake_url: str, min_files: int = 2) -> list[tuple[str, str, int]]:
    """The (table, origin, per-unit files) that hold at least ``min_files`` per-unit files: what to compact."""
    return [c for c in unit_file_counts(lake_url) if c[2] >= min_files]


def compact_due(lake_url: str, min_files: int = 2, max_rows: int = 1_000_000) -> list[Compaction]:
    """Compact every (table, origin) of :func:`compaction_due`, one after the other."""
    return [compact(lake_url, table, origin, max_rows=max_rows, min_files=min_files)
            for table, origin, _ in compaction_due(lake_url, min_files)]
