"""`fused_models` materialized into a temp STARTPOINT_HOME on tiny BertModels: member choice from the lake's runs,
the saved folder, the `hub_models` row with role `fused` and its members, the warehouse load, refusals."""

from __future__ import annotations

import json

import dagster as dg
import duckdb
import pytest
import torch
from test_fusion import tiny_bert

from assets.fused_models import fused_models
from assets.resources import HomeResource, LakeResource
from startpoint import lake
from startpoint.keys import encode_key
from startpoint.zoo import PretrainedModel

BASE, ARCH = "tiny/base", "tiny-bert"


def _run_rows(model: str, gains: dict[str, float]) -> list[dict]:
    """Two seeds per target, scores 60 + gain (+/- 0.5 around it)."""
    return [{"run_id": f"local|{model}|{t}|h|{s}", "model_id": model, "architecture": ARCH, "dataset_id": t,
             "seed": s, "score": 60 + g + (0.5 if s else -0.5), "metric": "accuracy", "origin": "local",
             "recipe_hash": "h", "status": "ok"} for t, g in gains.items() for s in (0, 1)]


@pytest.fixture
def env(tmp_path, monkeypatch):
    import startpoint.zoo as zoo

    home = tmp_path / "home"
    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    models = home / "models"
    base_dir = tiny_bert(tmp_path / "base", seed=0)
    monkeypatch.setitem(zoo.PRETRAINED, BASE, PretrainedModel(BASE, ARCH, "tiny-test", lambda: base_dir))
    lake_url = str(home / "lake")
    gains = {"local/tiny-a": 1.0, "local/tiny-b": 3.0, "local/tiny-c": -2.0}
    for seed, (model, gain) in enumerate(gains.items(), 1):
        folder = tiny_bert(models / encode_key(model), seed=seed)
        (folder / "startpoint.json").write_text(json.dumps({"model_id": model, "architecture": ARCH,
                                                            "base_model": BASE, "role": "intermediate"}))
        lake.write(lake_url, "finetune_runs", f"local/{encode_key(model)}",
                   _run_rows(model, {"t1": gain, "t2": gain}))
    lake.write(lake_url, "finetune_runs", f"local/{encode_key(BASE)}", _run_rows(BASE, {"t1": 0.0, "t2": 0.0}))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("pretrained_bases", [encode_key(BASE)])
    resources = {"lake": LakeResource(url=lake_url), "home": HomeResource(path=str(home))}
    return instance, resources, home, base_dir


def _materialize(recipe, env, config=None):
    instance, resources, *_ = env
    key = dg.MultiPartitionKey({"base": encode_key(BASE), "recipe": recipe})
    return dg.materialize([fused_models], partition_key=key, instance=instance, resources=resources,
                          raise_on_error=False, run_config={"ops": {fused_models.op.name: {"config": config or {}}}})


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_top2_average_fuses_the_two_best_by_lake_runs_and_records_them(env):
    _, _, home, _ = env
    result = _materialize("top2-avg", env)
    assert result.success
    meta = result.asset_materializations_for_node(fused_models.op.name)[0].metadata
    model_id = meta["model_id"].value
    assert model_id.startswith(f"local/{ARCH}-fused-top2-avg-")
    assert meta["members"].value == ["local/tiny-b", "local/tiny-a"]  # gains +3 and +1 beat the base (0) and -2
    assert meta["ranking"].value == "lake"  # no warehouse yet
    folder = home / "models" / encode_key(model_id)
    card = json.loads((folder / "startpoint.json").read_text())
    assert card["role"] == "fused" and card["method"] == "average" and card["weights"] == [0.5, 0.5]
    assert card["architecture"] == ARCH and card["base_model"] == BASE
    b, a, fused = (_weights(home / "models" / encode_key(m)) for m in ("local/tiny-b", "local/tiny-a", model_id))
    for key in fused:
        torch.testing.assert_close(fused[key], (a[key] + b[key]) / 2)

    rows = {r["model_id"]: r for r in lake.read(str(home / "lake"), "hub_models").to_pylist()}
    assert rows[model_id]["role"] == "fused" and rows[model_id]["members"] == ["local/tiny-b", "local/tiny-a"]
    assert rows[model_id]["base_model"] == BASE and rows[BASE]["role"] == "pretrained"
    assert rows[model_id]["local_path"] == str(folder)

    # The members column reaches the warehouse as a list.
    from startpoint.warehouse.load import load_tables

    load_tables(str(home / "lake"), home / "warehouse.duckdb")
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    assert con.execute("select members from hub_models where role = 'fused'").fetchall() == [
        (["local/tiny-b", "local/tiny-a"],)]
    con.close()

    # Materializing again with the same members reuses the folder.
    again = _materialize("top2-avg", env)
    assert again.asset_materializations_for_node(fused_models.op.name)[0].metadata["fused_now"].value is False


def test_task_arithmetic_with_the_pretrained_base(env):
    _, _, home, base_dir = env
    result = _materialize("top2-ta0.5", env)
    assert result.success
    meta = result.asset_materializations_for_node(fused_models.op.name)[0].metadata
    fused = _weights(home / "models" / encode_key(meta["model_id"].value))
    base = _weights(base_dir)
    b, a = (_weights(home / "models" / encode_key(m)) for m in ("local/tiny-b", "local/tiny-a"))
    key = "encoder.layer.0.attention.self.query.weight"
    torch.testing.assert_close(fused[key], base[key] + 0.5 * ((b[key] - base[key]) + (a[key] - base[key])))
    assert meta["scale"].value == 0.5 and meta["method"].value == "task_arithmetic"


def test_too_few_candidates_fail_with_one_line(env):
    result = _materialize("top5-avg", env)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.error.message
    assert "top-5 fusion of 'tiny/base': only 4 of its 4 local candidate models are ranked" in message


def test_auto_ranking_follows_the_warehouse_leaderboard_when_it_ranks_enough(env):
    _, _, home, _ = env
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("create table leaderboard (architecture varchar, rank bigint, model_id varchar, "
                "mean_gain double, n_targets bigint)")
    # The leaderboard disagrees with the lake's mean gains: c first, then a; a published model is no candidate.
    con.execute("insert into leaderboard values (?, 1, 'org/published', 9.0, 3), (?, 2, 'local/tiny-c', 2.0, 3), "
                "(?, 3, 'local/tiny-a', 1.0, 3), (?, 4, 'local/tiny-b', -1.0, 3)", [ARCH] * 4)
    con.close()
    result = _materialize("top2-avg", env)
    meta = result.asset_materializations_for_node(fused_models.op.name)[0].metadata
    assert meta["ranking"].value == "warehouse"
    assert meta["members"].value == ["local/tiny-c", "local/tiny-a"]
    assert meta["member_gains"].value == {"local/tiny-c": 2.0, "local/tiny-a": 1.0}
    # `lake` ignores the warehouse.
    lake_meta = _materialize("top2-avg", env, {"ranking": "lake"}).asset_materializations_for_node(fused_models.op.name)
    assert lake_meta[0].metadata["members"].value == ["local/tiny-b", "local/tiny-a"]
