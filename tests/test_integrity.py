"""Foreign keys of the warehouse's base tables (dbt `relationships` tests on the sources, sql/models/sources.yml).

One warehouse holds what `make run` makes, without the training: the grid's own steps (`lake/datasets`, the
pretrained model's row, its probe) run for real with no seeds, the grid's 24 local runs and its intermediate
models are written to the lake as the engine writes them, and the published import adds a small real folder
(with probe-only `models_tested.csv` rows). The real data passes every relationship test; one dangling key
fails `dbt build`, by the name of the relationship it breaks.
"""

from __future__ import annotations

import os
import subprocess
import zlib

import dagster as dg
import duckdb
import pytest

from assets.dbt import _dbt_executable
from pipelines.launch import run_grid
from startpoint import lake
from startpoint.engine.records import model_relpath, model_row, run_relpath, run_row
from startpoint.engine.train import FinetuneResult
from startpoint.grid import DEFAULT_GRID, Grid
from startpoint.settings import SQL_DIR, export_env
from startpoint.warehouse.load import load_tables
from startpoint.zoo import DEFAULT_BASE, PRETRAINED, architecture_of

from published_fixture import SHARED, make_folder, materialize_published

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/model-recycling")

RELATIONSHIPS = ["finetune_runs_dataset_id_in_datasets", "finetune_runs_model_id_in_hub_models",
                 "finetune_runs_architecture_model_id_in_hub_models", "probe_scores_model_id_in_hub_models",
                 "probe_scores_architecture_model_id_in_hub_models", "probe_scores_proxy_dataset_in_datasets",
                 "hub_models_base_model_in_hub_models"]


N_LOCAL_RUNS = len(DEFAULT_GRID.pairs()) * len(DEFAULT_GRID.seeds)  # 2 bases × 3 models × 3 targets × 2 seeds = 36


def _write_grid_runs(lake_url: str) -> int:
    """The default grid's intermediate models and its runs, as `intermediate_models` / `lake/finetune_runs`
    write them (scores made up: no training)."""
    arch_of = {}
    for base, source, model in DEFAULT_GRID.intermediates:
        arch_of[base] = arch_of[model] = architecture_of(base)
        row = model_row(model, arch_of[base], PRETRAINED[base].locate(), role="intermediate", base_model=base,
                        tags=[f"source:{source}"])
        lake.write(lake_url, "hub_models", model_relpath(model), [row])
    n = 0
    for model, target in DEFAULT_GRID.pairs():
        arch = arch_of[model]
        recipe = DEFAULT_GRID.recipe_for(target)
        for seed in DEFAULT_GRID.seeds:
            score = 40.0 + zlib.crc32(f"{model}|{target}|{seed}".encode()) % 3000 / 100  # varied, reproducible
            result = FinetuneResult(status="ok", dataset_id=target, metric="accuracy", seed=seed, score=score)
            lake.write(lake_url, "finetune_runs", run_relpath(model, target, recipe, seed),
                       [run_row(model, arch, recipe, result)])
            n += 1
    return n


