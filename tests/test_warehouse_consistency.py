"""Faults around the warehouse, with real processes: open user sessions never break a materialization and keep
their consistent view; a corrupt lake file is quarantined and reported; a corrupt warehouse is rebuilt; disk full
is named and leaves no temporary file."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from startpoint import lake
from startpoint.published.importer import import_folder
from startpoint.warehouse import load
from startpoint.warehouse.load import load_tables, staging_dir

from published_fixture import SHARED, make_folder, materialize_published

ROOT = Path(__file__).resolve().parent.parent
DUCKDB_CLI = ROOT / ".venv" / "bin" / "duckdb"

READER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
def counts():
    return " ".join(str(con.execute(f"select count(*) from {t}").fetchone()[0]) for t in ("finetune_runs", "hub_models"))
print(counts(), flush=True)
sys.stdin.readline()
print(counts(), flush=True)
"""
OPEN_READER = """
import sys
from startpoint.warehouse.load import connect
try:
    connect(sys.argv[1], read_only=True)
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}")
    sys.exit(1)
"""


def _proc(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=ROOT, text=True, bufsize=1, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _idle_shell(db: Path) -> subprocess.Popen:
    """A user's interactive `duckdb warehouse.duckdb` (read-write), idle; Python when the CLI is not installed."""
    if DUCKDB_CLI.exists():
        shell = _proc([str(DUCKDB_CLI), str(db)])
        shell.stdin.write(".mode csv\n.headers off\n.print ready\n")
    else:
        shell = _proc([sys.executable, "-c", "import sys, duckdb; con = duckdb.connect(sys.argv[1]); print('ready', "
                       "flush=True); [print(con.execute(l).fetchone()[0], flush=True) for l in sys.stdin]", str(db)])
    shell.stdin.flush()
    assert shell.stdout.readline().strip() == "ready", shell.stderr.read()
    return shell


def _counts(db: Path) -> tuple[int, int, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return tuple(con.execute(f"select count(*) from {t}").fetchone()[0]
                     for t in ("finetune_runs", "hub_models", "leaderboard"))
    finally:
        con.close()


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/model-recycling")
def test_open_sessions_never_break_a_materialization_that_rebuilds_a_corrupt_warehouse(tmp_path, monkeypatch):
    home, db = tmp_path / "home", tmp_path / "home" / "warehouse.duckdb"
    # The old warehouse: base tables of a smaller import (no models yet).
    import_folder(make_folder(tmp_path / "small", rows=4, archs=("roberta-base",)), str(home / "lake"))
    old = load_tables(str(home / "lake"), db)
    # DuckDB lets no reader process open a file that another process has open read-write, so the two sessions
    # hold two generations: the reader opens this file; after one more load, the shell opens the next one.
    shell, reader = None, _proc([sys.executable, "-c", READER, str(db)])
    try:
        assert reader.stdout.readline().split() == [str(old["finetune_runs"]), str(old["hub_models"])], \
            reader.stderr.read()
        load_tables(str(home / "lake"), db)
        shell = _idle_shell(db)
        # Then the live path turns to garbage (replaced, so the sessions' own files stay intact): a new reader
        # gets one clear line saying how to rebuild it.
        garbage = tmp_path / "garbage"
        garbage.write_bytes(os.urandom(64 * 1024))
        os.replace(garbage, db)
        opened = subprocess.run([sys.executable, "-c", OPEN_READER, str(db)], cwd=ROOT, capture_output=True,
                                text=True)
        assert opened.returncode == 1
        lines = opened.stdout.strip().splitlines()
        assert len(lines) == 1 and "WarehouseUnreadable" in lines[0] and str(db) in lines[0], opened.stdout
        assert "rerun the `published` job (or `make run`)" in lines[0]
        # The materialization neither waits for the sessions nor minds the garbage: it builds from the lake.
        start = time.monotonic()
        result = materialize_published(home, make_folder(tmp_path / "big", rows=8, archs=("roberta-base",)),
                                       monkeypatch)
        elapsed = time.monotonic() - start
        assert result.success
        assert elapsed < 60, elapsed  # it used to wait 120 s for the shell's lock, then fail
        # the open reader still sees its old file, consistently; a new reader sees the new one, models included
        out, err = reader.communicate("\n", timeout=30)
        assert reader.returncode == 0, err
        assert out.split() == [str(old["finetune_runs"]), str(old["hub_models"])]
        new = _counts(db)
        assert new[0] > old["finetune_runs"] and new[1] > old["hub_models"] and new[2] > 0
        # the idle shell is not broken: it answers from its own (old) file and exits cleanly
        shell.stdin.write("select count(*) from finetune_runs;\n")
        shell.stdin.flush()
        assert shell.stdout.readline().strip() == str(old["finetune_runs"])
        shell.stdin.close()
        assert shell.wait(timeout=30) == 0, shell.stderr.read()
    finally:
        for p in (shell, reader):
            if p is not None:
                p.kill()
    assert not staging_dir(db).exists() and not Path(f"{db}.wal").exists()
    assert _counts(db) == new  # the shell's exit touched only its own file


def test_a_load_over_a_corrupt_warehouse_rebuilds_it_from_the_lake_and_says_so(tmp_path, caplog):
    url, db = str(tmp_path / "lake"), tmp_path / "warehouse.duckdb"
    lake.write(url, "datasets", "user/a", [{"dataset_id": "a"}])
    db.write_bytes(b"garbage" * 1000)
    with caplog.at_level(logging.WARNING, logger="startpoint.warehouse"):
        assert load_tables(url, db)["datasets"] == 1
    assert any(str(db) in r.message and "rebuilding it from the lake" in r.message for r in caplog.records)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select dataset_id from datasets").fetchall() == [("a",)]


def test_a_truncated_lake_file_is_quarantined_named_and_the_others_load(tmp_path, caplog):
    url, db = str(tmp_path / "lake"), tmp_path / "warehouse.duckdb"
    good = lake.write(url, "datasets", "user/a", [{"dataset_id": "a"}])
    bad = lake.write(url, "datasets", "user/b", [{"dataset_id": "b"}])
    data = Path(bad).read_bytes()
    Path(bad).write_bytes(data[: len(data) // 2])
    with pytest.raises(lake.CorruptFileError, match=str(bad)):  # a plain read names the file
        lake.read(url, "datasets")
    with caplog.at_level(logging.WARNING, logger="startpoint.warehouse"):
        counts = load_tables(url, db)
    assert counts["datasets"] == 1
    [q] = counts.quarantined
    assert (q.table, q.path) == ("datasets", bad) and "magic bytes" in q.reason
    assert q.moved_to == str(tmp_path / "lake" / "_quarantine" / "datasets" / "user" / "b.parquet")
    assert Path(q.moved_to).read_bytes() == data[: len(data) // 2] and not Path(bad).exists()
    assert any(bad in r.message and "_quarantine" in r.message for r in caplog.records)
    assert lake.list_files(url, "datasets") == [good]
    assert load_tables(url, db)["datasets"] == 1  # the next reload is clean


def test_the_warehouse_asset_reports_quarantined_files(tmp_path):
    import dagster as dg

    from assets.resources import LakeResource, WarehouseResource
    from assets.warehouse import warehouse_tables

    url = str(tmp_path / "lake")
    lake.write(url, "datasets", "user/a", [{"dataset_id": "a"}])
    bad = lake.write(url, "probe_scores", "user/p", [])
    Path(bad).write_bytes(b"PAR1 not really")
    result = dg.materialize([warehouse_tables], resources={
        "lake": LakeResource(url=url), "warehouse": WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))},
        instance=dg.DagsterInstance.ephemeral())
    assert result.success
    meta = {m.asset_key.to_user_string(): m.metadata for m in result.asset_materializations_for_node("warehouse_tables")}
    probes, datasets = meta["probe_scores_table"], meta["datasets_table"]
    assert probes["quarantined_files"].value == 1 and bad in probes["quarantined"].value
    assert datasets["quarantined_files"].value == 0 and datasets["dagster/row_count"].value == 1


def _no_tmp(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.name.endswith(".tmp") or ".staging" in p.name]


def test_disk_full_writing_the_lake_names_the_cause_and_leaves_no_tmp_file(tmp_path, monkeypatch):
    url = str(tmp_path / "lake")

    def full(table, where, **kwargs):
        where.write(b"PAR1partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lake.pq, "write_table", full)
    with pytest.raises(OSError, match="disk full writing .*datasets/user/a.parquet") as info:
        lake.write(url, "datasets", "user/a", [{"dataset_id": "a"}])
    assert info.value.errno == errno.ENOSPC
    assert _no_tmp(tmp_path) == [] and lake.list_files(url, "datasets") == []


def test_disk_full_building_the_warehouse_names_the_cause_and_keeps_the_live_file(tmp_path, monkeypatch):
    url, db = str(tmp_path / "lake"), tmp_path / "warehouse.duckdb"
    lake.write(url, "datasets", "user/a", [{"dataset_id": "a"}])
    load_tables(url, db)
    before = db.read_bytes()
    lake.write(url, "datasets", "user/b", [{"dataset_id": "b"}])

    def full(*args, **kwargs):
        raise duckdb.IOException('IO Error: Could not write file "warehouse.duckdb": No space left on device')

    monkeypatch.setattr(load, "_seal", full)
    with pytest.raises(OSError, match="disk full while rebuilding the warehouse") as info:
        load_tables(url, db)
    assert info.value.errno == errno.ENOSPC and str(db) in str(info.value)
    assert db.read_bytes() == before and _no_tmp(tmp_path) == []


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_really_full_disk(tmp_path):
    """On a 1 MiB tmpfs (only where the test may mount one): the lake write and the warehouse rebuild both fail
    naming the cause, and leave no temporary or staging file."""
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        url, db = str(disk / "lake"), disk / "warehouse.duckdb"
        with pytest.raises(OSError, match="disk full writing"):
            lake.write(url, "datasets", "user/big", [{"dataset_id": os.urandom(512).hex()} for _ in range(3000)])
        assert _no_tmp(disk) == []
        lake.write(url, "datasets", "user/a", [{"dataset_id": "a"}])
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:  # fill the disk: no room for the warehouse
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        with pytest.raises(OSError, match="disk full") as info:
            load_tables(url, db)
        assert info.value.errno == errno.ENOSPC
        assert _no_tmp(disk) == []
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
