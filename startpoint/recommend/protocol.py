"""The finetuning protocol on the user's target: the pretrained model, then ranked candidates within a budget.

Order and stopping (after Choshen et al.: rank once per architecture, then try the top few on a new target):

1. finetune the pretrained model with every seed (the baseline);
2. finetune candidates in rank order, each with every seed, until `budget` candidates are done;
3. before each further candidate, predict its gain on this target from what the tried ones showed:
   its base effect + the mean offset (observed gain - base effect) of the tried candidates, with an interval
   from the interaction spread, the offset's uncertainty and the base effect's interval. If even the upper end
   of that interval cannot beat the best result so far (max(0, best observed gain)), stop early.

A candidate that cannot be run (no local weights, or every run failed, e.g. a model folder the loader refuses)
is reported in `skipped` with the reason and does not use the budget; the decision is still made.

The decision uses only the runs made here: the candidate with the highest mean gain is recommended when its
95% interval (Welch t over seeds) lies above zero; otherwise the advice is to stay with the pretrained model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from startpoint.recommend.predict import (
    Z95,
    CandidatePrediction,
    Evidence,
    RecommendError,
)

# "start from X" only when X beats the pretrained model with at least this probability, or its whole 95% interval
# lies above zero; otherwise the advice is to stay (naming what is worth a try). Applied to the prediction (core) and
# to the measured comparison of `--run` (`measured_decision` below).
START_PROBABILITY = 0.8
WORTH_A_TRY_PROBABILITY = 0.5  # more likely than not to beat the pretrained model


def confident(p_beats: float | None, low: float | None) -> bool:
    """The rule for "start from": P(beats pretrained) >= START_PROBABILITY or the 95% interval above 0."""
    return (p_beats is not None and p_beats >= START_PROBABILITY) or (low is not None and low > 0)


@dataclass
class ModelRuns:
    model_id: str
    rank: int | None  # None for the pretrained model
    scores: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.scores)) if self.scores else None

    def add(self, seed: int, score: float | None, error: str | None, log: Callable[[str], None],
            why: str = "") -> bool:
        """One seed's result (a score, or the error of a failed run), logged; True when it scored."""
        if score is None:
            self.failures.append(f"seed {seed}: {error}")
            log(f"  {self.model_id} seed {seed}: failed: {error}")
            return False
        self.scores.append(score)
        log(f"  {self.model_id} seed {seed}: {score:.2f}" + (f" ({why})" if why else ""))
        return True


@dataclass
class ObservedGain:
    model_id: str
    rank: int
    n_seeds: int
    gain: float
    low: float
    high: float
    predicted_gain: float


def observed_gain(cand: CandidatePrediction, runs: ModelRuns, pretrained: ModelRuns) -> ObservedGain:
    """A candidate's measured gain over the pretrained model on this target (Welch interval of the seed scores), beside
    the gain predicted for it."""
    gain, low, high = welch_interval(runs.scores, pretrained.scores)
    return ObservedGain(cand.model_id, cand.rank, len(runs.scores), gain, low, high, cand.expected_gain)


@dataclass
class ProtocolResult:
    pretrained: ModelRuns
    candidates: list[ModelRuns]
    gains: list[ObservedGain]
    stopped_early: str | None  # why the protocol stopped before using the budget
    skipped: list[dict]  # candidates that could not be run (no local weights, a refused folder, every run failed)
    decision: dict
    seconds: float
    spent: list[dict] = field(default_factory=list)  # adaptive protocol: every finetune, in order, and why

    def as_dict(self) -> dict:
        return asdict(self)


def _welch(a: list[float], b: list[float]) -> tuple[float, float | None, float | None]:
    """mean(a) - mean(b), its Welch standard error and degrees of freedom; a side with one seed borrows the
    other's spread, and with one seed on each side there is no se (None, None)."""
    a_arr, b_arr = np.asarray(a, float), np.asarray(b, float)
    diff = float(a_arr.mean() - b_arr.mean())
    var_a = a_arr.var(ddof=1) if len(a_arr) > 1 else None
    var_b = b_arr.var(ddof=1) if len(b_arr) > 1 else None
    if var_a is None and var_b is None:
        return diff, None, None
    var_a = var_b if var_a is None else var_a
    var_b = var_a if var_b is None else var_b
    va, vb = var_a / len(a_arr), var_b / len(b_arr)
    if va + vb == 0:
        return diff, 0.0, None
    df = (va + vb) ** 2 / ((va**2 / max(len(a_arr) - 1, 1)) + (vb**2 / max(len(b_arr) - 1, 1)))
    return diff, math.sqrt(va + vb), df


