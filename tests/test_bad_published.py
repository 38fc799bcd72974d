"""Published imports that were silently wrong (issue 20): each ends in one clear line naming the file, row or model
and the fix; a whole-file problem refuses the import with nothing written, a wrong row becomes a `rejected_rows`
entry with its reason. Inputs are cut from the real shared data (../shared/model-recycling)."""

from __future__ import annotations

import argparse
import csv
import io
from collections import Counter

import duckdb
import pandas as pd
import pytest

from startpoint import lake
from startpoint.published.importer import import_folder
from startpoint.published.reader import PublishedFormatError, read_folder

from published_fixture import SHARED, edit_pretrain, edit_table, make_folder, materialize_published

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/model-recycling")

HEAD = ["model_name", "avg", "mnli_lp"]
LAKE_TABLES = ("hub_models", "finetune_runs", "probe_scores", "rejected_rows", "datasets")


def _targets(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in HEAD]


def _nothing_written(lake_url: str) -> None:
    for table in LAKE_TABLES:
        assert lake.list_files(lake_url, table) == [], table


def _one_line(exc: pytest.ExceptionInfo) -> str:
    line = str(exc.value)
    assert "\n" not in line
    return line


def test_the_real_shared_data_imports_with_the_same_counts():
    """No false rejection: the whole shared folder reads as it did before these checks (counts taken before)."""
    imported = read_folder(SHARED)
    got = {a: (len(r.hub_models), len(r.finetune_runs), len(r.probe_scores), len(r.rejected_rows))
           for a, r in imported.architectures.items()}
    assert got == {"bert-base-uncased": (572, 16488, 571, 1), "roberta-base": (1277, 14580, 1276, 1),
                   "t5-base": (279, 3740, 278, 4)}
    assert len(imported.catalog_rejected) == 78 and len(imported.datasets) == 36
    assert all(r.row0_max_abs_diff < 1e-9 for r in imported.architectures.values())


def test_a_suite_without_mnli_keeps_its_probe_scores_and_the_job_succeeds(tmp_path, monkeypatch):
    """The probe rows (mnli_lp) point at mnli: a suite that does not target mnli gets mnli as the probe's dataset."""
    folder = make_folder(tmp_path / "results", rows=12, archs=("t5-base",))
    edit_table(folder, "t5-base", lambda f: f.drop(columns=["mnli"]))
    edit_pretrain(folder, "t5-base", lambda f: f[f["dataset name"] != "mnli"])
    imported = read_folder(folder)
    assert imported.architectures["t5-base"].probe_scores
    probe = [d for d in imported.datasets if d["dataset_id"] == "mnli"]
    assert probe == [{"dataset_id": "mnli", "metric": "accuracy", "task_group": "nli", "source": "published_probe"}]
    assert "mnli" not in imported.architectures["t5-base"].table_targets

    home = tmp_path / "home"
    result = materialize_published(home, folder, monkeypatch)
    assert result.success
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select source from datasets where dataset_id = 'mnli'").fetchall() == [("published_probe",)]
        assert con.execute("select count(*) from gains where dataset_id = 'mnli'").fetchone()[0] == 0
        assert con.execute("select count(*) from probe_scores").fetchone()[0] > 0
        assert con.execute("select count(*) from leaderboard where rank is not null").fetchone()[0] > 0


def _to_fractions(rows: slice, columns=None):
    """An edit writing the cells of `rows` (model rows) of the given target columns (default all) as fractions."""

    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        for column in columns or _targets(frame):
            cells = frame[column].iloc[rows]
            frame.loc[cells.index, column] = [f"{float(c) / 100!r}" if c else c for c in cells]
        return frame

    return edit


