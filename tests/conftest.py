"""Fixtures shared by several test modules. Helpers that build inputs (published folders, a product warehouse) live
in `published_fixture.py` and `product_fixture.py`; the fixtures that use them are here."""

from __future__ import annotations

import duckdb
import pytest


@pytest.fixture(scope="session")
def base_dir():
    """The packaged all-MiniLM-L6-v2 folder (the default base encoder)."""
    from startpoint.zoo import DEFAULT_BASE, resolve

    return resolve(DEFAULT_BASE)


@pytest.fixture(scope="session")
def published_warehouse(tmp_path_factory):
    """A read-only connection to the warehouse the `published` job builds from all of ../shared/model-recycling
    (skipped where that folder is missing)."""
    from published_fixture import SHARED, materialize_published

    if not SHARED.is_dir():
        pytest.skip("needs ../shared/model-recycling")
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("published_warehouse")
    assert materialize_published(home, SHARED, mp).success
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    yield con
    con.close()
    mp.undo()


@pytest.fixture()
def minilm_evidence(tmp_path):
    """The MiniLM-L6 evidence (`load_evidence`) of the product fixture's warehouse, for the --run protocols."""
    from product_fixture import build
    from startpoint.recommend.predict import load_evidence

    path = build(tmp_path / "warehouse.duckdb")
    con = duckdb.connect(str(path), read_only=True)
    try:
        return load_evidence(con, "all-MiniLM-L6-v2")
    finally:
        con.close()
