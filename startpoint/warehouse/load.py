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
import pyarrow as pa

from startpoint import lake
from startpoint.hub.architectures import pretrained_aliases
from startpoint.schema import TABLES, TableSpec

POOL = "duckdb"
REBUILD_HINT = "rerun the `published` job (or `make run`) to rebuild it from the lake"

_log = logging.getLogger("startpoint.warehouse")


class WarehouseUnreadable(duckdb.IOException):
    """The warehouse file exists but DuckDB cannot open it (corrupt, truncated, not a DuckDB file)."""


class LoadCounts(dict):
    """Rows per base table, plus the lake files moved to quarantine by this load (``lake.Quarantined``)."""

    def __init__(self, counts: dict[str, int], quarantined: list[lake.Quarantined],
                 modes: dict[str, str] | None = None):
        super().__init__(counts)
        self.quarantined = quarantined
        self.modes = modes or {}  # table -> rebuilt | appended | unchanged


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _printable(text: str) -> str:
    """`text` with control characters escaped, so a lake file name holding escape sequences never reaches a log raw."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


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


def pending_path(warehouse_path: str | Path) -> Path:
    """Where a writer that publishes later (``staged(publish=False)``) leaves its sealed file: base tables loaded
    for the SQL models of the same publish, which build on it and swap it in as the live file."""
    live = Path(warehouse_path).absolute()
    return live.parent / f".{live.name}.pending"


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
           publish: bool = True, wait_seconds: float = 1800.0) -> Iterator[Path]:
    """One writer step: yield a staging copy of the warehouse to write; on a clean exit it replaces the live file
    atomically. On an error (or a kill) the live file is untouched and the staging files are removed (the next
    writer removes those of a killed one). ``copy_live=False`` starts from an empty file; ``require_live`` makes
    an unreadable live file an error instead of a fresh start (dbt needs the base tables in it).

    A publish in two steps (base tables, then the SQL models built on them) stays one swap for readers: the first
    writer passes ``publish=False`` and leaves its sealed file at ``pending_path``; the next writer starts from
    the pending file instead of the live one, and its swap publishes both steps at once and removes the pending
    file. A reader sees the old warehouse or the new one, never new base tables beside old (or no) models."""
    log = log or _log
    live = Path(warehouse_path).absolute()
    live.parent.mkdir(parents=True, exist_ok=True)
    folder = staging_dir(live)
    staging = folder / live.name
    pending = pending_path(live)
    with _writer_lock(live, log, wait_seconds):
        if folder.exists():
            left = sorted(p.name for p in folder.iterdir())
            shutil.rmtree(folder)
            log.warning(f"removed {folder} ({', '.join(left) or 'empty'}): staging files of a writer that was "
                        "killed before it finished; the live warehouse was never touched by it")
        try:
            folder.mkdir()
            source = pending if pending.exists() else live
            if copy_live and source.exists():
                _copy_live(source, staging, log, require_live)
            yield staging
            _seal(staging)
            os.replace(staging, live if publish else pending)
            if publish:
                pending.unlink(missing_ok=True)
            _fsync(live.parent)
            if publish:
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


def load_tables(lake_url: str, warehouse_path: str | Path, log: Any = None, full: bool = False,
                publish: bool = True) -> LoadCounts:
    """Bring every base table up to date with the lake, newest row per key, in a staging copy swapped in whole.

    The warehouse remembers which lake files it holds (``_lake.loaded_files``: path, size, stamp). A table whose
    remembered files are all unchanged gets only its new files appended; a table whose files changed, vanished
    (a compaction, a re-import) or whose new rows repeat a key already loaded is rebuilt from all its files, as is
    every table when the lake, the schema or the warehouse (absent, unreadable) changed, or with ``full=True``.
    Either way the result is what a rebuild gives: the lake is the record, the warehouse a deterministic view of
    it, so a rerun after an interrupted or repaired input leaves no duplicates. DuckDB reads the Parquet files
    itself (streaming, spilling to the staging folder past ``STARTPOINT_DUCKDB_MEMORY``, default 4GB).

    A lake file that is not valid Parquet is moved to ``<lake>/_quarantine/`` and reported (WARNING and
    ``.quarantined``); the other files load. A corrupt live warehouse does not matter: the tables come from the lake.
    ``.modes`` says per table whether it was ``rebuilt``, ``appended`` or ``unchanged``. With ``publish=False`` the
    tables wait in the pending file for the SQL models of the same publish (see ``staged``).
    """
    log = log or _log
    quarantined: list[lake.Quarantined] = []
    try:
        with staged(warehouse_path, log=log, publish=publish) as staging:
            counts, modes = _load_into(lake_url, staging, quarantined, full=full)
    finally:
        for q in quarantined:
            log.warning(_printable(f"quarantined {q.path} -> {q.moved_to}: {q.reason}"))
    return LoadCounts(counts, quarantined, modes)


MEMORY_ENV = "STARTPOINT_DUCKDB_MEMORY"
STATE = "_lake"  # schema of the loader's own bookkeeping inside the warehouse


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_string(t):
        return "VARCHAR"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"{_duck_type(t.value_type)}[]"
    if pa.types.is_int32(t):
        return "INTEGER"
    raise TypeError(f"no DuckDB type for {t}: extend startpoint/warehouse/load.py:_duck_type")


def _fingerprint(lake_url: str, spec: TableSpec) -> str:
    """What a table's loaded rows depend on besides its files: a change rebuilds it (an alias added to
    startpoint/hub/architectures.py maps the rows already loaded too)."""
    ids = sorted(pretrained_aliases().items()) if set(MODEL_ID_COLUMNS) & set(spec.schema.names) else []
    return f"{lake_url}|{spec.schema.to_string(show_schema_metadata=False)}|{spec.key}" + (f"|{ids}" if ids else "")


def _sql_text(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _configure(con: duckdb.DuckDBPyConnection, path: Path, lake_url: str) -> None:
    """Spill to the staging folder (removed with it) instead of running out of memory; read remote lakes through
    their fsspec filesystem."""
    con.execute(f"SET temp_directory = {_sql_text(str(path.parent / 'spill'))}")
    con.execute(f"SET memory_limit = {_sql_text(os.environ.get(MEMORY_ENV, '4GB'))}")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET parquet_metadata_cache = true")
    if not lake.is_local(lake_url):
        con.register_filesystem(lake.filesystem(lake_url))


def _previous_state(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, dict[str, tuple[int, str]]]]:
    """table -> (fingerprint, {path: (size, stamp)}) as the warehouse's last load left it; {} when unknown."""
    try:
        tables = dict(con.execute(f"SELECT table_name, fingerprint FROM {STATE}.tables").fetchall())
        rows = con.execute(f"SELECT table_name, path, size, stamp FROM {STATE}.loaded_files").fetchall()
    except duckdb.CatalogException:
        return {}
    state: dict[str, tuple[str, dict[str, tuple[int, str]]]] = {t: (fp, {}) for t, fp in tables.items()}
    for table, path, size, stamp in rows:
        if table in state:
            state[table][1][path] = (size, stamp)
    return state


