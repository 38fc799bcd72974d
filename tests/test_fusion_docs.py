"""docs/fusion.md quotes benchmarks/results/fusion_local.json exactly: the table and the conclusion under their
markers are what `benchmarks/fusion_local.py` renders from the committed file, and the file is of the current
default grid."""

from __future__ import annotations

from benchmarks.fusion_local import (
    CONCLUSION,
    DOC,
    MARKER,
    PROVENANCE,
    committed,
    conclusion,
    provenance_line,
    table,
    verdict,
)
from startpoint.grid import DEFAULT_GRID


def test_docs_quote_the_committed_results():
    results = committed()
    text = DOC.read_text(encoding="utf-8")
    quoted = MARKER.search(text)
    assert quoted is not None, "docs/fusion.md lost its `<!-- fusion_local: table -->` marker"
    assert quoted[2] == table(results["rows"]), (
        "docs/fusion.md's table differs from benchmarks/results/fusion_local.json: run "
        "`python benchmarks/fusion_local.py --write-docs` after `make run`")
    said = CONCLUSION.search(text)
    assert said is not None and said[2].strip() == conclusion(results["rows"])
    origin = PROVENANCE.search(text)
    assert origin is not None and origin[2].strip() == provenance_line(results)


def test_results_are_of_the_default_grid_design():
    """Same targets, seeds and sources as the default grid, bases among its bases (the source recipe and the set
    of bases may lag behind: the docs' provenance line says which, see docs/fusion.md)."""
    results = committed()
    grid = results["grid"]
    assert sorted(grid["targets"]) == sorted(DEFAULT_GRID.targets)
    assert grid["seeds"] == list(DEFAULT_GRID.seeds)
    assert sorted(grid["sources"]) == sorted(DEFAULT_GRID.sources)
    assert set(grid["bases"]) <= set(DEFAULT_GRID.base_models)
    from startpoint.zoo import PRETRAINED

    archs = {PRETRAINED[b].architecture for b in DEFAULT_GRID.base_models}
    assert results["rows"], "no fused model in the committed results"
    for row in results["rows"]:
        assert row["architecture"] in archs
        assert row["n_members"] == 2 and row["n_targets"] == len(DEFAULT_GRID.targets)
        # The interval is around the mean and the verdict follows from it.
        assert row["diff_low"] <= row["diff_mean"] <= row["diff_high"]
        assert verdict(row) in ("fused better", "fused worse", "inconclusive")


def test_a_changed_figure_is_caught():
    rows = [dict(r) for r in committed()["rows"]]
    before = table(rows)
    rows[0]["diff_mean"] += 0.01
    assert table(rows) != before
