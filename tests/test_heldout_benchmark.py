"""The held-out benchmark: its results file is what docs/ranking.md quotes, the product ships the rule it chose,
and its machinery (splits, flags, regrets) does what it says."""

from __future__ import annotations

import json

import numpy as np

from benchmarks import heldout_ranking, ranking_rules
from startpoint.settings import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results" / "heldout_ranking.json"


def test_docs_quote_the_results_file():
    results = json.loads(RESULTS.read_text())
    docs = (REPO_ROOT / "docs" / "ranking.md").read_text()
    assert heldout_ranking.markdown(results) in docs
    assert heldout_ranking.paired_markdown(results) in docs
    assert heldout_ranking.reading(results) in docs


def test_the_product_ships_the_rule_the_evaluation_chose():
    results = json.loads(RESULTS.read_text())
    clip = ranking_rules.dbt_var("ranking_clip")
    assert results["shipped"] == f"product_clip{clip:g}"
    for res in results["architectures"].values():  # every regret interval is a regret's: never below 0
        for metrics in res["rules"].values():
            for m in heldout_ranking.METRICS:
                assert 0 <= metrics[m]["low"] <= metrics[m]["mean"] <= metrics[m]["high"]


def _synthetic(rng, n_models=40, n_targets=20, best=3.0):
    """Gains with one clearly best model (row 0), noise elsewhere, and one row of shifted (garbled) scores."""
    target_level = rng.uniform(50, 95, n_targets)
    gain = rng.normal(0.0, 1.0, (n_models, n_targets))
    gain[0] += best
    score = target_level + gain
    score[1] = np.roll(score[1], 1)  # values under the wrong columns
    return {"models": [f"m{i}" for i in range(n_models)], "targets": [f"t{j}" for j in range(n_targets)],
            "gain": score - target_level, "score": score, "collapsed": np.zeros(gain.shape, bool),
            "seed_means": target_level}


def test_a_clearly_best_model_gives_near_zero_regret_and_a_shifted_row_is_caught():
    rng = np.random.default_rng(0)
    data = _synthetic(rng)
    assert heldout_ranking.flagged(data["score"])[1] and not heldout_ranking.flagged(data["score"])[0]
    assert heldout_ranking.garbled(data["score"], data["seed_means"])[1]
    per_rule = heldout_ranking.evaluate(data, 20, rng)
    assert set(per_rule) == set(ranking_rules.RULES) | {f"product_clip{c:g}" for c in ranking_rules.PRODUCT_CLIPS}
    for name, regrets in per_rule.items():
        assert (regrets["top1_B"] >= 0).all() and (regrets["top1_A"] >= 0).all()
        assert regrets["top1_B"].mean() < 0.5, name  # the best start is found from half the targets


def test_stay_is_picked_when_every_candidate_hurts():
    rng = np.random.default_rng(1)
    data = _synthetic(rng, best=0.0)
    data["gain"] -= 5.0
    data["score"] -= 5.0
    for name, regrets in heldout_ranking.evaluate(data, 10, rng).items():
        assert (regrets["top1_B"] == 0).all(), name  # oracle and pick are both "stay"
