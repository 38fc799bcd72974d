"""The local grid's source recipe: chosen by benchmarks/local_sources.py's rule, recorded in its results file, and
quoted by docs/local_grid.md."""

from __future__ import annotations

import json

import pytest

from startpoint.engine.recipe import Recipe
from startpoint.grid import DEFAULT_GRID, SOURCE_RECIPE
from startpoint.settings import REPO_ROOT
from benchmarks import local_sources

RESULTS = REPO_ROOT / "benchmarks" / "results" / "local_sources.json"
DOC = REPO_ROOT / "docs" / "local_grid.md"


def _run(base, source, label, score, majority=50.0):
    return {"base_model": base, "source": source, "recipe_label": label, "test_score": score,
            "test_majority_share": majority}


def test_the_rule_picks_the_cheapest_recipe_that_qualifies_the_most_sources():
    labels = ["small", "medium", "reference"]
    runs = [
        _run("b", "s1", "small", 58.0), _run("b", "s1", "medium", 66.0), _run("b", "s1", "reference", 69.0),
        _run("b", "s2", "small", 70.0), _run("b", "s2", "medium", 71.0), _run("b", "s2", "reference", 72.0),
    ]
    chosen = local_sources.choose(runs, labels)
    assert chosen["chosen"] == "medium" and chosen["chosen_sources"] == ["s1", "s2"]  # small: s1 only 8 above
    small = chosen["verdicts"][0]
    assert not small["meets_rule"] and [c["ok"] for c in small["checks"]] == [False, True]
    assert small["qualifying_sources"] == ["s2"]
    # One source wanted: the cheapest recipe that qualifies one is enough.
    assert local_sources.choose(runs, labels, n_sources=1)["chosen"] == "small"
    runs[1]["test_score"] = 63.0  # s1 now 6 points below the reference: no recipe qualifies both, small is cheaper
    fewer = local_sources.choose(runs, labels)
    assert (fewer["chosen"], fewer["chosen_sources"]) == ("small", ["s2"])
    assert "1 of the 2 wanted" in local_sources.status_markdown(
        {**fewer, "rule": {"min_test_above_majority": 10.0, "max_test_below_reference": 5.0},
         "runs": [], "source_recipe": {}})
    # An unmeasured run leaves the choice open (None), never a pass; a measured failure is still a failure.
    partial = local_sources.choose([r for r in runs if (r["source"], r["recipe_label"]) != ("s2", "medium")], labels)
    assert not partial["complete"] and partial["verdicts"][1]["meets_rule"] is False and partial["chosen"] is None
    for r in runs:
        r["test_score"] = r["test_majority_share"] + 1  # nothing above the majority share: nothing is chosen
    assert local_sources.choose(runs, labels)["chosen"] is None


def test_wilson_interval_holds_the_proportion_and_narrows_with_more_examples():
    lo, hi = local_sources.wilson(60, 100)
    assert lo < 60 < hi and 9 < hi - lo < 20
    lo2, hi2 = local_sources.wilson(600, 1000)
    assert hi2 - lo2 < (hi - lo) / 2


@pytest.mark.skipif(not RESULTS.is_file(), reason="benchmarks/results/local_sources.json not written yet")
def test_the_grid_uses_the_recipe_and_the_sources_the_benchmark_chose():
    results = json.loads(RESULTS.read_text())
    assert Recipe(**results["source_recipe"]) == SOURCE_RECIPE == DEFAULT_GRID.source_recipe
    assert results["chosen"] is not None and results["complete"]
    chosen = next(r for r in results["runs"] if r["recipe_label"] == results["chosen"])
    assert Recipe(**chosen["recipe"]) == SOURCE_RECIPE
    # The grid's sources are qualified ones; the one it leaves out is one of its targets (docs/local_grid.md).
    assert set(DEFAULT_GRID.sources) <= set(results["chosen_sources"])
    assert set(results["chosen_sources"]) - set(DEFAULT_GRID.sources) <= set(DEFAULT_GRID.targets)
    assert results["chosen_sources"] == local_sources.choose(
        results["runs"], [v["recipe_label"] for v in results["verdicts"]] + [results["rule"]["reference"]],
        n_sources=results["n_sources"])["chosen_sources"]
    # Every base and candidate source was measured with every candidate recipe.
    measured = {(r["base_model"], r["source"], r["recipe_label"]) for r in results["runs"]}
    labels = {r["recipe_label"] for r in results["runs"]}
    assert set(DEFAULT_GRID.sources) <= set(results["candidate_sources"])
    assert measured == {(b, s, label) for b in DEFAULT_GRID.base_models for s in results["candidate_sources"]
                        for label in labels}


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
    """docs/local_grid.md: none of the six 400-example models of the former sources was 10+ points above its majority
    share, and with 400 examples no candidate source qualifies on both bases."""
    results = json.loads(RESULTS.read_text())
    runs = [r for r in results["runs"] if r["recipe_label"] == "400x1"]
    assert len(runs) == len(DEFAULT_GRID.base_models) * len(results["candidate_sources"])
    former = [r for r in runs if r["source"] in ("fine_foods", "drug_review_sentiment", "birdstrike_phase")]
    assert len(former) == 6 and all(r["test_score"] - r["test_majority_share"] < 10 for r in former)
    assert next(v for v in results["verdicts"] if v["recipe_label"] == "400x1")["qualifying_sources"] == []


