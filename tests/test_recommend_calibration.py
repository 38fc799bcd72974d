"""The calibration benchmark measures the production prediction path, not a copy of it; the conformal scales
do what they claim; docs/recommend.md quotes the benchmark's results file."""

from __future__ import annotations

import json
import math
from dataclasses import replace
import re
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

from benchmarks.recommend_calibration import (
    FLOOR,
    MIN_CANDIDATES,
    calibration_table,
    loto_frames,
    per_target_table,
    production_chain,
    rule_evidence,
    rules_table,
)

ROOT = Path(__file__).resolve().parents[1]

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
    assert not np.allclose(merged["mean_gain_full"], merged["mean_gain_loto"])  # recomputed, not copied
    # nested: the conformal scales of this evidence come from the remaining targets only
    assert build_evidence(loto).calibration["n_targets"] == len(full.targets) - 1


def test_conformal_scale_is_the_interpolated_order_statistic():
    scores = np.arange(1.0, 40.0)  # 39 scores: position 0.95 * 40 = 38 -> the 38th smallest
    assert conformal_scale(scores) == pytest.approx(38.0)
    assert conformal_scale(np.arange(1.0, 20.0)) == pytest.approx(19.0)  # 0.95 * 20 = 19 = n: the largest
    assert conformal_scale(np.arange(1.0, 36.0)) == pytest.approx(34.2)  # 0.95 * 36 = 34.2


def _synthetic_frames(rng, n_targets: int, n_models: int = 40,
                      target_sd: np.ndarray | None = None) -> tuple[EvidenceFrames, np.ndarray]:
    """gain = base + target effect + heavy-tailed interaction (sd `target_sd` per target, default 1); a leaderboard
    with the mean gain as base effect."""
    base = rng.normal(0.5, 0.5, n_models)
    target_fx = rng.standard_t(3, n_targets) * 1.5
    sd = np.ones(n_targets) if target_sd is None else target_sd
    gains = base[:, None] + target_fx[None, :] + sd[None, :] * rng.standard_t(3, (n_models, n_targets))
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


def _fresh_coverage(rng, ev, base, target_sd: np.ndarray) -> tuple[np.ndarray, float]:
    """Per fresh target (same process, residual sd `target_sd`): the share of candidates whose gain the intervals
    cover; and the share of fresh sensitivities covered."""
    target = predict_target_effect(ev, {})
    preds = predict_candidates(ev, target)
    index = np.array([int(p.model_id[1:]) for p in preds])
    low, high = np.array([p.low for p in preds]), np.array([p.high for p in preds])
    fx = rng.standard_t(3, len(target_sd)) * 1.5
    new = base[:, None] + fx[None, :] + target_sd[None, :] * rng.standard_t(3, (len(base), len(target_sd)))
    y = new[index]
    per_target = ((low[:, None] <= y) & (y <= high[:, None])).mean(axis=0)
    sens = new.mean(axis=0)
    return per_target, float(((target.low <= sens) & (sens <= target.high)).mean())


def test_conformal_scales_cover_new_targets():
    """Evidence from 36 synthetic targets, predictions checked on 400 fresh targets of the same process: every
    fresh target keeps most of its candidates covered, the sensitivity about 95% of the time."""
    rng = np.random.default_rng(3)
    frames, base = _synthetic_frames(rng, 36)
    ev = build_evidence(frames)
    assert ev.calibrated
    per_target, sens = _fresh_coverage(rng, ev, base, np.ones(400))
    assert 0.93 <= float(per_target.mean()) <= 0.999  # per-target scales over-cover homogeneous targets a little
    assert float((per_target >= 0.85).mean()) >= 0.95
    assert 0.88 <= sens <= 0.995


def test_per_target_scales_cover_high_variance_targets():
    """One target in six has a residual sd five times the others' (as financial_phrasebank or copa do). The
    per-target rule keeps the fresh high-variance targets at or above 85% of their candidates far more often than
    the pooled per-cell 95% rule, which covers the typical targets fully and the wild ones badly."""
    rng = np.random.default_rng(5)
    sd_known = np.where(np.arange(36) % 6 == 0, 5.0, 1.0)
    frames, base = _synthetic_frames(rng, 36, target_sd=sd_known)
    ev = build_evidence(frames)
    pooled = replace(ev, top_candidate_scale=ev.calibration["pooled_scales"]["top"],
                     candidate_scale=ev.calibration["pooled_scales"]["rest"])
    wild = np.full(300, 5.0)
    shipped_wild, _ = _fresh_coverage(np.random.default_rng(11), ev, base, wild)
    pooled_wild, _ = _fresh_coverage(np.random.default_rng(11), pooled, base, wild)
    assert float((shipped_wild >= 0.85).mean()) >= 0.8
    assert float((pooled_wild >= 0.85).mean()) <= float((shipped_wild >= 0.85).mean()) - 0.3
    tame, _ = _fresh_coverage(np.random.default_rng(12), ev, base, np.ones(300))
    assert float(tame.mean()) >= 0.99  # the price: the typical targets are covered nearly always


def _held_out_coverage(con, chain, arch: str, held: str, features: dict) -> dict[str, float]:
    """Nested: rebuild the warehouse without `held` by the production SQL, predict it, and count the share of its
    candidates' measured gains inside the intervals, for the shipped rule and the pooled per-cell rule."""
    full = read_frames(con, arch)
    truth = dict(full.gains.filter(pl.col("dataset_id") == held).select("model_id", "gain").iter_rows())
    ev = build_evidence(loto_frames(con, chain, arch, held))
    out = {}
    for rule in ("per_target_max", "pooled_cells"):
        e = rule_evidence(ev, rule)
        preds = [p for p in predict_candidates(e, predict_target_effect(e, features)) if p.model_id in truth]
        out[rule] = float(np.mean([p.low <= truth[p.model_id] <= p.high for p in preds]))
    return out


