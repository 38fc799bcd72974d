"""`recommend --run --finetunes N`: N finetunes spent where the decision is still open, then stop.

The fixed protocol (`protocol.run_protocol`) gives every candidate every seed. Here the seeds go where they can still
change the answer, by the decision rule of `measured_decision` (start from X when P(X beats the pretrained model)
>= 80% or its 95% interval is above zero; else stay):

1. **Baseline**: the pretrained model with 2 seeds (the fewest that give its spread).
2. **Screening**: each candidate in rank order, up to `max_candidates` (`--budget`), gets 1 seed, unless the
   prediction from the ones tried says it cannot plausibly win (the fixed protocol's early stop,
   `protocol.CandidateQueue`).
3. **Refining**. The leader is the candidate with the highest measured gain.
   - While *leader vs pretrained* is open (not yet "start from", and its 95% upper bound above 0), those two get
     the next seeds, the one with fewer seeds first (the leader on a tie).
   - Then each *challenger* still open (its difference from the leader has a 95% upper bound above 0, and so has
     its own gain) gets seeds with the leader, the challenger with the highest gain first.
   - A model never gets more than `max_seeds` seeds (`--seeds`): with N = (candidates + 1) x seeds this spends at
     most what the fixed protocol spends.
4. **Stop** when N finetunes are spent, or when no comparison is open that another seed could settle.

Finetunes run in batches of `batch` (the worker count: two on two cores), chosen together from the state before
the batch, at most one seed per model in a batch: a batch of 1 is the strictly sequential rule. Every finetune is
reported with why it was spent. The constants are structural (2 seeds for a spread, 1 to screen, the decision
rule's own 80% / 95%), not tuned on any target. No Dagster, no torch: `train_many` does the work, so a replay of
recorded runs (benchmarks/recommend_budget.py) drives the same code.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from startpoint.recommend.predict import CandidatePrediction, Evidence, RecommendError
from startpoint.recommend.protocol import (
    CandidateQueue,
    ModelRuns,
    ProtocolResult,
    confident,
    measured_decision,
    observed_gain,
    p_beats,
    welch_interval,
)

BASELINE_SEEDS = 2  # the fewest that give the pretrained model's spread
MIN_FINETUNES = BASELINE_SEEDS + 1  # a baseline and one candidate seed

Job = tuple[str, int]  # (model id, seed)
TrainMany = Callable[[list[Job]], list[tuple[float | None, str | None]]]


def check_finetunes(finetunes: int) -> None:
    """Refuse a budget that cannot hold a baseline and one candidate seed (the one-line error the CLI prints)."""
    if finetunes < MIN_FINETUNES:
        raise RecommendError(f"--finetunes must be at least {MIN_FINETUNES} (a {BASELINE_SEEDS}-seed baseline and one "
                             f"candidate seed), got {finetunes}")


def open_against_pretrained(runs: ModelRuns, pretrained: ModelRuns) -> tuple[bool, str]:
    """Whether another seed could still change "start from this model" vs "stay", with the figures that say so."""
    gain, low, high = welch_interval(runs.scores, pretrained.scores)
    p = p_beats(runs.scores, pretrained.scores)
    text = f"{gain:+.2f} points, 95% CI {low:+.2f}..{high:+.2f}" + ("" if p is None else f", P = {p:.2f}")
    return (not confident(p, low) and high > 0), text


def open_against_leader(runs: ModelRuns, leader: ModelRuns, pretrained: ModelRuns) -> tuple[bool, str]:
    """Whether a challenger could still overtake the leader and beat the pretrained model."""
    diff, _, high = welch_interval(runs.scores, leader.scores)
    _, _, high_vs_pretrained = welch_interval(runs.scores, pretrained.scores)
    return (high > 0 and high_vs_pretrained > 0), f"{diff:+.2f} points from the leader, 95% upper bound {high:+.2f}"


def refining_choices(done: list[ModelRuns], pretrained: ModelRuns,
                     cap: int) -> tuple[list[tuple[ModelRuns, str]], bool]:
    """Models that should get a seed next, in priority order, with why; and whether an open comparison was left
    out because its models have `cap` seeds."""
    leader = max(done, key=lambda r: r.mean)
    out: list[tuple[ModelRuns, str]] = []
    capped = False

    def add(pair: list[ModelRuns], first: ModelRuns, why: str) -> None:
        nonlocal capped
        room = [r for r in sorted(pair, key=lambda r: (len(r.scores), r is not first)) if len(r.scores) < cap]
        capped |= not room
        out.extend((r, why) for r in room if all(r is not o for o, _ in out))

    is_open, text = open_against_pretrained(leader, pretrained)
    if is_open:
        add([leader, pretrained], leader, f"{leader.model_id} vs pretrained open ({text})")
    challengers = [(r, t) for r in done if r is not leader
                   for ok, t in [open_against_leader(r, leader, pretrained)] if ok]
    for runs, text in sorted(challengers, key=lambda rc: -rc[0].mean):
        add([runs, leader], runs, f"challenger {runs.model_id} open ({text})")
    return out, capped


def run_adaptive(
    evidence: Evidence,
    predictions: list[CandidatePrediction],
    train_many: TrainMany,
    finetunes: int,
    max_candidates: int,
    max_seeds: int,
    batch: int = 1,
    log: Callable[[str], None] = print,
    resolve: Callable[[str], object] | None = None,
    on_baseline: Callable[[float], list[CandidatePrediction]] | None = None,
) -> ProtocolResult:
    """Spend at most `finetunes` finetunes (the baseline included) by the rules of the module docstring;
    `train_many([(model_id, seed), ...])` runs one batch and returns one (score, error) per job."""
    check_finetunes(finetunes)
    started = time.monotonic()
    batch = max(1, batch)
    cap = max(max_seeds, BASELINE_SEEDS)
    spent: list[dict] = []
    pretrained = ModelRuns(model_id=evidence.pretrained_model, rank=None)

    def run_batch(chosen: list[tuple[ModelRuns, str]]) -> list[bool]:
        """One seed for each chosen model (side by side); True where it succeeded (spent either way)."""
        chosen = chosen[:finetunes - len(spent)]
        jobs, planned = [], {}
        for runs, _ in chosen:  # the next unused seed of each model (a model may appear twice: the baseline)
            seed = len(runs.scores) + len(runs.failures) + planned.get(runs.model_id, 0)
            planned[runs.model_id] = planned.get(runs.model_id, 0) + 1
            jobs.append((runs.model_id, seed))
        t0 = time.monotonic()
        try:
            results = train_many(jobs)
        except Exception as exc:  # noqa: BLE001 - a broken batch must not cost the user the decision
            results = [(None, f"{type(exc).__name__}: {exc}")] * len(jobs)
        seconds = round((time.monotonic() - t0) / max(len(jobs), 1), 1)
        ok = []
        for (runs, why), (_, seed), (score, error) in zip(chosen, jobs, results, strict=True):
            runs.seconds = round(runs.seconds + seconds, 1)
            spent.append({"model_id": runs.model_id, "seed": seed, "why": why, "ok": score is not None})
            ok.append(runs.add(seed, score, error, log, why))
        return ok

    log(f"baseline: finetuning the pretrained model {evidence.pretrained_model} with {BASELINE_SEEDS} seeds")
    for i in range(0, BASELINE_SEEDS, batch):  # the baseline's seeds side by side: one model, so not one per batch
        run_batch([(pretrained, "baseline")] * min(batch, BASELINE_SEEDS - i))
    if not pretrained.scores:
        raise RecommendError(
            f"every run of the pretrained model {evidence.pretrained_model} failed ({'; '.join(pretrained.failures)}); "
            "fix that first: without a baseline there is nothing to compare with")
    if on_baseline is not None:
        predictions = on_baseline(pretrained.mean)

    done: list[ModelRuns] = []
    queue = CandidateQueue(predictions, evidence.interaction_sd, resolve, log)
    candidates = iter(queue)
    while len(done) < max_candidates and len(spent) < finetunes and queue.stopped is None:
        room = min(batch, max_candidates - len(done), finetunes - len(spent))
        cands = [c for _, c in zip(range(room), candidates)]
        if not cands:
            break
        fresh = [ModelRuns(model_id=c.model_id, rank=c.rank) for c in cands]
        for cand, runs, ok in zip(cands, fresh, run_batch([(r, f"screening rank {r.rank}") for r in fresh]),
                                  strict=True):
            if not ok:  # a broken candidate (e.g. a model folder the loader refuses): report it, move on
                queue.skip(cand, f"broken candidate: {runs.failures[0]}")
                continue
            done.append(runs)
            queue.tried.append((cand, observed_gain(cand, runs, pretrained)))

    settled = None
    while done and len(spent) < finetunes:
        choices, capped = refining_choices(done, pretrained, cap)
        if not choices:
            settled = (f"the comparisons still open have {cap} seeds per model (--seeds)" if capped
                       else "the decision is settled: no comparison is open that another seed could change")
            break
        run_batch(choices[:batch])

    stopped = queue.stopped
    if settled is not None:
        stopped = f"{stopped}; {settled}" if stopped else settled
        log(f"stop: {settled} ({len(spent)} of {finetunes} finetunes spent)")
    runs_of = {r.model_id: r for r in done}
    gains = [observed_gain(cand, runs_of[cand.model_id], pretrained) for cand, _ in queue.tried]
    return ProtocolResult(
        pretrained=pretrained, candidates=done, gains=gains, stopped_early=stopped, skipped=queue.skipped,
        decision=measured_decision(pretrained, done, evidence.pretrained_model),
        seconds=round(time.monotonic() - started, 1), spent=spent,
    )