def _load_into(lake_url: str, path: Path, quarantined: list[lake.Quarantined], full: bool = False
               ) -> tuple[dict[str, int], dict[str, str]]:
    counts: dict[str, int] = {}
    modes: dict[str, str] = {}
    con = duckdb.connect(str(path))
    try:
        _configure(con, path, lake_url)
        previous = {} if full else _previous_state(con)
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE}")
        con.execute(f"CREATE TABLE IF NOT EXISTS {STATE}.tables (table_name VARCHAR PRIMARY KEY, fingerprint VARCHAR)")
        con.execute(f"CREATE TABLE IF NOT EXISTS {STATE}.loaded_files "
                    "(table_name VARCHAR, path VARCHAR, size BIGINT, stamp VARCHAR)")
        existing = {r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()}
        for name, spec in TABLES.items():
            files = {f.path: (f.size, f.stamp) for f in lake.list_file_info(lake_url, name)}
            fingerprint, before = previous.get(name, (None, None))
            incremental = (before is not None and fingerprint == _fingerprint(lake_url, spec) and name in existing
                           and all(files.get(p) == v for p, v in before.items()))
            if incremental:
                new = {p: v for p, v in files.items() if p not in before}
                if not new:
                    modes[name] = "unchanged"
                elif _append(con, lake_url, spec, new, quarantined):
                    modes[name] = "appended"
                else:
                    incremental = False  # a new row repeats a loaded key: newest-wins needs every file
            if not incremental:
                _rebuild(con, lake_url, spec, files, quarantined)
                modes[name] = "rebuilt"
            gone = {q.path for q in quarantined}
            if modes[name] == "rebuilt":
                con.execute(f"DELETE FROM {STATE}.loaded_files WHERE table_name = ?", [name])
                record = [p for p in files if p not in gone]
            else:
                record = [p for p in files if p not in before and p not in gone]
            if record:
                _loaded = pa.table({"table_name": [name] * len(record), "path": record,  # noqa: F841 - used in SQL
                                    "size": [files[p][0] for p in record], "stamp": [files[p][1] for p in record]})
                con.execute(f"INSERT INTO {STATE}.loaded_files SELECT * FROM _loaded")
            con.execute(f"INSERT OR REPLACE INTO {STATE}.tables VALUES (?, ?)", [name, _fingerprint(lake_url, spec)])
            counts[name] = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
    finally:
        con.close()
    return counts, modes


