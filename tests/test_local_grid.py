"""The local grid's source recipe: chosen by benchmarks/local_sources.py's rule, recorded in its results file, and
quoted by docs/local_grid.md."""

from __future__ import annotations

import json
import sys

import pytest

from startpoint.engine.recipe import Recipe
from startpoint.grid import DEFAULT_GRID, SOURCE_RECIPE
from startpoint.settings import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))
from benchmarks import local_sources  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "local_sources.json"
DOC = REPO_ROOT / "docs" / "local_grid.md"


def _run(base, source, label, score, majority=50.0):
    return {"base_model": base, "source": source, "recipe_label": label, "test_score": score,
            "test_majority_share": majority}


def test_the_rule_picks_the_cheapest_recipe_that_is_above_majority_and_near_the_reference():
    labels = ["small", "medium", "reference"]
    runs = [
        _run("b", "s1", "small", 58.0), _run("b", "s1", "medium", 66.0), _run("b", "s1", "reference", 69.0),
        _run("b", "s2", "small", 70.0), _run("b", "s2", "medium", 71.0), _run("b", "s2", "reference", 72.0),
    ]
    chosen = local_sources.choose(runs, labels)
    assert chosen["chosen"] == "medium"  # small is only 8 points above majority on s1
    small = chosen["verdicts"][0]
    assert not small["meets_rule"] and [c["ok"] for c in small["checks"]] == [False, True]
    runs[1]["test_score"] = 63.0  # now 6 points below the reference on s1: nothing qualifies
    assert local_sources.choose(runs, labels)["chosen"] is None
    # An unmeasured run leaves the verdict open (None), never a pass; a measured failure is still a failure.
    partial = local_sources.choose([r for r in runs if (r["source"], r["recipe_label"]) != ("s2", "medium")], labels)
    assert not partial["complete"] and partial["verdicts"][1]["meets_rule"] is False
    runs[1]["test_score"] = 66.0
    partial = local_sources.choose([r for r in runs if (r["source"], r["recipe_label"]) != ("s2", "medium")], labels)
    assert partial["verdicts"][1]["meets_rule"] is None and partial["chosen"] is None


def test_wilson_interval_holds_the_proportion_and_narrows_with_more_examples():
    lo, hi = local_sources.wilson(60, 100)
    assert lo < 60 < hi and 9 < hi - lo < 20
    lo2, hi2 = local_sources.wilson(600, 1000)
    assert hi2 - lo2 < (hi - lo) / 2


@pytest.mark.skipif(not RESULTS.is_file(), reason="benchmarks/results/local_sources.json not written yet")
def test_the_grid_uses_the_recipe_the_benchmark_chose():
    results = json.loads(RESULTS.read_text())
    assert Recipe(**results["source_recipe"]) == SOURCE_RECIPE == DEFAULT_GRID.source_recipe
    # The grid's recipe is a measured candidate; when the rule chose one, it is that one (docs/local_grid.md says
    # plainly when none met the rule).
    measured = {Recipe(**r["recipe"]) for r in results["runs"] if not r["recipe_label"].startswith("reference")}
    assert SOURCE_RECIPE in measured
    if results["chosen"] is not None:
        chosen = next(r for r in results["runs"] if r["recipe_label"] == results["chosen"])
        assert Recipe(**chosen["recipe"]) == SOURCE_RECIPE
    else:
        assert results["complete"] and "no candidate meets the rule" in DOC.read_text()
    # Every base and source of the default grid was measured with every candidate.
    measured = {(r["base_model"], r["source"], r["recipe_label"]) for r in results["runs"]}
    labels = {r["recipe_label"] for r in results["runs"]}
    assert measured == {(b, s, label) for b in DEFAULT_GRID.base_models for s in DEFAULT_GRID.sources for label in labels}


@pytest.mark.skipif(not RESULTS.is_file(), reason="benchmarks/results/local_sources.json not written yet")
def test_the_docs_quote_the_results_file():
    results = json.loads(RESULTS.read_text())
    doc = DOC.read_text()
    assert local_sources.sources_markdown(results) in doc
    assert local_sources.status_markdown(results) in doc
    if results.get("intertraining"):
        assert local_sources.gains_markdown(results) in doc
        assert local_sources.gains_summary(results) in doc


@pytest.mark.skipif(not RESULTS.is_file(), reason="benchmarks/results/local_sources.json not written yet")
def test_the_former_400_example_recipe_made_no_real_intermediate_model():
    """docs/local_grid.md says none of the six 400-example models was 10+ points above its majority share."""
    results = json.loads(RESULTS.read_text())
    former = [r for r in results["runs"] if r["recipe_label"] == "400x1"]
    assert len(former) == len(DEFAULT_GRID.base_models) * len(DEFAULT_GRID.sources)
    assert all(r["test_score"] - r["test_majority_share"] < 10 for r in former)


@pytest.mark.skipif(not RESULTS.is_file(), reason="benchmarks/results/local_sources.json not written yet")
def test_the_docs_reading_of_the_1200_example_recipe_holds():
    """docs/local_grid.md: with 1,200 examples fine_foods is a real source on both bases, within 5 points of the
    reference; drug_review_sentiment (540 training examples) stays within a point of its majority share at 1,200 and
    2,400; birdstrike_phase is < 10 points above its majority share, and on MiniLM-L3 > 5 below the reference."""
    results = json.loads(RESULTS.read_text())
    by = {(r["base_model"].split("/")[-1], r["source"], r["recipe_label"]): r for r in results["runs"]}
    above = lambda r: r["test_score"] - r["test_majority_share"]  # noqa: E731
    ref = "reference_2400x1"
    for base in ("all-MiniLM-L6-v2", "paraphrase-MiniLM-L3-v2"):
        ff = by[(base, "fine_foods", "1200x1")]
        assert above(ff) >= 10 and by[(base, "fine_foods", ref)]["test_score"] - ff["test_score"] <= 5
        for label in ("1200x1", ref):
            drug = by[(base, "drug_review_sentiment", label)]
            assert drug["n_train"] == 540 and abs(above(drug)) <= 1
        assert above(by[(base, "birdstrike_phase", "1200x1")]) < 10
    l3 = "paraphrase-MiniLM-L3-v2"
    assert by[(l3, "birdstrike_phase", ref)]["test_score"] - by[(l3, "birdstrike_phase", "1200x1")]["test_score"] > 5


@pytest.mark.skipif(not RESULTS.is_file(), reason="benchmarks/results/local_sources.json not written yet")
def test_the_docs_reading_of_the_gains_holds():
    """docs/local_grid.md: on MiniLM-L3 no local model's 95% interval excludes zero, fine_foods has the best mean
    gain, and the architecture's ranking reliability is below one half."""
    results = json.loads(RESULTS.read_text())
    gains = results["intertraining"]
    l3 = [m for m in gains["models"] if m["architecture"] == "paraphrase-MiniLM-L3-v2"]
    assert len(l3) == 3 and all(m["ci_low"] <= 0 <= m["ci_high"] for m in l3)
    assert max(l3, key=lambda m: m["mean_gain"])["model_id"] == "local/paraphrase-MiniLM-L3-v2-fine_foods"
    assert gains["reliability"]["paraphrase-MiniLM-L3-v2"] < 0.5
