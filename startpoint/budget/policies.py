"""Which (model, target) cells to finetune next under a budget, and when to stop (issue 19).

A policy sees a `Grid`: the candidates, the targets, the probe score of each candidate (the prior; NaN where a
model was never probed), which cells can be bought and which are bought already with their kept gains. It answers
`next_cells(grid, budget_left)` with the cells to buy next and why, or no cells and the reason it stops. Policies
hold configuration only, never run state: every answer is recomputed from the grid, so a sensor tick that asks
again after a restart asks for the same cells, and a cell already bought is never asked for twice.

- `ProbeTopK`: the paper's protocol. Whole rows (every available target) of the models with the highest probe
  score, as many rows as the budget pays for.
- `Uniform`: cells drawn at random from the available ones.
- `ProbeHalving` ("adaptive"): sequential halving (Karnin, Koren and Somekh, 2013) over the candidates in probe
  order, on paired targets, leader verified first, with a racing stop; its docstring states the stopping rule.
- `ProbeRace` ("adaptive_race"): the paper's rows in probe order, a model dropped once it is behind the leader.
Neither beats probe_topk on the published grids (docs/budgeted_ranking.md): that is why no sensor uses them yet.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import stats

Cell = tuple[int, int]  # (model row, target column) of a Grid


@dataclass
class Grid:
    """What is known about one architecture's candidates: `gains[i, j]` is the kept gain of model i on target j
    (NaN where the cell is not bought or its finetune collapsed), `measured` the cells bought."""

    models: list[str]
    targets: list[str]
    prior: np.ndarray
    available: np.ndarray
    measured: np.ndarray = field(default=None)  # type: ignore[assignment]
    gains: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        shape = (len(self.models), len(self.targets))
        self.prior = np.asarray(self.prior, float)
        self.available = np.asarray(self.available, bool)
        if self.available.shape != shape or self.prior.shape != (shape[0],):
            raise ValueError(f"grid shapes disagree: {shape} models x targets, available {self.available.shape}, "
                             f"prior {self.prior.shape}")
        self.measured = np.zeros(shape, bool) if self.measured is None else np.asarray(self.measured, bool)
        self.gains = np.full(shape, np.nan) if self.gains is None else np.asarray(self.gains, float)

    def record(self, cell: Cell, gain: float) -> None:
        """A bought cell and its kept gain (NaN for a collapsed finetune). Buying a cell twice is an error."""
        i, j = cell
        if self.measured[i, j]:
            raise ValueError(f"cell ({self.models[i]}, {self.targets[j]}) is bought already")
        if not self.available[i, j]:
            raise ValueError(f"cell ({self.models[i]}, {self.targets[j]}) cannot be bought")
        self.measured[i, j] = True
        self.gains[i, j] = gain

    def open_cells(self) -> np.ndarray:
        return self.available & ~self.measured


# A ranker scores every model from the kept gains of the cells it may use (NaN elsewhere) and the mask of those
# cells bought (a collapsed cell is bought with a NaN gain): higher is better, -inf or NaN for a model it will
# not rank (no cells, or excluded, e.g. by integrity flags). The benchmark passes the product's estimator; the
# default is the two-way (target-centered) mean.
Ranker = Callable[[np.ndarray, np.ndarray], np.ndarray]


def centered_mean(gains: np.ndarray, measured: np.ndarray | None = None) -> np.ndarray:
    """Each model's mean of gain minus the target's mean over the models measured on it: models measured on
    different targets compare fairly (a stand-in for the product's estimator where none is passed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(gains - np.nanmean(gains, axis=0), axis=1)


def probe_order(prior: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Models best probe first; ties and unprobed models (after every probed one) in random order, never by name."""
    jitter = rng.permutation(len(prior))
    return np.lexsort((jitter, -np.nan_to_num(prior, nan=-np.inf)))


class Policy:
    name = "policy"

    def next_cells(self, grid: Grid, budget_left: int) -> tuple[list[Cell], str]:
        """The cells to buy next (at most `budget_left`) and why; no cells means stop, with the reason."""
        raise NotImplementedError


@dataclass
class ProbeTopK(Policy):
    """Whole rows of the best-probed models: the paper's protocol. It only ever buys a row whole, so it stops
    when the next row does not fit in what is left of the budget."""

    seed: int = 0
    name = "probe_topk"

    def next_cells(self, grid: Grid, budget_left: int) -> tuple[list[Cell], str]:
        open_ = grid.open_cells()
        cells: list[Cell] = []
        names: list[str] = []
        for i in probe_order(grid.prior, np.random.default_rng(self.seed)):
            row = [(int(i), int(j)) for j in np.flatnonzero(open_[i])]
            if not row:
                continue
            if len(cells) + len(row) > budget_left:
                if not cells:
                    return [], (f"the next model by probe ({grid.models[i]}) needs {len(row)} cells, "
                                f"{budget_left} left")
                break
            cells += row
            names.append(grid.models[i])
        if not cells:
            return [], "every model's row is bought"
        return cells, f"next {len(names)} model(s) by probe score: {', '.join(names[:5])}{' ...' * (len(names) > 5)}"


@dataclass
class Uniform(Policy):
    """Cells in one random order over the whole grid (fixed by the seed, so the order survives restarts)."""

    seed: int = 0
    name = "uniform"

    def next_cells(self, grid: Grid, budget_left: int) -> tuple[list[Cell], str]:
        order = np.random.default_rng(self.seed).permutation(grid.available.size)
        flat = np.flatnonzero(grid.open_cells().ravel()[order])
        cells = [divmod(int(order[k]), len(grid.targets)) for k in flat[:budget_left]]
        return (cells, "uniform random cell") if cells else ([], "every cell is bought")


M0 = 3  # targets per model in the screening round: the fewest that give a paired difference a spread (df = 2)
SCREEN_SHARE = 0.5  # share of the budget the screening round may take; the other half races the survivors
RACE_LEVEL = 0.95  # confidence of the paired t-bounds of the racing stop


def halving_schedule(budget: int, n_models: int, n_targets: int, m0: int = M0,
                     screen_share: float = SCREEN_SHARE) -> list[tuple[int, int]]:
    """Rounds of (models still in, targets each has after the round), fixed by the budget before any cell is
    bought. Round 0 screens the n0 best-probed models on t0 >= m0 targets, n0 = min(all, share * budget / m0).
    Each later round keeps the better half and spends an equal part of the remaining budget (remaining rounds:
    log2 of the models left, plus this one) on more targets for them. It ends when one model is left, the models
    left have every target, or the budget is spent."""
    if budget < 1 or n_models < 1 or n_targets < 1:
        return []
    n = min(n_models, max(1, math.floor(screen_share * budget / m0)))
    t = min(n_targets, max(m0, math.floor(screen_share * budget / n)))
    if n * t > budget:
        t = max(1, budget // n)
    rounds, spent = [(n, t)], n * t
    while n > 1 and t < n_targets:
        n = math.ceil(n / 2)
        left = math.ceil(math.log2(n)) + 1 if n > 1 else 1
        more = max(1, (budget - spent) // (left * n))
        if spent + n > budget:
            break
        more = min(more, (budget - spent) // n)
        new_t = min(n_targets, t + more)
        spent += n * (new_t - t)
        rounds.append((n, new_t))
        t = new_t
    return rounds


def paired_settled(gains: np.ndarray, leader: int, others: list[int], level: float = RACE_LEVEL) -> bool:
    """True when the leader's gain beats every other model's on their common kept targets: each paired
    difference (other - leader) has its upper t-bound below 0, on at least 2 common targets. The bounds hold
    jointly at `level` (Bonferroni over the others), so more models in the race need more evidence."""
    if not others:
        return True
    level = 1 - (1 - level) / len(others)
    for o in others:
        d = gains[o] - gains[leader]
        d = d[~np.isnan(d)]
        if len(d) < 2:
            return False
        q = stats.t.ppf(1 - (1 - level) / 2, len(d) - 1)
        if d.mean() + q * d.std(ddof=1) / math.sqrt(len(d)) >= 0:
            return False
    return True


def leader_cells(grid: Grid, ranker: Ranker, order: np.ndarray) -> tuple[list[Cell], str, np.ndarray]:
    """The open cells of the ranking's current top-1 (over every cell bought), in target order, and why; with the
    ranker's scores. No cells when nothing is bought or the top-1 is bought on every target."""
    if not grid.measured.any():
        return [], "", np.full(len(grid.models), -np.inf)
    score = np.nan_to_num(ranker(np.where(grid.measured, grid.gains, np.nan), grid.measured), nan=-np.inf)
    leader = int(np.argmax(score))
    open_ = grid.open_cells()
    if score[leader] == -np.inf or not open_[leader].any():
        return [], "", score
    cells = [(leader, int(j)) for j in order if open_[leader, j]]
    return cells, (f"verify the leader: {grid.models[leader]} ranks first on {int(grid.measured[leader].sum())} of "
                   f"{len(grid.targets)} targets"), score


def behind(gains: np.ndarray, leader: int, level: float = RACE_LEVEL) -> np.ndarray:
    """Per model: its paired difference with the leader (model - leader) over their common kept targets has its
    upper t-bound below 0 (two-sided `level`), on at least 2 common targets. The leader itself is never behind."""
    d = gains - gains[leader]
    ok = ~np.isnan(d)
    n = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, d, 0.0).sum(axis=1) / n
        sd = np.sqrt(np.where(ok, (d - mean[:, None]) ** 2, 0.0).sum(axis=1) / (n - 1))
        upper = mean + stats.t.ppf(1 - (1 - level) / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
        return (n >= 2) & (upper < 0)


@dataclass
class ProbeRace(Policy):
    """Adaptive, second design: the paper's protocol (rows in probe order) raced against the leader.

    Models are visited in probe order and bought target by target in one shared random target order, M0 targets
    at a time. A model stops getting cells once it is behind the leader: its paired difference with the leader
    over their common kept targets has its upper 95% t-bound below 0 (after at least M0 targets). The leader is
    the ranker's top-1 among the models bought on every target; the ranking's top-1 over all cells is verified
    first (`leader_cells`), as in ProbeHalving. The cells saved on models that fall behind buy models further
    down the probe order. Each call buys about one row's worth of cells; one row is kept back for the last
    verification.

    Stopping rule: stop when the budget is spent (or only the reserve is left and the leader is verified), or
    every candidate is bought on every target or behind the leader.

    Designed after the replay of the first two designs on the three shared architectures (docs/budgeted_ranking.md);
    its constants are those of ProbeHalving (M0, RACE_LEVEL), none chosen for this design."""

    seed: int = 0
    ranker: Ranker = centered_mean
    name = "adaptive_race"

    def next_cells(self, grid: Grid, budget_left: int) -> tuple[list[Cell], str]:
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(grid.targets))
        by_probe = [int(i) for i in probe_order(grid.prior, rng)]
        cells, why, score = leader_cells(grid, self.ranker, order)
        if cells:
            return cells[:budget_left], why
        open_ = grid.open_cells()
        whole = grid.measured.any(axis=1) & ~open_.any(axis=1)
        leader = int(np.argmax(np.where(whole, score, -np.inf))) if (whole & (score > -np.inf)).any() else None
        room = budget_left - len(grid.targets)
        if room < 1:
            return [], "only the reserve to verify a leader is left"
        lost = behind(grid.gains, leader) if leader is not None else np.zeros(len(grid.models), bool)
        lost &= grid.measured.sum(axis=1) >= M0
        has_open, counts, open_in_order = open_.any(axis=1), grid.measured.sum(axis=1), open_[:, order]
        cells, models, dropped = [], 0, 0
        for i in by_probe:
            if not has_open[i]:
                continue
            if lost[i]:
                dropped += 1
                continue
            todo = order[open_in_order[i]]
            cells += [(i, int(j)) for j in todo[: max(M0 - int(counts[i]), 0) or M0]]
            models += 1
            if len(cells) >= len(grid.targets):
                break
        if not cells:
            return [], f"every candidate is bought whole or behind the leader ({dropped} behind)"
        lead = grid.models[leader] if leader is not None else "none yet"
        return cells[:room], (f"race in probe order: {models} model(s) get more targets; leader {lead}; "
                              f"{dropped} behind it so far")


@dataclass
class ProbeHalving(Policy):
    """Adaptive: sequential halving over the candidates in probe order, on paired targets, with a racing stop.

    Leader first: before anything else, whenever the ranker's top-1 over every cell bought so far (the model the
    ranking would recommend now) has targets not yet bought, those are bought. A ranking's top-1 must not rest on
    a few lucky (or garbled) cells: the first design, without this step, often recommended such rows in the replay
    (docs/budgeted_ranking.md).

    The budget (`budget`, cells for the whole campaign) fixes the schedule (`halving_schedule`) before any cell is
    bought. All models share one random order of the targets (fixed by the seed), so after a round every model
    still in has the same first t targets and the comparisons are paired. Round 0 screens the n0 best-probed
    models (the probe is the prior: it decides who is looked at, never who wins) on the first t0 targets; every
    later round ranks the models still in with `ranker` on the targets of the previous round (never a name), keeps
    the better half and buys them the next targets of the order.

    One row's worth of cells (one per target) is kept back from the schedule, so the leader after its last round
    can still be verified.

    Stopping rule: stop when (a) the budget is spent, or only the reserve is left and the leader is verified,
    (b) the leader is measured on every target and the schedule has ended (one model left, or the models left
    have every target), or (c) the leader is measured on every target and, racing: after a halving, the
    leader's paired difference with every other model still in, over their common kept targets, has its upper
    t-bound below 0 (95% jointly, Bonferroni); the decision is settled, and the rest of the budget is not spent.

    Constants fixed before looking at any result: M0 = 3 targets to screen, half the budget to screening, 95%
    bounds. Everything is recomputed from the grid on every call (no state), so the same grid always gets the same
    answer."""

    budget: int
    seed: int = 0
    ranker: Ranker = centered_mean
    verify: bool = True  # False: the first design (no leader verification, no reserve), kept as an ablation
    name = "adaptive"

    def next_cells(self, grid: Grid, budget_left: int) -> tuple[list[Cell], str]:
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(grid.targets))
        candidates = np.flatnonzero(grid.available.any(axis=1))
        pool = set(candidates.tolist())
        by_probe = [int(i) for i in probe_order(grid.prior, rng) if int(i) in pool]
        schedule = halving_schedule(self.budget, len(by_probe), len(grid.targets))
        if not schedule:
            return [], "no budget or no candidates"
        survivors = list(by_probe[: schedule[0][0]])
        open_ = grid.open_cells()
        if self.verify:  # verify the leader first: the ranking's top-1 must not rest on a few cells
            cells, why, _ = leader_cells(grid, self.ranker, order)
            if cells:
                return cells[:budget_left], why
        for r, (n_keep, t) in enumerate(schedule):
            if r > 0:
                cols = order[: schedule[r - 1][1]]
                seen = np.zeros_like(grid.measured)
                seen[:, cols] = grid.measured[:, cols]
                full = np.where(seen, grid.gains, np.nan)
                score = np.nan_to_num(self.ranker(full, seen), nan=-np.inf)
                ranked = sorted(survivors, key=lambda i: -score[i])  # stable: ties keep probe order
                survivors = ranked[:n_keep]
                if len(ranked) > 1 and score[ranked[0]] > -np.inf and paired_settled(full, ranked[0], ranked[1:]):
                    return [], (f"settled after round {r - 1}: {grid.models[ranked[0]]} beats the other "
                                f"{len(ranked) - 1} paired at {RACE_LEVEL:.0%}")
            cells = [(int(i), int(j)) for i in survivors for j in order[:t] if open_[i, j]]
            if cells:
                room = budget_left - len(grid.targets) * self.verify  # one row kept to verify the last leader
                if room < 1:
                    return [], "only the reserve to verify a leader is left"
                why = ("screening by probe" if r == 0 else "halving, still in the race")
                return cells[:room], (f"round {r} ({why}): {len(survivors)} models to {t} of "
                                      f"{len(grid.targets)} targets")
        return [], f"schedule done: {len(survivors)} model(s) left with {schedule[-1][1]} targets each"


