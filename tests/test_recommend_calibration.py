"""The calibration benchmark measures the production prediction path, not a copy of it; the conformal scales
do what they claim; docs/recommend.md quotes the benchmark's results file."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from startpoint.recommend.predict import (
    EvidenceFrames,
    build_evidence,
    conformal_scale,
    predict_candidates,
    predict_target_effect,
    read_frames,
)

from published_fixture import make_folder, materialize_published

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.recommend_calibration import (  # noqa: E402
    calibration_table,
    loto_frames,
    production_chain,
)

ARCHS = ("roberta-base", "t5-base")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """A warehouse built by the `published` job from a small real folder, and the compiled production SQL."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("calibration")
    home = root / "home"
    assert materialize_published(home, make_folder(root / "results", rows=30, archs=ARCHS), mp).success
    chain = production_chain()  # compiled against this home's warehouse (STARTPOINT_HOME is set)
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    yield con, chain
    con.close()
    mp.undo()


def _assert_frames_equal(a: EvidenceFrames, b: EvidenceFrames) -> None:
    assert (a.architecture, a.pretrained_model) == (b.architecture, b.pretrained_model)
    for name in ("candidates", "targets", "gains"):
        left, right = getattr(a, name), getattr(b, name)
        assert list(left.columns) == list(right.columns) and len(left) == len(right), name
        # Equal up to the last bits of floating-point sums (DuckDB adds in another order on a smaller table).
        assert_frame_equal(left, right, check_exact=False, rel_tol=1e-12, abs_tol=1e-9)


@pytest.mark.parametrize("arch", ARCHS)
def test_benchmark_rebuild_without_holdout_is_the_production_evidence(warehouse, arch):
    """Nothing held out, the benchmark's rebuild of the warehouse tables by the production SQL gives the evidence
    `recommend` reads: the same frames, residuals, conformal scales and predictions."""
    con, chain = warehouse
    rebuilt, stored = loto_frames(con, chain, arch, None), read_frames(con, arch)
    _assert_frames_equal(rebuilt, stored)
    ev_b, ev_s = build_evidence(rebuilt), build_evidence(stored)
    assert ev_s.calibrated and ev_b.calibrated
    np.testing.assert_allclose(ev_b.interaction_residuals, ev_s.interaction_residuals, rtol=1e-9, atol=1e-9)
    assert ev_b.sensitivity_scale == pytest.approx(ev_s.sensitivity_scale, rel=1e-9)
    assert ev_b.candidate_scale == pytest.approx(ev_s.candidate_scale, rel=1e-9)
    pb = predict_candidates(ev_b, predict_target_effect(ev_b, {}))
    ps = predict_candidates(ev_s, predict_target_effect(ev_s, {}))
    assert [(p.model_id, round(p.low, 6), round(p.high, 6)) for p in pb] == \
        [(p.model_id, round(p.low, 6), round(p.high, 6)) for p in ps]


def test_held_out_target_is_gone_and_the_ranking_is_recomputed(warehouse):
    con, chain = warehouse
    full = read_frames(con, "roberta-base")
    held = full.targets["dataset_id"][0]
    loto = loto_frames(con, chain, "roberta-base", held)
    assert held not in set(loto.targets["dataset_id"]) and held not in set(loto.gains["dataset_id"])
    assert set(loto.targets["dataset_id"]) == set(full.targets["dataset_id"]) - {held}
    merged = full.candidates.rename(lambda c: c if c == "model_id" else f"{c}_full").join(
        loto.candidates.rename(lambda c: c if c == "model_id" else f"{c}_loto"), on="model_id")
    assert (merged["n_targets_loto"] == merged["n_targets_full"] - 1).all()
    assert not np.allclose(merged["posterior_gain_full"], merged["posterior_gain_loto"])  # recomputed, not copied
    # nested: the conformal scales of this evidence come from the remaining targets only
    assert build_evidence(loto).calibration["n_targets"] == len(full.targets) - 1


