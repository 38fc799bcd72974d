"""benchmarks/make_run.py: the summary it writes (medians, the ratio, the 10-minute bound, the failed-run guard) and,
where a results file exists, the figures docs/engine.md quotes from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import make_run
from docs_fixture import docs_block

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "make_run.json"


def test_the_summary_takes_medians_and_checks_the_bound():
    runs = [{"hogs": 0, "seconds": 300.0}, {"hogs": 1, "seconds": 480.0}, {"hogs": 0, "seconds": 320.0},
            {"hogs": 1, "seconds": 640.0}]
    s = make_run.summarize(runs, 1)
    assert s["idle_seconds"] == 310.0 and s["contended_seconds"] == 560.0
    assert s["contended_over_idle"] == round(560 / 310, 2)
    assert s["within_bound"] == {"idle": True, "contended": True}
    assert make_run.summarize([{"hogs": 0, "seconds": 601.0}], 1)["within_bound"] == {"idle": False,
                                                                                      "contended": False}


def test_a_run_counts_only_when_the_grid_and_the_publish_said_so():
    assert make_run.GRID_LINE.search("default grid: 32 partition(s) materialized, 0 failed").group(2) == "0"
    assert make_run.PUBLISH_LINE.search("published: 22 asset(s) materialized (run 1), every check passed")
    assert not make_run.PUBLISH_LINE.search("published: failed (run 1); 3 asset(s) materialized before it stopped")


@pytest.mark.skipif(not RESULTS.exists(), reason="no benchmarks/results/make_run.json yet")
def test_the_docs_quote_the_results_file():
    data = json.loads(RESULTS.read_text())
    assert data["all_succeeded"], "the results file holds a run with a failed step: rerun the benchmark"
    assert all(r["ok"] and r["exit_code"] == 0 and r["grid_failed"] == 0 and r["published"] for r in data["runs"])
    block = docs_block("engine.md", "make_run", joined=False)
    for key in ("idle_seconds", "contended_seconds"):
        minutes, seconds = divmod(round(data[key]), 60)
        assert f"{data[key]:.1f} s" in block and f"{minutes} min {seconds:02d} s" in block, key
    assert f"{data['contended_over_idle']:.2f}" in block
    assert f"{data['peak_rss_mb']:,} MB" in block
    assert f"{data['hogs']} spinning process" in block
    assert f"{data['runs'][0]['grid_partitions']} grid partitions" in block
    assert f"{data['rounds']} round" in block
    for hogs in (0, data["hogs"]):  # every run's time, not only the medians
        assert ", ".join(f"{r['seconds']:.1f} s" for r in data["runs"] if r["hogs"] == hogs) in block, hogs


PHASES = ROOT / "benchmarks" / "results" / "finetune_phases.json"


@pytest.mark.skipif(not PHASES.exists(), reason="no benchmarks/results/finetune_phases.json yet")
def test_the_docs_quote_the_finetune_phases():
    data = json.loads(PHASES.read_text())
    block = docs_block("engine.md", "finetune_phases")
    med = data["medians"]
    for key in ("prepare_s", "train_s", "test_eval_batch32_s", "test_eval_batch128_s"):
        assert f"{med[key]:.2f} s" in block, key
    for key, value in data["step_parts"].items():
        assert f"{value:.3f} s" in block, key
    assert f"{data['test_eval_saving_pct']:.1f}% less" in block
    assert f"largest accuracy difference {data['accuracy_abs_diff_max']:.2f} points" in block
    parts = data["step_parts"]
    share = 100 * (parts["forward_s"] + parts["backward_s"]) / sum(parts.values())
    assert f"forward and backward are {share:.0f}% of it" in block
    assert data["test_eval_saving_pct"] > 0 and data["accuracy_abs_diff_max"] <= 0.5


BEFORE_PASSIVE = ROOT / "benchmarks" / "results" / "make_run_before_passive.json"


@pytest.mark.skipif(not BEFORE_PASSIVE.exists(), reason="no benchmarks/results/make_run_before_passive.json")
def test_the_docs_quote_the_run_before_the_passive_wait_policy():
    data = json.loads(BEFORE_PASSIVE.read_text())
    assert data["all_succeeded"]
    block = docs_block("engine.md", "make_run")
    assert f"took {data['idle_seconds']:.1f} s idle and {data['contended_seconds']:.1f} s beside one spinning" in block
    now = json.loads(RESULTS.read_text())
    margin = make_run.BOUND_SECONDS - now["contended_seconds"]
    assert f"the contended run by {margin:.0f} s" in block


OLD = ROOT / "benchmarks" / "results" / "make_run_256_300.json"


@pytest.mark.skipif(not OLD.exists(), reason="no benchmarks/results/make_run_256_300.json")
def test_the_docs_quote_the_run_with_the_former_target_recipe():
    data = json.loads(OLD.read_text())
    assert data["all_succeeded"] and data["contended_seconds"] > make_run.BOUND_SECONDS
    block = docs_block("engine.md", "make_run", joined=False)
    assert f"{data['idle_seconds']:.1f} s idle" in block and f"{data['contended_seconds']:.1f} s" in block


ONE_ROUND = ROOT / "benchmarks" / "results" / "make_run_passive_1round.json"


@pytest.mark.skipif(not ONE_ROUND.exists(), reason="no benchmarks/results/make_run_passive_1round.json")
def test_the_docs_quote_the_earlier_round_of_the_same_code():
    data = json.loads(ONE_ROUND.read_text())
    assert data["all_succeeded"] and data["rounds"] == 1
    block = docs_block("engine.md", "make_run")
    margin = make_run.BOUND_SECONDS - data["contended_seconds"]
    assert (f"took {data['idle_seconds']:.1f} s idle and {data['contended_seconds']:.1f} s beside one spinning "
            f"process (`benchmarks/results/make_run_passive_1round.json`): within the bound by {margin:.0f} s") in block
