"""The local grid's source recipe: chosen by benchmarks/local_sources.py's rule, recorded in its results file, and
quoted by docs/local_grid.md."""

from __future__ import annotations

import json
import sys

import pytest

from pipelines.engine.grid import DEFAULT_GRID, SOURCE_RECIPE
from pipelines.engine.recipe import Recipe
from pipelines.settings import REPO_ROOT

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
    if not results["complete"]:
        pytest.skip(f"benchmarks/local_sources.py has not measured every base, source and recipe yet: "
                    f"{sum(len(v['missing']) for v in results['verdicts'])} gaps (see the results file)")
    assert results["chosen"] is not None
    chosen = next(r for r in results["runs"] if r["recipe_label"] == results["chosen"])
    assert Recipe(**chosen["recipe"]) == SOURCE_RECIPE == DEFAULT_GRID.source_recipe
    # Every base and source of the default grid was measured with every candidate.
    measured = {(r["base_model"], r["source"], r["recipe_label"]) for r in results["runs"]}
    labels = {r["recipe_label"] for r in results["runs"]}
    assert measured == {(b, s, label) for b in DEFAULT_GRID.base_models for s in DEFAULT_GRID.sources for label in labels}


@pytest.mark.skipif(not RESULTS.is_file(), reason="benchmarks/results/local_sources.json not written yet")
def test_the_docs_quote_the_results_file():
    results = json.loads(RESULTS.read_text())
    doc = DOC.read_text()
    assert local_sources.sources_markdown(results) in doc
    if results.get("intertraining"):
        assert local_sources.gains_markdown(results) in doc
