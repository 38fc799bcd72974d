"""The leaderboard's asset checks (assets/leaderboard_checks.py): all pass on a sound leaderboard (the fixture and
the one the `published` job builds from the shared results), and each fails, naming the rows, on a leaderboard
broken the way it guards against."""

from __future__ import annotations

import duckdb
import pytest

from assets.leaderboard_checks import CHECKS, leaderboard_checks, leaderboard_problems
from assets.resources import WarehouseResource

from product_fixture import build

ARCH = "roberta-base"


@pytest.fixture
def warehouse(tmp_path):
    return build(tmp_path / "warehouse.duckdb")


def _results(path) -> dict:
    return {r.check_name: r for r in leaderboard_checks(warehouse=WarehouseResource(path=str(path)))}


def test_every_check_passes_on_a_sound_leaderboard_and_says_what_it_checks(warehouse):
    results = _results(warehouse)
    assert set(results) == set(CHECKS)
    assert all(r.passed for r in results.values()), {n: r.description for n, r in results.items()}
    assert all(len(description) > 60 for description, _, _ in CHECKS.values())


def test_the_published_leaderboard_passes(published_warehouse):
    assert leaderboard_problems(published_warehouse) == {name: [] for name in CHECKS}


# (what is broken, SQL that breaks it, the check that must fail, whether every other check still passes)
BREAKAGES = [
    ("an interval beside its gain", f"update leaderboard set ci_high = mean_gain - 0.5 where architecture = '{ARCH}' "
     "and rank = 2", "interval_holds_its_value", True),
    ("a hole in the ranks", f"update leaderboard set rank = rank + 1 where architecture = '{ARCH}' and rank >= 3",
     "ranks_have_no_gaps", True),
    ("dense ranks after a tie (1, 2, 2, 3)", f"update leaderboard set rank = rank - 1 where architecture = '{ARCH}' "
     "and rank >= 3", "ranks_have_no_gaps", True),
    ("two #1 that are not tied", f"update leaderboard set rank = 1 where architecture = '{ARCH}' and rank = 2",
     "one_first_per_architecture", True),
    ("no #1", f"update leaderboard set rank = null where architecture = '{ARCH}' and not is_pretrained",
     "one_first_per_architecture", False),
    ("no pretrained row", f"update leaderboard set is_pretrained = false where architecture = '{ARCH}'",
     "pretrained_row_present", True),
    ("two pretrained rows", f"update leaderboard set is_pretrained = true where architecture = '{ARCH}' and rank = 2",
     "pretrained_row_present", True),
    ("an unranked pretrained row", f"update leaderboard set rank = null where architecture = '{ARCH}' and "
     "is_pretrained", "pretrained_row_present", True),
]


@pytest.mark.parametrize("what, sql, check, alone", BREAKAGES, ids=[b[0] for b in BREAKAGES])
def test_each_check_fails_on_its_breakage(warehouse, what, sql, check, alone):
    con = duckdb.connect(str(warehouse))
    con.execute(sql)
    con.close()
    results = _results(warehouse)
    failed = results[check]
    assert not failed.passed, what
    assert failed.metadata["offending_rows"].value >= 1
    assert ARCH in failed.description and ARCH in failed.metadata["offending"].value
    if alone:
        assert [n for n, r in results.items() if not r.passed] == [check]
