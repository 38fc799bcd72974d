"""Budgeted ranking (issue 19): the policies on synthetic grids with a known best model, the budget and run-key
guarantees, and the offline replay benchmark on a small published folder."""

from __future__ import annotations

import numpy as np
import pytest

from startpoint.budget import (
    ABLATIONS,
    M0,
    POLICIES,
    Grid,
    ProbeHalving,
    ProbeTopK,
    behind,
    centered_mean,
    halving_schedule,
    make_policy,
    paired_settled,
    run_key,
    spend,
)


def _synthetic(seed: int, n_models: int = 200, n_targets: int = 18, best: float = 3.0):
    """Gains = base effect + target effect + noise; model 17 is clearly best; the probe is a noisy view of the
    base effect (it does not put model 17 first by itself in general)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, 0.7, n_models)
    base[17] = best
    gains = base[:, None] + rng.normal(1.0, 2.0, n_targets)[None] + rng.normal(0.0, 1.0, (n_models, n_targets))
    prior = base + rng.normal(0.0, 1.0, n_models)
    grid = Grid([f"m{i}" for i in range(n_models)], [f"t{j}" for j in range(n_targets)], prior,
                np.ones(gains.shape, bool))
    return grid, gains


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("design", ["adaptive", "adaptive_race"])
def test_adaptive_finds_the_known_best_model_with_at_most_30_percent_of_the_cells(seed, design):
    grid, gains = _synthetic(seed)
    budget = int(0.3 * gains.size)
    done = spend(make_policy(design, budget, seed=seed), grid, budget, lambda c: gains[c])
    assert len(done.cells) <= budget
    assert int(np.nanargmax(centered_mean(grid.gains))) == 17
    assert grid.measured[17].sum() > 2 * M0  # the winner raced on, not picked on its screening targets


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.2])
def test_the_adaptive_leader_never_rests_on_a_few_cells(fraction):
    """Rows of wild values (as garbled rows look after a shift across columns) lead the ranking on a few cells
    by luck; the adaptive policy measures the ranking's leader on every target before it stops."""
    grid, gains = _synthetic(6)
    wild = np.arange(100, 140)
    gains[wild] = np.random.default_rng(6).normal(0.0, 8.0, (len(wild), gains.shape[1]))
    budget = int(fraction * gains.size)
    done = spend(ProbeHalving(budget=budget, seed=1), grid, budget, lambda c: gains[c])
    leader = int(np.nanargmax(centered_mean(grid.gains)))
    assert grid.measured[leader].all(), (leader, done.stopped)
    assert any(why.startswith("verify the leader") for _, why in done.reasons)


def test_the_prior_decides_who_is_looked_at_not_who_wins():
    """With a probe that ranks the best model only 40th, probe_topk at 10% never measures it; the adaptive policy
    screens wider and still finds it."""
    grid, gains = _synthetic(3)
    grid.prior = -np.abs(np.arange(len(grid.models)) - 0.0)  # model i has the i-th best probe
    grid.prior[[17, 40]] = grid.prior[[40, 17]]
    budget = int(0.1 * gains.size)
    topk = Grid(grid.models, grid.targets, grid.prior, grid.available)
    spend(ProbeTopK(), topk, budget, lambda c: gains[c])
    assert not topk.measured[17].any()
    done = spend(ProbeHalving(budget=budget), grid, budget, lambda c: gains[c])
    assert len(done.cells) <= budget and int(np.nanargmax(centered_mean(grid.gains))) == 17


@pytest.mark.parametrize("name", POLICIES + ABLATIONS)
@pytest.mark.parametrize("fraction", [0.05, 0.2, 1.0])
def test_no_policy_exceeds_its_budget_or_buys_a_cell_twice(name, fraction):
    grid, gains = _synthetic(1, n_models=60)
    grid.available[5, :4] = False  # cells that cannot be bought are never asked for
    budget = int(fraction * grid.available.sum())
    done = spend(make_policy(name, budget, seed=2), grid, budget, lambda c: gains[c])
    assert len(done.cells) <= budget
    assert len(set(done.cells)) == len(done.cells)
    assert all(grid.available[c] for c in done.cells)
    keys = [run_key("arch", grid.models[i], grid.targets[j]) for i, j in done.cells]
    assert len(set(keys)) == len(keys)
    # asked again on the grid it left, a policy never names a bought cell
    cells, _ = make_policy(name, budget, seed=2).next_cells(grid, 10**6)
    assert not any(grid.measured[c] for c in cells)


