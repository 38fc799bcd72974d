"""Launching a grid the Dagster way: the grid sensor's ticks (partitions, stage order, run keys, tags) on a temp
instance, the executor chosen by configuration, and the selection options read from the environment."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from assets.resources import HomeResource, LakeResource
from pipelines.launch import GRID_TAG, JOB_NAMES, grid_sensor
from startpoint import lake as lake_files
from startpoint.engine.records import run_relpath, run_row
from startpoint.engine.train import FinetuneResult
from startpoint.grid import SOURCE_RECIPE, Grid, target_recipe
from startpoint.keys import encode_key
from startpoint.plan import SelectionOptions, grid_steps
from startpoint.zoo import DEFAULT_BASE, intermediate_id

GRID = Grid(name="tiny", sources=("fine_foods",), targets=("tweets_sentiment",), seeds=(0, 1),
            base_models=(DEFAULT_BASE,))
INTERMEDIATE = intermediate_id("fine_foods", DEFAULT_BASE)
BASE_KEY, INTER_KEY = encode_key(DEFAULT_BASE), encode_key(INTERMEDIATE)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("STARTPOINT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STARTPOINT_LAKE", raising=False)
    return tmp_path / "home"


def _tick(sensor, instance, home):
    context = dg.build_sensor_context(instance=instance, resources={
        "lake": LakeResource(url=str(home / "lake")), "home": HomeResource(path=str(home))})
    result = sensor(context)
    for request in result.dynamic_partitions_requests or []:  # what the daemon does with them before the runs
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def _summary(result) -> list[tuple[str, str | None]]:
    return [(r.job_name, r.partition_key) for r in result.run_requests]


def test_the_grid_sensor_registers_the_partitions_and_requests_one_stage_at_a_time(home):
    sensor = grid_sensor("tiny", lambda: GRID, "a tiny grid")
    with dg.instance_for_test() as instance:
        first = _tick(sensor, instance, home)
        # Every partition of the grid is registered on the first tick, including those of later stages.
        assert set(instance.get_dynamic_partitions("sources")) == {f"{BASE_KEY}@fine_foods"}
        assert set(instance.get_dynamic_partitions("base_models")) == {BASE_KEY, INTER_KEY}
        assert set(instance.get_dynamic_partitions("targets")) == {"tweets_sentiment"}
        # Stage 1: datasets, the intermediate model, and what needs only the pretrained base; nothing that
        # needs the intermediate model yet.
        assert _summary(first) == [
            ("lake_datasets", None),
            ("grid_intermediate_models", f"{BASE_KEY}@fine_foods"),
            ("grid_finetune_runs", f"{BASE_KEY}|tweets_sentiment"),
            ("grid_probe_scores", BASE_KEY),
        ]
        assert all(r.tags == {GRID_TAG: "tiny"} for r in first.run_requests)
        keys = [r.run_key for r in first.run_requests]
        assert len(set(keys)) == len(keys) and all(k.startswith("tiny:") for k in keys)
        op_configs = [next(iter(r.run_config["ops"].values()))["config"] for r in first.run_requests]
        assert op_configs[0] == {"dataset_ids": ["fine_foods", "tweets_sentiment"]}
        assert op_configs[2] == {"seeds": [0, 1], "recipe": target_recipe("tweets_sentiment").to_json()}

        # Nothing changed: the same requests under the same run keys (the instance drops the repeats).
        again = _tick(sensor, instance, home)
        assert [r.run_key for r in again.run_requests] == keys

        # The intermediate model is saved, the base's runs and the datasets rows are in the lake.
        folder = home / "models" / INTER_KEY
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"")
        (folder / "startpoint.json").write_text(json.dumps({"architecture": "all-MiniLM-L6-v2",
                                                            "recipe_hash": SOURCE_RECIPE.recipe_hash}))
        lake_url = str(home / "lake")
        recipe = target_recipe("tweets_sentiment")
        for seed in GRID.seeds:
            result = FinetuneResult(status="ok", dataset_id="tweets_sentiment", metric="accuracy", seed=seed, score=60.0)
            lake_files.write(lake_url, "finetune_runs", run_relpath(DEFAULT_BASE, "tweets_sentiment", recipe, seed),
                             [run_row(DEFAULT_BASE, "all-MiniLM-L6-v2", recipe, result)])
        second = _tick(sensor, instance, home)
        # Stage 2: the intermediate model's finetune and probe; the base's probe is still missing from the lake;
        # the datasets step is not, yet (no rows written), so it is asked for again under its old run key.
        assert _summary(second) == [
            ("lake_datasets", None),
            ("grid_finetune_runs", f"{INTER_KEY}|tweets_sentiment"),
            ("grid_probe_scores", BASE_KEY),
            ("grid_probe_scores", INTER_KEY),
        ]
        assert second.run_requests[0].run_key == keys[0] and second.run_requests[2].run_key == keys[3]


def test_a_changed_config_is_a_new_run_key_and_a_finished_grid_requests_nothing(home):
    steps = grid_steps(GRID)
    more_seeds = grid_steps(Grid(name="tiny", sources=GRID.sources, targets=GRID.targets, seeds=(0, 1, 2),
                                 base_models=GRID.base_models))
    by_id = {s.id: s.config_digest for s in steps}
    changed = {s.id for s in more_seeds if by_id[s.id] != s.config_digest}
    assert changed == {f"finetune:{m}:tweets_sentiment" for m in (DEFAULT_BASE, INTERMEDIATE)}

    empty = Grid(name="empty", sources=(), targets=(), seeds=(), base_models=(DEFAULT_BASE,), probe_dataset="tweets_sentiment")
    lake_files.write(str(home / "lake"), "probe_scores", f"local/{BASE_KEY}/tweets_sentiment",
                     [{"model_id": DEFAULT_BASE, "architecture": "all-MiniLM-L6-v2", "method": "logme",
                       "proxy_dataset": "tweets_sentiment", "score": 1.0}])
    lake_files.write(str(home / "lake"), "datasets", "local/tweets_sentiment",
                     [{"dataset_id": "tweets_sentiment"}])
    with dg.instance_for_test() as instance:
        result = _tick(grid_sensor("empty", lambda: empty, "done"), instance, home)
    assert not result.run_requests and "complete" in result.skip_reason.skip_message


def test_the_grid_jobs_are_named_and_their_executor_comes_from_the_environment(monkeypatch):
    from pipelines.definitions import defs
    from pipelines.executors import ExecutorChoiceError, configured_executor
    from pipelines.recovery import recovering_executor

    for name in JOB_NAMES.values():
        assert defs.resolve_job_def(name).executor_def is recovering_executor  # STARTPOINT_EXECUTOR unset
    sensors = {s.name for s in defs.sensors}
    assert {"default_grid", "full_grid", "select_all_MiniLM_L6_v2"} <= sensors
    assert configured_executor({}).name == "multiprocess_recovering"
    assert configured_executor({"STARTPOINT_EXECUTOR": "in_process"}).name == "in_process_recovering"
    import importlib.util

    for choice, package, name in (("celery", "dagster_celery", "celery"), ("k8s", "dagster_k8s", "k8s")):
        env = {"STARTPOINT_EXECUTOR": choice, "STARTPOINT_CELERY_BROKER": "redis://127.0.0.1:1/0"}
        if importlib.util.find_spec(package):  # the cluster extra (make cluster-test installs it)
            assert configured_executor(env).name == name
        else:  # plain make test: one line that says what to install
            with pytest.raises(ExecutorChoiceError, match=f"STARTPOINT_EXECUTOR={choice} needs .*cluster extra"):
                configured_executor(env)
    with pytest.raises(ExecutorChoiceError, match="STARTPOINT_EXECUTOR='ray' is not one of"):
        configured_executor({"STARTPOINT_EXECUTOR": "ray"})


def test_selection_options_come_from_the_environment_with_one_line_errors():
    options = SelectionOptions.from_env({"STARTPOINT_SELECT_K": "5", "STARTPOINT_SELECT_METHOD": "linear_probe",
                                         "STARTPOINT_SELECT_TARGETS": "a, b", "STARTPOINT_SELECT_SEEDS": "0,1,2"})
    assert (options.k, options.method, options.targets, options.seeds) == (5, "linear_probe", ("a", "b"), (0, 1, 2))
    assert SelectionOptions.from_env({}) == SelectionOptions()
    with pytest.raises(ValueError, match="STARTPOINT_SELECT_K='three' is not a whole number"):
        SelectionOptions.from_env({"STARTPOINT_SELECT_K": "three"})
    with pytest.raises(ValueError, match="method must be logme or linear_probe"):
        SelectionOptions.from_env({"STARTPOINT_SELECT_METHOD": "knn"})


def test_a_fusion_comes_after_its_bases_target_runs_and_its_model_is_finetuned_once_made():
    from startpoint.plan import ready_steps

    grid = Grid(name="fuse", sources=("fine_foods", "drug_review_sentiment"), targets=("tweets_sentiment",),
                seeds=(0,), base_models=(DEFAULT_BASE,), fusion_recipes=("top2-avg",))
    steps = grid_steps(grid)
    [fuse] = [s for s in steps if s.kind == "fuse"]
    assert fuse.id == f"fuse:{DEFAULT_BASE}:top2-avg" and fuse.config == {"ranking": "lake"}
    assert set(fuse.after) == {f"finetune:{m}:tweets_sentiment" for m in grid.models_of(DEFAULT_BASE)}
    done = {s.id for s in steps if s.kind != "fuse"}
    assert [s.id for s in ready_steps(steps, done)] == [fuse.id]
    assert fuse not in ready_steps(steps, done - {fuse.after[0]})
    # Once made, the fused model is finetuned on every target and probed, after the fusion.
    fused = "local/all-MiniLM-L6-v2-fused-top2-avg-0123abcd"
    more = grid_steps(grid, {(DEFAULT_BASE, "top2-avg"): fused})
    new = [s for s in more if s.model == fused]
    assert [(s.kind, s.target, s.after) for s in new] == [("finetune", "tweets_sentiment", (fuse.id,)),
                                                          ("probe", "", (fuse.id,))]
    # A base with fewer models than the recipe's members gets no fusion step at all.
    alone = Grid(name="alone", sources=(), targets=("tweets_sentiment",), seeds=(0,), fusion_recipes=("top2-avg",))
    assert not [s for s in grid_steps(alone) if s.kind == "fuse"]


def test_run_grid_counts_the_steps_a_failed_model_blocks_as_failed(home):
    from pipelines.launch import run_grid

    grid = Grid(name="blocked", sources=("no_such_set",), targets=(), seeds=(), base_models=(DEFAULT_BASE,),
                probe_dataset="tweets_sentiment")
    lines: list[str] = []
    with dg.instance_for_test() as instance:
        counts = run_grid(grid, instance, log=lines.append)
        runs = {(r.job_name, r.status.value) for r in instance.get_runs()}
    # The intermediate model fails; its probe is never started; the base's probe and the datasets step run.
    assert counts == {"ok": 1, "failed": 2}
    assert runs == {("lake_datasets", "SUCCESS"), ("grid_intermediate_models", "FAILURE"),
                    ("grid_probe_scores", "SUCCESS")}
    blocked = intermediate_id("no_such_set", DEFAULT_BASE)
    assert any(f"probe: {blocked} not run: it needs intermediate:{DEFAULT_BASE}:no_such_set" in line for line in lines)


def test_a_selected_hub_model_is_installed_by_its_run_and_a_refused_one_fails_with_the_reason(home):
    """The finetune run (not the sensor) links an accepted Hub model in; a refused one is one line with the reason."""
    from startpoint.probes.candidates import install_hub_candidate

    lake_url, models = str(home / "lake"), home / "models"
    lake_files.write(lake_url, "hub_models", "hub/someone--pickled-roberta", [
        {"model_id": "someone/pickled-roberta", "architecture": "roberta-base", "source": "hub", "status": "refused",
         "refusal_reason": "weights only as pytorch_model.bin (pickle)", "revision": "abc"}])
    with pytest.raises(ValueError, match=r"'someone/pickled-roberta' is refused in the Hub catalog: weights only"):
        install_hub_candidate("someone/pickled-roberta", lake_url, models, home / "cache")
    # Packaged, already local, or unknown to the catalog: nothing to install (the run then resolves it or fails).
    assert install_hub_candidate(DEFAULT_BASE, lake_url, models, home / "cache") is None
    assert install_hub_candidate("someone/not-in-catalog", lake_url, models, home / "cache") is None
    assert not models.exists()


def test_no_code_outside_the_launcher_materializes_assets_or_runs_jobs_itself():
    """No orchestrator inside the orchestrator: only `pipelines/launch.py` executes runs (the single-machine path,
    through the named jobs); no op or helper calls `materialize` on assets."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    calls = re.compile(r"\b(?:dg\.)?materialize\(|\.execute_in_process\(")
    found = [(str(p.relative_to(root)), line.strip()) for folder in ("startpoint", "pipelines", "assets")
             for p in sorted((root / folder).rglob("*.py")) for line in p.read_text().splitlines() if calls.search(line)]
    assert [path for path, _ in found] == ["pipelines/launch.py"], found  # one call: _execute


def test_run_grid_path_records_the_hub_catalog_of_every_architecture_offline(tmp_path, monkeypatch):
    """`startpoint run-grid` (make run) leaves no partition of lake/hub_models unmaterialized, offline too."""
    from huggingface_hub import constants

    from pipelines.launch import record_hub_catalog
    from startpoint.hub.architectures import ARCHITECTURES

    monkeypatch.setenv("STARTPOINT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STARTPOINT_LAKE", raising=False)
    monkeypatch.delenv("STARTPOINT_HUB_RECORDING", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    instance = dg.DagsterInstance.ephemeral()
    assert record_hub_catalog("default", instance, log=lambda m: None) == {"ok": len(ARCHITECTURES), "failed": 0}
    done = instance.get_materialized_partitions(dg.AssetKey(["lake", "hub_models"]))
    assert done == set(ARCHITECTURES)
    runs = instance.get_runs()
    assert {r.job_name for r in runs} == {"hub_catalog"} and all(r.tags.get("startpoint/grid") == "default" for r in runs)
