"""`startpoint recommend` without training: predictions from the fixture warehouse, the CLI answer and report,
and clear errors (no traceback, non-zero exit) for bad CSVs and unknown architectures."""

from __future__ import annotations

import csv
import json
import math
import random

import duckdb
import numpy as np
import polars as pl
import pytest

from pipelines.cli import main
from startpoint.recommend.predict import (
    RecommendError,
    interaction_sd,
    load_evidence,
    predict_candidates,
    predict_target_effect,
)

from product_fixture import FLAGGED_MODEL, TARGETS, build

ARCH = "all-MiniLM-L6-v2"


@pytest.fixture()
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    build(home / "warehouse.duckdb")
    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    monkeypatch.delenv("STARTPOINT_LAKE", raising=False)
    return home


def write_csv(path, rows, header=("review", "sentiment")):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def reviews(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    words = {"pos": ["great", "loved", "superb", "fine"], "neg": ["awful", "hated", "boring", "dull"]}
    out = []
    for i in range(n):
        label = rng.choice(["pos", "neg"])
        out.append((f"{rng.choice(words[label])} film number {i}", label))
    return out


def evidence(home):
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return load_evidence(con, ARCH)
    finally:
        con.close()


def test_evidence_excludes_flagged_models_and_measures_interaction(home):
    ev = evidence(home)
    assert FLAGGED_MODEL not in set(ev.candidates["model_id"])
    assert list(ev.candidates["rank"]) == sorted(ev.candidates["rank"])
    assert ev.pretrained_model == "sentence-transformers/all-MiniLM-L6-v2"
    # the fixture draws interaction noise with sd 1.0
    assert 0.6 < ev.interaction_sd < 1.4


def test_interaction_sd_is_zero_for_an_additive_table():
    rows = [(m, t, b + e) for m, b in (("a", 1.0), ("b", 3.0)) for t, e in (("x", 0.0), ("y", 5.0), ("z", -1.0))]
    gains = pl.DataFrame(rows, schema=["model_id", "dataset_id", "gain"], orient="row")
    assert interaction_sd(gains) == pytest.approx(0.0, abs=1e-12)


def test_sensitivity_regression_uses_features_that_predict(home):
    ev = evidence(home)
    small = predict_target_effect(ev, {"n_train": 200, "n_labels": 2, "majority_share": 0.5})
    large = predict_target_effect(ev, {"n_train": 100000, "n_labels": 2, "majority_share": 0.5})
    assert small.method == "regression" and small.features
    assert small.loo_rmse < small.mean_rmse  # it was chosen because it predicts held-out targets better
    assert small.mean > large.mean  # small targets gain more from a good start, as in the fixture
    assert small.low < small.mean < small.high


def test_sensitivity_falls_back_to_the_architecture_mean(home):
    ev = evidence(home)
    pred = predict_target_effect(ev, {})  # nothing known about the target
    assert pred.method == "architecture mean" and pred.features == []
    assert pred.mean == pytest.approx(ev.targets["mean_gain"].mean())
    sd = ev.targets["mean_gain"].std(ddof=1)
    assert pred.sd == pytest.approx(sd * math.sqrt(len(ev.targets) / (len(ev.targets) - 1)))


def test_held_out_targets_fall_inside_their_intervals(home):
    """Leave each known target out, predict it from the rest: the 95% intervals should cover most of them."""
    ev = evidence(home)
    features = {ds: {"n_train": v[2], "n_labels": v[3], "majority_share": v[4]} for ds, v in TARGETS.items()}
    covered = 0
    for ds in ev.targets["dataset_id"]:
        held = ev.targets.filter(pl.col("dataset_id") == ds).row(0, named=True)
        ev_minus = type(ev)(**{**ev.__dict__, "targets": ev.targets.filter(pl.col("dataset_id") != ds)})
        pred = predict_target_effect(ev_minus, features[ds])
        covered += pred.low <= held["mean_gain"] <= pred.high
    assert covered >= len(ev.targets) - 2


def test_candidate_gain_is_base_effect_plus_target_offset(home):
    ev = evidence(home)
    target = predict_target_effect(ev, {"n_train": 3000})
    preds = predict_candidates(ev, target)
    assert [p.rank for p in preds] == sorted(p.rank for p in preds)
    offset = target.mean - ev.mean_target_effect
    for p, row in zip(preds, ev.candidates.iter_rows(named=True)):
        assert p.expected_gain == pytest.approx(row["base_effect"] + offset)
        assert p.base_effect == pytest.approx(row["mean_gain"])  # the raw-scale gain, never the ranking_score
        assert p.low < p.expected_gain < p.high
        assert p.sd > target.sd and p.sd > ev.interaction_sd  # every error source is counted
        assert 0.0 < p.p_beats_pretrained < 1.0


def test_cli_answers_and_writes_the_report(home, tmp_path, capsys):
    data = write_csv(tmp_path / "my reviews.csv", reviews(300))
    report_path = tmp_path / "out" / "report.json"
    rc = main(["recommend", "--data", str(data), "--text-col", "review", "--label-col", "sentiment",
               "--architecture", ARCH, "--report", str(report_path)])
    out = capsys.readouterr().out
    assert rc == 0
    report = json.loads(report_path.read_text())
    sure = [c for c in report["candidates"] if c["p_beats_pretrained"] >= 0.8 or c["low"] > 0]
    if sure:
        best = max(sure, key=lambda c: c["expected_gain"])
        assert report["decision"]["action"] == "start_from" and report["decision"]["model_id"] == best["model_id"]
    else:
        assert report["decision"]["action"] == "stay"
    assert report["decision"]["predicted"] is True
    assert out.strip().splitlines()[-1] == "Decision: " + report["decision"]["text"]
    assert report["target"]["n_labels"] == 2 and report["target"]["dataset_id"].startswith("user/my_reviews-")
    assert "protocol" not in report
    assert report["candidates"][0]["model_id"] in out


@pytest.mark.parametrize(
    "case, expect",
    [
        ("missing column", "no label column 'sentiment'"),
        ("one class", "at least two classes"),
        ("three rows", "at least 10"),
        ("non-utf8", "not valid utf-8"),
        ("too large", "MB"),
        ("no file", "no such file"),
    ],
)
def test_bad_csvs_give_a_clear_error_and_exit_code(home, tmp_path, capsys, monkeypatch, case, expect):
    path = tmp_path / "bad.csv"
    if case == "missing column":
        write_csv(path, reviews(50), header=("review", "stars"))
    elif case == "one class":
        write_csv(path, [(t, "pos") for t, _ in reviews(50)])
    elif case == "three rows":
        write_csv(path, reviews(3))
    elif case == "non-utf8":
        path.write_bytes("review,sentiment\n".encode() + "caf\xe9 ok,pos\n".encode("latin-1") * 40)
    elif case == "too large":
        monkeypatch.setenv("STARTPOINT_MAX_DATASET_MB", "0.01")
        write_csv(path, reviews(2000))
    rc = main(["recommend", "--data", str(path), "--text-col", "review", "--label-col", "sentiment"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and "Traceback" not in err
    assert expect.lower() in err.lower()


def test_unknown_architecture_is_a_clear_error(home, tmp_path, capsys):
    data = write_csv(tmp_path / "ok.csv", reviews(60))
    rc = main(["recommend", "--data", str(data), "--text-col", "review", "--label-col", "sentiment",
               "--architecture", "gpt-7"])
    err = capsys.readouterr().err
    assert rc == 2 and "no leaderboard for architecture 'gpt-7'" in err and "roberta-base" in err


def test_budget_must_be_positive(home, tmp_path, capsys):
    data = write_csv(tmp_path / "ok.csv", reviews(60))
    rc = main(["recommend", "--data", str(data), "--text-col", "review", "--label-col", "sentiment", "--budget", "0"])
    assert rc == 2 and "--budget" in capsys.readouterr().err


def test_missing_warehouse_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STARTPOINT_HOME", str(tmp_path / "empty-home"))
    data = write_csv(tmp_path / "ok.csv", reviews(60))
    rc = main(["recommend", "--data", str(data), "--text-col", "review", "--label-col", "sentiment"])
    err = capsys.readouterr().err
    assert rc == 2 and "no warehouse" in err


def test_regression_coefficients_reproduce_least_squares(home):
    ev = evidence(home)
    pred = predict_target_effect(ev, {"n_train": 1000, "n_labels": 2, "majority_share": 0.5})
    rows = ev.targets.with_columns(log10_n_train=pl.col("n_train").cast(pl.Float64).log10(),
                                   pretrained_score=pl.col("pretrained_score").cast(pl.Float64))
    x = np.column_stack([np.ones(len(rows))] + [rows[f].cast(pl.Float64).to_numpy() for f in pred.features])
    beta, *_ = np.linalg.lstsq(x, rows["mean_gain"].to_numpy().astype(float), rcond=None)
    assert [pred.coefficients["intercept"], *[pred.coefficients[f] for f in pred.features]] == pytest.approx(list(beta))
    with pytest.raises(RecommendError):
        predict_target_effect(type(ev)(**{**ev.__dict__, "targets": ev.targets.head(1)}), {})


def test_run_without_local_pretrained_weights_is_a_clear_error(home, tmp_path, capsys):
    """roberta-base is only known from published results here: --run must say so, not crash."""
    data = write_csv(tmp_path / "ok.csv", reviews(60))
    rc = main(["recommend", "--data", str(data), "--text-col", "review", "--label-col", "sentiment",
               "--architecture", "roberta-base", "--run"])
    err = capsys.readouterr().err
    assert rc == 2 and "--run needs the pretrained model 'roberta-base'" in err and "Traceback" not in err


def test_base_effect_is_the_raw_mean_gain_never_the_ranking_score(home):
    """The base effect is the leaderboard's mean_gain with ci_low..ci_high; on a target whose predicted effect is
    the architecture mean, a candidate's expected gain is its mean_gain (within 0.01). The ranking_score (what
    orders the list) changes nothing; the pretrained model's own row is never a candidate."""
    ev = evidence(home)
    target = predict_target_effect(ev, {})
    assert target.mean == pytest.approx(ev.mean_target_effect)
    preds = predict_candidates(ev, target)
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    lb = {r[0]: r[1:] for r in con.execute(
        "select model_id, mean_gain, ci_low, ci_high, is_pretrained from leaderboard where architecture = ?",
        [ARCH]).fetchall()}
    con.close()
    assert ev.pretrained_model in lb and lb[ev.pretrained_model][3]  # a ranked row of the leaderboard ...
    assert ev.pretrained_model not in {p.model_id for p in preds}  # ... but not a candidate
    for p in preds:
        mean_gain, ci_low, ci_high, _ = lb[p.model_id]
        assert abs(p.expected_gain - mean_gain) <= 0.01
        assert p.base_effect == pytest.approx(mean_gain)
        assert (p.base_ci_low, p.base_ci_high) == pytest.approx((ci_low, ci_high))
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("update leaderboard set ranking_score = 100.0 - 7 * rank")
    con.close()
    again = predict_candidates(evidence(home), target)
    assert [(p.model_id, p.expected_gain, p.low, p.high) for p in again] == \
        [(p.model_id, p.expected_gain, p.low, p.high) for p in preds]


def test_collapsed_cells_are_left_out_of_target_effects_and_residuals(home):
    """Kept cells only: a cell marked collapsed in `gains` moves neither the target effects nor the interaction
    residuals (the leaderboard's mean_gain already leaves it out)."""
    before = evidence(home)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("alter table gains add column collapsed boolean default false")
    victim, dataset = con.execute(
        "select model_id, dataset_id from gains where architecture = ? and model_id in "
        "(select model_id from leaderboard where rank = 1 and architecture = ?) order by dataset_id limit 1",
        [ARCH, ARCH]).fetchone()
    con.execute("insert into gains (architecture, model_id, dataset_id, gain, collapsed) values (?, ?, ?, -60.0, true)",
                [ARCH, victim, "collapsed_target"])
    con.execute("update gains set gain = gain - 60, collapsed = true where model_id = ? and dataset_id = ?",
                [victim, dataset])
    con.close()
    after = evidence(home)
    kept = before.targets.filter(pl.col("dataset_id") != dataset)
    joined = kept.join(after.targets, on="dataset_id", suffix="_after")
    assert len(joined) == len(kept)
    assert list(joined["mean_gain"]) == pytest.approx(list(joined["mean_gain_after"]))
    assert "collapsed_target" not in set(after.targets["dataset_id"])
    assert len(after.interaction_residuals) == len(before.interaction_residuals) - 1
    assert after.interaction_sd < before.interaction_sd * 1.2  # a -60 point cell would have blown it up


def test_dagster_recommend_job_with_run_config(home, tmp_path):
    """The UI path: job `recommend` with run config gives the same answer as the CLI, as metadata and a report."""
    from assets.resources import HomeResource, LakeResource, WarehouseResource
    from pipelines.recommend_job import recommend_job

    data = write_csv(tmp_path / "ui.csv", reviews(120))
    result = recommend_job.execute_in_process(
        run_config={"ops": {"recommend_target": {"config": {
            "data": str(data), "text_col": "review", "label_col": "sentiment", "architecture": ARCH}}}},
        resources={"lake": LakeResource(url=str(home / "lake")),
                   "warehouse": WarehouseResource(path=str(home / "warehouse.duckdb")),
                   "home": HomeResource(path=str(home))},
    )
    assert result.success
    report = result.output_for_node("recommend_target")
    assert report["decision"]["action"] in ("start_from", "stay") and "protocol" not in report
    reports = list((home / "artifacts" / "recommend").glob("ui-*.json"))
    assert len(reports) == 1 and json.loads(reports[0].read_text())["decision"] == report["decision"]
    meta = next(e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT").event_specific_data.metadata
    assert meta["decision"].value == report["decision"]["text"]


def test_interaction_residuals_are_df_corrected():
    from startpoint.recommend.predict import interaction_residuals

    rng = np.random.default_rng(1)
    rows = [(f"m{m}", f"t{t}", m + 2 * t + rng.normal(0, 3)) for m in range(30) for t in range(20)]
    gains = pl.DataFrame(rows, schema=["model_id", "dataset_id", "gain"], orient="row")
    resid = interaction_residuals(gains)
    assert len(resid) == 600
    assert np.mean(resid**2) == pytest.approx(interaction_sd(gains) ** 2)
    assert 2.6 < interaction_sd(gains) < 3.4  # recovers the noise sd despite the 49 fitted means


def _pred(model_id: str, rank: int, gain: float, low: float, high: float, p: float):
    from startpoint.recommend.predict import CandidatePrediction

    return CandidatePrediction(rank=rank, model_id=model_id, base_effect=gain, base_mean_gain=gain, base_ci_low=None,
                               base_ci_high=None, win_rate=None, n_targets=None, probe_score=None, expected_gain=gain,
                               sd=(high - low) / 3.92, low=low, high=high, p_beats_pretrained=p)


def test_a_coin_flip_is_never_a_decision_to_switch():
    from startpoint.recommend.core import predicted_decision

    preds = [_pred("a", 1, 0.09, -11.93, 12.12, 0.51), _pred("b", 2, 0.05, -12.0, 12.0, 0.505),
             _pred("c", 3, -0.2, -12.0, 11.0, 0.48)]
    d = predicted_decision(preds, "pre", budget=3)
    assert d["action"] == "stay" and d["model_id"] == "pre" and "start from" not in d["text"]
    assert d["text"].startswith("stay with the pretrained model")
    assert "worth a try: a (P = 0.51), b (P = 0.51)" in d["text"] and "c (P" not in d["text"]
    assert [w["model_id"] for w in d["worth_a_try"]] == ["a", "b"]
    assert predicted_decision(preds, "pre", budget=1)["worth_a_try"][0]["model_id"] == "a"
    assert "worth a try" not in predicted_decision(preds, "pre", budget=0)["text"]


def test_switch_when_probability_is_high_or_the_interval_is_above_zero():
    from startpoint.recommend.core import predicted_decision

    d = predicted_decision([_pred("a", 1, 2.0, -1.0, 5.0, 0.85), _pred("b", 2, 0.1, -3.0, 3.0, 0.52)], "pre")
    assert d["action"] == "start_from" and d["model_id"] == "a" and d["text"].startswith("start from a: +2.00")
    d = predicted_decision([_pred("a", 1, 0.4, 0.1, 0.7, 0.7)], "pre")  # interval above 0 alone is enough
    assert d["action"] == "start_from" and d["model_id"] == "a"
    d = predicted_decision([_pred("a", 1, 0.5, -0.1, 1.1, 0.79)], "pre")
    assert d["action"] == "stay"


def test_measured_decision_applies_the_same_rule():
    from startpoint.recommend.protocol import ModelRuns, measured_decision, p_beats

    pretrained = ModelRuns("pre", None, [80.0, 81.0, 79.0])

    def result(candidate_scores):
        return pretrained, [ModelRuns(m, i + 1, s) for i, (m, s) in enumerate(candidate_scores)]

    coin = result([("a", [80.1, 81.0, 79.2])])
    assert 0.4 < p_beats([80.1, 81.0, 79.2], [80.0, 81.0, 79.0]) < 0.6
    d = measured_decision(*coin, "pre")
    assert d["action"] == "stay" and "start from" not in d["text"] and d["best_candidate"] == "a"
    likely = result([("a", [81.0, 82.0, 80.3])])  # P about 0.85, interval still holds 0
    p = p_beats([81.0, 82.0, 80.3], [80.0, 81.0, 79.0])
    d = measured_decision(*likely, "pre")
    assert 0.8 <= p < 0.975 and d["ci_low"] < 0
    assert d["action"] == "start_from" and d["model_id"] == "a" and d["text"].startswith("start from a:")
    sure = result([("a", [80.2, 81.0, 79.1]), ("b", [85.0, 86.0, 84.5])])
    d = measured_decision(*sure, "pre")
    assert d["action"] == "start_from" and d["model_id"] == "b" and d["ci_low"] > 0
    single = (ModelRuns("pre", None, [80.0]), [ModelRuns("a", 1, [90.0])])
    assert measured_decision(*single, "pre")["action"] == "stay"  # one seed a side: no probability claimed
