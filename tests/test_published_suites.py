"""The published-results import takes its targets from the table: any subset of the paper's 36 and targets of the
user's own suite, whose metric comes from the pretrain seeds. On real data cut from ../shared."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from startpoint import lake
from startpoint.published.importer import import_folder
from startpoint.published.reader import PublishedFormatError, read_folder
from startpoint.published.targets import TARGETS
from startpoint.warehouse.load import load_tables

from published_fixture import (
    SHARED,
    edit_pretrain,
    edit_table,
    make_folder,
    materialize_published,
    pretrain_name,
)

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/model-recycling")

HEAD = ["model_name", "avg", "mnli_lp"]


def _targets(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in HEAD]


def _keep_every_second(start: int):
    """An edit that keeps every second target column of a table, from the `start`-th."""
    return lambda frame: frame[HEAD + _targets(frame)[start::2]]


def _rename_target(old: str, new: str):
    """Edits renaming a target in a table (a column) and in a pretrain file (the `dataset name` cells)."""

    def table(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.rename(columns={old: new})

    def pretrain(frame: pd.DataFrame) -> pd.DataFrame:
        frame["dataset name"] = frame["dataset name"].replace({old: new})
        return frame

    return table, pretrain


def _table_runs(imported, arch: str) -> pd.DataFrame:
    """The single-seed runs read from an architecture's table (not the pretrained seeds), sorted."""
    runs = pd.DataFrame(imported.architectures[arch].finetune_runs)
    runs = runs[runs.model_id != arch]
    return runs.sort_values(["model_id", "dataset_id"]).reset_index(drop=True)


def _counts_hold(imported) -> None:
    for arch in imported.architectures.values():
        for counts in arch.counts:
            counts.check()
    if imported.catalog_counts:
        imported.catalog_counts.check()


def _gains(home: Path) -> pd.DataFrame:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        frame = con.execute("select architecture, model_id, dataset_id, gain from gains").df()
    return frame.sort_values(["architecture", "model_id", "dataset_id"]).reset_index(drop=True)


def test_half_the_targets_give_the_same_runs_and_gains_as_the_full_table(tmp_path, monkeypatch):
    """roberta-base keeps the even targets, t5-base the odd ones: both import in one folder, and every kept cell
    gets the run and the gain it gets from the full tables."""
    full = make_folder(tmp_path / "full", rows=30)
    half = make_folder(tmp_path / "half", rows=30)
    edit_table(half, "roberta-base", _keep_every_second(0))
    edit_table(half, "t5-base", _keep_every_second(1))
    kept = {"roberta-base": set(TARGETS[0::2]), "t5-base": set(TARGETS[1::2])}

    imported_full, imported_half = read_folder(full), read_folder(half)
    _counts_hold(imported_half)
    for arch, targets in kept.items():
        assert set(imported_half.architectures[arch].table_targets) == targets
        mine = _table_runs(imported_half, arch)
        theirs = _table_runs(imported_full, arch)
        theirs = theirs[theirs.dataset_id.isin(targets)].reset_index(drop=True)
        assert len(mine) > 0 and set(mine.dataset_id) <= targets
        pd.testing.assert_frame_equal(mine, theirs)
        # the pretrain file is untouched: every seed of all 36 targets is still a run
        seeds = [r for r in imported_half.architectures[arch].finetune_runs if r["model_id"] == arch]
        assert {r["dataset_id"] for r in seeds} == set(TARGETS)
    assert {d["dataset_id"] for d in imported_half.datasets} == set(TARGETS)

    assert materialize_published(tmp_path / "home_full", full, monkeypatch).success
    assert materialize_published(tmp_path / "home_half", half, monkeypatch).success
    gains_full, gains_half = _gains(tmp_path / "home_full"), _gains(tmp_path / "home_half")
    keep = gains_full.apply(lambda r: r.dataset_id in kept[r.architecture], axis=1)
    expected = gains_full[keep].reset_index(drop=True)
    assert len(gains_half) > 0
    pd.testing.assert_frame_equal(gains_half, expected, check_exact=False, rtol=1e-12)


@pytest.mark.parametrize("old, new, metric", [("cola", "my_cola", "accuracy"), ("stsb", "my_sts", "spearman")])
def test_an_unknown_target_takes_its_metric_from_its_seeds(tmp_path, old, new, metric):
    folder = make_folder(tmp_path / "results", rows=10, archs=("t5-base",))
    before = read_folder(folder).architectures["t5-base"]
    table, pretrain = _rename_target(old, new)
    edit_table(folder, "t5-base", table)
    edit_pretrain(folder, "t5-base", pretrain)

    lake_url, db = str(tmp_path / "lake"), tmp_path / "warehouse.duckdb"
    imported = import_folder(folder, lake_url)
    _counts_hold(imported)
    after = imported.architectures["t5-base"]
    assert after.metrics[new] == metric and old not in after.metrics
    renamed = [r for r in after.finetune_runs if r["dataset_id"] == new]
    original = [r for r in before.finetune_runs if r["dataset_id"] == old]
    assert len(renamed) == len(original) > 20  # 20 seeds (less rejected ones) and the table's cells
    assert {r["metric"] for r in renamed} == {metric}
    assert sorted(r["score"] for r in renamed) == sorted(r["score"] for r in original)
    assert len(after.rejected_rows) == len(before.rejected_rows)
    # the datasets table stays valid: the unknown target has its metric and no task group
    load_tables(lake_url, db)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("select dataset_id, metric, task_group from datasets where dataset_id in (?, ?)",
                           [old, new]).fetchall()
    assert rows == [(new, metric, None)]


