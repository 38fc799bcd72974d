"""`gains`' robust baseline when most pretrained seeds collapsed (issue 17, item 4), through the real dbt model.

Synthetic targets of 20 pretrained seeds each, in points: 18 at the majority-class share, 15 at chance, 9 in a tight
low cluster, plus one healthy narrow target, one genuinely wide healthy target (no gap) and a Spearman x 100 target.
The baseline must be the healthy cluster's mean, the collapsed seeds counted, and finetuned cells at the collapsed
level marked collapsed while healthy ones are not. Targets without a gap must behave as the old distance rule did.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from statistics import NormalDist

import duckdb
import numpy as np
import pytest

from assets.dbt import _dbt_executable
from startpoint.settings import SQL_DIR

ARCH = "arch-x"
PRETRAINED = "arch-x-pretrained"


def normal(center: float, sd: float, n: int) -> list[float]:
    """n evenly spaced normal quantiles: a sample with the given center and spread and no gaps."""
    return [center + sd * NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)]


# target -> (pretrained seeds, the healthy seeds among them)
HEALTHY_18 = [79.3, 79.7]
HEALTHY_15 = normal(62.0, 2.0, 5)
HEALTHY_9 = normal(75.0, 2.0, 11)
TARGETS: dict[str, tuple[list[float], list[float]]] = {
    # a constant predictor (majority class, cola-like 69.13%) in 18 of 20 seeds
    "majority18": ([69.13] * 18 + HEALTHY_18, HEALTHY_18),
    # 15 of 20 at chance on a balanced binary test set, one far lower seed among them
    "chance15": ([50.0] * 14 + [31.0] + HEALTHY_15, HEALTHY_15),
    # 9 of 20 in a tight low cluster (not tied), the rest healthy
    "tight9": (normal(62.0, 0.5, 9) + HEALTHY_9, HEALTHY_9),
    # no collapse: one narrow healthy cluster
    "narrow": (normal(80.0, 0.5, 20), normal(80.0, 0.5, 20)),
    # a genuinely wide healthy spread (financial_phrasebank-like), no gap of 5 points
    "wide": (normal(70.0, 8.0, 20), normal(70.0, 8.0, 20)),
    # Spearman x 100, one lone seed far below (the distance rule's case)
    "spearman": (normal(88.0, 0.4, 19) + [59.0], normal(88.0, 0.4, 19)),
}
# finetuned models: (target -> score); 'collapsed' sits at the collapsed level of each collapsing target
CELLS = {
    "at-collapse": {"majority18": 69.13, "chance15": 50.0, "tight9": 62.2, "narrow": 80.3, "wide": 70.0,
                    "spearman": 59.5},
    "healthy": {"majority18": 78.5, "chance15": 61.0, "tight9": 74.0, "narrow": 79.0, "wide": 52.0,
                "spearman": 87.5},
    # worse than the healthy seeds but clearly above the collapsed cluster: a bad result, not a collapse
    "weak": {"majority18": 72.5, "chance15": 56.0, "tight9": 67.0},
}


def old_distance_cut(seeds: list[float]) -> float:
    """The rule before issue 17: median - max(10, 4 * 1.4826 * MAD) of all seeds."""
    x = np.asarray(seeds)
    m = float(np.median(x))
    return m - max(10.0, 4 * 1.4826 * float(np.median(np.abs(x - m))))


def reference_cut(seeds: list[float]) -> float:
    """collapse_below as docs/data_quality.md states it, in numpy: rule 1 (distance) unless a gap of >= 5 points and
    >= 3 pooled within-cluster SDs (rule-1 outliers left out of the SD) splits the sorted seeds into two clusters of
    >= 2; then from the healthy (upper) cluster of the highest such gap, at least 0.5 above the lower cluster."""
    x = np.sort(np.asarray(seeds, dtype=float))
    cut = old_distance_cut(list(x))
    clean = x >= cut
    split = None
    for k in range(2, len(x) - 1):  # lower cluster x[:k], upper x[k:]
        gap = x[k] - x[k - 1]
        lo, hi = x[:k][clean[:k]], x[k:][clean[k:]]
        ss = sum(((p - p.mean()) ** 2).sum() for p in (lo, hi) if len(p))
        df = max(len(lo) - 1, 0) + max(len(hi) - 1, 0)
        if gap >= 5 and gap >= 3 * (np.sqrt(ss / df) if df else 0.0):
            split = k
    if split is None:
        return cut
    return max(old_distance_cut(list(x[split:])), x[split - 1] + 0.5)


# random targets: a healthy normal cluster and, in most, a collapsed cluster (tied or tight) and stray low seeds
_rng = np.random.default_rng(17)
RANDOM: dict[str, list[float]] = {}
for _i in range(40):
    _n_low = int(_rng.integers(0, 19))
    _healthy = list(_rng.normal(_rng.uniform(55, 90), _rng.uniform(0.2, 4.0), 20 - _n_low))
    _level = float(_rng.uniform(20, 70))
    _low = [_level] * _n_low if _i % 2 else list(_rng.normal(_level, 0.5, _n_low))
    RANDOM[f"random{_i:02d}"] = [round(v, 2) for v in _healthy + _low]


def _run_gains(warehouse: Path, tmp: Path) -> None:
    env = {**os.environ, "STARTPOINT_WAREHOUSE": str(warehouse)}
    subprocess.run(
        [_dbt_executable(), "run", "--quiet", "--select", "+gains",  # with finetune_cells, the runs per cell
         "--project-dir", str(SQL_DIR), "--profiles-dir", str(SQL_DIR),
         "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")],
        env=env, check=True)


@pytest.fixture(scope="module")
def gains(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("collapse")
    db = tmp / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table hub_models(architecture varchar, model_id varchar, role varchar)")
    con.execute("create table datasets(dataset_id varchar, metric varchar, majority_share double)")
    con.execute("create table finetune_runs(architecture varchar, model_id varchar, dataset_id varchar, score double, "
                "status varchar, origin varchar)")
    con.executemany("insert into hub_models values (?, ?, ?)",
                    [(ARCH, PRETRAINED, "pretrained")] + [(ARCH, m, "intermediate") for m in CELLS])
    # published datasets carry no majority share: the rule must not need one
    con.executemany("insert into datasets values (?, ?, NULL)",
                    [(t, "spearman" if t == "spearman" else "accuracy") for t in [*TARGETS, *RANDOM]])
    rows = [(ARCH, PRETRAINED, t, s, "ok", "published") for t, (seeds, _) in TARGETS.items() for s in seeds]
    rows += [(ARCH, PRETRAINED, t, s, "ok", "published") for t, seeds in RANDOM.items() for s in seeds]
    rows += [(ARCH, "healthy", t, 80.0, "ok", "published") for t in RANDOM]
    rows += [(ARCH, m, t, s, "ok", "published") for m, cells in CELLS.items() for t, s in cells.items()]
    con.executemany("insert into finetune_runs values (?, ?, ?, ?, ?, ?)", rows)
    con.close()
    _run_gains(db, tmp)
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("select * from gains").df().set_index(["model_id", "dataset_id"])
    finally:
        con.close()


def _target(gains, target: str):
    rows = gains.xs(target, level="dataset_id")
    assert rows.collapse_below.nunique() == 1 and rows.baseline_robust.nunique() == 1
    return rows.iloc[0]


@pytest.mark.parametrize("target", ["majority18", "chance15", "tight9"])
def test_the_baseline_is_the_healthy_cluster_when_many_seeds_collapsed(gains, target):
    seeds, healthy = TARGETS[target]
    row = _target(gains, target)
    assert row.n_baseline == 20
    assert row.n_baseline_used == len(healthy)
    assert row.n_baseline_collapsed == 20 - len(healthy)
    assert row.baseline_robust == pytest.approx(np.mean(healthy), abs=1e-9)
    assert row.baseline_robust_sd == pytest.approx(np.std(healthy, ddof=1), abs=1e-9)
    assert row.baseline_mean == pytest.approx(np.mean(seeds), abs=1e-9)
    # the cut-off lies between the clusters: every collapsed seed below it, every healthy seed above
    assert max(s for s in seeds if s not in healthy) < row.collapse_below <= min(healthy)
    # the old rule kept the collapsed seeds (this is the failure the new rule fixes)
    assert sum(s < old_distance_cut(seeds) for s in seeds) < 20 - len(healthy)


@pytest.mark.parametrize("target", ["majority18", "chance15", "tight9"])
def test_finetuned_cells_at_the_collapsed_level_are_collapsed_and_healthy_ones_not(gains, target):
    seeds, healthy = TARGETS[target]
    at = gains.loc[("at-collapse", target)]
    assert at.collapsed
    assert not gains.loc[("healthy", target)].collapsed
    # a weak but working model above the collapsed cluster keeps its cell
    assert not gains.loc[("weak", target)].collapsed
    # gains are taken over the healthy cluster
    assert at.gain == pytest.approx(CELLS["at-collapse"][target] - np.mean(healthy), abs=1e-9)
    assert at.gain_se == pytest.approx(np.std(healthy, ddof=1) * np.sqrt(1 + 1 / len(healthy)), abs=1e-9)


@pytest.mark.parametrize("target", ["narrow", "wide", "spearman"])
def test_one_cluster_behaves_as_the_distance_rule(gains, target):
    """No gap: the cut-off is exactly the old median - max(10, 4 s), nothing healthy is called collapsed."""
    seeds, healthy = TARGETS[target]
    row = _target(gains, target)
    assert row.collapse_below == pytest.approx(old_distance_cut(seeds), abs=1e-9)
    assert row.n_baseline_used == len(healthy)
    assert row.baseline_robust == pytest.approx(np.mean(healthy), abs=1e-9)
    assert not gains.loc[("healthy", target)].collapsed
    # the finetuned cell at the lone collapsed seed's level is collapsed; on one healthy cluster nothing is
    assert gains.loc[("at-collapse", target)].collapsed == (target == "spearman")


def test_ties_on_a_coarse_score_grid_do_not_split_healthy_seeds(tmp_path):
    """Small test sets give tied scores (wsc, wnli: most seeds at one value) and gaps of a few points: with no gap of
    5 points and 3 pooled SDs, no seed collapses beyond the distance rule. The last target is the rule's documented
    miss (docs/data_quality.md): a lower cluster too wide for its gap."""
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table hub_models as select 'a' as architecture, 'p' as model_id, 'pretrained' as role "
                "union all select 'a', 'm', 'intermediate'")
    con.execute("create table datasets(dataset_id varchar, metric varchar, majority_share double)")
    con.execute("create table finetune_runs(architecture varchar, model_id varchar, dataset_id varchar, score double, "
                "status varchar, origin varchar)")
    targets = {
        "wsc_like": [59.62] + [63.46] * 19,  # a seed 3.8 points under 19 ties: below the 5-point gap
        "copa_like": [38, 41] + [45] * 8 + [48, 49, 50, 50, 55, 55, 55, 55, 57, 61],  # 5-point gap, wide clusters
        "cb_like": [64.29, 66.07] + [67.86] * 10 + [69.64] * 4 + [71.43] * 2 + [73.21, 75.0],
        # the documented miss: two constant predictors 5.4 points apart, healthy seeds about 7 points above them
        "two_constants": [47.29] * 8 + [52.71] * 7 + normal(62.0, 2.0, 5),
    }
    for t, seeds in targets.items():
        con.executemany("insert into finetune_runs values ('a', 'p', ?, ?, 'ok', 'published')",
                        [(t, float(s)) for s in seeds])
        con.execute("insert into finetune_runs values ('a', 'm', ?, 60, 'ok', 'published')", [t])
    con.close()
    _run_gains(db, tmp_path)
    con = duckdb.connect(str(db), read_only=True)
    try:
        got = con.execute("select dataset_id, collapse_below, n_baseline_collapsed from gains").fetchall()
    finally:
        con.close()
    assert {t: (round(c, 9), n) for t, c, n in got} == {
        t: (round(old_distance_cut(s), 9), sum(x < old_distance_cut(s) for x in s)) for t, s in targets.items()}


def test_the_cut_off_equals_the_documented_rule_on_random_targets(gains):
    """The SQL against the numpy statement of the rule, on the synthetic targets and 40 random mixtures."""
    targets = {t: seeds for t, (seeds, _) in TARGETS.items()} | RANDOM
    for t, seeds in targets.items():
        row = _target(gains, t)
        cut = reference_cut(seeds)
        assert row.collapse_below == pytest.approx(cut, abs=1e-9), t
        assert row.n_baseline_collapsed == sum(s < cut for s in seeds), t
        assert row.baseline_robust == pytest.approx(np.mean([s for s in seeds if s >= cut]), abs=1e-9), t
    # the random draws exercise both rules
    split = [t for t, seeds in RANDOM.items() if reference_cut(seeds) != old_distance_cut(seeds)]
    assert 5 <= len(split) < len(RANDOM)
