"""`variance_decomposition`: the SQL variance components and their bootstrap intervals against an independent numpy
computation, on a warehouse built from a small real published folder and on made-up blocks: a negative interaction
reported as is; a few broken models (collapsed cells) whose exclusion changes the base share; intervals that cannot
be estimated (too few models, seed noise unknown in most replicates, a positive share whose replicates are all
floored at 0) shown as NULL; seed noise from the healthy pretrained seeds only."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from assets.dbt import _dbt_executable
from startpoint.settings import SQL_DIR

from published_fixture import SHARED, make_folder, materialize_published

COMPONENTS = ("base", "target", "interaction", "noise")
COLUMNS = ["variance", "variance_low", "variance_high", "share", "share_low", "share_high"]
MIN_MODELS, MIN_TARGETS = 10, 5  # below these the bootstrap gives no interval (variance_decomposition.py)


def components(x: np.ndarray, noise_var: np.ndarray) -> dict[str, float]:
    """Two-way random ANOVA without replication on an M x T block, with the centered textbook sums of squares;
    noise = the mean of the cells' seed-noise variances (NaN where unknown; NaN when none is known)."""
    m, t = x.shape
    grand = x.mean()
    rows, cols = x.mean(axis=1), x.mean(axis=0)
    ms_model = t * ((rows - grand) ** 2).sum() / (m - 1)
    ms_target = m * ((cols - grand) ** 2).sum() / (t - 1)
    ms_resid = ((x - rows[:, None] - cols[None, :] + grand) ** 2).sum() / ((m - 1) * (t - 1))
    known = noise_var[~np.isnan(noise_var)]
    noise = known.mean() if known.size else math.nan
    return {"base": (ms_model - ms_resid) / t, "target": (ms_target - ms_resid) / m,
            "interaction": ms_resid - noise, "noise": noise}


def shares(var: dict[str, float]) -> dict[str, float]:
    """Each component floored at 0 over the sum of the floored components; none when a component is unknown."""
    if any(math.isnan(v) for v in var.values()):
        return {k: math.nan for k in var}
    total = sum(max(v, 0.0) for v in var.values())
    return {k: max(v, 0.0) / total if total > 0 else math.nan for k, v in var.items()}


def unflagged(gains: pd.DataFrame, flags: pd.DataFrame, arch: str) -> pd.DataFrame:
    keep = set(flags[(flags.architecture == arch) & ~flags.flagged.astype(bool)].model_id)
    g = gains[(gains.architecture == arch) & gains.model_id.isin(keep)].copy()
    g["noise_var"] = g.baseline_robust_sd ** 2 / g.n_seeds
    return g