def test_an_unknown_target_with_no_seeds_is_named_with_the_fix_and_nothing_is_written(tmp_path):
    folder = make_folder(tmp_path / "results", rows=10)
    edit_table(folder, "t5-base", lambda f: f.rename(columns={"cola": "my_cola", "rte": "my_rte"}))
    lake_url = str(tmp_path / "lake")
    with pytest.raises(PublishedFormatError) as err:
        import_folder(folder, lake_url)
    message = str(err.value)
    assert message.startswith(str(folder / pretrain_name("t5-base")) + ": ")
    for target in ("my_cola", "my_rte"):
        assert (f"target '{target}' (a column of t5-base_table.csv) has no seed rows in "
                f"{pretrain_name('t5-base')}, so its metric is unknown; add its pretrained seeds") in message
    for table in ("finetune_runs", "datasets", "hub_models", "rejected_rows"):
        assert lake.list_files(lake_url, table) == []


def test_an_unknown_target_whose_seeds_do_not_say_is_named(tmp_path):
    folder = make_folder(tmp_path / "results", rows=5, archs=("t5-base",))
    table, pretrain = _rename_target("cola", "my_cola")
    edit_table(folder, "t5-base", table)

    def both(frame: pd.DataFrame) -> pd.DataFrame:
        frame = pretrain(frame)
        frame.loc[frame["dataset name"] == "my_cola", "spearmanr"] = "0.5"
        return frame

    edit_pretrain(folder, "t5-base", both)
    with pytest.raises(PublishedFormatError, match=r"target 'my_cola' .* each carry both accuracy and spearmanr or "
                       r"neither, so its metric is unknown; fill exactly one of the two"):
        read_folder(folder)


def test_seeds_of_a_target_not_in_the_table_are_runs_and_an_unknown_one_still_needs_a_metric(tmp_path):
    folder = make_folder(tmp_path / "results", rows=5, archs=("t5-base",))
    _, pretrain = _rename_target("stsb", "extra_sts")
    edit_pretrain(folder, "t5-base", pretrain)  # the table keeps its stsb column, which now has no seeds
    imported = read_folder(folder)
    _counts_hold(imported)
    arch = imported.architectures["t5-base"]
    assert arch.metrics["extra_sts"] == "spearman" and "extra_sts" not in arch.table_targets
    assert {r["metric"] for r in arch.finetune_runs if r["dataset_id"] == "extra_sts"} == {"spearman"}
    datasets = {d["dataset_id"]: d for d in imported.datasets}
    assert datasets["extra_sts"]["task_group"] is None and datasets["stsb"]["metric"] == "spearman"

    def unscored(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[frame["dataset name"] == "extra_sts", "spearmanr"] = ""
        return frame

    edit_pretrain(folder, "t5-base", unscored)
    with pytest.raises(PublishedFormatError, match=r"target 'extra_sts' has seed rows in "
                       r"models_results_t5_base_pretrain.csv \(first at line \d+\) that each carry both"):
        read_folder(folder)


def test_architectures_with_different_targets_import_together_and_must_agree_on_metrics(tmp_path):
    folder = make_folder(tmp_path / "results", rows=10)
    edit_table(folder, "roberta-base", lambda f: f[HEAD + ["cola", "sst2", "stsb"]])
    table, pretrain = _rename_target("cola", "mine")
    edit_table(folder, "t5-base", lambda f: table(f)[HEAD + ["mine", "imdb"]])
    edit_pretrain(folder, "t5-base", pretrain)
    lake_url = str(tmp_path / "lake")
    imported = import_folder(folder, lake_url)
    _counts_hold(imported)
    for arch, targets in {"roberta-base": {"cola", "sst2", "stsb"}, "t5-base": {"mine", "imdb"}}.items():
        assert set(_table_runs(imported, arch).dataset_id) == targets
    datasets = {d["dataset_id"]: (d["metric"], d["task_group"]) for d in imported.datasets}
    assert datasets["mine"] == ("accuracy", None) and datasets["cola"] == ("accuracy", "other")
    assert len(datasets) == 37  # the 36 of the seeds, `cola` in roberta-base's and `mine` in t5-base's
    assert len(lake.list_files(lake_url, "finetune_runs")) == 2

    # the same unknown target scored by accuracy for one architecture and by Spearman for the other is refused
    _, to_mine = _rename_target("stsb", "mine")
    edit_table(folder, "roberta-base", lambda f: f.rename(columns={"stsb": "mine"}))
    edit_pretrain(folder, "roberta-base", to_mine)
    with pytest.raises(PublishedFormatError, match=r"target 'mine' is scored by accuracy here but by spearman in "
                       r"models_results_roberta_base_pretrain.csv; a target has one metric in a folder"):
        import_folder(folder, lake_url)
