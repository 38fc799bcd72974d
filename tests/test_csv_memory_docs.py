"""docs/datasets.md quotes benchmarks/results/csv_memory.json (peak memory of loading a large `--data` CSV):
every figure in its paragraph is the results file's, and the loader stays under 4x the file."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "csv_memory.json"
DOC = REPO / "docs" / "datasets.md"


def _flat(text: str) -> str:
    return " ".join(text.split())


def expected_phrases(r: dict) -> list[str]:
    """The phrases of the docs paragraph, formatted from the results file as the paragraph writes them."""
    before, after = r["before"], r["after"]
    peaks = sorted(x["peak_kib"] * 1024 / 1e6 for x in after["rounds"])
    load = r["load_average_at_end"]
    return [
        f"a generated {r['file_mb']:.0f} MB CSV of {r['file_rows'] / 1e6:.2f} M short labelled texts",
        f"median of {r['rounds']} rounds, {r['cpus']} CPUs",
        f"peak RSS {before['peak_rss_mb']:,.0f} MB = {before['peak_over_file']:.1f}× the file before, "
        f"{after['peak_rss_mb']:,.0f} MB = {after['peak_over_file']:.2f}× after "
        f"(rounds {peaks[0]:,.0f}–{peaks[-1]:,.0f} MB)",
        f"of which {after['imports_rss_mb']:,.0f} MB is the interpreter and imports",
        f"loading alone {before['loading_over_file']:.1f}× → {after['loading_over_file']:.1f}×",
        f"in {after['seconds']:.1f} s instead of {before['seconds']:.1f} s",
        f"load average {min(load):.0f}–{max(load):.0f} on {r['cpus']} CPUs",
        f"({_span(after)} s after, {_span(before)} s before)",
    ]


def _span(side: dict) -> str:
    seconds = [x["seconds"] for x in side["rounds"]]
    return f"{min(seconds):.0f}–{max(seconds):.0f}"


def test_the_docs_quote_the_csv_memory_results():
    results = json.loads(RESULTS.read_text())
    doc = _flat(DOC.read_text())
    missing = [p for p in expected_phrases(results) if p not in doc]
    assert not missing, f"docs/datasets.md does not say (from {RESULTS.name}): {missing}"


def test_the_loader_stays_under_four_times_the_file_and_gives_the_same_dataset():
    results = json.loads(RESULTS.read_text())
    assert results["after"]["peak_over_file"] <= 4.0
    assert all(results["same_dataset"].values()), results["same_dataset"]
    assert results["dataset"]["text_dtype"] == "String"  # the polars loader wrote this file


def test_a_changed_figure_is_caught():
    results = json.loads(RESULTS.read_text())
    results["after"]["peak_rss_mb"] += 7
    doc = _flat(DOC.read_text())
    assert any(p not in doc for p in expected_phrases(results))
