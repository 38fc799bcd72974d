"""Probe scores for every offline-zoo model through the real asset and the selection job: MiniLM, tiny caps."""

import json
import shutil

import dagster as dg
import numpy as np
import pytest

from assets.partitions import base_models_partitions
from startpoint import lake as lake_files
from startpoint.keys import encode_key
from startpoint.probes import features as features_module
from startpoint.probes.candidates import zoo_models
from startpoint.probes.features import FeatureSettings
from startpoint.probes.run import ModelRefusedError, ProbeCaps, probe_model

PRETRAINED = "sentence-transformers/all-MiniLM-L6-v2"
INTERMEDIATE = "local/all-MiniLM-L6-v2-fine_foods"


def make_intermediate(models_dir, model_id, auto_map=False):
    """A local model folder as the engine saves one (weights, tokenizer, config, startpoint.json)."""
    from startpoint.zoo import resolve

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


def test_the_selection_sensor_probes_every_zoo_model_then_requests_the_top_k(home, monkeypatch):
    """Tick 1 of `select_all_MiniLM_L6_v2` requests a lake/probe_scores run per zoo model; once they ran (here in
    process, through the same named job), tick 2 ranks them and requests the baseline's and the top k's finetunes."""
    from assets.resources import HomeResource, LakeResource
    from pipelines.launch import (
        GRID_TAG,
        execute_stages,
        failed_probes,
        selection_sensor,
    )
    from startpoint.plan import SelectionOptions

    for name, value in {"STARTPOINT_SELECT_PROXY": "tweets_sentiment", "STARTPOINT_SELECT_PROBE_TRAIN_CAP": "90",
                        "STARTPOINT_SELECT_K": "1", "STARTPOINT_SELECT_TARGETS": "trump_tweet_device"}.items():
        monkeypatch.setenv(name, value)
    assert SelectionOptions.from_env().k == 1
    zoo = zoo_models(home / "models")
    assert {c.model_id for c in zoo if c.architecture == "all-MiniLM-L6-v2"} == {PRETRAINED, INTERMEDIATE}
    sensor = selection_sensor("all-MiniLM-L6-v2")
    assert sensor.name == "select_all_MiniLM_L6_v2"
    lake_url = str(home / "lake")
    resources = {"lake": LakeResource(url=lake_url), "home": HomeResource(path=str(home))}
    with dg.instance_for_test() as instance:
        first = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert {(r.job_name, r.partition_key) for r in first.run_requests} == {
            ("grid_probe_scores", encode_key(PRETRAINED)), ("grid_probe_scores", encode_key(INTERMEDIATE))}
        assert all(r.tags == {GRID_TAG: "select_all_MiniLM_L6_v2"} for r in first.run_requests)
        [added] = first.dynamic_partitions_requests
        assert set(added.partition_keys) == {encode_key(PRETRAINED), encode_key(INTERMEDIATE)}

        from startpoint.plan import Step

        probes = [Step("probe", model=r.partition_key.replace("--", "/"),
                       config=r.run_config["ops"]["lake__probe_scores"]["config"]) for r in first.run_requests]
        counts = execute_stages("select_all_MiniLM_L6_v2", lambda ok, tried: probes, instance, log=lambda m: None)
        assert counts == {"ok": 2, "failed": 0}
        runs = instance.get_runs()
        assert {r.job_name for r in runs} == {"grid_probe_scores"}
        assert all(r.tags[GRID_TAG] == "select_all_MiniLM_L6_v2" for r in runs)
        assert failed_probes(instance, "select_all_MiniLM_L6_v2") == set()

        second = sensor(dg.build_sensor_context(instance=instance, resources=resources))
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
    # Everyone probed: the baseline (5 seeds) and the top 1 (the intermediate model, 2 seeds) on the target.
    requests = {r.partition_key: r.run_config["ops"]["lake__finetune_runs"]["config"] for r in second.run_requests}
    assert {r.job_name for r in second.run_requests} == {"grid_finetune_runs"}
    assert requests == {f"{encode_key(PRETRAINED)}|trump_tweet_device": {"seeds": [0, 1, 2, 3, 4]},
                        f"{encode_key(INTERMEDIATE)}|trump_tweet_device": {"seeds": [0, 1]}}


def test_features_are_computed_once_and_reused(home, monkeypatch):
    from startpoint.zoo import resolve

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
    found = {c.model_id for c in zoo_models(home / "models") if c.architecture == "all-MiniLM-L6-v2"}
    assert found == {PRETRAINED, INTERMEDIATE}  # (the packaged MiniLM-L3 is listed too, under its own architecture)


def test_the_grid_probes_each_of_its_models(home):
    """`run_grid` (what `make run` runs) ends with a probe partition per grid model; rerunning reuses the features.
    Its runs are runs of the named jobs, tagged with the grid's name, never anonymous asset jobs."""
    from pipelines.launch import GRID_TAG, run_grid
    from pipelines.recovery import PID_TAG
    from startpoint.grid import Grid

    grid = Grid(name="probe-only", sources=(), targets=(), seeds=())  # no training: just the pretrained model
    for _ in range(2):
        with dg.instance_for_test() as instance:
            assert run_grid(grid, instance, log=lambda m: None) == {"ok": 1, "failed": 0}
            runs = instance.get_runs()
            assert sorted(r.job_name for r in runs) == ["grid_probe_scores", "lake_datasets"]
            assert all(r.tags[GRID_TAG] == "probe-only" and r.tags[PID_TAG] for r in runs)
            probe_run = next(r for r in runs if r.job_name == "grid_probe_scores")
            assert probe_run.tags["dagster/partition"] == encode_key(PRETRAINED)
            assert instance.get_dynamic_partitions("base_models") == [encode_key(PRETRAINED)]
    rows = lake_files.read(str(home / "lake"), "probe_scores").to_pylist()
    assert sorted((r["model_id"], r["method"]) for r in rows) == [(PRETRAINED, "linear_probe"), (PRETRAINED, "logme")]
    assert len(list((home / "cache" / "probe_features").glob("*.npz"))) == 1
