"""`recommend --run --finetunes N` (startpoint.recommend.adaptive): seeds where the decision is still open, the
budget never exceeded, early stop once settled, every finetune reported with its reason. Scripted scores pin the
rules; the real engine path is the --run smoke test's."""

from __future__ import annotations

import numpy as np
import pytest

from startpoint.recommend import RecommendError, RecommendOptions
from startpoint.recommend.adaptive import BASELINE_SEEDS, run_adaptive
from startpoint.recommend.predict import predict_candidates, predict_target_effect

def noisy(means: dict[str, float], sd: float, seed: int = 0):
    """train_many with a fixed score per (model, seed): the mean plus normal noise; records the calls."""
    rng = np.random.default_rng(seed)
    table: dict[tuple[str, int], float] = {}
    calls: list[tuple[str, int]] = []

    def train_many(jobs: list[tuple[str, int]]):
        out = []
        for model_id, s in jobs:
            calls.append((model_id, s))
            if (model_id, s) not in table:
                table[model_id, s] = means[model_id] + sd * float(rng.normal())
            out.append((table[model_id, s], None))
        return out

    return train_many, calls


def test_a_clear_winner_settles_early_and_keeps_the_rest_of_the_budget(minilm_evidence):
    preds = predict_candidates(minilm_evidence, predict_target_effect(minilm_evidence, {}))
    first = preds[0].model_id
    means = {minilm_evidence.pretrained_model: 80.0, first: 88.0, **{p.model_id: 79.0 for p in preds[1:]}}
    train_many, calls = noisy(means, sd=0.3)
    result = run_adaptive(minilm_evidence, preds, train_many, finetunes=12, max_candidates=3, max_seeds=3,
                          log=lambda m: None)
    assert calls[:BASELINE_SEEDS] == [(minilm_evidence.pretrained_model, s) for s in range(BASELINE_SEEDS)]
    assert result.decision["action"] == "start_from" and result.decision["model_id"] == first
    assert len(result.spent) < 12 and "settled" in result.stopped_early
    assert [s["model_id"] for s in result.spent] == [m for m, _ in calls]  # every finetune reported, in order
    assert all(s["why"] for s in result.spent)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("finetunes", [3, 6, 12, 40])
def test_the_budget_and_the_seed_cap_are_never_exceeded(minilm_evidence, finetunes, batch):
    preds = predict_candidates(minilm_evidence, predict_target_effect(minilm_evidence, {}))
    means = {minilm_evidence.pretrained_model: 80.0, **{p.model_id: 80.5 for p in preds}}
    inner, calls = noisy(means, sd=3.0, seed=finetunes)
    batches = []

    def train_many(jobs):
        batches.append(jobs)
        return inner(jobs)

    result = run_adaptive(minilm_evidence, preds, train_many, finetunes=finetunes, max_candidates=3, max_seeds=3,
                          batch=batch, log=lambda m: None)
    assert all(len(jobs) <= batch for jobs in batches)
    # after the baseline, a batch holds one seed per model: the jobs side by side are of different models
    baseline_batches = -(-BASELINE_SEEDS // batch)
    assert all(len({m for m, _ in jobs}) == len(jobs) for jobs in batches[baseline_batches:])
    assert len(calls) == len(result.spent) <= finetunes
    per_model: dict[str, list[int]] = {}
    for model_id, seed in calls:
        per_model.setdefault(model_id, []).append(seed)
    assert all(seeds == list(range(len(seeds))) and len(seeds) <= 3 for seeds in per_model.values())
    assert len(result.candidates) <= 3
    if finetunes >= 12:  # an open comparison is refined up to the cap before the protocol gives up
        assert len(calls) < finetunes or max(len(s) for s in per_model.values()) == 3
    assert result.decision["action"] in ("stay", "start_from")


def test_seeds_go_to_the_comparison_that_is_open(minilm_evidence):
    """A near tie between the leader and the pretrained model: the refining seeds go to those two."""
    preds = predict_candidates(minilm_evidence, predict_target_effect(minilm_evidence, {}))
    first = preds[0].model_id
    means = {minilm_evidence.pretrained_model: 80.0, first: 81.0, **{p.model_id: 60.0 for p in preds[1:]}}
    train_many, calls = noisy(means, sd=2.0, seed=3)
    result = run_adaptive(minilm_evidence, preds, train_many, finetunes=8, max_candidates=3, max_seeds=4,
                          log=lambda m: None)
    refining = [s for s in result.spent if not s["why"].startswith(("baseline", "screening"))]
    assert refining and {s["model_id"] for s in refining} <= {first, minilm_evidence.pretrained_model}
    assert all("vs pretrained open" in s["why"] for s in refining)


def test_a_budget_below_a_baseline_and_one_candidate_is_refused(minilm_evidence):
    preds = predict_candidates(minilm_evidence, predict_target_effect(minilm_evidence, {}))
    train_many, calls = noisy({}, sd=1.0)
    with pytest.raises(RecommendError, match="--finetunes must be at least 3"):
        run_adaptive(minilm_evidence, preds, train_many, finetunes=2, max_candidates=3, max_seeds=3, log=lambda m: None)
    assert calls == []
    with pytest.raises(RecommendError, match="--finetunes must be at least 3"):
        RecommendOptions(data="x.csv", run=True, finetunes=2).check()
