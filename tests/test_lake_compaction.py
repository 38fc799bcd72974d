"""Compaction that runs by itself keeps the lake's file count bounded: `lake.compact` folds small compacted files
back in, `lake.compaction_due` says which origins need it, the `lake_compaction` sensor requests `compact_lake`,
the job and `startpoint compact` run it. Every row stays in the lake exactly once."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from assets.resources import LakeResource
from pipelines import cli
from pipelines.maintenance import compact_lake_job, lake_compaction
from startpoint import lake
from startpoint.settings import compact_files_threshold
from startpoint.warehouse.load import POOL, load_tables


def run(url: str, run_id: str, origin: str = "local") -> str:
    row = {"run_id": run_id, "model_id": f"m/{run_id}", "architecture": "bert", "dataset_id": "t", "seed": 0,
           "score": 50.0, "status": "ok", "origin": origin}
    return lake.write(url, "finetune_runs", f"{origin}/{run_id}/t/h-seed0", [row])


def compacted(url: str, origin: str = "local") -> list[str]:
    return [f for f in lake.list_files(url, "finetune_runs", origin) if "/_compacted/" in f]


def row_counts(paths: list[str]) -> list[int]:
    return [pq.ParquetFile(p).metadata.num_rows for p in paths]


@pytest.fixture()
def url(tmp_path):
    return str(tmp_path / "lake")


def test_many_compactions_keep_the_compacted_files_bounded_and_every_row_once(url, tmp_path):
    for n in range(10):
        for i in range(50):
            run(url, f"r{n:02d}-{i:02d}")
        result = lake.compact(url, "finetune_runs", "local", max_rows=100_000)
        assert result.sources == 50 and result.files_after == len(compacted(url))
        assert len(compacted(url)) <= 2, n
    assert lake.read(url, "finetune_runs").num_rows == 500  # no row twice in the lake itself
    counts = load_tables(url, tmp_path / "warehouse.duckdb")
    assert counts["finetune_runs"] == 500
    assert lake.exists(url, "finetune_runs", "local/r00-07/t/h-seed0")  # a run from the first round is still found


def test_small_compacted_files_are_merged_and_large_ones_left_alone(url):
    """max_rows 100: files of 25 rows or more stay; at most two smaller ones remain after any compaction."""
    for n in range(12):
        for i in range(7):
            run(url, f"r{n:02d}-{i}")
        lake.compact(url, "finetune_runs", "local", max_rows=100)
        sizes = row_counts(compacted(url))
        assert sum(sizes) == 7 * (n + 1) and len([s for s in sizes if s < 25]) <= 2, (n, sizes)
    assert len(compacted(url)) < 12 and lake.read(url, "finetune_runs").num_rows == 84


def test_copies_left_by_a_killed_compaction_are_kept_once_when_merged_again(url, monkeypatch, tmp_path):
    for i in range(4):
        run(url, f"a{i}")
    monkeypatch.setattr(lake.fsspec.implementations.local.LocalFileSystem, "rm",
                        lambda self, *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        lake.compact(url, "finetune_runs", "local")
    monkeypatch.undo()
    assert lake.compact(url, "finetune_runs", "local").sources == 4  # a second compacted copy of a0..a3
    assert lake.read(url, "finetune_runs").num_rows == 8
    run(url, "b0")
    run(url, "b1")
    result = lake.compact(url, "finetune_runs", "local")  # merges both small compacted files and b0, b1
    assert (result.sources, result.merged_compacted, result.rows, len(compacted(url))) == (2, 2, 6, 1)
    assert sorted(lake.read(url, "finetune_runs").column("run_id").to_pylist()) == ["a0", "a1", "a2", "a3", "b0", "b1"]
    assert load_tables(url, tmp_path / "w.duckdb")["finetune_runs"] == 6


def test_compaction_due_counts_per_unit_files_per_origin(url):
    for i in range(3):
        run(url, f"l{i}")
    run(url, "u0", origin="user")
    lake.write(url, "datasets", "local/d", [{"dataset_id": "d"}])
    assert lake.compaction_due(url, min_files=3) == [("finetune_runs", "local", 3)]
    assert lake.compaction_due(url, min_files=4) == []
    assert lake.compaction_due(url, min_files=1) == [("datasets", "local", 1), ("finetune_runs", "local", 3),
                                                      ("finetune_runs", "user", 1)]
    [done] = lake.compact_due(url, min_files=3)
    assert (done.table, done.origin, done.files_before, done.files_after) == ("finetune_runs", "local", 3, 1)
    assert lake.compaction_due(url, min_files=1) == [("datasets", "local", 1), ("finetune_runs", "user", 1)]


def test_the_threshold_comes_from_the_environment_with_a_one_line_error(monkeypatch):
    monkeypatch.delenv("STARTPOINT_COMPACT_FILES", raising=False)
    assert compact_files_threshold() == 1000
    monkeypatch.setenv("STARTPOINT_COMPACT_FILES", "250")
    assert compact_files_threshold() == 250
    monkeypatch.setenv("STARTPOINT_COMPACT_FILES", "many")
    with pytest.raises(ValueError, match=r"STARTPOINT_COMPACT_FILES='many': give a whole number of files, at least 2"):
        compact_files_threshold()


def tick(instance, url):
    return lake_compaction(dg.build_sensor_context(instance=instance, resources={"lake": LakeResource(url=url)}))


def test_the_sensor_requests_a_run_when_an_origin_is_due_and_one_at_a_time(url, monkeypatch):
    monkeypatch.setenv("STARTPOINT_COMPACT_FILES", "3")
    instance = dg.DagsterInstance.ephemeral()
    run(url, "a")
    run(url, "b")
    skip = tick(instance, url)
    assert isinstance(skip, dg.SkipReason) and "no origin holds 3 per-unit files (finetune_runs/local 2)" in skip.skip_message
    run(url, "c")
    request = tick(instance, url)
    assert isinstance(request, dg.RunRequest) and request.run_key == "after:none"
    assert request.run_config == {"ops": {"compact_lake_files": {"config": {"min_files": 3}}}}
    in_flight = instance.create_run_for_job(compact_lake_job, run_config=request.run_config,
                                            status=dg.DagsterRunStatus.STARTED)
    skip = tick(instance, url)
    assert isinstance(skip, dg.SkipReason) and f"compact_lake run {in_flight.run_id} is still in flight" in skip.skip_message
    instance.report_run_canceled(in_flight)
    assert tick(instance, url).run_key == f"after:{in_flight.run_id}"  # a new key once the last run has ended
    assert lake_compaction.default_status == dg.DefaultSensorStatus.RUNNING
    assert lake_compaction.minimum_interval_seconds == 600


def test_the_job_compacts_every_due_origin_in_the_warehouse_pool_and_logs_it(url):
    assert [(op.name, op.pool) for op in compact_lake_job.graph.node_defs] == [("compact_lake_files", POOL)]
    for i in range(5):
        run(url, f"l{i}")
    run(url, "u0", origin="user")
    instance = dg.DagsterInstance.ephemeral()
    result = compact_lake_job.execute_in_process(
        resources={"lake": LakeResource(url=url)}, instance=instance,
        run_config={"ops": {"compact_lake_files": {"config": {"min_files": 5}}}})
    assert result.success
    logs = [e.message for e in instance.all_logs(result.run_id) if e.message]
    assert any("finetune_runs/local: 5 files -> 1, 5 rows" in m for m in logs), logs
    assert len(lake.list_files(url, "finetune_runs", "local")) == 1 and lake.compaction_due(url, 1) == [
        ("finetune_runs", "user", 1)]


def test_the_cli_compacts_in_process_and_prints_one_line_per_origin(url, monkeypatch, capsys):
    for i in range(3):
        run(url, f"l{i}")
    monkeypatch.setenv("STARTPOINT_LAKE", url)
    assert cli.main(["compact", "--min-files", "4"]) == 0
    assert capsys.readouterr().out == f"nothing to compact: no origin of {url} holds 4 per-unit files\n"
    assert cli.main(["compact", "--min-files", "3"]) == 0
    assert capsys.readouterr().out == ("finetune_runs/local: 3 files -> 1, 3 rows "
                                       "(3 per-unit and 0 small compacted files merged)\n")
    assert len(list(Path(url, "finetune_runs", "local").rglob("*.parquet"))) == 1


@pytest.mark.parametrize(("lake_url", "args", "message"), [
    ("nosuch://bucket/lake", [], "error: cannot compact the lake nosuch://bucket/lake"),
    (None, ["--min-files", "1"], "error: --min-files 1: give at least 2"),
])
def test_the_cli_refuses_a_bad_lake_url_or_threshold_in_one_line(lake_url, args, message, url, monkeypatch, capsys):
    monkeypatch.setenv("STARTPOINT_LAKE", lake_url or url)
    assert cli.main(["compact", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_a_probed_model_stays_probed_after_its_rows_are_compacted(url):
    """The Hub sensor asks `is_probed` before requesting a probe: a model whose probe file was merged into a
    compacted file is still probed (a listing alone would miss it and probe it again)."""
    from startpoint.probes.candidates import is_probed, probe_relpath

    for model in ("org/a", "org/b"):
        lake.write(url, "probe_scores", probe_relpath(model, "fine_foods"),
                   [{"model_id": model, "architecture": "bert", "proxy_dataset": "fine_foods", "method": "logme",
                     "score": -0.5, "origin": "local"}])
    assert lake.compact(url, "probe_scores", "local").sources == 2
    assert not [f for f in lake.list_files(url, "probe_scores", "local") if "/_compacted/" not in f]
    assert is_probed(url, "org/a") and is_probed(url, "org/b") and not is_probed(url, "org/c")
    assert lake.exists_under(url, "probe_scores", "local") and not lake.exists_under(url, "probe_scores", "user")


def test_the_hub_catalog_snapshots_are_never_compacted(url):
    """hub_models/hub keeps one file per architecture, read back by its path (even when it has no rows): compaction
    leaves it alone, and compacting it by name is refused."""
    for arch in ("roberta-base", "bert-base-uncased", "t5-base"):
        lake.write(url, "hub_models", f"hub/{arch}", [])
    for i in range(3):
        lake.write(url, "hub_models", f"local/m{i}", [{"model_id": f"m{i}", "architecture": "bert"}])
    assert {(t, o) for t, o, _ in lake.compaction_due(url, min_files=2)} == {("hub_models", "local")}
    lake.compact_due(url, min_files=2)
    assert sorted(p.rsplit("/", 1)[-1] for p in lake.list_files(url, "hub_models", "hub")) == [
        "bert-base-uncased.parquet", "roberta-base.parquet", "t5-base.parquet"]
    with pytest.raises(ValueError, match="never compacted"):
        lake.compact(url, "hub_models", "hub")
