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
import pyarrow.parquet as pq

from pipelines.warehouse.schema import TABLES, TableSpec


def _fs(lake_url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, root = fsspec.core.url_to_fs(lake_url)
    return fs, root.rstrip("/")


def conform(spec: TableSpec, data: pa.Table | Iterable[Mapping[str, Any]], ingested_at: dt.datetime | None = None) -> pa.Table:
    """Cast rows to the table's schema; columns the schema does not know are a programming error."""
    if not isinstance(data, pa.Table):
        rows = list(data)
        unknown = sorted({k for r in rows for k in r} - set(spec.schema.names))
        if unknown:
            raise ValueError(f"{spec.name}: unknown column(s) {unknown}; add them to pipelines/warehouse/schema.py")
        data = pa.Table.from_pylist(rows, schema=spec.schema.remove(spec.schema.get_field_index("ingested_at")))
    unknown = sorted(set(data.column_names) - set(spec.schema.names))
    if unknown:
        raise ValueError(f"{spec.name}: unknown column(s) {unknown}; add them to pipelines/warehouse/schema.py")
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


def disk_full(exc: BaseException) -> bool:
    """ENOSPC, whether as an OSError or as text inside a DuckDB or Arrow error."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return "no space left on device" in text or "disk quota exceeded" in text


def exists(lake_url: str, table: str, relpath: str) -> bool:
    fs, root = _fs(lake_url)
    return fs.exists(posixpath.join(root, table, relpath + ".parquet"))


def list_files(lake_url: str, table: str, prefix: str = "") -> list[str]:
    """Complete Parquet files of a table (temporary files of runs in flight are skipped)."""
    fs, root = _fs(lake_url)
    base = posixpath.join(root, table, prefix) if prefix else posixpath.join(root, table)
    if not fs.exists(base):
        return []
    found = fs.find(base)
    return sorted(p for p in found if p.endswith(".parquet") and not posixpath.basename(p).startswith("."))


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
    """All files of a table, each cast to the canonical schema (older files may lack newer columns).

    A file that is not valid Parquet raises :class:`CorruptFileError` naming it; with a ``quarantine`` list, the
    file is moved under ``<lake>/_quarantine/`` instead, recorded in the list, and the other files are read."""
    spec = TABLES[table]
    fs, _ = _fs(lake_url)
    parts = []
    for path in list_files(lake_url, table, prefix):
        try:
            with fs.open(path, "rb") as fh:
                data = pq.read_table(fh)
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
                continue
            quarantine.append(Quarantined(table, path, moved, reason))
            continue
        try:
            parts.append(conform(spec, data))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc
    if not parts:
        return spec.schema.empty_table()
    return pa.concat_tables(parts)
