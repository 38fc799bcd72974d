"""`top_reliability` (sql/models/top_reliability.sql) against an independent numpy computation on a small synthetic
warehouse, its behaviour on a clear-best and a no-difference architecture, and the sentence a user reads
(startpoint/warehouse/reliability.py)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmarks import ranking_rules
from startpoint.warehouse.reliability import top_reliability_sentence, top_reliability_verdict

REPO = Path(__file__).resolve().parents[1]
CLIP = ranking_rules.dbt_var("ranking_clip")  # what dbt reads: the test passes only splits and groups
SPLITS, GROUPS = 12, 6


def _md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


def _synthetic(rng: np.random.Generator) -> pd.DataFrame:
    """Three architectures: `clear` (one model 6 points better than the rest everywhere), `flat` (no model effect:
    gains are pure model x target noise) and `mixed` (graded effects, a flagged model, collapsed and missing cells)."""
    rows = []

    def arch(name, n_models, n_targets, effect):
        for i in range(n_models):
            for t in range(n_targets):
                rows.append((name, f"org/{name}-m{i:02d}", f"t{t:02d}", effect(i) + rng.normal(0, 1.0), False))

    arch("clear", 40, 12, lambda i: 6.0 if i == 7 else 0.0)
    arch("flat", 60, 12, lambda i: 0.0)
    arch("mixed", 45, 14, lambda i: 0.15 * (45 - i))
    df = pd.DataFrame(rows, columns=["architecture", "model_id", "dataset_id", "gain", "collapsed"])
    mixed = df.architecture == "mixed"
    df.loc[mixed & (df.model_id == "org/mixed-m03") & (df.dataset_id == "t05"), ["gain", "collapsed"]] = [-40.0, True]
    df.loc[mixed & (df.model_id == "org/mixed-m10") & (df.dataset_id == "t01"), ["gain", "collapsed"]] = [-30.0, True]
    df.loc[mixed & (df.model_id == "org/mixed-m20") & (df.dataset_id == "t02"), "gain"] += 25.0  # clipped outlier
    df = df[~(mixed & (df.model_id == "org/mixed-m30") & df.dataset_id.isin(["t00", "t03", "t09"]))]  # missing
    return df.reset_index(drop=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("top_reliability")
    db = root / "wh.duckdb"
    gains = _synthetic(np.random.default_rng(17))
    flags = gains[["architecture", "model_id"]].drop_duplicates().assign(flagged=False)
    flags.loc[flags.model_id == "org/mixed-m00", "flagged"] = True  # the best of `mixed`, left out
    con = duckdb.connect(str(db))
    con.execute("create table gains as select * from gains")
    con.execute("create table model_flags as select * from flags")
    con.execute("create table ranking_reliability as select distinct architecture, 0.5 as reliability from gains")
    con.execute("create table ranking_consistency as select distinct architecture, 0.4 as half_spearman from gains")
    con.close()
    subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "run", "--quiet", "--select", "top_reliability",
         "--project-dir", str(REPO / "sql"), "--profiles-dir", str(REPO / "sql"), "--target-path", str(root / "target"),
         "--vars", f"{{top_reliability_splits: {SPLITS}, top_reliability_groups: {GROUPS}}}"],
        env={**os.environ, "STARTPOINT_WAREHOUSE": str(db)}, check=True,
    )
    con = duckdb.connect(str(db), read_only=True)
    got = con.execute("select * from top_reliability").df().set_index("architecture")
    con.close()
    return gains, flags, got


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(stats.rankdata(a), stats.rankdata(b))[0, 1])


def _expected(gains: pd.DataFrame, flags: pd.DataFrame, arch: str) -> dict:
    """The figures, written again in numpy: every model scored in every split (no pruning)."""
    ok = set(flags[(flags.architecture == arch) & ~flags.flagged].model_id)
    g = gains[(gains.architecture == arch) & gains.model_id.isin(ok) & ~gains.collapsed]
    targets = sorted(g.dataset_id.unique())
    models = sorted(g.model_id.unique())
    y = np.full((len(models), len(targets)), np.nan)
    for t_i, t in enumerate(targets):
        col = g[g.dataset_id == t]
        center = np.median(col.gain)
        scale = max(1.4826 * np.median(np.abs(col.gain - center)), 0.1)
        w = col.gain.clip(center - CLIP * scale, center + CLIP * scale)
        for m, v in zip(col.model_id, w - w.mean()):
            y[models.index(m), t_i] = v
    tiebreak = np.argsort(np.argsort([_md5(m) for m in models]))  # rank of md5(model_id)
    n_t = len(targets)
    n_g = min(GROUPS, n_t)
    order = sorted(range(n_t), key=lambda j: _md5("group:" + targets[j]))
    grp = np.empty(n_t, int)
    for pos, j in enumerate(order):
        grp[j] = pos % n_g + 1

    def top(score, ranked, n):
        idx = [i for i in np.where(ranked)[0]]
        return sorted(idx, key=lambda i: (-score[i], tiebreak[i]))[:n]

    def replicate(gr):
        kept = [j for j in range(n_t) if grp[j] != gr]
        out = []
        for k in range(SPLITS):
            srt = sorted(kept, key=lambda j: _md5(f"{k}:{targets[j]}"))
            a_idx, b_idx = srt[: len(kept) // 2], srt[len(kept) // 2:]
            na, nb = (~np.isnan(y[:, a_idx])).sum(1), (~np.isnan(y[:, b_idx])).sum(1)
            ranked = (na > 0) & (nb > 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                sa, sb = np.nansum(y[:, a_idx], 1) / na, np.nansum(y[:, b_idx], 1) / nb
            ta, tb = top(sa, ranked, 20), top(sb, ranked, 20)
            p = ((ta[0] in tb[:10]) + (tb[0] in ta[:10])) / 2
            o = len(set(ta[:10]) & set(tb[:10])) / 10
            rho = np.mean([_spearman(sa[ta], sb[ta]), _spearman(sa[tb], sb[tb])])
            out.append((p, o, rho))
        return np.array(out)

    point = replicate(0)
    reps = np.array([replicate(gr).mean(0) for gr in range(1, n_g + 1)])
    jk = (n_g - 1) / n_g * ((reps - reps.mean(0)) ** 2).sum(0)
    mc = point.var(0, ddof=1) / SPLITS
    se = np.sqrt(jk + mc)
    q = stats.t.ppf(0.975, n_g - 1)
    est = point.mean(0)
    lo = [max(est[0] - q * se[0], 0), max(est[1] - q * se[1], 0), max(est[2] - q * se[2], -1)]
    hi = [min(est[i] + q * se[i], 1) for i in range(3)]
    return {"n_models": len(models), "n_targets": n_t, "est": est, "low": lo, "high": hi, "se": se}


@pytest.mark.parametrize("arch", ["clear", "flat", "mixed"])
def test_matches_an_independent_numpy_computation(built, arch):
    gains, flags, got = built
    exp = _expected(gains, flags, arch)
    row = got.loc[arch]
    assert row.n_models == exp["n_models"] and row.n_targets == exp["n_targets"]
    assert row.n_splits == SPLITS and row.n_groups == GROUPS
    for i, col in enumerate(["p_rank1_in_top10", "top10_overlap", "top20_spearman"]):
        assert row[col] == pytest.approx(exp["est"][i], abs=1e-9), col
        # the SQL's t quantile for df 5 is a Cornish-Fisher expansion (within 0.005 of scipy's)
        tol = 5e-3 * exp["se"][i] + 1e-9
        assert row[f"{col}_low"] == pytest.approx(exp["low"][i], abs=tol), col
        assert row[f"{col}_high"] == pytest.approx(exp["high"][i], abs=tol), col
        assert row[f"{col}_low"] <= row[col] <= row[f"{col}_high"], col  # the interval holds its point


def test_a_clear_best_model_is_stable_and_no_differences_are_not(built):
    _, _, got = built
    assert got.loc["clear", "p_rank1_in_top10"] >= 0.95
    assert got.loc["clear", "p_rank1_in_top10_low"] >= 0.9
    # 60 models with no real differences: rank 1 of one half lands in the other's top 10 about 10/60 of the time
    assert got.loc["flat", "p_rank1_in_top10"] < 0.4
    assert top_reliability_verdict(got.loc["clear"].to_dict()) == "stable"
    assert top_reliability_verdict(got.loc["flat"].to_dict()) == "not stable"


def test_all_model_figures_sit_beside_the_top_ones(built):
    _, _, got = built
    assert (got.all_reliability == 0.5).all() and (got.all_spearman == 0.4).all()


def test_sentence_words_follow_the_stated_thresholds():
    stable = {"p_rank1_in_top10": 0.83, "p_rank1_in_top10_low": 0.6, "p_rank1_in_top10_high": 1.0,
              "top10_overlap": 0.36}
    s = top_reliability_sentence(stable)
    assert "83% of splits" in s and "60%-100%" in s and "fairly stable" in s and "36%" in s
    wide = dict(stable, p_rank1_in_top10_low=0.0)  # high point, but the interval reaches below 0.5
    assert top_reliability_verdict(wide) == "partly stable"
    assert "only partly stable" in top_reliability_sentence(wide)
    low = {"p_rank1_in_top10": 0.07, "p_rank1_in_top10_low": 0.0, "p_rank1_in_top10_high": 0.2}
    s = top_reliability_sentence(low)
    assert "7% of splits" in s and "not stable" in s and "shortlist" in s
    assert top_reliability_verdict({"p_rank1_in_top10": 0.5}) == "partly stable"
    assert top_reliability_verdict({"p_rank1_in_top10": 0.49}) == "not stable"
    none = top_reliability_sentence({"p_rank1_in_top10": None, "n_models": 4})
    assert "Too few" in none and "4 models" in none
    assert top_reliability_verdict({"p_rank1_in_top10": float("nan")}) == "unknown"
