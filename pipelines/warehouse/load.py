"""Open the DuckDB warehouse for reading, and rebuild it from the Parquet lake without ever writing the live file.

DuckDB allows one writer process per file, and a reader cannot open a file another process writes. So writers
never open the live ``warehouse.duckdb``: every writer step goes through :func:`staged`, which

1. takes the writer lock ``.warehouse.duckdb.lock`` beside the warehouse (one writer step at a time; in Dagster
   every writer also sits in the ``duckdb`` pool, limit 1, so the lock is only contended by writers outside
   Dagster such as ``startpoint recommend --run``), and removes (and names in a log line) a staging folder left
   by a killed writer;
2. copies the live file into the staging folder ``.warehouse.duckdb.staging/warehouse.duckdb`` (same file name,
   so DuckDB's catalog is still called ``warehouse``) -- a plain byte copy, which no other process's DuckDB lock
   can block; an unreadable (corrupt) live file is skipped, and the load step then builds from the lake alone;
3. lets the step write the staging file (the base tables, or dbt with ``STARTPOINT_WAREHOUSE`` pointing at it);
4. checkpoints and closes it (no ``.wal`` is left), fsyncs it and ``os.replace``-s it over the live file.

A reader that has the old file open keeps reading the old inode, a consistent snapshot; a reader that opens the
path afterwards sees the new file. An idle ``duckdb warehouse.duckdb`` shell, read-write or read-only, blocks
nothing. See docs/warehouse.md, "Readers during a rebuild".
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from pipelines import lake
from pipelines.warehouse.schema import TABLES

POOL = "duckdb"
REBUILD_HINT = "rerun the `published` job (or `make run`) to rebuild it from the lake"

_log = logging.getLogger("startpoint.warehouse")


class WarehouseUnreadable(duckdb.IOException):
    """The warehouse file exists but DuckDB cannot open it (corrupt, truncated, not a DuckDB file)."""


class LoadCounts(dict):
    """Rows per base table, plus the lake files moved to quarantine by this load (``lake.Quarantined``)."""

    def __init__(self, counts: dict[str, int], quarantined: list[lake.Quarantined]):
        super().__init__(counts)
        self.quarantined = quarantined


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _is_unreadable(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("not a valid duckdb database", "corrupt", "checksum", "invalid database",
                                   "failed to read database header", "unsupported database", "serialization error"))


def connect(path: str | Path, read_only: bool = False, wait_seconds: float = 120.0) -> duckdb.DuckDBPyConnection:
    """Connect a reader, retrying while another process holds the file lock (only a user's own read-write
    session on the live file can: pipeline writers never open it). An unreadable file raises
    :class:`WarehouseUnreadable` with one line saying how to rebuild it."""
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
            if _is_unreadable(exc):
                raise WarehouseUnreadable(
                    f"the warehouse {path} is unreadable ({_one_line(exc)[:200]}); it is derived from the lake: "
                    f"{REBUILD_HINT}") from None
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def staging_dir(warehouse_path: str | Path) -> Path:
    live = Path(warehouse_path).absolute()
    return live.parent / f".{live.name}.staging"


def lock_path(warehouse_path: str | Path) -> Path:
    live = Path(warehouse_path).absolute()
    return live.parent / f".{live.name}.lock"


@contextmanager
def _writer_lock(live: Path, log: Any, wait_seconds: float) -> Iterator[None]:
    """An exclusive flock on ``.<name>.lock``; the kernel drops it when the holder dies, so a killed writer never
    leaves a stale lock. The file says who holds it (best effort: unbuffered, so a full disk cannot fail it)."""
    fd = os.open(lock_path(live), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another writer ({holder}) has been rebuilding {live} for over "
                                       f"{wait_seconds:.0f} s; wait for it or stop it") from None
                if not announced:
                    log.info(f"waiting for another writer of {live} ({holder}) to finish")
                    announced = True
                time.sleep(0.2)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)  # releases the flock


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_live(live: Path, staging: Path, log: Any, require_live: bool) -> None:
    """Byte-copy the live file (no DuckDB lock is needed to read it) and check that DuckDB opens the copy."""
    shutil.copyfile(live, staging)
    try:
        duckdb.connect(str(staging)).close()
        return
    except duckdb.Error as exc:
        if lake.disk_full(exc):
            raise
        problem = _one_line(exc)[:200]
    for p in (staging, Path(f"{staging}.wal")):
        p.unlink(missing_ok=True)
    if require_live:
        raise WarehouseUnreadable(f"the warehouse {live} is unreadable ({problem}); materialize `warehouse_tables` "
                                  f"first: {REBUILD_HINT}")
    log.warning(f"the warehouse {live} is unreadable ({problem}); rebuilding it from the lake alone "
                "(it is derived from the lake); the SQL models come back with the next dbt build")


def _seal(staging: Path) -> None:
    """Checkpoint and close, so the file is complete without its WAL; then flush it to disk."""
    con = duckdb.connect(str(staging))
    try:
        con.execute("CHECKPOINT")
    finally:
        con.close()
    wal = Path(f"{staging}.wal")
    if wal.exists():
        raise RuntimeError(f"{wal} is still there after a checkpoint: is another process writing {staging}?")
    _fsync(staging)


@contextmanager
def staged(warehouse_path: str | Path, *, log: Any = None, copy_live: bool = True, require_live: bool = False,
           wait_seconds: float = 1800.0) -> Iterator[Path]:
    """One writer step: yield a staging copy of the warehouse to write; on a clean exit it replaces the live file
    atomically. On an error (or a kill) the live file is untouched and the staging files are removed (the next
    writer removes those of a killed one). ``copy_live=False`` starts from an empty file; ``require_live`` makes
    an unreadable live file an error instead of a fresh start (dbt needs the base tables in it)."""
    log = log or _log
    live = Path(warehouse_path).absolute()
    live.parent.mkdir(parents=True, exist_ok=True)
    folder = staging_dir(live)
    staging = folder / live.name
    with _writer_lock(live, log, wait_seconds):
        if folder.exists():
            left = sorted(p.name for p in folder.iterdir())
            shutil.rmtree(folder)
            log.warning(f"removed {folder} ({', '.join(left) or 'empty'}): staging files of a writer that was "
                        "killed before it finished; the live warehouse was never touched by it")
        try:
            folder.mkdir()
            if copy_live and live.exists():
                _copy_live(live, staging, log, require_live)
            yield staging
            _seal(staging)
            os.replace(staging, live)
            _fsync(live.parent)
            _drop_foreign_wal(live, log)
        except BaseException as exc:
            if lake.disk_full(exc):
                kept = f"the live warehouse {live} is unchanged" if live.exists() else "no warehouse was written"
                raise OSError(errno.ENOSPC, f"disk full while rebuilding the warehouse in {folder} "
                              f"({_one_line(exc)[:200]}); {kept} and the staging files were removed: free space on "
                              "that disk and rerun") from exc
            raise
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _drop_foreign_wal(live: Path, log: Any) -> None:
    """A ``.wal`` beside the new live file belongs to a user's read-write session on the file just replaced
    (pipeline writers never open the live file). DuckDB would replay it into the new file for every new reader,
    so it goes; that session keeps its own changes in its own (replaced) file until it closes."""
    wal = Path(f"{live}.wal")
    try:
        wal.unlink()
    except FileNotFoundError:
        return
    log.warning(f"removed {wal}: the write-ahead log of a read-write session on the replaced warehouse file; "
                "tables written into the warehouse by hand do not survive a rebuild (ATTACH your own file)")


def load_tables(lake_url: str, warehouse_path: str | Path, log: Any = None) -> LoadCounts:
    """Replace every base table with the lake's content, newest row per key, in a staging copy swapped in whole.

    Rebuilding from the lake (rather than appending) is what makes a rerun after an interrupted or repaired
    input leave no duplicates: the lake is the record, the warehouse a deterministic view of it. A lake file that
    is not valid Parquet is moved to ``<lake>/_quarantine/`` and reported (WARNING and ``.quarantined``); the
    other files load. A corrupt live warehouse does not matter: the base tables come from the lake alone.
    """
    log = log or _log
    quarantined: list[lake.Quarantined] = []
    try:
        with staged(warehouse_path, log=log) as staging:
            counts = _load_into(lake_url, staging, quarantined)
    finally:
        for q in quarantined:
            log.warning(f"quarantined {q.path} -> {q.moved_to}: {q.reason}")
    return LoadCounts(counts, quarantined)


def _load_into(lake_url: str, path: Path, quarantined: list[lake.Quarantined]) -> dict[str, int]:
    counts: dict[str, int] = {}
    con = duckdb.connect(str(path))
    try:
        con.execute("BEGIN TRANSACTION")
        for name, spec in TABLES.items():
            arrow = lake.read(lake_url, name, quarantine=quarantined)  # noqa: F841 - used by name in the SQL
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
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        raise
    finally:
        con.close()
    return counts
