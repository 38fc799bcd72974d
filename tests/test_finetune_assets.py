"""The engine's Dagster assets end to end in a temp STARTPOINT_HOME: models, lake files, skip, warehouse rows."""

import os

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from assets.finetune import finetune_runs
from assets.intermediate_models import intermediate_models
from assets.resources import HomeResource, LakeResource, WarehouseResource
from assets.warehouse import warehouse_tables
from startpoint import lake
from startpoint.engine import Recipe
from startpoint.keys import encode_key
from startpoint.zoo import DEFAULT_BASE, intermediate_id

TINY = Recipe(train_cap=32, epochs=1, batch_size=16, max_length=24, eval_cap=16, test_cap=24, patience=0)


def write_reviews(path, n, labels=("negative", "positive")):
    rng = np.random.default_rng(0)
    words = {"negative": ["awful", "bland", "stale"], "positive": ["great", "tasty", "lovely"]}
    rows = [{"text": f"the meal was {rng.choice(words[labels[i % len(labels)]])} tonight number {i}",
             "label": labels[i % len(labels)]} for i in range(n)]
    pl.DataFrame(rows).write_csv(path)
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
    first = dict(meta["scores"].value)
    files = lake.list_files(str(home / "lake"), "finetune_runs")
    assert len(files) == 2
    mtimes = {f: os.stat(f).st_mtime_ns for f in files}

    # A temp file left by a killed run is not a run: the loader ignores it and the seed is computed.
    stray = files[0].rsplit("/", 1)[0] + f"/.{TINY.recipe_hash}-seed7.parquet.0f3a9c.tmp"
    open(stray, "wb").write(b"PAR1 half written")
    meta = _materialize(finetune_runs, key, {**config, "seeds": [0, 1, 7]}, instance, resources)
    assert meta["skipped_seeds"].value == [0, 1] and list(meta["scores"].value) == ["0", "1", "7"]
    # The skipped seeds show the scores the lake recorded for them, marked as taken from the lake.
    assert meta["scores_taken_from_lake"].value == [0, 1]
    assert [meta["scores"].value[s] for s in ("0", "1")] == [first[s] for s in ("0", "1")]
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
    import startpoint.engine.runs

    instance, resources, home = env
    target = write_reviews(tmp_path / "reviews.csv", 60)
    instance.add_dynamic_partitions("base_models", [encode_key(DEFAULT_BASE)])
    instance.add_dynamic_partitions("targets", [encode_key(target)])
    key = dg.MultiPartitionKey({"model": encode_key(DEFAULT_BASE), "target": encode_key(target)})
    config = {"seeds": [0, 1], "recipe": TINY.to_json()}
    real_finetune = startpoint.engine.runs.finetune  # the seed loop's (startpoint/engine/runs.py)

    def killed_on_seed_1(model_dir, dataset, recipe, seed, **kwargs):
        if seed == 1:
            raise KeyboardInterrupt("killed in the middle of a finetune")
        return real_finetune(model_dir, dataset, recipe, seed, **kwargs)

    monkeypatch.setattr(startpoint.engine.runs, "finetune", killed_on_seed_1)
    result = dg.materialize([finetune_runs], partition_key=key, instance=instance, resources=resources,
                            run_config={"ops": {"lake__finetune_runs": {"config": config}}}, raise_on_error=False)
    assert not result.success
    assert [f.rsplit("/", 1)[1] for f in lake.list_files(str(home / "lake"), "finetune_runs")] == [
        f"{TINY.recipe_hash}-seed0.parquet"]

    monkeypatch.setattr(startpoint.engine.runs, "finetune", real_finetune)
    meta = _materialize(finetune_runs, key, config, instance, resources)
    assert meta["skipped_seeds"].value == [0] and list(meta["scores"].value) == ["0", "1"]
    assert meta["scores_taken_from_lake"].value == [0]
    assert dg.materialize([warehouse_tables], instance=instance, resources=resources).success
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    rows = con.execute("select seed, status, count(*) from finetune_runs group by all order by seed").fetchall()
    con.close()
    assert rows == [(0, "ok", 1), (1, "ok", 1)]


def test_source_keys_name_base_and_source():
    from startpoint.grid import MINILM_L3
    from startpoint.keys import parse_source_key, source_key

    key = source_key(MINILM_L3, "fine_foods")
    assert key == "sentence-transformers--paraphrase-MiniLM-L3-v2@fine_foods"
    assert parse_source_key(key, DEFAULT_BASE) == (MINILM_L3, "fine_foods")
    assert parse_source_key("fine_foods", DEFAULT_BASE) == (DEFAULT_BASE, "fine_foods")  # keys of older instances
    with pytest.raises(ValueError, match="separates"):
        source_key(MINILM_L3, "odd@set")
    with pytest.raises(ValueError, match="is not <base model>@<source>"):
        parse_source_key("@fine_foods", DEFAULT_BASE)


def test_a_second_base_makes_its_own_intermediate_model_and_architecture(env, tmp_path):
    """A `sources` partition of MiniLM-L3 trains MiniLM-L3 (3 layers) on the source, not MiniLM-L6; its model and
    the pretrained L3 are `hub_models` rows of their own architecture; a config naming another base is refused."""
    import json

    from startpoint.grid import MINILM_L3
    from startpoint.keys import source_key

    instance, resources, home = env
    source = "drug_review_sentiment"
    key = source_key(MINILM_L3, source)
    instance.add_dynamic_partitions("sources", [key])
    meta = _materialize(intermediate_models, key, {"recipe": TINY.to_json()}, instance, resources)
    model = intermediate_id(source, MINILM_L3)
    assert model == "local/paraphrase-MiniLM-L3-v2-drug_review_sentiment" != intermediate_id(source)
    folder = home / "models" / encode_key(model)
    assert meta["path"].value == str(folder) and meta["base_model"].value == MINILM_L3
    assert json.loads((folder / "config.json").read_text())["num_hidden_layers"] == 3
    card = json.loads((folder / "startpoint.json").read_text())
    assert (card["architecture"], card["base_model"], card["source_dataset"]) == ("paraphrase-MiniLM-L3-v2", MINILM_L3, source)
    rows = {r["model_id"]: r for r in lake.read(str(home / "lake"), "hub_models", "local").to_pylist()}
    assert {m: (r["architecture"], r["role"], r["n_layers"]) for m, r in rows.items()} == {
        MINILM_L3: ("paraphrase-MiniLM-L3-v2", "pretrained", 3),
        model: ("paraphrase-MiniLM-L3-v2", "intermediate", 3),
    }
    wrong = dg.materialize([intermediate_models], partition_key=key, instance=instance, resources=resources,
                           run_config={"ops": {intermediate_models.op.name: {"config": {"base_model": DEFAULT_BASE}}}},
                           raise_on_error=False)
    assert not wrong.success
