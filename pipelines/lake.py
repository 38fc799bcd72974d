"""The Parquet results lake: where every run and import writes, on any fsspec filesystem.

Layout: ``<lake>/<table>/<origin>/<...>.parquet``, one file per unit of work (a finetune run, a probe, an
imported architecture). Files are written to a temporary name and renamed into place, so a killed run leaves
no partial file that the loader would read; readers skip anything that is not ``*.parquet``.
Independent writers never touch the same file, which is what lets partitions run on many machines at once.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import uuid
from collections.abc import Iterable, Mapping
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
    with fs.open(tmp, "wb") as fh:
        pq.write_table(arrow, fh)
    fs.mv(tmp, final)
    return final


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


def read(lake_url: str, table: str, prefix: str = "") -> pa.Table:
    """All files of a table, each cast to the canonical schema (older files may lack newer columns)."""
    spec = TABLES[table]
    fs, _ = _fs(lake_url)
    parts = []
    for path in list_files(lake_url, table, prefix):
        with fs.open(path, "rb") as fh:
            parts.append(conform(spec, pq.read_table(fh)))
    if not parts:
        return spec.schema.empty_table()
    return pa.concat_tables(parts)