MODEL_ID_COLUMNS = ("model_id", "base_model")


def _warehouse_id_sql(column: str) -> str:
    """SQL mapping a pretrained model's other ids in `column` to its warehouse id (startpoint.hub.architectures).

    The writers record warehouse ids already (`warehouse_model_id`); this is for lake files written before they
    did, which stay: the lake is the record, and `offline: keep` keeps a Hub catalog byte for byte. It is done
    here, on the way in, and not in a dbt staging model, because the `relationships` tests check the base tables
    themselves (sql/models/sources.yml) and every dbt model reads them: one place, before anything looks."""
    aliases = pretrained_aliases()
    if not aliases:
        return f'"{column}"'
    cases = " ".join(f"WHEN {_sql_text(alias)} THEN {_sql_text(pretrained)}"
                     for alias, pretrained in sorted(aliases.items()))
    return f'CASE "{column}" {cases} ELSE "{column}" END'


def _columns(spec: TableSpec, present: set[str]) -> str:
    """The schema's columns cast to their types; a column no file has is NULL (older files lack newer columns).
    Model ids are warehouse ids (:func:`_warehouse_id_sql`)."""
    out = []
    for field in spec.schema:
        if field.name not in present:
            value = "NULL"
        elif field.name in MODEL_ID_COLUMNS:
            value = _warehouse_id_sql(field.name)
        else:
            value = f'"{field.name}"'
        out.append(f'CAST({value} AS {_duck_type(field.type)}) AS "{field.name}"')
    return ", ".join(out)


SMALL_FILE = 1 << 20  # bytes: below this a file is read with Arrow (DuckDB's fixed cost per file is higher)


