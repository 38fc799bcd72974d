"""Every docs table that quotes the warehouse (under a `<!-- figures: SQL -->` marker) matches it, on a warehouse
built from the whole shared published folder, as `make run` builds it."""

from __future__ import annotations

import pytest

from benchmarks.docs_figures import doc_paths, find_figures, render, stale

from published_fixture import SHARED

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/model-recycling")


@pytest.fixture(scope="module")
def warehouse(published_warehouse):
    return published_warehouse  # built once per session (tests/conftest.py)


def test_the_docs_quote_warehouse_figures():
    assert sum(len(find_figures(p)) for p in doc_paths()) >= 5


def test_every_quoted_table_matches_the_warehouse(warehouse):
    bad = stale(warehouse)
    assert not bad, "\n".join(f"{f.path.name}: `{f.sql}` gives\n{fresh}\nbut the docs say\n{f.quoted}" for f, fresh in bad)


def test_a_changed_number_is_caught(warehouse, tmp_path):
    """The check can fail: a doc whose table differs by one digit is reported."""
    (tmp_path / "docs").mkdir()
    sql = "select architecture, count(*) as n from leaderboard group by 1 order by 1"
    table = render(warehouse, sql)
    last = max(i for i, ch in enumerate(table) if ch.isdigit())
    wrong = table[:last] + str((int(table[last]) + 1) % 10) + table[last + 1:]
    (tmp_path / "docs" / "x.md").write_text(f"<!-- figures: {sql} -->\n{wrong}")
    assert len(stale(warehouse, tmp_path)) == 1
    (tmp_path / "docs" / "x.md").write_text(f"<!-- figures: {sql} -->\n{table}")
    assert stale(warehouse, tmp_path) == []
