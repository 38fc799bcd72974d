"""The asset checks of `lake/finetune_runs` and `lake/probe_scores`: each passes on a sound partition and fails,
naming the row, on one broken the way it could be (a score out of range, a failure without its reason, a lost or
doubled seed, a NaN probe score, a missing method). The partition's files are written by hand, so nothing trains."""

import dagster as dg
import pytest

from assets.finetune import RUN_CHECKS, finetune_runs, run_problems
from assets.probes import PROBE_CHECKS, probe_problems, probe_scores_lake
from assets.resources import HomeResource, LakeResource
from startpoint import lake
from startpoint.engine import Recipe
from startpoint.engine.records import run_relpath
from startpoint.keys import encode_key
from startpoint.probes.candidates import probe_relpath
from startpoint.zoo import DEFAULT_BASE

RECIPE = Recipe(train_cap=32, epochs=1, batch_size=16, max_length=24, eval_cap=16, test_cap=24, patience=0)
MODEL, TARGET = "local/m", "fine_foods"


def _run(url, seed, *, recipe=RECIPE, model=MODEL, **row):
    lake.write(url, "finetune_runs", run_relpath(model, TARGET, recipe, seed) + ("-again" if row.pop("again", 0) else ""), [{
        "run_id": f"{model}-{seed}-{recipe.recipe_hash}", "model_id": model, "architecture": "roberta-base",
        "dataset_id": TARGET, "seed": seed, "origin": "local", "recipe_hash": recipe.recipe_hash,
        **{"status": "ok", "score": 71.5, "error": None, **row}}])


def test_run_checks_hold_on_scored_and_failed_runs(tmp_path):
    url = str(tmp_path / "lake")
    _run(url, 0)
    _run(url, 1, status="failed", score=None, error="dataset 'fine_foods' could not be loaded")
    assert run_problems(url, MODEL, TARGET, RECIPE.recipe_hash, [0, 1]) == {name: [] for name in RUN_CHECKS}


@pytest.mark.parametrize("row", [
    {"score": 130.0}, {"score": float("nan")}, {"score": None},  # ok but no usable score
    {"status": "failed", "score": None, "error": ""},  # failed without its reason
    {"status": "failed", "score": 60.0, "error": "oom"},  # failed yet scored
    {"status": "unknown", "score": None, "error": "?"},
])
def test_runs_scored_or_failed_fails_on_a_broken_row(tmp_path, row):
    url = str(tmp_path / "lake")
    _run(url, 0)
    _run(url, 1, **row)
    problems = run_problems(url, MODEL, TARGET, RECIPE.recipe_hash, [0, 1])
    assert len(problems["runs_scored_or_failed"]) == 1 and "seed 1" in problems["runs_scored_or_failed"][0]
    assert problems["configured_seeds_recorded"] == []


def test_configured_seeds_recorded_fails_on_a_lost_or_doubled_seed(tmp_path):
    url = str(tmp_path / "lake")
    _run(url, 0)
    _run(url, 1, recipe=Recipe(train_cap=64))  # another recipe's seed 1 does not stand in for this one's
    _run(url, 0, again=1)  # seed 0 twice for this recipe
    _run(url, 0, model="local/other")  # another partition's files are not read
    problems = run_problems(url, MODEL, TARGET, RECIPE.recipe_hash, [0, 1])
    assert problems["configured_seeds_recorded"] == ["seed 0: 2 rows", "seed 1: 0 rows"]


def test_finetune_runs_reports_its_checks_in_the_partitions_run(tmp_path, monkeypatch):
    """Seeds already in the lake are skipped (nothing trains); the checks read what the lake holds for them."""
    home = tmp_path / "home"
    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    url = str(home / "lake")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("base_models", [encode_key(DEFAULT_BASE)])
    instance.add_dynamic_partitions("targets", [encode_key(TARGET)])
    key = dg.MultiPartitionKey({"model": encode_key(DEFAULT_BASE), "target": encode_key(TARGET)})
    resources = {"lake": LakeResource(url=url), "home": HomeResource(path=str(home))}

    def checks():
        result = dg.materialize([finetune_runs], partition_key=key, instance=instance, resources=resources,
                                run_config={"ops": {finetune_runs.op.name: {"config": {
                                    "seeds": [0, 1], "recipe": RECIPE.to_json()}}}})
        assert result.success  # a failed check is reported, not a failed run
        return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}

    _run(url, 0, model=DEFAULT_BASE)
    _run(url, 1, model=DEFAULT_BASE)
    assert checks() == {name: True for name in RUN_CHECKS}
    _run(url, 1, model=DEFAULT_BASE, score=-3.0)
    assert checks() == {"runs_scored_or_failed": False, "configured_seeds_recorded": True}
    assert {spec.name: spec.description for spec in finetune_runs.check_specs} == RUN_CHECKS


def _probe(url, rows, proxy="fine_foods", model=MODEL):
    lake.write(url, "probe_scores", probe_relpath(model, proxy), [
        {"model_id": model, "architecture": "roberta-base", "method": method, "proxy_dataset": proxy,
         "origin": "local", "score": score} for method, score in rows])


def test_probe_checks_hold_on_both_methods_scored(tmp_path):
    url = str(tmp_path / "lake")
    _probe(url, [("linear_probe", 64.0), ("logme", -0.7)])
    assert probe_problems(url, MODEL, "fine_foods") == {name: [] for name in PROBE_CHECKS}
    assert {spec.name: spec.description for spec in probe_scores_lake.check_specs} == PROBE_CHECKS


@pytest.mark.parametrize("rows", [
    [("linear_probe", 64.0), ("logme", float("nan"))],
    [("linear_probe", 64.0), ("logme", float("-inf"))],
    [("linear_probe", 140.0), ("logme", -0.7)],
])
def test_probe_scores_finite_fails_on_a_broken_score(tmp_path, rows):
    url = str(tmp_path / "lake")
    _probe(url, rows)
    _probe(url, [("linear_probe", 50.0), ("logme", 0.1)], proxy="mnli")  # the model's other proxy is read too
    problems = probe_problems(url, MODEL, "fine_foods")
    assert len(problems["probe_scores_finite"]) == 1 and problems["every_method_scored"] == []


def test_every_method_scored_fails_on_a_missing_method(tmp_path):
    url = str(tmp_path / "lake")
    _probe(url, [("linear_probe", 64.0)])
    _probe(url, [("logme", 0.1)], proxy="mnli")  # another proxy's LogME does not count
    assert probe_problems(url, MODEL, "fine_foods")["every_method_scored"] == ["fine_foods logme: 0 rows"]
