"""The paper's analyses (sql/models/analyses.yml, docs/analyses.md) against independent pandas/numpy recomputations,
on a warehouse built from a small cut of the real published folder: finetuned rows with ColD-Fusion and
single-source models (some trained on a target), and probe-only rows."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from published_fixture import SHARED, materialize_published, pretrain_name

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/model-recycling")

# Data rows of each architecture's table kept in the fixture (0 = the pretrained model). roberta-base: ColD-Fusion
# at the top, then single-source models (several trained on a target), then probe-only rows from 387 on.
# t5-base: every finetuned row (0-84), the first probe-only rows, and rows around the first failed (0.0) probe at 190.
ROWS = {"roberta-base": [*range(0, 91), *range(387, 420)], "t5-base": [*range(0, 100), *range(185, 200)]}
REPO = Path(__file__).resolve().parents[1]


def _folder(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    models: set[tuple[str, str]] = set()
    for arch, rows in ROWS.items():
        lines = (SHARED / f"{arch}_table.csv").read_text().splitlines(keepends=True)
        kept = [lines[0]] + [lines[i + 1] for i in rows]
        (dest / f"{arch}_table.csv").write_text("".join(kept))
        models |= {(line.split(",", 2)[1], arch) for line in kept[1:]}
        shutil.copy(SHARED / pretrain_name(arch), dest / pretrain_name(arch))
    catalog = (SHARED / "models_tested.csv").read_text().splitlines(keepends=True)
    keep = [catalog[0]] + [line for line in catalog[1:] if tuple(line.split(",", 2)[:2]) in models]
    (dest / "models_tested.csv").write_text("".join(keep))
    return dest


def _q(db: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def _dbt(*args: str, warehouse: Path, target: Path) -> None:
    """The venv's dbt on sql/ against `warehouse`, with a private target path."""
    subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), *args, "--quiet", "--project-dir", str(REPO / "sql"),
         "--profiles-dir", str(REPO / "sql"), "--target-path", str(target)],
        env={**os.environ, "STARTPOINT_WAREHOUSE": str(warehouse)}, check=True,
    )


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """The `published` job's assets (import, warehouse load, `dbt build` of the SQL models and their tests: the
    analyses' own tests must pass on the cut too) on a small real folder."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("analyses")
    home = root / "home"
    assert materialize_published(home, _folder(root / "results"), mp).success
    yield home / "warehouse.duckdb"
    mp.undo()


def _unflagged_gains(db: Path) -> pd.DataFrame:
    return _q(db, "select g.architecture, g.model_id, g.dataset_id, g.gain from gains g "
                  "join model_flags f using (architecture, model_id) where not f.flagged")


def _t975(df: float) -> float:
    return float(stats.t.ppf(0.975, df))


# ---------------------------------------------------------------- source_target_alignment

# The aliases of docs/analyses.md, written again here: target -> id phrases (hyphen-joined tokens).
ALIASES = {
    "20_newsgroup": ["20-newsgroup", "20-newsgroups", "20newsgroup", "20newsgroups", "20news"],
    "ag_news": ["ag-news", "agnews"], "amazon_reviews_multi": ["amazon-reviews-multi", "amazon-reviews"],
    "anli": ["anli"], "boolq": ["boolq"], "cb": ["cb", "commitmentbank"], "cola": ["cola"], "copa": ["copa"],
    "dbpedia": ["dbpedia", "dbpedia14"], "esnli": ["esnli", "e-snli", "snli"],
    "financial_phrasebank": ["financial-phrasebank", "phrasebank"], "imdb": ["imdb"], "isear": ["isear"],
    "mnli": ["mnli", "multinli", "multi-nli"], "mrpc": ["mrpc"], "multirc": ["multirc"],
    "poem_sentiment": ["poem-sentiment"], "qnli": ["qnli"], "qqp": ["qqp"],
    "rotten_tomatoes": ["rotten-tomatoes", "rottentomatoes"], "rte": ["rte"], "sst2": ["sst2", "sst-2"],
    "sst_5bins": ["sst5", "sst-5"], "stsb": ["stsb", "sts-b"], "trec_coarse": ["trec"], "trec_fine": ["trec"],
    "wic": ["wic"], "wnli": ["wnli"], "wsc": ["wsc"], "yahoo_answers": ["yahoo-answers", "yahoo"],
}
TWEET_CORPUS = ["tweet-eval", "tweeteval", "twitter-eval", "cardiffnlp"]


def _aligned(model_id: str, target: str, source: str | None, tags: str | None) -> bool:
    if source == "local":
        return f"source:{target}" in json.loads(tags or "[]")
    tokens = "-" + re.sub(r"[^a-z0-9]+", "-", model_id.lower()) + "-"
    has = lambda phrase: f"-{phrase}-" in tokens  # noqa: E731
    if target.startswith("tweet_ev_"):
        return any(has(c) for c in TWEET_CORPUS) and has(target[len("tweet_ev_"):])
    return any(has(p) for p in ALIASES.get(target, []))


def _alignment(cells: pd.DataFrame, hub: pd.DataFrame) -> dict[tuple[str, bool], dict]:
    """Leave-one-out additive residuals and their cluster-robust (over models) intervals, in pandas."""
    out = {}
    meta = hub.set_index(["architecture", "model_id"])
    for arch, g in cells.groupby("architecture"):
        g = g.copy()
        ms = g.groupby("model_id")["gain"].agg(["sum", "count"])
        ts = g.groupby("dataset_id")["gain"].agg(["sum", "count"])
        model_loo = (g["model_id"].map(ms["sum"]) - g["gain"]) / (g["model_id"].map(ms["count"]) - 1)
        target_loo = (g["dataset_id"].map(ts["sum"]) - g["gain"]) / (g["dataset_id"].map(ts["count"]) - 1)
        g["residual"] = g["gain"] - model_loo - target_loo + g["gain"].mean()
        g["aligned"] = [
            _aligned(m, t, meta.loc[(arch, m), "source"], meta.loc[(arch, m), "tags"])
            for m, t in zip(g["model_id"], g["dataset_id"])
        ]
        means = g.groupby("aligned")["residual"].mean()
        z = pd.Series(0.0, index=g["model_id"].unique())
        for flag, part in g.groupby("aligned"):
            dev = (part["residual"] - means[flag]).groupby(part["model_id"]).sum()
            m = len(dev)
            se = math.sqrt((dev ** 2).sum() * m / (m - 1)) / len(part) if m > 1 else float("nan")
            half = _t975(m - 1) * se if m > 1 else float("nan")
            z = z.add((1 if flag else -1) * dev / len(part), fill_value=0.0)
            out[(arch, flag)] = {"n_cells": len(part), "n_models": m, "mean_residual": means[flag],
                                 "residual_low": means[flag] - half, "residual_high": means[flag] + half}
        if True in means.index and False in means.index:
            diff = means[True] - means[False]
            k = len(z)
            se = math.sqrt((z ** 2).sum() * k / (k - 1))
            m_al = out[(arch, True)]["n_models"]
            half = _t975(m_al - 1) * se if m_al > 1 else float("nan")
            out[(arch, True)] |= {"diff_vs_other": diff, "diff_low": diff - half, "diff_high": diff + half}
    return out


def _check_alignment(db: Path):
    got = _q(db, "select * from source_target_alignment")
    hub = _q(db, "select architecture, model_id, source, tags from hub_models")
    want = _alignment(_unflagged_gains(db), hub)
    assert {(a, bool(f)) for a, f in zip(got.architecture, got.aligned)} == set(want)
    for row in got.itertuples():
        exp = want[(row.architecture, bool(row.aligned))]
        assert row.n_cells == exp["n_cells"] and row.n_models == exp["n_models"]
        for mean, low, high in (("mean_residual", "residual_low", "residual_high"),
                                ("diff_vs_other", "diff_low", "diff_high")):
            if mean not in exp:
                assert pd.isna(getattr(row, mean)), mean
                continue
            assert getattr(row, mean) == pytest.approx(exp[mean], rel=1e-9, abs=1e-12), (row.architecture, mean)
            want_half = exp[high] - exp[mean]
            if math.isnan(want_half):  # a single model: no interval
                assert pd.isna(getattr(row, low)) and pd.isna(getattr(row, high)), (row.architecture, low)
                continue
            # the SQL's t quantile is a Cornish-Fisher expansion (error < 0.002 from df 5 on, exact below)
            assert getattr(row, high) - getattr(row, mean) == pytest.approx(want_half, rel=1.5e-3), (row.architecture, high)
            assert getattr(row, mean) - getattr(row, low) == pytest.approx(want_half, rel=1.5e-3), (row.architecture, low)
    return got


def test_alignment_matches_a_pandas_recomputation(db):
    got = _check_alignment(db)
    aligned = got[got.aligned & (got.architecture == "roberta-base")]
    assert len(aligned) == 1 and aligned.n_cells.iloc[0] >= 3  # the cut holds models trained on a target


def test_a_local_model_is_aligned_by_its_recorded_source_not_its_name(db, tmp_path):
    """A local model named after imdb but trained (tag) on rte: its rte cell is aligned, its imdb cell is not, and a
    jump on rte moves the aligned residual."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(db, copy)
    con = duckdb.connect(str(copy))
    donor = con.execute("select model_id from model_flags where architecture = 'roberta-base' and not flagged "
                        "and model_id not ilike '%fusion%' order by model_id limit 1").fetchone()[0]
    local = "local/roberta-base-imdb"
    con.execute("insert into hub_models (model_id, architecture, source, role, tags) values (?, 'roberta-base', "
                "'local', 'intermediate', ?)", [local, json.dumps(["source:rte"])])
    con.execute("create or replace table gains as select * from gains union all by name "
                "select * replace (? as model_id, gain + case when dataset_id = 'rte' then 10 else 0 end as gain) "
                "from gains where architecture = 'roberta-base' and model_id = ?", [local, donor])
    con.execute("create or replace table model_flags as select * from model_flags union all by name "
                "select * replace (? as model_id) from model_flags where architecture = 'roberta-base' "
                "and model_id = ?", [local, donor])
    con.close()
    _dbt("run", "--select", "source_target_alignment", warehouse=copy, target=tmp_path / "target")
    hub = _q(copy, "select architecture, model_id, source, tags from hub_models")
    meta = hub.set_index(["architecture", "model_id"]).loc[("roberta-base", local)]
    assert _aligned(local, "rte", meta.source, meta.tags) and not _aligned(local, "imdb", meta.source, meta.tags)
    got = _check_alignment(copy)
    before = _q(db, "select * from source_target_alignment where architecture = 'roberta-base' and aligned")
    after = got[(got.architecture == "roberta-base") & got.aligned]
    assert after.n_cells.iloc[0] == before.n_cells.iloc[0] + 1
    assert after.mean_residual.iloc[0] > before.mean_residual.iloc[0]