def test_a_cell_cannot_be_recorded_twice():
    grid, gains = _synthetic(0, n_models=20)
    grid.record((1, 2), 0.5)
    with pytest.raises(ValueError, match="bought already"):
        grid.record((1, 2), 0.5)


def test_policies_are_stateless_same_grid_same_answer():
    grid, gains = _synthetic(4, n_models=80)
    budget = int(0.2 * gains.size)
    policy = ProbeHalving(budget=budget, seed=5)
    spend(policy, grid, budget // 3, lambda c: gains[c])  # a sensor that ran a few ticks, then restarted
    first = policy.next_cells(grid, 50)
    assert first == ProbeHalving(budget=budget, seed=5).next_cells(grid, 50)
    assert first[0] and len(first[0]) <= 50


def test_probe_topk_buys_whole_rows_in_probe_order():
    grid, gains = _synthetic(2, n_models=30, n_targets=6)
    done = spend(ProbeTopK(), grid, 20, lambda c: gains[c])
    rows = sorted({i for i, _ in done.cells})
    assert len(done.cells) == 18 and grid.measured[rows].all()  # 3 whole rows; a 4th does not fit in 2 cells
    assert set(rows) == set(np.argsort(-grid.prior)[:3].tolist())


@pytest.mark.parametrize("budget,n,t", [(1, 10, 18), (50, 323, 18), (1163, 323, 18), (5814, 323, 18),
                                        (100, 5, 4), (40, 1, 18)])
def test_the_halving_schedule_fits_its_budget(budget, n, t):
    rounds = halving_schedule(budget, n, t)
    assert rounds
    cost, prev_t = 0, 0
    for k, (n_r, t_r) in enumerate(rounds):
        assert 1 <= n_r <= n and 1 <= t_r <= t and t_r > prev_t
        cost += (n_r * t_r) if k == 0 else n_r * (t_r - prev_t)
        prev_t = t_r
    assert cost <= budget
    assert all(a[0] >= b[0] for a, b in zip(rounds, rounds[1:]))


def test_a_model_is_behind_the_leader_only_on_paired_evidence():
    gains = np.array([[5.0, 6.0, 5.5, 6.2], [1.0, 1.5, 0.5, 1.2], [4.0, 7.0, 3.0, 8.0], [0.0, np.nan, np.nan, 9.0]])
    assert behind(gains, 0).tolist() == [False, True, False, False]  # model 3: 2 common targets, wide bound


def test_the_race_buys_deeper_in_the_probe_order_than_probe_topk():
    grid, gains = _synthetic(2)
    budget = int(0.2 * gains.size)
    topk = Grid(grid.models, grid.targets, grid.prior, grid.available)
    spend(ProbeTopK(), topk, budget, lambda c: gains[c])
    spend(make_policy("adaptive_race", budget), grid, budget, lambda c: gains[c])
    assert grid.measured.any(axis=1).sum() > 2 * topk.measured.any(axis=1).sum()
    assert grid.measured.sum() <= budget


def test_the_racing_stop_needs_evidence_against_every_model_left():
    gains = np.array([[5.0, 6.0, 5.5, 6.2], [1.0, 1.5, 0.5, 1.2], [4.0, 7.0, 3.0, 8.0]])
    assert paired_settled(gains, 0, [1])
    assert not paired_settled(gains, 0, [1, 2])  # model 2 is not beaten on these four targets
    assert not paired_settled(gains[:, :1], 0, [1])  # one common target is no evidence


# --- the offline replay (benchmarks/budgeted_ranking.py) ---

import json  # noqa: E402

from startpoint.settings import REPO_ROOT  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "budgeted_ranking.json"


def _check_shape(results: dict) -> None:
    from benchmarks import budgeted_ranking

    fractions = [f"{f:g}" for f in budgeted_ranking.FRACTIONS]
    assert results["architectures"]
    for arch, res in results["architectures"].items():
        assert set(res["policies"]) == set(budgeted_ranking.RUN) >= set(POLICIES)
        for name, per in res["policies"].items():
            assert list(per) == fractions
            for f, m in per.items():
                assert set(m) >= {"regret", "low", "high", "cells"}
                assert 0 <= m["low"] <= m["regret"] <= m["high"], (arch, name, f)
                assert 0 < m["cells"] <= round(float(f) * res["selection_cells"]) + 1, (arch, name, f)
        for name in ("probe_topk", "uniform"):  # at 100% both buy every cell: the product's every-cell pick
            assert res["policies"][name]["1"]["regret"] == pytest.approx(res["full"]["regret"])
            assert res["policies"][name]["1"]["cells"] == pytest.approx(res["selection_cells"])
        assert "adaptive - probe_topk at 0.2" in res["paired"]


def test_the_replay_runs_on_a_small_published_folder(tmp_path):
    from published_fixture import SHARED, make_folder

    from benchmarks import budgeted_ranking

    if not SHARED.is_dir():
        pytest.skip("needs ../shared/model-recycling")
    folder = make_folder(tmp_path / "results", rows=25)
    out = tmp_path / "budget.json"
    assert budgeted_ranking.main(["--published", str(folder), "--out", str(out), "--splits", "3"]) == 0
    results = json.loads(out.read_text())
    assert set(results["architectures"]) == {"roberta-base", "t5-base"} and results["splits"] == 3
    _check_shape(results)


def test_the_results_file_has_the_shape_and_the_docs_quote_it():
    from benchmarks import budgeted_ranking

    results = json.loads(RESULTS.read_text())
    assert results["splits"] >= 50
    _check_shape(results)
    docs = (REPO_ROOT / "docs" / "budgeted_ranking.md").read_text()
    for part in (budgeted_ranking.figures, budgeted_ranking.markdown, budgeted_ranking.paired_markdown,
                 budgeted_ranking.reading, budgeted_ranking.runtime, budgeted_ranking.garbled_markdown):
        assert part(results) in docs, part.__name__
    for arch, res in results["architectures"].items():
        plot = (REPO_ROOT / "docs" / budgeted_ranking.svg_name(arch)).read_text()
        assert plot == budgeted_ranking.svg(arch, res, results["fractions"], results["policies"])
    assert results["seconds_total"] <= 20 * 60  # the limit for three architectures on 2 cores


@pytest.mark.parametrize("name", POLICIES + ABLATIONS)
def test_sensor_ticks_respect_the_budget_and_never_repeat_a_run_key(name):
    """A simulated sensor: each tick asks plan_tick within what is left of the period's budget, capped per tick;
    the runs it requested finish before the next tick (one tick in between sees them pending)."""
    from startpoint.budget import plan_tick

    grid, gains = _synthetic(5, n_models=50)
    period, per_tick = int(0.25 * gains.size), 40
    policy = make_policy(name, period, seed=3)
    keys: list[str] = []
    pending: set = set()
    for tick in range(200):
        if tick % 2 and pending:  # the runs requested by the last tick finish
            for i, j in pending:
                grid.record((i, j), gains[i, j])
            pending = set()
            continue
        requests, why = plan_tick(policy, grid, "arch", min(per_tick, period - len(keys)), pending, seed=0)
        if pending:
            assert not requests and why.startswith("waiting")
        assert len(requests) <= per_tick and len(keys) + len(requests) <= period
        assert all(r.reason for r in requests)
        for r in requests:
            pending.add((grid.models.index(r.model), grid.targets.index(r.target)))
        keys += [r.run_key for r in requests]
        if not requests and not pending:
            break
    assert len(keys) == len(set(keys)) and 0 < len(keys) <= period
