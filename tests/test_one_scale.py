"""One honest scale (issue 17): every gain the leaderboard shows is the mean over the model's kept cells, inside
its own interval; the pretrained model is a row of every ranking; ranks never fall back to names; the product's
ordering rule in the held-out benchmark is the one the SQL ships."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from published_fixture import SHARED, edit_table, make_folder, materialize_published

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/model-recycling")


def test_every_displayed_gain_is_the_kept_cell_mean_inside_its_interval(published_warehouse):
    con = published_warehouse
    rows = con.execute(
        """select l.architecture, l.model_id, l.is_pretrained, l.mean_gain, l.ci_low, l.ci_high, k.kept_mean, k.n_kept,
                  l.n_targets
           from leaderboard l
           left join (select architecture, model_id, avg(gain) as kept_mean, count(*) as n_kept
                      from gains where not collapsed group by all) k using (architecture, model_id)"""
    ).df()
    models = rows[~rows.is_pretrained]
    assert len(models) > 500
    assert np.allclose(models.mean_gain, models.kept_mean, atol=0.01)
    assert (models.n_targets == models.n_kept).all()
    assert ((models.ci_low <= models.mean_gain) & (models.mean_gain <= models.ci_high)).all()
    # the pretrained model: one ranked row per architecture, gain 0
    stay = rows[rows.is_pretrained]
    assert sorted(stay.architecture) == sorted(rows.architecture.unique())
    assert (stay.mean_gain == 0).all()
    columns = {c for (c,) in con.execute(
        "select column_name from information_schema.columns where table_name = 'leaderboard'").fetchall()}
    assert not any(c.startswith("posterior") for c in columns)  # the ranking score has its own name
    assert "ranking_score" in columns


def test_ranks_are_the_ranking_score_order_or_the_mean_gain_order_never_names(published_warehouse):
    con = published_warehouse
    for arch, evidence in con.execute(
            "select architecture, order_has_evidence from ranking_reliability order by 1").fetchall():
        board = con.execute(
            """select rank, model_id, ranking_score, mean_gain, tied from leaderboard
               where architecture = ? and rank is not null order by rank, mean_gain desc""", [arch]).df()
        key = board.ranking_score if evidence else board.mean_gain
        assert key.is_monotonic_decreasing, arch
        if not evidence:
            assert board.tied.all(), arch  # every row marked: the order carries no evidence


def _no_difference_folder(root, seed: int):
    """A real roberta-base folder whose 30 finetuned rows are the pretrained model's scores plus noise alone: no
    model is a better start than another."""
    folder = make_folder(root, rows=31, archs=("roberta-base",))
    rng = np.random.default_rng(seed)

    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        targets = [c for c in frame.columns if c not in ("model_name", "avg", "mnli_lp")]
        base = frame.loc[frame.index[0], targets].astype(float)
        for i in frame.index[1:]:
            values = base + rng.normal(0.0, 1.0, len(targets))
            frame.loc[i, targets] = [f"{v:.4f}" for v in values]
            frame.loc[i, "avg"] = f"{values.mean():.4f}"
        return frame

    edit_table(folder, "roberta-base", edit)
    return folder


def test_an_architecture_with_no_real_differences_never_ranks_by_name(tmp_path, monkeypatch):
    home = tmp_path / "home"
    assert materialize_published(home, _no_difference_folder(tmp_path / "results", seed=3), monkeypatch).success
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        evidence, = con.execute(
            "select order_has_evidence from ranking_reliability where architecture = 'roberta-base'").fetchone()
        board = con.execute(
            """select rank, model_id, mean_gain, tied, best_is_pretrained from leaderboard
               where architecture = 'roberta-base' and rank is not null order by rank""").df()
    assert not evidence
    assert board.mean_gain.is_monotonic_decreasing  # ranks follow the raw-scale means
    assert board.tied.all()
    assert list(board.model_id) != sorted(board.model_id)  # and not the names
    assert board["rank"].is_unique


def test_the_benchmarks_product_rule_orders_models_as_the_leaderboard(published_warehouse):
    """benchmarks/ranking_rules.product_rule on the warehouse's kept cells gives the leaderboard's order, the
    pretrained model's place included: the held-out benchmark evaluates the rule the SQL ships."""
    from benchmarks import heldout_ranking, ranking_rules

    clip = ranking_rules.dbt_var("ranking_clip")
    con = published_warehouse
    for arch in ("bert-base-uncased", "roberta-base", "t5-base"):
        data = heldout_ranking.load(con, arch)
        flags = dict(con.execute("select model_id, flagged from model_flags where architecture = ?", [arch]).fetchall())
        pool = np.array([not flags[m] for m in data["models"]])
        assert (pool == ~heldout_ranking.flagged(data["score"])).all(), arch  # the flags, recomputed in numpy
        kept = np.where(data["collapsed"], np.nan, data["gain"])[pool]
        score, evidence = ranking_rules.product_rule(kept, clip)
        with np.errstate(all="ignore"):
            mean = np.nanmean(np.vstack([kept, np.zeros(kept.shape[1])]), axis=1)
        ids = [m for m, p in zip(data["models"], pool) if p] + ["<pretrained>"]
        order = [ids[i] for i in ranking_rules.order(score, mean) if not np.isnan(score[i])]
        rank_of = dict(con.execute(
            """select case when is_pretrained then '<pretrained>' else model_id end, rank from leaderboard
               where architecture = ? and rank is not null""", [arch]).fetchall())
        assert sorted(order) == sorted(rank_of), arch
        ranks = [rank_of[m] for m in order]  # rows with equal values share a rank
        assert ranks == sorted(ranks), arch
        sql_evidence, = con.execute(
            "select order_has_evidence from ranking_reliability where architecture = ?", [arch]).fetchone()
        assert evidence == sql_evidence, arch