def _scan(con: duckdb.DuckDBPyConnection, lake_url: str, spec: TableSpec, files: dict[str, tuple[int, str]],
          quarantined: list[lake.Quarantined], sql: str | list[str]) -> None:
    """Run ``sql`` (one statement or several), whose ``{src}`` becomes a subquery with the schema's columns over ``files``.

    Large files (compacted ones) are read by DuckDB itself, streaming (``read_parquet``, union by name: older
    files may lack newer columns); small ones (one per run) are read with Arrow, as DuckDB's cost per file is a
    few times Arrow's, and handed to DuckDB as one table, so the memory they take is bounded by compaction.
    Corrupt files are quarantined and the scan retried; unknown columns are an error naming a file."""
    small = [p for p, (size, _) in files.items() if size < SMALL_FILE]
    large = [p for p, (size, _) in files.items() if size >= SMALL_FILE]
    parts = []
    for path in small:
        try:
            data = lake.read_raw(lake_url, spec.name, path, quarantined)
        except FileNotFoundError:
            continue  # gone since the listing: the next load lists again
        if data is None:
            continue
        unknown = sorted(set(data.column_names) - set(spec.schema.names))
        if unknown:
            raise ValueError(f"{path}: {spec.name}: unknown column(s) {unknown}; add them to "
                             "startpoint/schema.py")
        parts.append(data)
    arrow = pa.concat_tables(parts, promote_options="permissive") if parts else None
    while True:
        sources, params = [], {}
        if arrow is not None:
            con.register("_small_files", arrow)
            sources.append(f"SELECT {_columns(spec, set(arrow.column_names))} FROM _small_files")
        names = [lake.duckdb_path(lake_url, p) for p in large]
        try:
            if large:
                present = {r[0] for r in con.execute(
                    "DESCRIBE SELECT * FROM read_parquet($files, union_by_name = true)", {"files": names}).fetchall()}
                unknown = sorted(present - set(spec.schema.names) - {lake.LAKE_FILE})
                if unknown:
                    _unknown_columns(con, spec, names, unknown)
                sources.append(f"SELECT {_columns(spec, present)} FROM read_parquet($files, union_by_name = true)")
                params = {"files": names}
            if not sources:
                sources.append(f"SELECT {_columns(spec, set())} WHERE false")
            src = "(" + " UNION ALL ".join(sources) + ")"
            for statement in [sql] if isinstance(sql, str) else sql:
                if "{src}" in statement:
                    con.execute(statement.format(src=src), params)
                else:
                    con.execute(statement)
            return
        except (duckdb.InvalidInputException, duckdb.IOException) as exc:  # what a bad Parquet file raises
            if lake.disk_full(exc) or not large:
                raise
            bad = _find_corrupt(lake_url, spec, large, names, exc, quarantined)
            large = [p for p in large if p not in bad]
        finally:
            if arrow is not None:
                con.unregister("_small_files")


def _unknown_columns(con: duckdb.DuckDBPyConnection, spec: TableSpec, names: list[str], unknown: list[str]) -> None:
    row = con.execute("SELECT file_name, name FROM parquet_schema($files) WHERE name IN (SELECT unnest($cols)) LIMIT 1",
                      {"files": names, "cols": unknown}).fetchone()
    where = row[0] if row else "a lake file"
    raise ValueError(f"{where}: {spec.name}: unknown column(s) {unknown}; add them to startpoint/schema.py")


def _find_corrupt(lake_url: str, spec: TableSpec, files: list[str], names: list[str], exc: duckdb.Error,
                  quarantined: list[lake.Quarantined]) -> set[str]:
    """The files behind a failed scan: the one DuckDB names first, then (only if that one reads) every file, one
    by one. Corrupt files are quarantined with Arrow's verdict and reason (``lake.read_file``); a file gone since
    the listing is dropped from this load (the next load lists again). None found: the error is not about the
    files' content, and it is raised (a filesystem error such as EACCES is raised by ``read_file`` itself)."""
    text = str(exc)
    named = [p for p, n in zip(files, names) if f"'{n}'" in text or f'"{n}"' in text]
    for suspects in ([named, [p for p in files if p not in named]] if named else [files]):
        bad: set[str] = set()
        before = len(quarantined)
        for path in suspects:
            try:
                lake.read_file(lake_url, spec.name, path, quarantined)
            except FileNotFoundError:
                bad.add(path)
        bad |= {q.path for q in quarantined[before:]}
        if bad:
            return bad
    raise exc