def _dbt_build(tmp_path) -> subprocess.CompletedProcess:
    """`dbt build` on the warehouse of $STARTPOINT_HOME, its target and logs in tmp_path (not sql/target)."""
    return subprocess.run(
        [_dbt_executable(), "build", "--project-dir", str(SQL_DIR), "--profiles-dir", str(SQL_DIR),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"), "--no-use-colors"],
        env=export_env(), capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """(home, published folder): the grid's data plus the published import, loaded and built once."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("integrity")
    home = root / "home"
    mp.setenv("STARTPOINT_HOME", str(home))
    mp.delenv("STARTPOINT_LAKE", raising=False)
    # The grid's own steps, no seeds: datasets rows, the pretrained model's row (finetune partitions), its probe.
    # Every base of the grid (two local architectures): 3 finetune partitions and one probe each.
    bases = DEFAULT_GRID.base_models
    grid = Grid(name="integrity", sources=(), targets=DEFAULT_GRID.targets, seeds=(), base_models=bases)
    assert run_grid(grid, dg.DagsterInstance.ephemeral(), log=lambda m: None) == {"ok": 4 * len(bases), "failed": 0}
    assert _write_grid_runs(str(home / "lake")) == N_LOCAL_RUNS
    folder = make_folder(root / "results", rows=30)
    result = materialize_published(home, folder, mp)
    assert result.success
    yield home, folder, result
    mp.undo()


def _query(home, sql: str) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_the_grid_writes_a_datasets_row_for_every_set_it_uses():
    assert set(DEFAULT_GRID.datasets) == {*DEFAULT_GRID.sources, *DEFAULT_GRID.targets, DEFAULT_GRID.probe_dataset}


def test_local_and_published_rows_pass_every_relationship(warehouse, tmp_path):
    home, _, result = warehouse
    origins = dict(_query(home, "select origin, count(*) from finetune_runs group by all"))
    assert origins["local"] == N_LOCAL_RUNS and origins["published"] > 0
    # Every local run's dataset has a row with its stats (the gains' collapse rule reads majority_share).
    local = _query(home, "select distinct r.dataset_id, d.majority_share from finetune_runs r "
                         "left join datasets d using (dataset_id) where r.origin = 'local'")
    assert {d for d, _ in local} == set(DEFAULT_GRID.targets) and all(m is not None for _, m in local)
    # Probe-only catalog rows and the local probe: every probed model has a hub_models row.
    probes = dict(_query(home, "select origin, count(*) from probe_scores group by all"))
    assert probes["published"] > 0 and probes["local"] == 2 * len(DEFAULT_GRID.base_models)  # LP and LogME
    assert _query(home, "select count(*) from probe_scores p anti join hub_models h using (architecture, model_id)") == [(0,)]
    roles = _query(home, "select role, count(*) from hub_models where source = 'local' group by all order by 1")
    assert roles == [("intermediate", len(DEFAULT_GRID.intermediates)), ("pretrained", len(DEFAULT_GRID.base_models))]

    build = _dbt_build(tmp_path)
    assert build.returncode == 0, build.stdout[-3000:]
    for name in RELATIONSHIPS:
        assert f"PASS {name} " in build.stdout, name
    # Through Dagster the relationship tests ran in the sql_models step, which succeeded.
    assert result.success


def test_a_dangling_key_fails_dbt_build_naming_the_relationship(warehouse, tmp_path):
    home, folder, _ = warehouse
    lake_url = str(home / "lake")
    arch = architecture_of(DEFAULT_BASE)
    orphan = FinetuneResult(status="ok", dataset_id="no_such_dataset", metric="accuracy", seed=0, score=50.0)
    recipe = DEFAULT_GRID.recipe_for("tweets_sentiment")
    lake.write(lake_url, "finetune_runs", run_relpath(DEFAULT_BASE, "no_such_dataset", recipe, 0),
               [run_row(DEFAULT_BASE, arch, recipe, orphan)])
    lake.write(lake_url, "probe_scores", "local/orphan-probe",
               [{"model_id": "local/never-made", "architecture": arch, "proxy_dataset": "fine_foods",
                 "method": "logme", "score": 0.1, "origin": "local"}])
    try:
        mp = pytest.MonkeyPatch()
        with pytest.raises(Exception) as failed:  # the `published` job's dbt step fails, not just warns
            materialize_published(home, folder, mp)
        assert "finetune_runs_dataset_id_in_datasets" in str(failed.value)  # the error names it
        mp.undo()

        build = _dbt_build(tmp_path)
        assert build.returncode != 0
        out = build.stdout
        assert "FAIL 1 finetune_runs_dataset_id_in_datasets " in out, out[-3000:]
        assert "FAIL 1 probe_scores_model_id_in_hub_models " in out
        assert "FAIL 1 probe_scores_architecture_model_id_in_hub_models " in out
        for name in ("finetune_runs_model_id_in_hub_models", "probe_scores_proxy_dataset_in_datasets"):
            assert f"PASS {name} " in out
        # The models built on the broken sources are skipped, not built on dangling rows.
        assert "SKIP relation" in out and "gains" in out
    finally:  # leave the module's warehouse as it was
        for path in [*lake.list_files(lake_url, "finetune_runs"), *lake.list_files(lake_url, "probe_scores")]:
            if "no_such_dataset" in path or "orphan-probe" in path:
                os.remove(path)
        load_tables(lake_url, str(home / "warehouse.duckdb"))
