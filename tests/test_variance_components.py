"""`variance_decomposition`: the SQL variance components and their bootstrap intervals against an independent numpy
computation, on a warehouse built from a small real published folder; and a made-up block whose interaction
estimate is negative, which must be reported as is."""

from __future__ import annotations

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


def components(x: np.ndarray, noise_var: np.ndarray) -> dict[str, float]:
    """Two-way random ANOVA without replication on an M x T block, with the centered textbook sums of squares;
    noise = the mean of the cells' seed-noise variances (NaN where unknown)."""
    m, t = x.shape
    grand = x.mean()
    rows, cols = x.mean(axis=1), x.mean(axis=0)
    ms_model = t * ((rows - grand) ** 2).sum() / (m - 1)
    ms_target = m * ((cols - grand) ** 2).sum() / (t - 1)
    ms_resid = ((x - rows[:, None] - cols[None, :] + grand) ** 2).sum() / ((m - 1) * (t - 1))
    noise = np.nanmean(noise_var)
    return {"base": (ms_model - ms_resid) / t, "target": (ms_target - ms_resid) / m,
            "interaction": ms_resid - noise, "noise": noise}


def shares(var: dict[str, float]) -> dict[str, float]:
    total = sum(max(v, 0.0) for v in var.values())
    return {k: max(v, 0.0) / total for k, v in var.items()}


def block(gains: pd.DataFrame, flags: pd.DataFrame, arch: str) -> tuple[np.ndarray, np.ndarray, list, list]:
    """The complete block of unflagged models (rows sorted by model_id, columns by dataset_id)."""
    keep = set(flags[(flags.architecture == arch) & ~flags.flagged.astype(bool)].model_id)
    g = gains[(gains.architecture == arch) & gains.model_id.isin(keep)].copy()
    g["noise_var"] = g.baseline_robust_sd ** 2 / g.n_seeds
    x = g.pivot(index="model_id", columns="dataset_id", values="gain").dropna().sort_index().sort_index(axis=1)
    v = g.pivot(index="model_id", columns="dataset_id", values="noise_var").loc[x.index, x.columns]
    return x.to_numpy(), v.to_numpy(), list(x.index), list(x.columns)


def draws(con: duckdb.DuckDBPyConnection, arch: str, axis: str, n: int, replicates: int) -> np.ndarray:
    """The documented sampling scheme: position i of replicate b >= 1 takes element hash(b, arch, axis, i) mod n."""
    rows = con.execute(
        "select b, i, hash(b, ?, ?, i) % ?::ubigint from range(1, ? + 1) r(b), range(0, ?) p(i) order by b, i",
        [arch, axis, n, replicates, n]).fetchall()
    return np.array([r[2] for r in rows], dtype=np.int64).reshape(replicates, n)


def numpy_table(con: duckdb.DuckDBPyConnection, gains, flags, arch: str, replicates: int) -> pd.DataFrame:
    x, v, models, targets = block(gains, flags, arch)
    m, t = x.shape
    point = components(x, v)
    point_share = shares(point)
    mi, tj = draws(con, arch, "model", m, replicates), draws(con, arch, "target", t, replicates)
    boot = [components(x[np.ix_(mi[b], tj[b])], v[np.ix_(mi[b], tj[b])]) for b in range(replicates)]
    boot_share = [shares(c) for c in boot]
    out = []
    for c in COMPONENTS:
        var = np.array([r[c] for r in boot])
        sh = np.array([r[c] for r in boot_share])
        out.append({"component": c, "variance": point[c],
                    "variance_low": np.quantile(var, 0.025), "variance_high": np.quantile(var, 0.975),
                    "share": point_share[c], "share_low": np.quantile(sh, 0.025), "share_high": np.quantile(sh, 0.975),
                    "n_models": m, "n_targets": t})
    return pd.DataFrame(out).set_index("component")


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
            assert set(mine.n_models) == {theirs.n_models.iloc[0]} and set(mine.n_targets) == {theirs.n_targets.iloc[0]}
            for col in COLUMNS:
                np.testing.assert_allclose(mine.loc[list(COMPONENTS), col], theirs.loc[list(COMPONENTS), col],
                                           rtol=0, atol=1e-6, err_msg=f"{arch} {col}")
            assert (mine.negative == (mine.variance < 0)).all()
            assert mine.share.sum() == pytest.approx(1.0, abs=1e-9)
            # the percentile intervals hold the point estimates
            assert (mine.variance_low <= mine.variance + 1e-9).all() and (mine.variance <= mine.variance_high + 1e-9).all()
            assert (mine.share_low <= mine.share + 1e-9).all() and (mine.share <= mine.share_high + 1e-9).all()
    finally:
        con.close()


def _run_model(warehouse: Path, tmp: Path) -> None:
    env = {**os.environ, "STARTPOINT_WAREHOUSE": str(warehouse)}
    subprocess.run(
        [_dbt_executable(), "run", "--quiet", "--select", "variance_decomposition",
         "--project-dir", str(SQL_DIR), "--profiles-dir", str(SQL_DIR),
         "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")],
        env=env, check=True)


def test_a_negative_interaction_is_reported_not_capped(tmp_path):
    """Additive gains (base + target, no interaction) with a seed SD far above the residual spread: the interaction
    estimate is negative; it is reported as is, flagged, and counts 0 in the shares. A flagged model and a model
    missing a target stay out of the block."""
    rng = np.random.default_rng(0)
    m, t = 30, 8
    base, target = rng.normal(0, 2, m), rng.normal(0, 3, t)
    rows = [("arch-x", f"m{i:02d}", f"d{j}", 1, float(base[i] + target[j] + rng.normal(0, 0.1)), 1.0)
            for i in range(m) for j in range(t)]
    rows += [("arch-x", "flagged", f"d{j}", 1, 100.0 * j, 1.0) for j in range(t)]
    rows += [("arch-x", "partial", f"d{j}", 1, 50.0, 1.0) for j in range(t - 1)]
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table gains(architecture varchar, model_id varchar, dataset_id varchar, n_seeds bigint, "
                "gain double, baseline_robust_sd double)")
    con.executemany("insert into gains values (?, ?, ?, ?, ?, ?)", rows)
    con.execute("create table model_flags as select distinct architecture, model_id, model_id = 'flagged' as flagged "
                "from gains")
    con.close()
    _run_model(db, tmp_path)
    con = duckdb.connect(str(db), read_only=True)
    try:
        vd = con.execute("select * from variance_decomposition").df().set_index("component")
        gains = con.execute("select * from gains").df()
        flags = con.execute("select * from model_flags").df()
        theirs = numpy_table(con, gains, flags, "arch-x", int(vd.n_replicates.iloc[0]))
    finally:
        con.close()
    assert (vd.n_models == m).all() and (vd.n_targets == t).all()
    assert vd.loc["noise", "variance"] == pytest.approx(1.0)
    assert vd.loc["interaction", "variance"] == pytest.approx(0.01 - 1.0, abs=0.01)
    assert vd.loc["interaction", "negative"] and not vd.drop("interaction").negative.any()
    assert vd.loc["interaction", "share"] == 0
    assert vd.share.sum() == pytest.approx(1.0)
    for col in COLUMNS:
        np.testing.assert_allclose(vd.loc[list(COMPONENTS), col], theirs.loc[list(COMPONENTS), col], rtol=0, atol=1e-6)