SORT_ROWS = 1_000_000


def _newest_per_key(spec: TableSpec, columns: str, key: str) -> str:
    """SQL keeping the newest row per key of ``{src}``. Keys are almost always unique (a rerun rewrites its own
    file), so the window that picks the newest row runs only over the rows whose key repeats (``_dups``, found by a
    hash aggregate over the key columns alone, which spills); a window over every wide row does not fit in memory
    at 18M rows. NULL key parts match, as in ``PARTITION BY``."""
    same = " AND ".join(f'd."{k}" IS NOT DISTINCT FROM s."{k}"' for k in spec.key)
    return f"""
        SELECT {columns} FROM {{src}} s WHERE NOT EXISTS (SELECT 1 FROM _dups d WHERE {same})
        UNION ALL
        SELECT {columns} FROM (SELECT * FROM {{src}} s SEMI JOIN _dups d ON {same})
        QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY ingested_at DESC) = 1
    """


def _scan_newest(con: duckdb.DuckDBPyConnection, lake_url: str, spec: TableSpec, files: dict[str, tuple[int, str]],
                 quarantined: list[lake.Quarantined], into: str) -> str:
    """Create ``into`` (e.g. ``TEMP TABLE _new``) from the newest row per key of ``files``; returns the key list."""
    key = ", ".join(f'"{k}"' for k in spec.key)
    columns = ", ".join(f'"{c}"' for c in spec.schema.names if c != "ingested_at")
    _scan(con, lake_url, spec, files, quarantined, [
        f"CREATE OR REPLACE TEMP TABLE _dups AS SELECT {key} FROM {{src}} GROUP BY ALL HAVING count(*) > 1",
        f"CREATE OR REPLACE {into} AS {_newest_per_key(spec, columns, key)}",
        "DROP TABLE _dups",
    ])
    return key


def _rebuild(con: duckdb.DuckDBPyConnection, lake_url: str, spec: TableSpec, files: dict[str, tuple[int, str]],
             quarantined: list[lake.Quarantined]) -> None:
    """Replace the table with the newest row per key of ``files`` (sorted by key up to ``SORT_ROWS`` rows)."""
    key = _scan_newest(con, lake_url, spec, files, quarantined, f'TABLE main."{spec.name}"')
    # Sorted by key as the old loader left every table, up to SORT_ROWS rows; a sort of 18M wide rows ran out of
    # memory at the 4GB limit, and nothing downstream depends on the physical order.
    if con.execute(f'SELECT count(*) FROM main."{spec.name}"').fetchone()[0] <= SORT_ROWS:
        con.execute(f'CREATE OR REPLACE TABLE main."{spec.name}" AS SELECT * FROM main."{spec.name}" ORDER BY {key}')
    con.execute(f"COMMENT ON TABLE main.\"{spec.name}\" IS {_sql_text(spec.description)}")


def _append(con: duckdb.DuckDBPyConnection, lake_url: str, spec: TableSpec, files: dict[str, tuple[int, str]],
            quarantined: list[lake.Quarantined]) -> bool:
    """Append the newest row per key of ``files`` when none of their keys is loaded already; False (nothing
    changed) when one is, so the caller rebuilds the table."""
    key = _scan_newest(con, lake_url, spec, files, quarantined, "TEMP TABLE _new")
    try:
        same = " AND ".join(f'n."{k}" IS NOT DISTINCT FROM t."{k}"' for k in spec.key)
        repeated = con.execute(f'SELECT count(*) FROM _new n SEMI JOIN main."{spec.name}" t ON {same}').fetchone()[0]
        if repeated:
            return False
        con.execute(f'INSERT INTO main."{spec.name}" SELECT * FROM _new ORDER BY {key}')
        return True
    finally:
        con.execute("DROP TABLE IF EXISTS _new")
