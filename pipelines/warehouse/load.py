"""Open the DuckDB warehouse and (re)build its base tables from the Parquet lake.

DuckDB allows one writer process: every writer goes through :func:`connect`, which waits for a lock held by
another process instead of failing, and in Dagster every writer asset sits in the ``duckdb`` pool (limit 1).
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from pipelines import lake
from pipelines.warehouse.schema import TABLES

POOL = "duckdb"


def connect(path: str | Path, read_only: bool = False, wait_seconds: float = 120.0) -> duckdb.DuckDBPyConnection:
    """Connect, retrying while another process holds the file lock."""
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}: run `make run` (or the `published` job) first")
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    delay = 0.2
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:  # "Could not set lock on file"
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def load_tables(lake_url: str, warehouse_path: str | Path) -> dict[str, int]:
    """Replace every base table with the lake's content, newest row per key, in one transaction.

    Rebuilding from the lake (rather than appending) is what makes a rerun after an interrupted or repaired
    input leave no duplicates: the lake is the record, the warehouse a deterministic view of it.
    """
    counts: dict[str, int] = {}
    con = connect(warehouse_path)
    try:
        con.execute("BEGIN TRANSACTION")
        for name, spec in TABLES.items():
            arrow = lake.read(lake_url, name)  # noqa: F841 - referenced by name in the SQL below
            key = ", ".join(f'"{k}"' for k in spec.key)
            columns = ", ".join(f'"{c}"' for c in spec.schema.names if c != "ingested_at")
            con.execute(
                f"""
                CREATE OR REPLACE TABLE "{name}" AS
                SELECT {columns} FROM arrow
                QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY ingested_at DESC) = 1
                ORDER BY {key}
                """
            )
            con.execute(f"COMMENT ON TABLE \"{name}\" IS '{spec.description.replace(chr(39), chr(39) * 2)}'")
            counts[name] = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    return counts