@pytest.mark.skipif(not RESULTS.is_file(), reason="benchmarks/results/local_sources.json not written yet")
def test_the_docs_reading_of_the_1200_example_recipe_holds():
    """docs/local_grid.md: with 1,200 examples fine_foods and ucla_course_subject are real sources on both bases,
    within 5 points of the reference; birdstrike_effect is less than 10 points above its majority share on MiniLM-L3;
    drug_review_sentiment (540 training examples) stays within a point of its majority share at 1,200 and 2,400;
    birdstrike_phase is < 10 points above its majority share, and on MiniLM-L3 > 5 below the reference."""
    results = json.loads(RESULTS.read_text())
    by = {(r["base_model"].split("/")[-1], r["source"], r["recipe_label"]): r for r in results["runs"]}
    above = lambda r: r["test_score"] - r["test_majority_share"]  # noqa: E731
    ref = "reference_2400x1"
    l3 = "paraphrase-MiniLM-L3-v2"
    for base in ("all-MiniLM-L6-v2", l3):
        for source in ("fine_foods", "ucla_course_subject"):
            r = by[(base, source, "1200x1")]
            assert above(r) >= 10 and by[(base, source, ref)]["test_score"] - r["test_score"] <= 5
        for label in ("1200x1", ref):
            drug = by[(base, "drug_review_sentiment", label)]
            assert drug["n_train"] == 540 and abs(above(drug)) <= 1
        assert above(by[(base, "birdstrike_phase", "1200x1")]) < 10
    assert above(by[(l3, "birdstrike_effect", "1200x1")]) < 10 <= above(by[("all-MiniLM-L6-v2", "birdstrike_effect", "1200x1")])
    # ucla_course_subject has 831 training examples: the grid's recipe and the reference both see all of them
    assert {by[(b, "ucla_course_subject", label)]["n_train"] for b in ("all-MiniLM-L6-v2", l3)
            for label in ("1200x1", ref)} == {831}
    assert "831 training examples, all of which it sees" in DOC.read_text()
    assert by[(l3, "birdstrike_phase", ref)]["test_score"] - by[(l3, "birdstrike_phase", "1200x1")]["test_score"] > 5


@pytest.mark.skipif(not RESULTS.is_file(), reason="benchmarks/results/local_sources.json not written yet")
def test_the_docs_reading_of_the_gains_holds():
    """docs/local_grid.md: every local model's interval across targets holds zero; the MiniLM-L6 fused model is ahead
    of the pretrained model on each target and its fine_foods model on 1 of 3; on MiniLM-L3 the fine_foods model is
    ahead on 2 of 3 and the fused model on none; the reliabilities are quoted as the file has them."""
    results = json.loads(RESULTS.read_text())
    gains = results["intertraining"]
    by_arch = {}
    for m in gains["models"]:
        by_arch.setdefault(m["architecture"], []).append(m)
    l6, l3 = by_arch["all-MiniLM-L6-v2"], by_arch["paraphrase-MiniLM-L3-v2"]
    assert len(l6) == len(l3) == 1 + len(DEFAULT_GRID.sources)  # the intermediate models and the fused one
    assert all(m["ci_low"] <= 0 <= m["ci_high"] for m in l6 + l3)

    def ahead(arch: str, kind: str) -> int:
        cells = [c for c in gains["cells"] if c["architecture"] == arch and (kind == "fused") == ("-fused-" in c["model_id"])]
        assert len(cells) == 3
        return sum(c["gain"] > 0 for c in cells)

    assert (ahead("all-MiniLM-L6-v2", "fused"), ahead("all-MiniLM-L6-v2", "source")) == (3, 1)
    assert (ahead("paraphrase-MiniLM-L3-v2", "fused"), ahead("paraphrase-MiniLM-L3-v2", "source")) == (0, 2)
    fused = [c["gain"] for c in gains["cells"] if c["model_id"].startswith("local/all-MiniLM-L6-v2-fused")]
    assert (min(fused), max(fused)) == (0.5, 2.25)
    rel = gains["reliability"]
    assert (f"reliability is {rel['all-MiniLM-L6-v2']:.2f} for all-MiniLM-L6-v2 and "
            f"{rel['paraphrase-MiniLM-L3-v2']:.2f} for\nparaphrase-MiniLM-L3-v2") in DOC.read_text()


def test_the_docs_name_the_members_of_the_minilm_l6_fused_model():
    """docs/local_grid.md: the MiniLM-L6 fused top-2 model averages the pretrained model with the fine_foods model
    (benchmarks/results/fusion_local.json, from the same `make run`)."""
    fusion = json.loads((REPO_ROOT / "benchmarks" / "results" / "fusion_local.json").read_text())
    row = next(r for r in fusion["rows"] if r["architecture"] == "all-MiniLM-L6-v2")
    assert set(row["members"]) == {"sentence-transformers/all-MiniLM-L6-v2", "local/all-MiniLM-L6-v2-fine_foods"}
    assert "the pretrained model averaged with the fine_foods model" in " ".join(DOC.read_text().split())
