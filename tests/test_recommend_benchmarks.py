"""The benchmarks of `recommend --run` (contention: benchmarks/recommend_contention.py; thread wait policy:
benchmarks/thread_wait.py; the adaptive budget's replay: benchmarks/recommend_budget.py): their summaries on
synthetic runs and, where a results file exists, the figures docs/recommend.md and docs/engine.md quote from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import recommend_budget, recommend_contention
from docs_fixture import docs_block

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def test_the_contention_summary_takes_medians_per_design_and_checks_the_goal():
    runs = [{"design": "previous", "hogs": 0, "seconds": 100.0, "ok": True},
            {"design": "previous", "hogs": 2, "seconds": 300.0, "ok": True},
            {"design": "new", "hogs": 0, "seconds": 90.0, "ok": True},
            {"design": "new", "hogs": 2, "seconds": 190.0, "ok": True},
            {"design": "new", "hogs": 2, "seconds": 10.0, "ok": False}]  # a failed run never counts
    s = recommend_contention.summarize(runs, 2)
    assert s["previous"] == {"alone_seconds": 100.0, "contended_seconds": 300.0, "contended_over_alone": 3.0,
                             "meets_goal": False}
    assert s["new"]["contended_seconds"] == 190.0 and s["new"]["contended_over_alone"] == 2.11
    assert s["new"]["meets_goal"]


def _record(gap: float, sd: float) -> dict:
    """A recorded run: the pretrained model at 50, two candidates at 50 + gap and 50, `sd` between seeds."""
    import numpy as np

    rng = np.random.default_rng(0)
    cands = [{"rank": r, "model_id": m, "base_effect": 0.5, "base_mean_gain": 0.5, "base_ci_low": -1.0,
              "base_ci_high": 2.0, "win_rate": 0.5, "n_targets": 3, "probe_score": None, "expected_gain": 0.5,
              "sd": 2.0, "low": -3.5, "high": 4.5, "p_beats_pretrained": 0.6} for r, m in ((1, "a"), (2, "b"))]
    scores = {"base": list(50 + sd * rng.normal(size=6)), "a": list(50 + gap + sd * rng.normal(size=6)),
              "b": list(50 + sd * rng.normal(size=6))}
    return {"pretrained_model": "base", "interaction_sd": 2.0, "candidates": cands, "scores": scores}


def test_the_replay_runs_the_product_protocols_on_resampled_seeds():
    clear = recommend_budget.replay(_record(gap=8.0, sd=0.5), 6, 12, replays=200, max_seeds=3, batch=2, seed=0)
    assert clear["agreement_small_large"] > 0.9 and clear["agreement_low"] <= clear["agreement_small_large"]
    assert clear["decisions"]["large"].get("start_from a", 0) > 180
    assert clear["mean_finetunes"]["small"] <= 6 and clear["mean_finetunes"]["large"] < 12  # settled early
    assert clear["mean_finetunes"]["fixed"] == 9  # the fixed protocol: 3 models x 3 seeds
    noisy = recommend_budget.replay(_record(gap=1.0, sd=3.0), 6, 12, replays=200, max_seeds=3, batch=2, seed=0)
    assert noisy["mean_finetunes"]["small"] < noisy["mean_finetunes"]["large"]
    assert 0.0 <= noisy["agreement_small_large"] <= 1.0
    assert recommend_budget.wilson(80, 100) == pytest.approx((0.711, 0.867), abs=0.001)


CONTENTION = RESULTS / "recommend_contention.json"


@pytest.mark.skipif(not CONTENTION.exists(), reason="no benchmarks/results/recommend_contention.json yet")
def test_the_docs_quote_the_contention_results():
    data = json.loads(CONTENTION.read_text())
    assert data["all_succeeded"], "the results file holds a run with a failed step: rerun the benchmark"
    assert all(r["ok"] and r["exit_code"] == 0 and r["failed_finetunes"] == 0 for r in data["runs"])
    block = docs_block("recommend.md", "recommend_contention")
    for design, d in data["designs"].items():
        row = (f"| {design} | {d['alone_seconds']:.1f} s | {d['contended_seconds']:.1f} s | "
               f"{d['contended_over_alone']:.2f} |")
        assert row in block, row
    new = data["designs"]["new"]
    assert ("meets the goal" in block) == new["meets_goal"]
    assert f"beside {data['hogs']} spinning processes" in block and f"{data['rows']:,}-row" in block
    previous = data["designs"]["previous"]
    assert f"takes {round(100 * new['contended_seconds'] / previous['contended_seconds'])}% of the previous" in block
    slower = round(100 * (new["alone_seconds"] / previous["alone_seconds"] - 1))
    assert (f"Alone it was {slower}% slower" in block) if slower > 0 else ("slower" not in block)
    spinning = json.loads((RESULTS / "recommend_contention_spinning.json").read_text())
    assert spinning["all_succeeded"]
    d = spinning["designs"]["new"]
    assert (f"{d['alone_seconds']:.1f} s alone and {d['contended_seconds']:.1f} s beside the 2 processes "
            f"({d['contended_over_alone']:.2f} times") in block
    assert f"{spinning['designs']['previous']['contended_seconds']:.1f} s beside the busy processes" in block


THREAD_WAIT = RESULTS / "thread_wait.json"


@pytest.mark.skipif(not THREAD_WAIT.exists(), reason="no benchmarks/results/thread_wait.json yet")
def test_the_docs_quote_the_thread_wait_results():
    data = json.loads(THREAD_WAIT.read_text())
    assert data["all_succeeded"] and data["same_score"]
    block = docs_block("engine.md", "thread_wait")
    for variant, m in data["medians"].items():
        idle = f"{m['idle_seconds']:.1f} s" if "idle_seconds" in m else "—"
        assert f"| {variant} | {idle} | {m['contended_seconds']:.1f} s |" in block, variant
    default, passive = data["medians"]["2 threads, default wait"], data["medians"]["2 threads, passive wait"]
    share = round(100 * passive["contended_seconds"] / default["contended_seconds"])
    cost = round(100 * (passive["idle_seconds"] / default["idle_seconds"] - 1))
    assert f"took {share}% of the default's time; idle it cost {cost}% more" in block
    assert passive["contended_seconds"] < default["contended_seconds"]  # the reason the policy is the default


BUDGET = RESULTS / "recommend_budget.json"


@pytest.mark.skipif(not BUDGET.exists(), reason="no benchmarks/results/recommend_budget.json yet")
def test_the_docs_quote_the_budget_replay():
    data = json.loads(BUDGET.read_text())
    block = docs_block("recommend.md", "recommend_budget")
    assert (f"{data['agreement_small_large']:.1%} of {data['replays']:,} replays "
            f"(95% interval {data['agreement_low']:.1%}..{data['agreement_high']:.1%})") in block
    spent = data["mean_finetunes"]
    assert f"{spent['small']:.2f} finetunes on average against {spent['large']:.2f}" in block
    assert f"fixed protocol ({spent['fixed']:.2f} finetunes:" in block
    assert f"{data['agreement_small_fixed']:.1%}" in block
    assert ("meets the goal" in block) == bool(data["meets_goal"])
    recorded = data["recorded"]
    assert f"{recorded['dataset']}" in block and f"{recorded['seeds']} seeds" in block
    assert f"{recorded['rows']:,}-row" in block and f"{data['candidates']} candidates it reached" in block
    for key, n in data["decisions"]["large"].items():
        said = "stay" if key.startswith("stay") else "start from"
        assert f"{n} said {said}" in block, key