def test_conformal_scale_is_the_interpolated_order_statistic():
    scores = np.arange(1.0, 40.0)  # 39 scores: position 0.95 * 40 = 38 -> the 38th smallest
    assert conformal_scale(scores) == pytest.approx(38.0)
    assert conformal_scale(np.arange(1.0, 20.0)) == pytest.approx(19.0)  # 0.95 * 20 = 19 = n: the largest
    assert conformal_scale(np.arange(1.0, 36.0)) == pytest.approx(34.2)  # 0.95 * 36 = 34.2


def _synthetic_frames(rng, n_targets: int, n_models: int = 40) -> tuple[EvidenceFrames, np.ndarray]:
    """gain = base + target effect + heavy-tailed interaction; a leaderboard with the mean gain as base effect."""
    base = rng.normal(0.5, 0.5, n_models)
    target_fx = rng.standard_t(3, n_targets) * 1.5
    gains = base[:, None] + target_fx[None, :] + rng.standard_t(3, (n_models, n_targets))
    models = [f"m{i:02d}" for i in range(n_models)]
    long = pl.DataFrame([(models[i], f"t{j:02d}", gains[i, j]) for i in range(n_models) for j in range(n_targets)],
                        schema=["model_id", "dataset_id", "gain"], orient="row")
    mean = gains.mean(axis=1)
    se = gains.std(axis=1, ddof=1) / math.sqrt(n_targets)
    order = np.argsort(-mean)
    cands = pl.DataFrame({"architecture": "synthetic", "rank": np.arange(1, n_models + 1),
                          "model_id": np.array(models)[order], "mean_gain": mean[order],
                          "ci_low": (mean - 1.96 * se)[order], "ci_high": (mean + 1.96 * se)[order],
                          "win_rate": 0.5, "n_targets": n_targets, "probe_score": np.nan, "flagged": False})
    targets = pl.DataFrame({"dataset_id": [f"t{j:02d}" for j in range(n_targets)], "mean_gain": gains.mean(axis=0),
                            "pretrained_score": np.nan, "n_train": np.nan, "n_labels": np.nan,
                            "majority_share": np.nan})
    return EvidenceFrames("synthetic", "pretrained", cands, targets, long), base


def test_conformal_scales_cover_new_targets():
    """Evidence from 36 synthetic targets, predictions checked on 400 fresh targets of the same process: the
    calibrated intervals cover about 95% of the new gains and sensitivities."""
    rng = np.random.default_rng(3)
    frames, base = _synthetic_frames(rng, 36)
    ev = build_evidence(frames)
    assert ev.calibrated
    target = predict_target_effect(ev, {})
    preds = predict_candidates(ev, target)
    model_index = {f"m{i:02d}": i for i in range(len(base))}
    new_fx = rng.standard_t(3, 400) * 1.5
    new_gains = base[:, None] + new_fx[None, :] + rng.standard_t(3, (len(base), 400))
    hits = [((p.low <= new_gains[model_index[p.model_id]]) & (new_gains[model_index[p.model_id]] <= p.high)).mean()
            for p in preds]
    sens = new_gains.mean(axis=0)
    assert 0.90 <= float(np.mean(hits)) <= 0.99
    assert 0.88 <= float(((target.low <= sens) & (sens <= target.high)).mean()) <= 0.995


def test_docs_quote_the_benchmark_results():
    """The coverage table of docs/recommend.md is the one the results file renders, digit for digit."""
    results = json.loads((ROOT / "benchmarks" / "results" / "recommend_calibration.json").read_text())
    text = (ROOT / "docs" / "recommend.md").read_text(encoding="utf-8")
    marker = re.search(r"<!-- results: benchmarks/results/recommend_calibration\.json -->\n((?:\|.*\|\n)+)", text)
    assert marker, "docs/recommend.md has no table under the recommend_calibration.json marker"
    assert marker.group(1) == calibration_table(results)
    for arch, r in results["architectures"].items():
        assert r["targets"] == len(r["per_target"])  # the file holds every held-out target it summarizes
        assert r["sensitivity_coverage"] == pytest.approx(np.mean([t["sens_hit"] for t in r["per_target"]]))
