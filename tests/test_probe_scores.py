"""Probe scores for every offline-zoo model through the real asset and the selection job: MiniLM, tiny caps."""

import json
import shutil

import dagster as dg
import numpy as np
import pytest

from pipelines import lake as lake_files
from pipelines.partitions import base_models_partitions, encode_key
from pipelines.probes import features as features_module
from pipelines.probes.candidates import zoo_models
from pipelines.probes.features import FeatureSettings
from pipelines.probes.run import ModelRefusedError, ProbeCaps, probe_model

PRETRAINED = "sentence-transformers/all-MiniLM-L6-v2"
INTERMEDIATE = "local/all-MiniLM-L6-v2-fine_foods"


def make_intermediate(models_dir, model_id, auto_map=False):
    """A local model folder as the engine saves one (weights, tokenizer, config, startpoint.json)."""
    from pipelines.zoo import resolve

    src = resolve(PRETRAINED)
    dest = models_dir / encode_key(model_id)
    dest.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"):  # fmt: skip
        shutil.copy(src / name, dest / name)
    if auto_map:
        config = json.loads((dest / "config.json").read_text()) | {"auto_map": {"AutoModel": "modeling_x.X"}}
        (dest / "config.json").write_text(json.dumps(config))
    (dest / "startpoint.json").write_text(json.dumps({"architecture": "all-MiniLM-L6-v2", "base_model": PRETRAINED}))
    return dest


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    make_intermediate(home / "models", INTERMEDIATE)
    return home


def test_the_selection_job_probes_every_zoo_model_with_linear_probe_and_logme(home, tmp_path):
    """Op 1 of `select_all_MiniLM_L6_v2` materializes lake/probe_scores for each zoo model, then ranks them."""
    from pipelines.probes.selection_job import SELECTION_JOBS

    zoo = zoo_models(home / "models")
    assert {c.model_id for c in zoo} == {PRETRAINED, INTERMEDIATE}
    job = next(j for j in SELECTION_JOBS if j.name == "select_all_MiniLM_L6_v2")
    config = {"architecture": "all-MiniLM-L6-v2", "proxy_dataset": "tweets_sentiment", "probe_train_cap": 90,
              "method": "logme"}
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(
        run_config={"ops": {"probe_candidates": {"config": config}}}, op_selection=["probe_candidates"], instance=instance
    )
    assert result.success
    lake_url = str(home / "lake")
    rows = lake_files.read(lake_url, "probe_scores").to_pylist()
    assert {(r["model_id"], r["method"]) for r in rows} == {
        (m, method) for m in (PRETRAINED, INTERMEDIATE) for method in ("linear_probe", "logme")
    }
    for r in rows:
        assert r["proxy_dataset"] == "tweets_sentiment" and r["origin"] == "local" and r["seconds"] > 0
        assert r["architecture"] == "all-MiniLM-L6-v2" and np.isfinite(r["score"])
    assert all(0 <= r["score"] <= 100 for r in rows if r["method"] == "linear_probe")
    # Same weights, data and settings: the two folders get the same scores but their own feature hashes.
    by_model = {(r["model_id"], r["method"]): r for r in rows}
    assert by_model[(PRETRAINED, "logme")]["score"] == pytest.approx(by_model[(INTERMEDIATE, "logme")]["score"])
    assert by_model[(PRETRAINED, "logme")]["features_hash"] != by_model[(INTERMEDIATE, "logme")]["features_hash"]
    assert {m for m, _ in result.output_for_node("probe_candidates")} == {PRETRAINED, INTERMEDIATE}
    assert set(instance.get_dynamic_partitions(base_models_partitions.name)) == {encode_key(PRETRAINED), encode_key(INTERMEDIATE)}


def test_features_are_computed_once_and_reused(home, monkeypatch):
    from pipelines.zoo import resolve

    kwargs = dict(cache_dir=home / "cache", proxy="tweets_sentiment", caps=ProbeCaps(train=60),
                  settings=FeatureSettings(max_length=32))
    first = probe_model(PRETRAINED, "all-MiniLM-L6-v2", resolve(PRETRAINED), **kwargs)
    def no_model_load(*_a, **_k):
        pytest.fail("features should come from the cache")

    monkeypatch.setattr(features_module, "load_for_features", no_model_load)
    second = probe_model(PRETRAINED, "all-MiniLM-L6-v2", resolve(PRETRAINED), **kwargs)
    assert [r["score"] for r in first] == [r["score"] for r in second]
    assert first[0]["features_hash"] == second[0]["features_hash"]
    assert len(list((home / "cache" / "probe_features").glob("*.npz"))) == 1


def test_a_model_with_remote_code_is_refused_before_loading(home):
    folder = make_intermediate(home / "models", "local/remote-code-model", auto_map=True)
    with pytest.raises(ModelRefusedError, match="remote code"):
        probe_model("local/remote-code-model", "all-MiniLM-L6-v2", folder, cache_dir=home / "cache", proxy="tweets_sentiment")


def test_zoo_skips_folders_still_being_written(home):
    make_intermediate(home / "models", "local/half-written")
    (home / "models" / encode_key("local/half-written")).rename(home / "models" / ".local--half-written.123.tmp")
    assert {c.model_id for c in zoo_models(home / "models")} == {PRETRAINED, INTERMEDIATE}


def test_the_grid_probes_each_of_its_models(home):
    """`run_grid` (what `make run` runs) ends with a probe partition per grid model; rerunning reuses the features."""
    from pipelines.engine.grid import Grid, run_grid

    grid = Grid(name="probe-only", sources=(), targets=(), seeds=())  # no training: just the pretrained model
    for _ in range(2):
        assert run_grid(grid, dg.DagsterInstance.ephemeral(), log=lambda m: None) == {"ok": 1, "failed": 0}
    rows = lake_files.read(str(home / "lake"), "probe_scores").to_pylist()
    assert sorted((r["model_id"], r["method"]) for r in rows) == [(PRETRAINED, "linear_probe"), (PRETRAINED, "logme")]
    assert len(list((home / "cache" / "probe_features").glob("*.npz"))) == 1