def test_real_held_out_high_variance_targets(warehouse):
    """A fast real check on the published rows of the fixture: t5-base's targets with the widest spread of gains
    (the targets whose coverage the pooled rule lost), held out and rebuilt by the production SQL; the shipped
    per-target rule covers at least 85% of their candidates' gains and never fewer than the pooled rule."""
    con, chain = warehouse
    full = read_frames(con, "t5-base")
    spread = full.gains.group_by("dataset_id").agg(sd=pl.col("gain").std()).sort("sd", descending=True)
    for held in spread["dataset_id"].head(2):
        cov = _held_out_coverage(con, chain, "t5-base", held, {})
        assert cov["per_target_max"] >= 0.85, (held, cov)
        assert cov["per_target_max"] >= cov["pooled_cells"], (held, cov)


RESULTS = ROOT / "benchmarks" / "results" / "recommend_calibration.json"
SHARED_ARCHS = ("bert-base-uncased", "roberta-base", "t5-base")


def test_results_file_per_target_coverage_on_the_shared_architectures():
    """The benchmark's per-target table: every held-out target of every shared architecture, its coverage, and the
    summaries recomputed from it. The shipped rule leaves at most one target per architecture below 0.85 (the
    most extreme one: nested, no known target reaches its spread), fewer than any other rule compared, with the
    overall coverage at or above 0.93."""
    results = json.loads(RESULTS.read_text())
    assert set(SHARED_ARCHS) <= set(results["architectures"])
    for arch in SHARED_ARCHS:
        r = results["architectures"][arch]
        rows = r["per_target"]
        assert len(rows) == r["targets"] == 36
        eligible = [t for t in rows if t["cand_total"] >= MIN_CANDIDATES]
        assert len(eligible) == r["eligible_targets"] == 36  # every target has at least 20 candidates
        cov = [t["cand_hits"] / t["cand_total"] for t in eligible]
        assert [t["coverage"] for t in eligible] == pytest.approx(cov)
        assert r["min_target_coverage"] == pytest.approx(min(cov))
        assert r["targets_below_floor"] == sum(c < FLOOR for c in cov) <= 1
        assert r["candidate_coverage"] >= 0.93
        assert r["candidate_coverage"] == pytest.approx(
            sum(t["cand_hits"] for t in rows) / sum(t["cand_total"] for t in rows))
        below = {rule: x["targets_below_floor"] for rule, x in r["rules"].items()}
        assert below["per_target_max"] == min(below.values()), (arch, below)
        assert below["pooled_cells"] > below["per_target_max"]
        pooled = [t["pooled_cells_coverage"] for t in rows if t["cand_total"] >= MIN_CANDIDATES]
        assert r["rules"]["pooled_cells"]["min_target_coverage"] == pytest.approx(min(pooled))


def test_docs_quote_the_benchmark_results():
    """The tables of docs/recommend.md are the ones the results file renders, digit for digit."""
    results = json.loads(RESULTS.read_text())
    text = (ROOT / "docs" / "recommend.md").read_text(encoding="utf-8")
    tables = re.findall(r"<!-- results: benchmarks/results/recommend_calibration\.json -->\n((?:\|.*\|\n)+)", text)
    assert tables == [calibration_table(results), rules_table(results), per_target_table(results)], \
        "docs/recommend.md must quote the three recommend_calibration tables, in order"
    for arch, r in results["architectures"].items():
        assert r["targets"] == len(r["per_target"])  # the file holds every held-out target it summarizes
        assert r["sensitivity_coverage"] == pytest.approx(np.mean([t["sens_hit"] for t in r["per_target"]]))
    # the figures quoted in the prose
    prose = " ".join(text.split())
    archs = results["architectures"]
    shipped = {a: archs[a]["rules"]["per_target_max"] for a in SHARED_ARCHS}
    pooled = {a: archs[a]["rules"]["pooled_cells"] for a in SHARED_ARCHS}
    x = pooled["bert-base-uncased"]
    assert f"{x['min_target_coverage']:.2f} of {x['min_target']}'s candidates on bert-base-uncased" in prose
    for arch in ("roberta-base", "t5-base"):
        assert f"{pooled[arch]['min_target_coverage']:.2f} of {pooled[arch]['min_target']}'s on {arch}" in prose
    for arch in SHARED_ARCHS:
        x = shipped[arch]
        assert f"{x['min_target']}, {x['min_target_coverage']:.2f}" in prose, arch
    assert [shipped[a]["targets_below_floor"] for a in SHARED_ARCHS] == [1, 0, 1]
    overall = [shipped[a]["candidate_coverage"] for a in SHARED_ARCHS]
    assert f"overall coverage is {min(overall):.3f}-{max(overall):.3f}" in prose
    assert (f"{shipped['bert-base-uncased']['mean_interval_width']:.1f} points wide on bert-base-uncased "
            f"({pooled['bert-base-uncased']['mean_interval_width']:.1f} with the pooled rule), "
            f"{shipped['roberta-base']['mean_interval_width']:.1f} on roberta-base "
            f"({pooled['roberta-base']['mean_interval_width']:.1f}) and {shipped['t5-base']['mean_interval_width']:.1f} "
            f"on t5-base ({pooled['t5-base']['mean_interval_width']:.1f})") in prose
    lowest = min(x["candidate_coverage"] for a in SHARED_ARCHS for x in archs[a]["rules"].values())
    assert f"Every rule covers {math.floor(lowest * 100) / 100:.2f} or more overall" in prose
