"""The held-out benchmark runs the production ranking itself, and docs/ranking.md quotes its results file."""

from __future__ import annotations

import json
import sys

import duckdb
import numpy as np
import pytest

from startpoint.settings import REPO_ROOT

from published_fixture import SHARED, make_folder, materialize_published

sys.path.insert(0, str(REPO_ROOT))
from benchmarks import heldout_ranking  # noqa: E402
from benchmarks.production_sql import ModelChain  # noqa: E402

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/model-recycling")


def test_docs_quote_the_results_file():
    results = json.loads((REPO_ROOT / "benchmarks" / "results" / "heldout_ranking.json").read_text())
    docs = (REPO_ROOT / "docs" / "ranking.md").read_text()
    assert heldout_ranking.markdown(results) in docs
    assert heldout_ranking.paired_markdown(results) in docs


def test_the_product_default_clip_is_the_one_the_nested_evaluation_chose():
    import yaml

    results = json.loads((REPO_ROOT / "benchmarks" / "results" / "heldout_ranking.json").read_text())
    project = yaml.safe_load((REPO_ROOT / "sql" / "dbt_project.yml").read_text())
    assert project["vars"]["ranking_clip"] == results["default_clip"]


def test_a_replicate_holding_every_target_ranks_like_the_warehouse(tmp_path, monkeypatch):
    """The benchmark's replicate machinery (every split its own architecture key, targets renamed) gives the
    production ranking: with all targets in the selection half, its top 3 is the warehouse's."""
    home = tmp_path / "home"
    assert materialize_published(home, make_folder(tmp_path / "results", rows=40, archs=("roberta-base",)),
                                 monkeypatch).success
    sql = ModelChain(("base_model_effects",), {"ranking_clip": heldout_ranking.PLACEHOLDER}).sql
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    gains = con.execute("select model_id, dataset_id, gain, score_mean, collapsed from gains").df()
    gains_rep = gains.assign(architecture="0:0", dataset_id=gains["dataset_id"] + "#x")
    con.register("gains_rep_df", gains_rep)
    con.execute("create temp table gains_rep as select * from gains_rep_df")
    import yaml

    clip = yaml.safe_load((REPO_ROOT / "sql" / "dbt_project.yml").read_text())["vars"]["ranking_clip"]
    picks = heldout_ranking.production_picks(con, sql, clip)
    expected = con.execute("select model_id, rank from base_model_effects where rank <= 3 order by rank").df()
    assert list(picks.sort_values("rank")["model_id"]) == list(expected["model_id"])
    con.close()


def test_the_plan_never_puts_a_target_in_both_halves():
    plan = heldout_ranking.replicate_plan([f"t{i}" for i in range(12)], np.random.default_rng(0), 5, 4, 3)
    both = plan.groupby(["rep", "dataset_id"])["half"].nunique()
    assert (both == 1).all()
    assert plan[plan.b == 0]["rep"].nunique() == 5 and plan[plan.b > 0]["rep"].nunique() == 12
    assert plan.groupby("rep")["dataset_id"].nunique().min() == 9  # a jackknife replicate drops one group of 3
