"""A rank decided on few cells says so (issue 19, item 3): the leaderboard carries how many of the architecture's
targets each row was measured on, marks a ranked candidate whose kept cells are fewer than the integrity checks
need (`few_cells`, dbt var integrity_min_targets), and every reader (CLI, previews, site) prints both."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from benchmarks import ranking_rules
from published_fixture import SHARED, edit_table, make_folder, materialize_published
from startpoint.warehouse.leaderboard import board_notes, ranking_table, read_leaderboard, targets_text

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/model-recycling")

MIN_TARGETS = ranking_rules.dbt_var("integrity_min_targets")
KEEP = 5  # targets left to the thinned row: fewer than the integrity checks need


def _thinned_folder(root):
    """30 real roberta-base rows; the 6th model row keeps its first KEEP targets only (the others empty)."""
    folder = make_folder(root, rows=31, archs=("roberta-base",))
    thinned = {}

    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        targets = [c for c in frame.columns if c not in ("model_name", "avg", "mnli_lp")]
        row = frame.index[6]
        frame.loc[row, targets[KEEP:]] = ""
        thinned["model_id"] = frame.loc[row, "model_name"]
        thinned["n_suite"] = len(targets)
        return frame

    edit_table(folder, "roberta-base", edit)
    return folder, thinned


@pytest.fixture(scope="module")
def thinned_warehouse(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("few_cells")
    folder, thinned = _thinned_folder(root / "results")
    assert materialize_published(root / "home", folder, mp).success
    con = duckdb.connect(str(root / "home" / "warehouse.duckdb"), read_only=True)
    yield con, thinned
    con.close()
    mp.undo()


def test_the_leaderboard_says_how_many_of_the_suite_a_row_rests_on(thinned_warehouse):
    con, thinned = thinned_warehouse
    assert MIN_TARGETS == 8  # the integrity checks' own minimum (model_flags), not a tuned constant
    rows = con.execute(
        """select l.model_id, l.rank, l.is_pretrained, l.n_targets, l.n_suite_targets, l.few_cells,
                  (select count(distinct dataset_id) from gains g where g.architecture = l.architecture) as suite
           from leaderboard l where architecture = 'roberta-base'""").df()
    assert (rows.n_suite_targets == rows.suite).all()
    assert rows.n_suite_targets.iloc[0] == thinned["n_suite"]
    expected = ~rows.is_pretrained & rows["rank"].notna() & (rows.n_targets < MIN_TARGETS)
    assert (rows.few_cells == expected).all()
    thin = rows[rows.model_id == thinned["model_id"]].iloc[0]
    assert thin.n_targets <= KEEP and thin.few_cells
    assert int(rows.few_cells.sum()) == 1  # every other row was measured on the whole suite


def test_every_reader_prints_the_count_and_the_few_cells_note(thinned_warehouse):
    con, thinned = thinned_warehouse
    rows = read_leaderboard(con, architecture="roberta-base", ranked=True).to_dicts()
    thin = next(r for r in rows if r["model_id"] == thinned["model_id"])
    assert targets_text(thin) == f"{thin['n_targets']} of {thinned['n_suite']}"
    headers, table = ranking_table(rows)
    cell = table[rows.index(thin)][headers.index("targets")]
    assert cell == f"{thin['n_targets']} of {thinned['n_suite']} · few cells"
    assert table[0][headers.index("targets")] == f"{rows[0]['n_targets']} of {thinned['n_suite']}"
    notes = " ".join(board_notes(rows))
    assert f"{int(thin['rank'])} ({thin['n_targets']} of {thinned['n_suite']} targets)" in notes
    assert "Ranks decided on few cells" in notes
    # the rows measured on the whole suite are not named
    assert all(f"{int(r['rank'])} ({r['n_targets']} of" not in notes for r in rows if not r["few_cells"])


def test_a_suite_smaller_than_the_checks_need_is_said_once_for_every_row():
    rows = [{"rank": 1, "model_id": "a", "is_pretrained": False, "n_targets": 3, "n_suite_targets": 3,
             "few_cells": True, "order_has_evidence": False, "mean_gain": 1.0},
            {"rank": 2, "model_id": "p", "is_pretrained": True, "n_targets": 3, "n_suite_targets": 3,
             "few_cells": False, "mean_gain": 0.0},
            {"rank": 3, "model_id": "b", "is_pretrained": False, "n_targets": 3, "n_suite_targets": 3,
             "few_cells": True, "mean_gain": -0.5}]
    notes = board_notes(rows)
    few = [n for n in notes if "few cells" in n]
    assert len(few) == 1 and few[0].startswith("Every candidate's rank rests on few cells (3 of 3 targets)")
    # nothing to say where no row rests on few cells
    assert not [n for n in board_notes([{**r, "few_cells": False} for r in rows]) if "few cells" in n]
