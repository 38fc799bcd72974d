"""The engine's Dagster assets end to end in a temp STARTPOINT_HOME: models, lake files, skip, warehouse rows."""

import os

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from assets.finetune import finetune_runs
from assets.intermediate_models import intermediate_models
from assets.warehouse import warehouse_tables
from pipelines import lake
from pipelines.engine import Recipe
from pipelines.partitions import encode_key
from pipelines.resources import HomeResource, LakeResource, WarehouseResource
from pipelines.zoo import DEFAULT_BASE, intermediate_id

TINY = Recipe(train_cap=32, epochs=1, batch_size=16, max_length=24, eval_cap=16, test_cap=24, patience=0)


def write_reviews(path, n, labels=("negative", "positive")):
    rng = np.random.default_rng(0)
    words = {"negative": ["awful", "bland", "stale"], "positive": ["great", "tasty", "lovely"]}
    rows = [{"text": f"the meal was {rng.choice(words[labels[i % len(labels)]])} tonight number {i}",
             "label": labels[i % len(labels)]} for i in range(n)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


@pytest.fixture
def env(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    resources = {"lake": LakeResource(url=str(home / "lake")), "home": HomeResource(path=str(home)),
                 "warehouse": WarehouseResource(path=str(home / "warehouse.duckdb"))}
    return dg.DagsterInstance.ephemeral(), resources, home


def _materialize(asset, key, config, instance, resources):
    result = dg.materialize([asset], partition_key=key, instance=instance, resources=resources,
                            run_config={"ops": {asset.op.name: {"config": config}}})
    assert result.success
    return result.asset_materializations_for_node(asset.op.name)[0].metadata


def test_grid_partitions_write_the_lake_skip_reruns_and_load_into_the_warehouse(env, tmp_path):
    instance, resources, home = env
    good = write_reviews(tmp_path / "reviews.csv", 80)
    one_class = write_reviews(tmp_path / "one_class.csv", 40, labels=("positive",))
    source = "drug_review_sentiment"
    model = intermediate_id(source)
    instance.add_dynamic_partitions("sources", [source])
    instance.add_dynamic_partitions("base_models", [encode_key(DEFAULT_BASE), encode_key(model)])
    instance.add_dynamic_partitions("targets", [encode_key(good), encode_key(one_class)])

    meta = _materialize(intermediate_models, source, {"recipe": TINY.to_json()}, instance, resources)
    folder = home / "models" / encode_key(model)
    assert {"model.safetensors", "config.json", "tokenizer.json", "startpoint.json"} <= {p.name for p in folder.iterdir()}
    assert meta["path"].value == str(folder)

    config = {"seeds": [0, 1], "recipe": TINY.to_json()}
    key = dg.MultiPartitionKey({"model": encode_key(model), "target": encode_key(good)})
    meta = _materialize(finetune_runs, key, config, instance, resources)
    assert sorted(meta["scores"].value) == ["0", "1"]
    files = lake.list_files(str(home / "lake"), "finetune_runs")
    assert len(files) == 2
    mtimes = {f: os.stat(f).st_mtime_ns for f in files}

    # A temp file left by a killed run is not a run: the loader ignores it and the seed is computed.
    stray = files[0].rsplit("/", 1)[0] + f"/.{TINY.recipe_hash}-seed7.parquet.0f3a9c.tmp"
    open(stray, "wb").write(b"PAR1 half written")
    meta = _materialize(finetune_runs, key, {**config, "seeds": [0, 1, 7]}, instance, resources)
    assert meta["skipped_seeds"].value == [0, 1] and list(meta["scores"].value) == ["7"]
    assert {f: os.stat(f).st_mtime_ns for f in files} == mtimes  # finished runs were not rewritten
    assert len(lake.list_files(str(home / "lake"), "finetune_runs")) == 3

    bad = dg.MultiPartitionKey({"model": encode_key(DEFAULT_BASE), "target": encode_key(one_class)})
    meta = _materialize(finetune_runs, bad, config, instance, resources)
    assert set(meta["failed"].value) == {"0", "1"} and "one_class" in meta["failed"].value["0"]

    assert dg.materialize([warehouse_tables], instance=instance, resources=resources).success
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    runs = con.execute("select model_id, dataset_id, seed, score, status, error, origin, recipe_hash, device, "
                       "code_version, library_versions from finetune_runs order by status, seed").fetchall()
    models = dict(con.execute("select model_id, role from hub_models where source = 'local'").fetchall())
    con.close()
    ok = [r for r in runs if r[4] == "ok"]
    failed = [r for r in runs if r[4] == "failed"]
    assert len(ok) == 3 and {r[2] for r in ok} == {0, 1, 7} and all(0 <= r[3] <= 100 for r in ok)
    assert all(r[0] == model and r[6] == "local" and r[7] == TINY.recipe_hash and r[8] for r in ok)
    assert all(r[9] and "torch" in r[10] for r in ok)
    assert len(failed) == 2 and all(r[3] is None and r[5] for r in failed)
    assert models == {DEFAULT_BASE: "pretrained", model: "intermediate"}


def test_a_run_killed_mid_partition_leaves_no_partial_row_and_the_rerun_completes(env, tmp_path, monkeypatch):
    import pipelines.engine

    instance, resources, home = env
    target = write_reviews(tmp_path / "reviews.csv", 60)
    instance.add_dynamic_partitions("base_models", [encode_key(DEFAULT_BASE)])
    instance.add_dynamic_partitions("targets", [encode_key(target)])
    key = dg.MultiPartitionKey({"model": encode_key(DEFAULT_BASE), "target": encode_key(target)})
    config = {"seeds": [0, 1], "recipe": TINY.to_json()}
    real_finetune = pipelines.engine.finetune

    def killed_on_seed_1(model_dir, dataset, recipe, seed, **kwargs):
        if seed == 1:
            raise KeyboardInterrupt("killed in the middle of a finetune")
        return real_finetune(model_dir, dataset, recipe, seed, **kwargs)

    monkeypatch.setattr(pipelines.engine, "finetune", killed_on_seed_1)
    result = dg.materialize([finetune_runs], partition_key=key, instance=instance, resources=resources,
                            run_config={"ops": {"lake__finetune_runs": {"config": config}}}, raise_on_error=False)
    assert not result.success
    assert [f.rsplit("/", 1)[1] for f in lake.list_files(str(home / "lake"), "finetune_runs")] == [
        f"{TINY.recipe_hash}-seed0.parquet"]

    monkeypatch.setattr(pipelines.engine, "finetune", real_finetune)
    meta = _materialize(finetune_runs, key, config, instance, resources)
    assert meta["skipped_seeds"].value == [0] and list(meta["scores"].value) == ["1"]
    assert dg.materialize([warehouse_tables], instance=instance, resources=resources).success
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    rows = con.execute("select seed, status, count(*) from finetune_runs group by all order by seed").fetchall()
    con.close()
    assert rows == [(0, "ok", 1), (1, "ok", 1)]
