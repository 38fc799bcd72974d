"""The published-results import and the SQL models built on it, on real data cut from ../shared."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from startpoint import lake
from startpoint.published.importer import import_folder
from startpoint.published.reader import PublishedFormatError, read_folder
from startpoint.warehouse.load import load_tables

from published_fixture import SHARED, make_folder, materialize_published

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/model-recycling")

TABLES = ["hub_models", "datasets", "finetune_runs", "probe_scores", "rejected_rows", "gains", "model_flags",
          "base_model_effects", "target_effects", "variance_decomposition", "proxy_validation", "leaderboard"]


def _table(db: Path, name: str) -> pd.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(f'select * from "{name}"').df()
    finally:
        con.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The published job materialized twice on a small real folder: (home, folder, tables after each run)."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("published")
    folder = make_folder(root / "results")
    home = root / "home"
    first = materialize_published(home, folder, mp)
    assert first.success
    snapshot = {t: _table(home / "warehouse.duckdb", t) for t in TABLES}
    second = materialize_published(home, folder, mp)
    assert second.success
    yield home, folder, snapshot, first
    mp.undo()


def test_counts_add_up_on_the_whole_shared_folder():
    imported = read_folder(SHARED)
    assert set(imported.architectures) == {"roberta-base", "bert-base-uncased", "t5-base"}
    for arch in imported.architectures.values():
        for counts in arch.counts:
            counts.check()
        # 20 seeds x 36 targets per pretrained model, less the rows the file leaves empty (rejected with reason)
        seeds = [r for r in arch.finetune_runs if r["model_id"] == arch.architecture]
        pretrain = next(c for c in arch.counts if c.file.endswith("_pretrain.csv"))
        assert len(seeds) == pretrain.rows_loaded == 720 - pretrain.rows_rejected
        table = next(c for c in arch.counts if c.file.endswith("_table.csv"))
        assert len(arch.finetune_runs) - len(seeds) + len(arch.probe_scores) == table.cells_loaded
    imported.catalog_counts.check()
    # The pretrained row appears a second time in two tables: the duplicate is rejected, naming the first line.
    dup = [r for a in imported.architectures.values() for r in a.rejected_rows if "duplicate model row" in r["reason"]]
    assert {(r["file"], r["value"]) for r in dup} == {
        ("roberta-base_table.csv", "roberta-base"), ("bert-base-uncased_table.csv", "bert-base-uncased")}


def test_gains_equal_an_independent_recomputation(built):
    home, folder, _, _ = built
    gains = _table(home / "warehouse.duckdb", "gains")
    for arch in ("roberta-base", "t5-base"):
        table = pd.read_csv(folder / f"{arch}_table.csv", index_col=0)
        seeds = pd.read_csv(folder / f"models_results_{arch.replace('-', '_')}_pretrain.csv", sep="\t", index_col=0)
        seeds["score"] = seeds["accuracy"].fillna(seeds["spearmanr"]) * 100
        seeds = seeds.dropna(subset=["score"])

        def distance_floor(s: pd.Series) -> float:
            med = s.median()
            return med - max(10.0, 4 * 1.4826 * (s - med).abs().median())

        def robust_mean(s: pd.Series) -> float:
            """Mean of the seeds that did not collapse (docs/data_quality.md): below median - max(10, 4 * 1.4826 *
            MAD), or, where a gap of >= 5 points and >= 3 pooled SDs splits the sorted seeds into two clusters of
            >= 2, below the healthy upper cluster's own floor or within 0.5 of the lower cluster's top."""
            x = s.sort_values().reset_index(drop=True)
            floor = distance_floor(x)
            top = None
            for k in range(2, len(x) - 1):
                lo, hi = x[:k][x[:k] >= floor], x[k:][x[k:] >= floor]
                df = max(len(lo) - 1, 0) + max(len(hi) - 1, 0)
                sd = (((lo - lo.mean()) ** 2).sum() + ((hi - hi.mean()) ** 2).sum()) ** 0.5 / df ** 0.5 if df else 0.0
                if x[k] - x[k - 1] >= max(5.0, 3 * sd):
                    top = k
            if top is not None:
                floor = max(distance_floor(x[top:]), x[top - 1] + 0.5)
            return x[x >= floor].mean()

        baseline = seeds.groupby("dataset name")["score"].apply(robust_mean)
        plain = seeds.groupby("dataset name")["score"].mean()
        arch_gains = gains[gains.architecture == arch]
        assert (arch_gains["dataset_id"].map(plain) - arch_gains["baseline_mean"]).abs().max() < 1e-9
        long = table.iloc[1:].drop(columns=["avg", "mnli_lp"]).drop_duplicates("model_name")
        long = long[long.model_name != arch].melt("model_name", var_name="dataset_id", value_name="score").dropna()
        long["gain"] = long["score"] - long["dataset_id"].map(baseline)
        mine = gains[gains.architecture == arch].set_index(["model_id", "dataset_id"])["gain"]
        theirs = long.set_index(["model_name", "dataset_id"])["gain"]
        assert len(mine) == len(theirs) > 0
        diff = (mine.sort_index() - theirs.rename_axis(["model_id", "dataset_id"]).sort_index()).abs()
        assert diff.max() < 0.01


def test_pretrained_average_equals_row_zero(built):
    home, folder, _, _ = built
    board = _table(home / "warehouse.duckdb", "leaderboard")
    for arch in ("roberta-base", "t5-base"):
        row0 = pd.read_csv(folder / f"{arch}_table.csv", index_col=0).iloc[0]
        got = board.loc[board.architecture == arch, "pretrained_avg"].unique()
        assert len(got) == 1 and abs(got[0] - row0["avg"]) < 0.01


def test_materializing_twice_gives_identical_tables(built):
    home, _, snapshot, _ = built
    for name, before in snapshot.items():
        after = _table(home / "warehouse.duckdb", name)
        pd.testing.assert_frame_equal(before, after, check_exact=False, rtol=1e-12, obj=name)


def test_leaderboard_ranks_unflagged_models_and_keeps_flagged_ones_with_a_reason(built):
    home, _, _, result = built
    board = _table(home / "warehouse.duckdb", "leaderboard")
    ranked = board[board["rank"].notna()]
    assert not ranked.flagged.any()
    flagged = board[board.flagged]
    assert len(flagged) > 0 and flagged["rank"].isna().all() and flagged.flag_reason.notna().all()
    for arch, group in ranked.groupby("architecture"):
        assert sorted(group["rank"]) == list(range(1, len(group) + 1))
    # metadata: row counts and a markdown preview of the leaderboard
    mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    lb = mats["leaderboard"].materialization.metadata
    assert "preview" in lb and "roberta-base" in lb["preview"].value
    assert "preview" in mats["variance_decomposition"].materialization.metadata
    assert mats["finetune_runs_table"].materialization.metadata["dagster/row_count"].value > 0


def test_variance_decomposition_sums_to_one(built):
    home, _, _, _ = built
    vd = _table(home / "warehouse.duckdb", "variance_decomposition")
    for arch, group in vd.groupby("architecture"):
        assert set(group.component) == {"base", "target", "interaction", "noise"}
        assert math.isclose(group.share.sum(), 1.0, abs_tol=1e-9)
        assert group.share.between(0, 1).all() and (group.negative == (group.variance < 0)).all()
        # the bootstrap intervals hold the point estimates
        assert (group.variance_low <= group.variance + 1e-9).all() and (group.variance <= group.variance_high + 1e-9).all()
        assert (group.share_low <= group.share + 1e-9).all() and (group.share <= group.share_high + 1e-9).all()
        assert (group.n_replicates >= 200).all()


def test_another_architecture_imports_with_no_code_change(tmp_path):
    """A folder holding a different architecture (here a renamed copy) is read by the same code."""
    folder = make_folder(tmp_path / "results", rows=10, archs=("t5-base",))
    text = (folder / "t5-base_table.csv").read_text().replace(",t5-base,", ",google/t5-small-ish,", 1)
    (folder / "google_t5-small-ish_table.csv").write_text(text)
    shutil.copy(folder / "models_results_t5_base_pretrain.csv", folder / "models_results_google_t5_small_ish_pretrain.csv")
    imported = read_folder(folder)
    assert set(imported.architectures) == {"t5-base", "google/t5-small-ish"}
    other = imported.architectures["google/t5-small-ish"]
    assert {r["architecture"] for r in other.finetune_runs} == {"google/t5-small-ish"}


def _write_table(folder: Path, edit) -> None:
    path = folder / "t5-base_table.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(edit(lines)))


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda f: (f / "models_results_t5_base_pretrain.csv").unlink(), r"models_results_t5_base_pretrain.csv: file not found"),
        (lambda f: (f / "t5-base_table.csv").write_text(""), r"t5-base_table.csv: file is empty"),
        (lambda f: (f / "t5-base_table.csv").write_text('{"model_name": "x"}\n'), r"t5-base_table.csv, line 1: expected a header"),
        (lambda f: _write_table(f, lambda ls: [ls[0].replace(",cola,", ",colaa,"), *ls[1:]]),
         r"models_results_t5_base_pretrain.csv: target 'colaa' \(a column of t5-base_table.csv\) has no seed rows in "
         r"models_results_t5_base_pretrain.csv, so its metric is unknown; add its pretrained seeds"),
        (lambda f: _write_table(f, lambda ls: [ls[0].replace(",mnli_lp,", ",probe,"), *ls[1:]]), r"line 1: expected a header"),
        (lambda f: (f / "t5-base_table.csv").write_bytes(b",model_name,avg,mnli_lp\n0,t5\xff,1,\n"), r"line 2: not UTF-8"),
    ],
)
def test_unusable_files_raise_a_clear_error_and_write_nothing(tmp_path, edit, expected):
    folder = make_folder(tmp_path / "results", rows=5, archs=("t5-base",))
    edit(folder)
    lake_url = str(tmp_path / "lake")
    with pytest.raises(PublishedFormatError, match=expected):
        import_folder(folder, lake_url)
    assert lake.list_files(lake_url, "finetune_runs") == []


def test_a_missing_target_column_is_no_longer_refused(tmp_path):
    """A table without `wsc` imports: no single-seed run for it, while its pretrain seeds stay runs and a dataset."""
    folder = make_folder(tmp_path / "results", rows=5, archs=("t5-base",))
    frame = pd.read_csv(folder / "t5-base_table.csv", index_col=0).drop(columns=["wsc"])
    frame.to_csv(folder / "t5-base_table.csv")
    imported = read_folder(folder)
    arch = imported.architectures["t5-base"]
    for counts in arch.counts:
        counts.check()
    assert "wsc" not in arch.table_targets and len(arch.table_targets) == 35
    wsc = [r for r in arch.finetune_runs if r["dataset_id"] == "wsc"]
    assert wsc and all(r["model_id"] == "t5-base" for r in wsc)
    assert "wsc" in {d["dataset_id"] for d in imported.datasets}


def test_bad_cells_and_rows_are_rejected_with_file_line_column_and_a_rerun_after_fixing_leaves_no_duplicates(tmp_path):
    folder = make_folder(tmp_path / "results", rows=8, archs=("t5-base",))
    clean = (folder / "t5-base_table.csv").read_text()
    lines = clean.splitlines(keepends=True)
    cells = lines[3].split(",")
    cells[5] = "n/a"  # ag_news, the second target column, on line 4
    bad = lines[:3] + [",".join(cells)] + lines[4:6] + [lines[4]] + lines[6:]  # line 7 repeats line 5's model
    (folder / "t5-base_table.csv").write_text("".join(bad))
    lake_url, db = str(tmp_path / "lake"), tmp_path / "warehouse.duckdb"
    imported = import_folder(folder, lake_url)
    rejected = imported.architectures["t5-base"].rejected_rows
    assert {"file": "t5-base_table.csv", "line": 4, "column": "ag_news", "value": "n/a",
            "reason": "not a number", "origin": "published"} in rejected
    dup = [r for r in rejected if r["line"] == 7]
    assert len(dup) == 1 and "first at line 5" in dup[0]["reason"]
    load_tables(lake_url, db)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from rejected_rows where file = 't5-base_table.csv'").fetchone()[0] == 2
    # fix the input and rerun: the rejected entries go, and no run is duplicated
    (folder / "t5-base_table.csv").write_text(clean)
    import_folder(folder, lake_url)
    load_tables(lake_url, db)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from rejected_rows where file = 't5-base_table.csv'").fetchone()[0] == 0
        n, distinct = con.execute("select count(*), count(distinct run_id) from finetune_runs").fetchone()
        assert n == distinct
        per_cell = con.execute(
            "select max(c) from (select count(*) c from finetune_runs where seed is null "
            "group by model_id, dataset_id)").fetchone()[0]
        assert per_cell == 1


def test_no_published_folder_skips_the_import(tmp_path, monkeypatch):
    import dagster as dg

    from assets.published import published_results
    from assets.resources import LakeResource

    monkeypatch.setenv("STARTPOINT_PUBLISHED_RESULTS", "")
    result = dg.materialize([published_results], resources={"lake": LakeResource(url=str(tmp_path / "lake"))})
    assert result.success
    assert lake.list_files(str(tmp_path / "lake"), "finetune_runs") == []