def test_a_table_in_fractions_against_a_percent_pretrained_row_is_refused(tmp_path):
    """Whole table: every target column's model rows are fractions while row 0 and the seeds are percent. A column
    on the wrong scale is an export error no row can fix: the file is refused, nothing is written."""
    folder = make_folder(tmp_path / "results", rows=20, archs=("t5-base",))
    edit_table(folder, "t5-base", _to_fractions(slice(1, None)))
    lake_url = str(tmp_path / "lake")
    with pytest.raises(PublishedFormatError, match=r"t5-base_table.csv: scale mismatch in every target column: "
                       r"'\w+' \(\d+ of \d+ model scores within \[-1, 1\], pretrained row [\d.]+, seed mean [\d.]+\)"
                       r".*write every score in percent \(multiply the fractions by 100\)") as exc:
        import_folder(folder, lake_url)
    _one_line(exc)
    _nothing_written(lake_url)


def test_fraction_rows_and_cells_in_a_percent_table_are_rejected_with_their_reason(tmp_path):
    """A few rows (or one cell) in fractions in an otherwise percent table: those rows/cells are rejected."""
    folder = make_folder(tmp_path / "results", rows=20, archs=("t5-base",))
    clean = read_folder(folder).architectures["t5-base"]
    edit_table(folder, "t5-base", _to_fractions(slice(3, 5)))  # two model rows: file lines 5 and 6
    edit_table(folder, "t5-base", _to_fractions(slice(8, 9), ["cola"]))  # one accuracy cell: file line 10
    imported = import_folder(folder, str(tmp_path / "lake"))
    arch = imported.architectures["t5-base"]
    new = [r for r in arch.rejected_rows if r not in clean.rejected_rows]
    rows = [r for r in new if r["column"] is None]
    assert [r["line"] for r in rows] == [5, 6]
    assert all(r["reason"].startswith("scores are fractions (e.g. ") and "scale mismatch; write the row in percent"
               in r["reason"] for r in rows)
    cells = [r for r in new if r["column"] is not None]
    assert [(c["line"], c["column"]) for c in cells] == [(10, "cola")]
    reason = cells[0]["reason"]
    assert reason.startswith("looks like a fraction (0.") and "write it in percent (x100)" in reason
    assert len(arch.hub_models) == len(clean.hub_models) - 2
    for counts in arch.counts:
        counts.check()


def test_rows_of_another_architecture_are_rejected_into_rejected_rows(tmp_path):
    """bert-base-uncased (a pretrained model), textattack/bert-base-uncased-MNLI and a roberta model inside the t5
    table: the catalog's base_model (or the model being a pretrained one) says they belong elsewhere."""
    folder = make_folder(tmp_path / "results", rows=12, archs=("bert-base-uncased", "roberta-base", "t5-base"))
    bert = pd.read_csv(folder / "bert-base-uncased_table.csv", index_col=0, dtype=str, keep_default_na=False)
    roberta = pd.read_csv(folder / "roberta-base_table.csv", index_col=0, dtype=str, keep_default_na=False)
    roberta_model = roberta["model_name"].iloc[3]
    textattack = bert.iloc[[2]].assign(model_name="textattack/bert-base-uncased-MNLI")
    foreign = pd.concat([bert.iloc[[0]].assign(mnli_lp="55.0"), textattack, roberta.iloc[[3]]])
    clean = read_folder(folder).architectures["t5-base"]
    edit_table(folder, "t5-base", lambda f: pd.concat([f, foreign], ignore_index=True))
    catalog = (folder / "models_tested.csv").read_text().splitlines(keepends=True)
    bert_line = next(line for line in catalog if line.split(",")[1] == "bert-base-uncased")
    name = bert_line.split(",", 1)[0]
    (folder / "models_tested.csv").write_text(
        "".join(catalog) + bert_line.replace(name, "textattack/bert-base-uncased-MNLI", 1))

    imported = import_folder(folder, str(tmp_path / "lake"))
    arch = imported.architectures["t5-base"]
    rejected = {r["value"]: r["reason"] for r in arch.rejected_rows if r not in clean.rejected_rows}
    assert rejected == {
        "bert-base-uncased": "'bert-base-uncased' is the pretrained bert-base-uncased model, not a model finetuned "
                             "from t5-base; another architecture's row: move it to bert-base-uncased_table.csv",
        "textattack/bert-base-uncased-MNLI": "models_tested.csv gives 'textattack/bert-base-uncased-MNLI' the base "
            "model bert-base-uncased, not t5-base: another architecture's row; move it to that architecture's "
            "_table.csv or fix its base_model",
        roberta_model: f"models_tested.csv gives {roberta_model!r} the base model roberta-base, not t5-base: another "
                       "architecture's row; move it to that architecture's _table.csv or fix its base_model",
    }
    assert [m["model_id"] for m in arch.hub_models] == [m["model_id"] for m in clean.hub_models]
    assert len(arch.finetune_runs) == len(clean.finetune_runs)
    for counts in arch.counts:
        counts.check()