def block(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The complete block of `g` (rows sorted by model_id, columns by dataset_id): the models with a cell on every
    target that has one."""
    x = g.pivot(index="model_id", columns="dataset_id", values="gain").dropna().sort_index().sort_index(axis=1)
    v = g.pivot(index="model_id", columns="dataset_id", values="noise_var").loc[x.index, x.columns]
    return x.to_numpy(), v.to_numpy(dtype=float)


def draws(con: duckdb.DuckDBPyConnection, arch: str, axis: str, n: int, replicates: int) -> np.ndarray:
    """The documented sampling scheme: position i of replicate b >= 1 takes element hash(b, arch, axis, i) mod n."""
    rows = con.execute(
        "select b, i, hash(b, ?, ?, i) % ?::ubigint from range(1, ? + 1) r(b), range(0, ?) p(i) order by b, i",
        [arch, axis, n, replicates, n]).fetchall()
    return np.array([r[2] for r in rows], dtype=np.int64).reshape(replicates, n)


def interval(point: float, values: np.ndarray, enough: bool) -> tuple[float, float]:
    """The 95% percentile interval, or (NaN, NaN) where it cannot be estimated: too small a block, under 95% of
    the replicates giving the figure, or an interval that does not hold the point estimate."""
    ok = values[~np.isnan(values)]
    if not enough or ok.size < 0.95 * values.size:
        return math.nan, math.nan
    low, high = np.quantile(ok, 0.025), np.quantile(ok, 0.975)
    if not (low <= point + 1e-9 and point <= high + 1e-9):
        return math.nan, math.nan
    return low, high


def numpy_table(con: duckdb.DuckDBPyConnection, gains, flags, arch: str, replicates: int,
                raw: dict | None = None) -> pd.DataFrame:
    """The table the SQL should give for `arch`; `raw` (if given) receives the plain percentile share intervals."""
    g = unflagged(gains, flags, arch)
    x, v = block(g[~g.collapsed.fillna(False).astype(bool)])
    m, t = x.shape
    point = components(x, v)
    point_share = shares(point)
    all_x, all_v = block(g)  # the comparison block: collapsed cells kept, point estimates only
    all_point = components(all_x, all_v)
    all_share = shares(all_point)
    mi, tj = draws(con, arch, "model", m, replicates), draws(con, arch, "target", t, replicates)
    boot = [components(x[np.ix_(mi[b], tj[b])], v[np.ix_(mi[b], tj[b])]) for b in range(replicates)]
    boot_share = [shares(c) for c in boot]
    enough = m >= MIN_MODELS and t >= MIN_TARGETS
    out = []
    for c in COMPONENTS:
        var = np.array([r[c] for r in boot])
        sh = np.array([r[c] for r in boot_share])
        if raw is not None:
            raw[c] = (np.nanquantile(sh, 0.025), np.nanquantile(sh, 0.975))
        var_low, var_high = interval(point[c], var, enough)
        share_low, share_high = interval(point_share[c], sh, enough)
        out.append({"component": c, "variance": point[c], "variance_low": var_low, "variance_high": var_high,
                    "share": point_share[c], "share_low": share_low, "share_high": share_high,
                    "n_models": m, "n_targets": t, "n_models_unflagged": g.model_id.nunique(),
                    "n_models_with_collapsed": g[g.collapsed.fillna(False).astype(bool)].model_id.nunique(),
                    "variance_all_cells": all_point[c], "share_all_cells": all_share[c],
                    "n_models_all_cells": all_x.shape[0]})
    return pd.DataFrame(out).set_index("component")


NUMERIC = COLUMNS + ["variance_all_cells", "share_all_cells"]
COUNTS = ["n_models", "n_targets", "n_models_unflagged", "n_models_with_collapsed", "n_models_all_cells"]


def assert_same(mine: pd.DataFrame, theirs: pd.DataFrame, arch: str) -> None:
    """Equal within 1e-6, NULL exactly where numpy has NaN."""
    for col in NUMERIC:
        a = mine.loc[list(COMPONENTS), col].astype(float).to_numpy()
        b = theirs.loc[list(COMPONENTS), col].astype(float).to_numpy()
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{arch} {col}: NULLs differ")
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, equal_nan=True, err_msg=f"{arch} {col}")
    for col in COUNTS:
        assert (mine[col] == theirs[col].iloc[0]).all(), f"{arch} {col}"


def assert_intervals_hold_points(mine: pd.DataFrame) -> None:
    """Every interval shown holds its point estimate; an interval is either both ends or none."""
    for name in ("variance", "share"):
        low, high, point = mine[f"{name}_low"], mine[f"{name}_high"], mine[name]
        assert (low.isna() == high.isna()).all()
        shown = low.notna()
        assert (low[shown] <= point[shown] + 1e-9).all() and (point[shown] <= high[shown] + 1e-9).all()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    if not SHARED.is_dir():
        pytest.skip("needs ../shared/model-recycling")
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("variance")
    home = root / "home"
    assert materialize_published(home, make_folder(root / "results"), mp).success
    yield home / "warehouse.duckdb"
    mp.undo()


def test_components_and_intervals_equal_numpy(warehouse):
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        vd = con.execute("select * from variance_decomposition").df()
        gains = con.execute("select * from gains").df()
        flags = con.execute("select architecture, model_id, flagged from model_flags").df()
        assert set(vd.architecture) == {"roberta-base", "t5-base"}
        for arch, mine in vd.groupby("architecture"):
            mine = mine.set_index("component")
            assert set(mine.index) == set(COMPONENTS)
            replicates = int(mine.n_replicates.iloc[0])
            assert replicates >= 200 and (mine.n_replicates == replicates).all()
            theirs = numpy_table(con, gains, flags, arch, replicates)
            assert theirs.n_models.iloc[0] >= 10, "the fixture should leave a real block"
            assert_same(mine, theirs, arch)
            # the block holds no collapsed cell and no flagged model
            assert (mine.n_models <= mine.n_models_unflagged - mine.n_models_with_collapsed).all()
            assert (mine.negative == (mine.variance < 0)).all()
            assert mine.share.sum() == pytest.approx(1.0, abs=1e-9)
            assert_intervals_hold_points(mine)
    finally:
        con.close()


def _run_model(warehouse: Path, tmp: Path) -> None:
    env = {**os.environ, "STARTPOINT_WAREHOUSE": str(warehouse)}
    subprocess.run(
        [_dbt_executable(), "run", "--quiet", "--select", "variance_decomposition",
         "--project-dir", str(SQL_DIR), "--profiles-dir", str(SQL_DIR),
         "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")],
        env=env, check=True)


def _made_up(tmp: Path, rows: list[tuple], flagged: set[str] = frozenset()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the model on a gains table of `rows` = (architecture, model, target, n_seeds, gain, baseline_robust_sd,
    collapsed[, baseline_sd]); returns the model's table (by architecture, component) and numpy's."""
    rows = [r if len(r) == 8 else (*r, r[5]) for r in rows]
    db = tmp / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table gains(architecture varchar, model_id varchar, dataset_id varchar, n_seeds bigint, "
                "gain double, baseline_robust_sd double, collapsed boolean, baseline_sd double)")
    con.executemany("insert into gains values (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    con.execute("create table model_flags as select distinct architecture, model_id, "
                "list_contains(?, model_id) as flagged from gains", [sorted(flagged)])
    con.close()
    _run_model(db, tmp)
    con = duckdb.connect(str(db), read_only=True)
    try:
        vd = con.execute("select * from variance_decomposition").df()
        gains = con.execute("select * from gains").df()
        flags = con.execute("select * from model_flags").df()
        theirs = {arch: numpy_table(con, gains, flags, arch, int(mine.n_replicates.iloc[0]))
                  for arch, mine in vd.groupby("architecture")}
    finally:
        con.close()
    return vd, theirs


def test_a_negative_interaction_is_reported_not_capped(tmp_path):
    """Additive gains (base + target, no interaction) with a seed SD far above the residual spread: the interaction
    estimate is negative; it is reported as is, flagged, and counts 0 in the shares. A flagged model and a model
    missing a target stay out of the block."""
    rng = np.random.default_rng(0)
    m, t = 30, 8
    base, target = rng.normal(0, 2, m), rng.normal(0, 3, t)
    rows = [("arch-x", f"m{i:02d}", f"d{j}", 1, float(base[i] + target[j] + rng.normal(0, 0.1)), 1.0, False)
            for i in range(m) for j in range(t)]
    rows += [("arch-x", "flagged", f"d{j}", 1, 100.0 * j, 1.0, False) for j in range(t)]
    rows += [("arch-x", "partial", f"d{j}", 1, 50.0, 1.0, False) for j in range(t - 1)]
    vd, theirs = _made_up(tmp_path, rows, flagged={"flagged"})
    vd = vd.set_index("component")
    assert (vd.n_models == m).all() and (vd.n_targets == t).all() and (vd.n_models_unflagged == m + 1).all()
    assert vd.loc["noise", "variance"] == pytest.approx(1.0)
    assert vd.loc["interaction", "variance"] == pytest.approx(0.01 - 1.0, abs=0.01)
    assert vd.loc["interaction", "negative"] and not vd.drop("interaction").negative.any()
    assert vd.loc["interaction", "share"] == 0
    assert vd.share.sum() == pytest.approx(1.0)
    assert_same(vd, theirs["arch-x"], "arch-x")
    assert_intervals_hold_points(vd)


def test_broken_models_with_collapsed_cells_are_left_out_of_the_block(tmp_path):
    """40 healthy models whose base effects are small, and 4 broken ones whose runs collapsed on 6 of the 10 targets
    (gains of about -40 there). Kept cells only, the broken models leave the block and the base share is small;
    with the collapsed cells kept (the comparison columns) the few broken models make the base share large."""
    rng = np.random.default_rng(1)
    m, t = 40, 10
    base, target = rng.normal(0, 0.3, m), rng.normal(0, 2, t)
    rows = [("arch-b", f"m{i:02d}", f"d{j}", 1, float(base[i] + target[j] + rng.normal(0, 1.0)), 0.5, False)
            for i in range(m) for j in range(t)]
    for k in range(4):
        rows += [("arch-b", f"broken{k}", f"d{j}", 1,
                  float(target[j] + (-40 + rng.normal(0, 2) if j < 6 else rng.normal(0, 1))), 0.5, j < 6)
                 for j in range(t)]
    vd, theirs = _made_up(tmp_path, rows)
    vd = vd.set_index("component")
    assert (vd.n_models == m).all() and (vd.n_models_unflagged == m + 4).all()
    assert (vd.n_models_with_collapsed == 4).all() and (vd.n_models_all_cells == m + 4).all()
    assert vd.loc["base", "share"] < 0.1
    assert vd.loc["base", "share_all_cells"] > 0.3, "4 broken models of 44 drive the base share when kept"
    assert_same(vd, theirs["arch-b"], "arch-b")
    assert_intervals_hold_points(vd)


def test_noise_comes_from_the_healthy_pretrained_seeds_only(tmp_path):
    """The seed noise of a cell is baseline_robust_sd^2 / n_seeds: the SD of the pretrained seeds that did not
    collapse, not the SD of all seeds (baseline_sd, here 10 times larger as if a seed had collapsed)."""
    rng = np.random.default_rng(2)
    m, t = 20, 6
    sd = rng.uniform(0.5, 2.0, t)
    rows = [("arch-n", f"m{i:02d}", f"d{j}", 1 + (i + j) % 3, float(rng.normal(0, 2)), float(sd[j]), False,
             float(10 * sd[j])) for i in range(m) for j in range(t)]
    vd, theirs = _made_up(tmp_path, rows)
    vd = vd.set_index("component")
    expected = np.mean([sd[j] ** 2 / (1 + (i + j) % 3) for i in range(m) for j in range(t)])
    assert vd.loc["noise", "variance"] == pytest.approx(expected, rel=1e-9)
    assert vd.loc["interaction", "variance"] > 0, "the healthy-seed noise does not swallow the residual"
    assert_same(vd, theirs["arch-n"], "arch-n")


def test_an_interval_that_cannot_be_estimated_is_null(tmp_path):
    """Three blocks whose bootstrap cannot give an interval, each NULL where it cannot, never [0, 0]:
    - arch-small: 6 models (< 10): every interval is NULL, the point estimates are still shown;
    - arch-sparse: the seed noise is known on 1 of 8 targets, so about a third of the replicates draw no cell with a
      known noise: the noise and interaction intervals and every share interval are NULL, base and target keep theirs;
    - arch-z: a positive interaction barely above the seed noise, whose bootstrap replicates are below it (the
      residual mean square of a resampled block is biased down): the share's percentile interval is [0, 0] and the
      variance's misses the point; both are NULL."""
    rows = []
    rng = np.random.default_rng(3)
    base, target = rng.normal(0, 2, 6), rng.normal(0, 3, 6)
    rows += [("arch-small", f"m{i}", f"d{j}", 1, float(base[i] + target[j] + rng.normal(0, 1)), 0.5, False)
             for i in range(6) for j in range(6)]
    base, target = rng.normal(0, 2, 20), rng.normal(0, 3, 8)
    rows += [("arch-sparse", f"m{i:02d}", f"d{j}", 1, float(base[i] + target[j] + rng.normal(0, 1)),
              0.5 if j == 0 else None, False) for i in range(20) for j in range(8)]
    m, t = 12, 6
    e = np.random.default_rng(28).normal(size=(m, t))
    e = e - e.mean(axis=1, keepdims=True) - e.mean(axis=0, keepdims=True) + e.mean()
    ms_resid = (e ** 2).sum() / ((m - 1) * (t - 1))
    noise_sd = math.sqrt(ms_resid / 1.02)  # interaction = 0.02 / 1.02 of the residual mean square
    base, target = np.linspace(-2, 2, m), np.linspace(-3, 3, t)
    rows += [("arch-z", f"m{i:02d}", f"d{j}", 1, float(base[i] + target[j] + e[i, j]), noise_sd, False)
             for i in range(m) for j in range(t)]
    vd, theirs = _made_up(tmp_path, rows)
    tables = {arch: g.set_index("component") for arch, g in vd.groupby("architecture")}
    for arch, mine in tables.items():
        assert_same(mine, theirs[arch], arch)
        assert_intervals_hold_points(mine)
        assert mine.variance.notna().all() and mine.share.notna().all()

    small = tables["arch-small"]
    assert (small.n_models == 6).all()
    assert small[COLUMNS[1:3] + COLUMNS[4:]].isna().all().all()

    sparse = tables["arch-sparse"]
    assert sparse.loc[["noise", "interaction"], ["variance_low", "variance_high"]].isna().all().all()
    assert sparse.loc[["base", "target"], ["variance_low", "variance_high"]].notna().all().all()
    assert sparse[["share_low", "share_high"]].isna().all().all()

    z = tables["arch-z"].loc["interaction"]
    assert z.variance > 0 and z.share > 0 and not z.negative
    raw: dict = {}
    con = duckdb.connect()
    try:
        gains = pd.DataFrame(rows, columns=["architecture", "model_id", "dataset_id", "n_seeds", "gain",
                                            "baseline_robust_sd", "collapsed"])
        flags = gains[["architecture", "model_id"]].drop_duplicates().assign(flagged=False)
        numpy_table(con, gains, flags, "arch-z", int(tables["arch-z"].n_replicates.iloc[0]), raw)
    finally:
        con.close()
    assert raw["interaction"] == (0.0, 0.0), "the case the rule is for: a plain percentile interval of [0, 0]"
    assert pd.isna(z.share_low) and pd.isna(z.share_high)
    assert pd.isna(z.variance_low) and pd.isna(z.variance_high)