def test_alias_tokens_are_whole_tokens():
    assert _aligned("textattack/roberta-base-SST-2", "sst2", "published", None)
    assert _aligned("m3/m3-experiment-roberta-base-tweet-eval-irony-vanilla", "tweet_ev_irony", None, None)
    assert not _aligned("m3/m3-experiment-roberta-base-tweet-eval-irony-vanilla", "tweet_ev_emotion", None, None)
    assert not _aligned("someone/roberta-base-rtex", "rte", None, None)
    assert not _aligned("someone/corte-model", "rte", None, None)


# ---------------------------------------------------------------- ranking_consistency

def _kendalls_w(matrix: pd.DataFrame) -> float:
    """Kendall's W with tie correction; matrix rows = models, columns = targets (raters)."""
    ranks = matrix.rank(axis=0, method="average")
    m, n = matrix.shape[1], matrix.shape[0]
    s = ((ranks.sum(axis=1) - m * (n + 1) / 2) ** 2).sum()
    ties = sum(((c ** 3) - c).sum() for c in (matrix[col].value_counts().to_numpy() for col in matrix))
    return 12 * s / (m ** 2 * (n ** 3 - n) - m * ties)


def test_consistency_matches_a_numpy_recomputation(db):
    got = _q(db, "select * from ranking_consistency").set_index("architecture")
    cells = _unflagged_gains(db)
    assert set(got.index) == set(cells.architecture)
    for arch, g in cells.groupby("architecture"):
        matrix = g.pivot(index="model_id", columns="dataset_id", values="gain").dropna()  # complete models only
        row = got.loc[arch]
        assert (row.n_models, row.n_targets) == matrix.shape
        assert row.kendalls_w == pytest.approx(_kendalls_w(matrix), rel=1e-9)
        targets = list(matrix.columns)
        rhos = []
        for k in range(int(row.n_splits)):
            order = sorted(targets, key=lambda t: hashlib.md5(f"{k}:{t}".encode()).hexdigest())
            a, b = order[: len(order) // 2], order[len(order) // 2:]
            rhos.append(stats.spearmanr(matrix[a].mean(axis=1), matrix[b].mean(axis=1)).statistic)
        assert row.n_splits == 100
        assert row.half_spearman == pytest.approx(np.mean(rhos), rel=1e-9)
        assert row.half_spearman_low == pytest.approx(np.percentile(rhos, 2.5), rel=1e-9)
        assert row.half_spearman_high == pytest.approx(np.percentile(rhos, 97.5), rel=1e-9)


def test_kendalls_w_reference_values():
    """The recomputation itself: perfect agreement is 1, a reversed half cancels out, ties are corrected."""
    same = pd.DataFrame({"t1": [1, 2, 3, 4], "t2": [10, 20, 30, 40]})
    assert _kendalls_w(same) == pytest.approx(1.0)
    opposite = pd.DataFrame({"t1": [1, 2, 3, 4], "t2": [4, 3, 2, 1]})
    assert _kendalls_w(opposite) == pytest.approx(0.0)
    tied = pd.DataFrame({"t1": [1, 1, 2, 2], "t2": [1, 1, 2, 2]})
    assert _kendalls_w(tied) == pytest.approx(1.0)  # without the tie correction this would be 0.8


# ---------------------------------------------------------------- fused_vs_single

def test_fused_vs_single_matches_a_pandas_recomputation(db):
    got = _q(db, "select * from fused_vs_single").set_index("architecture")
    eff = _q(db, "select e.architecture, e.model_id, e.mean_gain, e.rank from base_model_effects e "
                 "where not e.flagged and not e.is_pretrained")
    eff["fused"] = eff.model_id.str.lower().str.contains("cold-fusion")
    assert got.loc["roberta-base", "n_fused"] >= 5 and got.loc["t5-base", "n_fused"] == 0
    for arch, g in eff.groupby("architecture"):
        row = got.loc[arch]
        f, s = g[g.fused], g[~g.fused]
        assert (row.n_fused, row.n_single) == (len(f), len(s))
        assert row.n_fused_top10 == int((f["rank"] <= 10).sum())
        assert row.single_mean_gain == pytest.approx(s.mean_gain.mean(), rel=1e-9)
        if len(f) == 0:
            assert pd.isna(row.fused_mean_gain) and pd.isna(row.diff_mean_gain) and row.n_fused_top10 == 0
            continue
        assert row.fused_mean_gain == pytest.approx(f.mean_gain.mean(), rel=1e-9)
        half = _t975(len(f) - 1) * f.mean_gain.std() / math.sqrt(len(f))
        assert row.fused_low == pytest.approx(f.mean_gain.mean() - half, rel=2e-3)
        welch = stats.ttest_ind(f["mean_gain"], s["mean_gain"], equal_var=False)
        ci = welch.confidence_interval(0.95)
        assert row["diff_mean_gain"] == pytest.approx(f["mean_gain"].mean() - s["mean_gain"].mean(), rel=1e-9)
        # the SQL takes the t quantile at the floor of the Welch df: a little wider, never narrower
        assert row["diff_low"] <= ci.low + 1e-9
        assert row["diff_low"] == pytest.approx(ci.low, abs=0.02 * (ci.high - ci.low))


# ---------------------------------------------------------------- probe_range_restriction

def test_probe_range_restriction_matches_a_thorndike_recomputation(db):
    got = _q(db, "select * from probe_range_restriction").set_index(["architecture", "method", "proxy_dataset"])
    probes = _q(db, "select architecture, model_id, method, proxy_dataset, score from probe_scores")
    flagged = _q(db, "select architecture, model_id from model_flags where flagged")
    eff = _q(db, "select architecture, model_id, mean_gain from base_model_effects where not flagged")
    probes = probes.merge(flagged.assign(fl=True), how="left").query("fl.isna() and score > 0")
    probes = probes.merge(eff, how="left")
    for key, g in probes.groupby(["architecture", "method", "proxy_dataset"]):
        ft = g.dropna(subset=["mean_gain"])
        row = got.loc[key]
        assert (row.n_models, row.n_probed) == (len(ft), len(g))
        sd_ft, sd_all = ft.score.std(), g.score.std()
        r = np.corrcoef(ft.score, ft.mean_gain)[0, 1]
        u = sd_all / sd_ft
        assert row.sd_finetuned == pytest.approx(sd_ft, rel=1e-9)
        assert row.sd_all == pytest.approx(sd_all, rel=1e-9)
        assert row.pearson == pytest.approx(r, rel=1e-9)
        assert row.pearson_corrected == pytest.approx(r * u / math.sqrt(1 - r * r + r * r * u * u), rel=1e-9)
        assert row.n_skipped_above_min == int((g.mean_gain.isna() & (g.score >= ft.score.min())).sum())


def test_probe_only_models_are_in_the_pool(db):
    """The published tables' probe-only rows (an mnli_lp, no target score) reach probe_scores, so the pool is larger
    than the finetuned set; failed probes (0.0) are left out of it."""
    got = _q(db, "select * from probe_range_restriction").set_index("architecture")
    for arch, rows in ROWS.items():
        table = pd.read_csv(SHARED / f"{arch}_table.csv", index_col=0).reset_index(drop=True).iloc[rows]
        targets = table.columns[3:]
        probe_only = table[table[targets].isna().all(axis=1) & table.mnli_lp.notna()]
        assert len(probe_only) > 0
        assert got.loc[arch, "n_probed"] - got.loc[arch, "n_models"] == int((probe_only.mnli_lp > 0).sum())
    assert (_q(db, "select count(*) as n from probe_scores where architecture = 't5-base' and score = 0").n[0] > 0)