def welch_interval(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """mean(a) - mean(b) with a 95% Welch t interval; with one seed on a side, that side's spread is borrowed."""
    from scipy import stats  # here, not at import: scipy.stats costs every Dagster process 1.7 s to load

    diff, se, df = _welch(a, b)
    if se is None:
        return diff, -math.inf, math.inf  # one run each: no honest interval
    if se == 0:
        return diff, diff, diff
    t = float(stats.t.ppf(0.975, df))
    return diff, diff - t * se, diff + t * se


def next_candidate_upper(next_c: CandidatePrediction, tried: list[tuple[CandidatePrediction, ObservedGain]],
                         interaction_sd: float) -> tuple[float, float]:
    """Predicted gain of the next candidate on this target and the upper end of its 95% interval."""
    offsets = [obs.gain - pred.base_effect for pred, obs in tried]
    offset = float(np.mean(offsets))
    obs_var = np.mean([((obs.high - obs.low) / (2 * Z95)) ** 2 if math.isfinite(obs.high - obs.low) else 0.0
                       for _, obs in tried])
    inter = interaction_sd if math.isfinite(interaction_sd) else 0.0
    base_se = (next_c.base_ci_high - next_c.base_ci_low) / (2 * Z95) if next_c.base_ci_low is not None else 0.0
    predicted = next_c.base_effect + offset
    sd = math.sqrt(inter**2 + (inter**2 + obs_var) / len(tried) + base_se**2)
    return predicted, predicted + Z95 * sd


class CandidateQueue:
    """The candidates to try, in rank order: those whose weights are not available (`resolve` fails: e.g. a published
    Hub model while offline) go to `skipped` with the reason and use no budget; the queue ends when the next one
    cannot plausibly win, the 95% upper end of its predicted gain on this target (`next_candidate_upper`, from the
    `tried` ones) below the best result so far (max(0, best observed gain)); `stopped` says why. The fixed and the
    adaptive protocol take their candidates from it."""

    def __init__(self, predictions: list[CandidatePrediction], interaction_sd: float,
                 resolve: Callable[[str], object] | None, log: Callable[[str], None]):
        self.predictions, self.interaction_sd, self.resolve, self.log = predictions, interaction_sd, resolve, log
        self.tried: list[tuple[CandidatePrediction, ObservedGain]] = []
        self.skipped: list[dict] = []
        self.stopped: str | None = None

    def skip(self, cand: CandidatePrediction, reason: str) -> None:
        self.skipped.append({"model_id": cand.model_id, "rank": cand.rank, "reason": reason})
        self.log(f"skip rank {cand.rank} {cand.model_id}: {reason}")

    def __iter__(self) -> Iterator[CandidatePrediction]:
        for cand in self.predictions:
            if self.resolve is not None:
                try:
                    self.resolve(cand.model_id)
                except Exception as exc:  # no local weights: say so and move on
                    self.skip(cand, str(exc))
                    continue
            if self.tried:
                best_so_far = max(0.0, max(obs.gain for _, obs in self.tried))
                predicted, upper = next_candidate_upper(cand, self.tried, self.interaction_sd)
                if upper < best_so_far:
                    self.stopped = (f"rank {cand.rank} {cand.model_id} cannot plausibly win: predicted "
                                    f"{predicted:+.2f} points, 95% upper bound {upper:+.2f} < best so far "
                                    f"{best_so_far:+.2f}")
                    self.log(f"stop early: {self.stopped}")
                    return
            yield cand


def p_beats(a: list[float], b: list[float]) -> float | None:
    """P(mean(a) > mean(b)) from the seeds: the Welch t distribution of the difference (the variances and df of
    `welch_interval`). None with one seed per side."""
    from scipy import stats

    diff, se, df = _welch(a, b)
    if se is None:
        return None
    if se == 0:
        return 1.0 if diff > 0 else 0.0
    return float(stats.t.cdf(diff / se, df))


def measured_decision(pretrained: ModelRuns, candidates: list[ModelRuns], pretrained_model: str) -> dict:
    """The decision from the runs made on the user's data, by the rule of the predicted decision
    (`confident` above): "start from X" only when X's measured gain over the pretrained model
    has P >= START_PROBABILITY or its 95% Welch interval lies above zero; otherwise stay."""
    measured = []
    for runs in candidates:
        if not runs.scores:
            continue
        gain, low, high = welch_interval(runs.scores, pretrained.scores)
        measured.append({"model_id": runs.model_id, "rank": runs.rank, "gain": gain, "ci_low": low, "ci_high": high,
                         "p_beats_pretrained": p_beats(runs.scores, pretrained.scores)})
    if not measured:
        return {"action": "stay", "model_id": pretrained_model, "predicted": False,
                "text": "stay with the pretrained model: no candidate could be finetuned on this target"}
    sure = [m for m in measured if confident(m["p_beats_pretrained"], m["ci_low"])]
    if sure:
        best = max(sure, key=lambda m: m["gain"])
        return {"action": "start_from", **best, "predicted": False,
                "text": f"start from {best['model_id']}: {best['gain']:+.2f} points (95% CI {best['ci_low']:+.2f}.."
                        f"{best['ci_high']:+.2f}) over the pretrained model on your data; it beats it with "
                        f"probability {best['p_beats_pretrained']:.0%}"}
    best = max(measured, key=lambda m: m["gain"])
    p = best["p_beats_pretrained"]
    p_text = "no probability with one seed per side" if p is None else f"P = {p:.2f}"
    return {"action": "stay", **best, "best_candidate": best["model_id"], "model_id": pretrained_model,
            "predicted": False,
            "text": f"stay with the pretrained model: the best candidate, {best['model_id']}, gained "
                    f"{best['gain']:+.2f} points (95% CI {best['ci_low']:+.2f}..{best['ci_high']:+.2f}, {p_text}); "
                    f"switching needs probability {START_PROBABILITY:.0%} or an interval above zero"}

def run_protocol(
    evidence: Evidence,
    predictions: list[CandidatePrediction],
    train_one: Callable[[str, int], tuple[float | None, str | None]],
    seeds: list[int],
    budget: int,
    log: Callable[[str], None] = print,
    resolve: Callable[[str], object] | None = None,
    on_baseline: Callable[[float], list[CandidatePrediction]] | None = None,
    train_seeds: Callable[[str, list[int]], list[tuple[float | None, str | None]]] | None = None,
) -> ProtocolResult:
    """`train_one(model_id, seed)` finetunes one model with one seed and returns (score, error);
    `train_seeds(model_id, seeds)`, when given, does every seed of a model at once (in parallel workers) and
    returns one (score, error) per seed; `on_baseline(pretrained mean score)` may return predictions updated with
    the baseline score."""
    started = time.monotonic()

    def seed_results(model_id: str) -> list[tuple[float | None, str | None]]:
        if train_seeds is not None:
            try:
                return train_seeds(model_id, list(seeds))
            except Exception as exc:  # noqa: BLE001 - one broken model must not cost the user the decision
                return [(None, f"{type(exc).__name__}: {exc}")] * len(seeds)
        out = []
        for seed in seeds:
            try:
                out.append(train_one(model_id, seed))
            except Exception as exc:  # noqa: BLE001 - one broken model must not cost the user the decision
                out.append((None, f"{type(exc).__name__}: {exc}"))
        return out

    def run_model(model_id: str, rank: int | None) -> ModelRuns:
        runs = ModelRuns(model_id=model_id, rank=rank)
        t0 = time.monotonic()
        for seed, (score, error) in zip(seeds, seed_results(model_id), strict=True):
            runs.add(seed, score, error, log)
        runs.seconds = round(time.monotonic() - t0, 1)
        return runs

    log(f"baseline: finetuning the pretrained model {evidence.pretrained_model} with seeds {seeds}")
    pretrained = run_model(evidence.pretrained_model, None)
    if not pretrained.scores:
        raise RecommendError(
            f"every run of the pretrained model {evidence.pretrained_model} failed ({'; '.join(pretrained.failures)}); "
            "fix that first: without a baseline there is nothing to compare with"
        )
    if on_baseline is not None:
        predictions = on_baseline(pretrained.mean)
    done: list[ModelRuns] = []
    gains: list[ObservedGain] = []
    queue = CandidateQueue(predictions, evidence.interaction_sd, resolve, log)
    candidates = iter(queue)
    while len(done) < budget:  # the budget is checked before the next candidate is looked at
        cand = next(candidates, None)
        if cand is None:
            break
        log(f"candidate {len(done) + 1}/{budget}: rank {cand.rank} {cand.model_id} "
            f"(predicted {cand.expected_gain:+.2f} points)")
        runs = run_model(cand.model_id, cand.rank)
        if not runs.scores:  # a broken candidate (e.g. a model folder the loader refuses): report it, move on
            more = f" (all {len(runs.failures)} runs failed)" if len(runs.failures) > 1 else ""
            queue.skip(cand, f"broken candidate: {runs.failures[0]}{more}")
            continue
        done.append(runs)
        obs = observed_gain(cand, runs, pretrained)
        gains.append(obs)
        queue.tried.append((cand, obs))
        log(f"  gain {obs.gain:+.2f} points (95% CI {obs.low:+.2f}..{obs.high:+.2f}) over the pretrained model")
    return ProtocolResult(
        pretrained=pretrained, candidates=done, gains=gains, stopped_early=queue.stopped, skipped=queue.skipped,
        decision=measured_decision(pretrained, done, evidence.pretrained_model),
        seconds=round(time.monotonic() - started, 1),
    )
