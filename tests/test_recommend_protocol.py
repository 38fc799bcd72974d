"""The --run protocol: order, budget, early stopping and the decision, first with scripted scores (to pin the
rules), then one smoke run with the real engine on the offline MiniLM at a tiny cap."""

from __future__ import annotations

import io
import math

import duckdb
import numpy as np
import pytest
from scipy import stats

from startpoint.progress import RunProgress
from startpoint.recommend.predict import (
    predict_candidates,
    predict_target_effect,
)
from startpoint.recommend.protocol import (
    ModelRuns,
    measured_decision,
    run_protocol,
    welch_interval,
)

from product_fixture import build

ARCH = "all-MiniLM-L6-v2"


def scripted(means: dict[str, float], jitter: float = 0.2):
    """A train_one that returns fixed per-model scores (seed-dependent jitter), recording the call order."""
    calls: list[tuple[str, int]] = []

    def train_one(model_id: str, seed: int):
        calls.append((model_id, seed))
        return means[model_id] + jitter * (seed - 1), None

    return train_one, calls


def test_welch_interval_matches_scipy():
    a, b = [71.0, 72.5, 70.2, 73.1], [69.0, 70.1, 68.4]
    diff, low, high = welch_interval(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert (low, high) == pytest.approx((ci.low, ci.high))
    assert welch_interval([1.0], [2.0])[1] == -math.inf  # one run each: no interval is claimed


def test_clear_winner_is_recommended_and_budget_is_respected(minilm_evidence):
    preds = predict_candidates(minilm_evidence, predict_target_effect(minilm_evidence, {}))
    first, second, third = (p.model_id for p in preds[:3])
    train_one, calls = scripted({minilm_evidence.pretrained_model: 80.0, first: 85.0, second: 82.0, third: 90.0})
    result = run_protocol(minilm_evidence, preds, train_one, seeds=[0, 1, 2], budget=2, log=lambda m: None)
    assert [c.model_id for c in result.candidates] == [first, second]  # rank order, budget 2: the third is not run
    assert calls[:3] == [(minilm_evidence.pretrained_model, s) for s in range(3)]  # the baseline comes first
    assert result.gains[0].gain == pytest.approx(5.0)
    assert result.decision["action"] == "start_from" and result.decision["model_id"] == first
    assert result.decision["ci_low"] > 0
    assert result.decision["text"].startswith(f"start from {first}: +5.00 points (95% CI ")
    assert result.stopped_early is None


def test_stops_early_when_the_next_candidate_cannot_win(minilm_evidence):
    preds = predict_candidates(minilm_evidence, predict_target_effect(minilm_evidence, {}))
    means = {minilm_evidence.pretrained_model: 80.0, **{p.model_id: 65.0 for p in preds}}
    train_one, _ = scripted(means)
    result = run_protocol(minilm_evidence, preds, train_one, seeds=[0, 1, 2], budget=3, log=lambda m: None)
    assert len(result.candidates) == 1
    assert result.stopped_early and f"rank {preds[1].rank}" in result.stopped_early
    assert result.decision["action"] == "stay"
    assert result.decision["text"].startswith("stay with the pretrained model")


def test_noisy_small_gain_means_stay(minilm_evidence):
    preds = predict_candidates(minilm_evidence, predict_target_effect(minilm_evidence, {}))
    train_one, _ = scripted({minilm_evidence.pretrained_model: 80.0, **{p.model_id: 80.3 for p in preds}}, jitter=2.0)
    result = run_protocol(minilm_evidence, preds, train_one, seeds=[0, 1, 2], budget=2, log=lambda m: None)
    assert all(g.low <= 0 for g in result.gains)
    assert result.decision["action"] == "stay"


def test_models_without_weights_are_skipped_without_using_the_budget(minilm_evidence):
    preds = predict_candidates(minilm_evidence, predict_target_effect(minilm_evidence, {}))
    missing = {preds[0].model_id}

    def resolve(model_id):
        if model_id in missing:
            raise FileNotFoundError(f"no local weights for {model_id}")

    train_one, calls = scripted({minilm_evidence.pretrained_model: 80.0, **{p.model_id: 81.0 for p in preds}})
    result = run_protocol(minilm_evidence, preds, train_one, seeds=[0], budget=1, log=lambda m: None, resolve=resolve)
    assert [s["model_id"] for s in result.skipped] == [preds[0].model_id]
    assert [c.model_id for c in result.candidates] == [preds[1].model_id]


def test_decision_without_runs_is_to_stay():
    assert measured_decision(ModelRuns("base", None, [80.0, 81.0]), [], "base")["action"] == "stay"


def _zoo_home(tmp_path, monkeypatch):
    """A home with the fixture warehouse, one local candidate with real weights (the packaged MiniLM) ranked after
    the fixture's models (which have none), and a small two-class CSV; (home, data path)."""
    from startpoint.zoo import resolve

    try:
        pretrained_dir = resolve("sentence-transformers/all-MiniLM-L6-v2")
    except Exception as exc:  # pragma: no cover - CI installs it
        pytest.skip(f"offline MiniLM not installed: {exc}")
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    monkeypatch.delenv("STARTPOINT_LAKE", raising=False)
    build(home / "warehouse.duckdb")
    # A local candidate with real weights (the same encoder), ranked after the fixture's models, which have none.
    (home / "models" / "local--minilm-copy").symlink_to(pretrained_dir, target_is_directory=True)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute(
        """insert into leaderboard (architecture, rank, model_id, avg_score, pretrained_avg, mean_gain, ci_low,
                                    ci_high, win_rate, n_targets, probe_score, flagged, flag_reason)
           values (?, 50, 'local/minilm-copy', 80.0, 79.7, 0.3, -0.5, 1.1, 0.55, 9, null, false, null)""",
        [ARCH],
    )
    con.close()
    data = tmp_path / "reviews.csv"
    rng = np.random.default_rng(0)
    lines = ["text,label"]
    for i in range(120):
        label = ["pos", "neg"][i % 2]
        word = rng.choice(["great", "lovely", "superb"] if label == "pos" else ["awful", "dull", "poor"])
        lines.append(f"{word} film {i},{label}")
    data.write_text("\n".join(lines) + "\n")
    return home, data


@pytest.mark.slow
def test_run_smoke_on_the_offline_zoo(tmp_path, monkeypatch):
    """Real finetuning of the packaged MiniLM and one local candidate; runs land in the lake and warehouse."""
    from startpoint.recommend import RecommendOptions, recommend

    home, data = _zoo_home(tmp_path, monkeypatch)
    shown = io.StringIO()
    report = recommend(
        RecommendOptions(data=str(data), architecture=ARCH, budget=1, run=True, seeds=2, train_cap=48,
                         eval_cap=16, test_cap=40, epochs=1, max_length=16, batch_size=16,
                         report=str(tmp_path / "report.json")),
        log=lambda m: None, progress=RunProgress(4, "recommend --run", stream=shown, terminal=False),
    )
    # The progress display heard of each of the 4 runs (pretrained and candidate, 2 seeds each), with its rate.
    lines = shown.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["1/4", "2/4", "3/4", "4/4"] and "ex/s" in lines[-1]
    assert "local/minilm-copy seed 1" in lines[-1]
    protocol = report["protocol"]
    assert len(protocol["pretrained"]["scores"]) == 2
    assert [c["model_id"] for c in protocol["candidates"]] == ["local/minilm-copy"]
    assert len(protocol["skipped"]) == 7  # the fixture's ranked models have no local weights
    gains = protocol["gains"]
    from startpoint.recommend.core import confident

    decision = report["decision"]
    if decision["action"] == "start_from":
        assert confident(decision["p_beats_pretrained"], decision["ci_low"])
    else:
        assert decision["model_id"] == protocol["pretrained"]["model_id"]
    assert decision == protocol["decision"]  # one decision: the protocol's is the report's
    assert len(protocol["lake_files"]) == 4
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    runs = con.execute(
        "select model_id, seed, score, origin, status from finetune_runs where dataset_id = ? order by all",
        [report["target"]["dataset_id"]],
    ).fetchall()
    user_dataset = con.execute("select n_labels from datasets where dataset_id = ?", [report["target"]["dataset_id"]]).fetchone()
    con.close()
    assert len(runs) == 4 and {r[3] for r in runs} == {"user"} and {r[4] for r in runs} == {"ok"}
    assert sorted(r[2] for r in runs if r[0] == "local/minilm-copy") == pytest.approx(
        sorted(protocol["candidates"][0]["scores"]))
    assert user_dataset == (2,)


@pytest.mark.slow
def test_adaptive_run_smoke_on_the_offline_zoo(tmp_path, monkeypatch):
    """`--finetunes`: the adaptive protocol with the real engine, the baseline's 2 seeds side by side in the
    workers; every finetune it spent is reported with its reason and lands in the lake and the warehouse."""
    from startpoint.recommend import RecommendOptions, recommend
    from startpoint.recommend.report import summary_lines

    home, data = _zoo_home(tmp_path, monkeypatch)
    report = recommend(
        RecommendOptions(data=str(data), architecture=ARCH, budget=1, run=True, seeds=2, finetunes=4, train_cap=48,
                         eval_cap=16, test_cap=40, epochs=1, max_length=16, batch_size=16),
        log=lambda m: None,
    )
    protocol = report["protocol"]
    spent = protocol["spent"]
    assert 3 <= len(spent) <= 4 and protocol["finetunes_budget"] == 4
    assert [s["why"] for s in spent[:3]] == ["baseline", "baseline", "screening rank 50"]
    assert all(s["ok"] for s in spent)
    assert [c["model_id"] for c in protocol["candidates"]] == ["local/minilm-copy"]
    assert len(protocol["lake_files"]) == len(spent)
    assert len(protocol["pretrained"]["scores"]) + len(protocol["candidates"][0]["scores"]) == len(spent)
    assert any(f"{len(spent)} of at most 4 finetunes" in line for line in summary_lines(report))
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    n, = con.execute("select count(*) from finetune_runs where dataset_id = ? and status = 'ok'",
                     [report["target"]["dataset_id"]]).fetchone()
    con.close()
    assert n == len(spent)