@dataclass
class Spend:
    """What a policy bought, in order, the reason for each batch, and why it stopped."""

    cells: list[Cell]
    reasons: list[tuple[int, str]]  # (number of cells bought before the batch, reason)
    stopped: str


def spend(policy: Policy, grid: Grid, budget: int, measure: Callable[[Cell], float]) -> Spend:
    """Let `policy` buy cells on `grid` until it stops or `budget` cells are bought; `measure` finetunes one cell
    (in a replay: looks it up) and returns its kept gain, NaN for a collapsed finetune."""
    bought: list[Cell] = []
    reasons: list[tuple[int, str]] = []
    while True:
        left = budget - len(bought)
        if left <= 0:
            return Spend(bought, reasons, "budget spent")
        cells, why = policy.next_cells(grid, left)
        if not cells:
            return Spend(bought, reasons, why)
        reasons.append((len(bought), why))
        for cell in cells[:left]:
            grid.record(cell, measure(cell))
            bought.append(cell)


def run_key(architecture: str, model: str, target: str, seed: int = 0) -> str:
    """The run key of one finetune request: one per cell and seed, so no instance launches a cell twice."""
    return f"budget:{architecture}:{model}:{target}:seed{seed}"


POLICIES = ("probe_topk", "uniform", "adaptive")
ABLATIONS = ("adaptive_unverified", "adaptive_race")  # the adaptive policy's first design and a later one