def test_a_table_saved_under_another_architectures_name_is_refused(tmp_path):
    """bert's table as t5-base_table.csv beside t5's seeds: the file name and row 0 disagree. With row 0 renamed to
    t5-base as well, row 0's scores (bert's seed means) disagree with t5's seeds."""
    folder = make_folder(tmp_path / "results", rows=12, archs=("t5-base",))
    bert = "".join((SHARED / "bert-base-uncased_table.csv").read_text().splitlines(keepends=True)[:13])
    (folder / "t5-base_table.csv").write_text(bert)
    lake_url = str(tmp_path / "lake")
    with pytest.raises(PublishedFormatError) as exc:
        import_folder(folder, lake_url)
    assert _one_line(exc) == (
        f"{folder / 't5-base_table.csv'}, line 2: row 0 is the pretrained model 'bert-base-uncased' but the file name "
        "says 't5-base' (and models_results_t5_base_pretrain.csv holds t5-base's seeds): rename the table to "
        "bert-base-uncased_table.csv beside models_results_bert_base_uncased_pretrain.csv, or fix row 0")
    _nothing_written(lake_url)

    (folder / "t5-base_table.csv").write_text(bert.replace(",bert-base-uncased,", ",t5-base,", 1))
    with pytest.raises(PublishedFormatError, match=r"t5-base_table.csv, line 2: row 0 \(t5-base\) disagrees with the "
                       r"seeds in models_results_t5_base_pretrain.csv: median \|row 0 - seed mean\| [\d.]+ points over "
                       r"36 targets \(worst \w+: [\d.]+ vs [\d.]+\); the table and the seeds are not the same "
                       r"pretrained model") as exc:
        import_folder(folder, lake_url)
    _one_line(exc)
    _nothing_written(lake_url)


def test_decimal_commas_fail_the_import_and_an_empty_leaderboard_says_so(tmp_path, capsys):
    folder = make_folder(tmp_path / "results", rows=12, archs=("t5-base",))
    edit_table(folder, "t5-base", lambda f: f.apply(
        lambda col: col if col.name == "model_name" else col.str.replace(".", ",", regex=False)))
    lake_url = str(tmp_path / "lake")
    with pytest.raises(PublishedFormatError, match=r"t5-base_table.csv: no score survives the import \(\d+ rejected "
                       r"row\(s\)/cell\(s\)\): decimal commas\? \d+ cell\(s\) like '\d+,\d+' \(line 3, column "
                       r"mnli_lp\); write '\d+\.\d+' \(a dot\) and import again") as exc:
        import_folder(folder, lake_url)
    _one_line(exc)
    _nothing_written(lake_url)

    # A warehouse whose leaderboard is empty: `startpoint leaderboard` says so on one line and exits non-zero.
    from pipelines.cli import _print_leaderboard

    con = duckdb.connect(":memory:")
    con.execute("create table leaderboard (architecture varchar, model_id varchar, rank integer)")
    code = _print_leaderboard(argparse.Namespace(architecture=None, top=10), con)
    err = capsys.readouterr()
    assert code != 0 and err.out == ""
    assert err.err.strip().splitlines() == [
        "error: the leaderboard is empty: no model was ranked; see the warehouse's rejected_rows for what the import "
        "refused, fix the results and rerun the `published` job"]