def make_policy(name: str, budget: int, seed: int = 0, ranker: Ranker = centered_mean) -> Policy:
    if name == "probe_topk":
        return ProbeTopK(seed=seed)
    if name == "uniform":
        return Uniform(seed=seed)
    if name in ("adaptive", "adaptive_unverified"):
        return ProbeHalving(budget=budget, seed=seed, ranker=ranker, verify=name == "adaptive")
    if name == "adaptive_race":
        return ProbeRace(seed=seed, ranker=ranker)
    raise ValueError(f"unknown policy {name!r}; one of {', '.join(POLICIES + ABLATIONS)}")


@dataclass(frozen=True)
class Request:
    """One finetune a sensor tick asks for: the cell, its seed, its run key and the policy's reason (a run tag)."""

    run_key: str
    model: str
    target: str
    seed: int
    reason: str


def plan_tick(policy: Policy, grid: Grid, architecture: str, tick_budget: int, pending: set[Cell],
              seed: int = 0) -> tuple[list[Request], str]:
    """What one sensor tick requests: nothing while requested runs are still pending (the policy decides on
    finished cells only, and a cell in flight is never asked for twice), else the policy's next cells within
    `tick_budget` (the caller passes what is left of the architecture's budget for the period, capped per
    tick), each with its run key and reason."""
    if pending:
        return [], f"waiting for {len(pending)} requested finetune(s) to finish"
    if tick_budget < 1:
        return [], "no budget left this period"
    cells, why = policy.next_cells(grid, tick_budget)
    cells = [c for c in cells if not grid.measured[c]][:tick_budget]
    return [Request(run_key(architecture, grid.models[i], grid.targets[j], seed), grid.models[i], grid.targets[j],
                    seed, why) for i, j in cells], why
