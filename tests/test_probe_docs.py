"""docs/hub_and_probes.md quotes the probe benchmarks' results files (benchmarks/results/probe_fidelity.json,
probe_cost.json, proxy_validation_local.json): every table row and the prose figures taken from them."""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal

import pytest

from startpoint.settings import REPO_ROOT

DOC = REPO_ROOT / "docs" / "hub_and_probes.md"
RESULTS = REPO_ROOT / "benchmarks" / "results"


def load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def signed(x: float, digits: int) -> str:
    """As the docs write numbers: a true minus sign, '+' only where the column is signed."""
    return f"{x:.{digits}f}".replace("-", "−")


def half_up(x: float, digits: int) -> str:
    """Rounded as people round by hand (12.25 -> 12.3), which the docs' prose follows."""
    return str(Decimal(str(x)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def table(doc: str, header_start: str) -> list[list[str]]:
    """Body rows (cells stripped of bold) of the table whose header line starts with `header_start`."""
    lines = doc.splitlines()
    i = next((k for k, line in enumerate(lines) if line.startswith(header_start)), None)
    assert i is not None, f"docs/hub_and_probes.md has no table starting {header_start!r}"
    rows = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip().strip("*").strip() for c in line.strip().strip("|").split("|")])
    return rows


def test_probe_fidelity_table(doc):
    r = load("probe_fidelity")
    rows = table(doc, "| examples × tokens |")
    assert len(rows) == len(r["budgets"])
    by_budget = {b["budget"]: b for b in r["budgets"]}
    for label, logme, lp, seconds in rows:
        examples, tokens = re.match(r"([\d,]+) × (\d+)", label).groups()
        b = by_budget[f"{examples.replace(',', '')}x{tokens}"]
        assert (logme, lp, seconds) == (signed(b["logme"], 2), signed(b["linear_probe"], 2),
                                        f"{b['encoder_seconds']:.1f}"), label
    assert f"{r['reference'].replace('x', ' × ')} (reference)".replace("1024", "1,024") in doc
    assert f"measured on {len(r['models'])} zoo models" in doc and f"1,024 examples × 64 tokens" in doc


def test_probe_cost_table_and_runs(doc):
    r = load("probe_cost")
    rows = table(doc, "| | seconds | probe / it |")
    each = ", ".join(f"{s:.2f}" for s in sorted(r["probe_seconds_each"]))
    full = r["full_evaluation"]
    assert rows == [
        [f"probe (LP + LogME), median of {each}", f"{r['probe_seconds']:.2f}", ""],
        [f"full evaluation, wall-clock ({len(full['targets'])} targets × {len(full['seeds'])} seeds)",
         f"{full['wall_seconds']:.1f}", f"1/{round(1 / r['ratio_wall'])}"],
        ["full evaluation, training only", f"{full['train_seconds']:.1f}", f"1/{round(1 / r['ratio_train_only'])}"],
    ]
    assert r["pass"] and f"Target: ≤ 1/{round(1 / r['target_ratio'])} both ways" in doc
    for target in full["targets"]:
        runs = [x for x in full["runs"] if x["target"] == target]
        text = " and ".join(f"{half_up(x['wall_seconds'], 1)} / {half_up(x['train_seconds'], 1)}" for x in runs)
        assert f"{target} {text}" in " ".join(doc.split()), target


def test_local_proxy_validation_tables_and_prose(doc):
    r = load("proxy_validation_local")
    rows = table(doc, "| method | n models |")
    expected = [[p["method"], str(p["n_models"]), signed(p["spearman"], 2), signed(p["pearson"], 2),
                 f"{p['top1_lost_gain']:.2f}", f"{p['top3_lost_gain']:.2f}"] for p in r["proxy_validation"]]
    assert rows == expected
    rows = table(doc, "| intermediate model (source) |")
    prefix = f"local/{r['architecture']}-"
    expected = [[m["model_id"].removeprefix(prefix), signed(m["logme"], 3), f"{m['linear_probe']:.1f}",
                 ("+" if m["mean_gain"] >= 0 else "") + signed(m["mean_gain"], 2)] for m in r["models"]]
    assert rows == expected
    assert len(r["models"]) == len(r["sources"]) and f"k = {len(r['sources'])}" in doc
    # The prose: the linear head's correlation, what picking by probe costs, and the spread across budgets.
    flat = " ".join(doc.split())
    lp = {p["method"]: p for p in r["proxy_validation"]}
    assert f"The linear head's {lp['linear_probe']['spearman']:.2f} is not a signal" in flat
    assert f"costs {lp['logme']['top1_lost_gain']:.1f} points against the best model" in flat
    by = {b["budget"]: b for b in r["gain_spearman_by_probe_budget"]}
    lin = sorted(by.items(), key=lambda kv: kv[1]["linear_probe"])
    low, high = lin[0], lin[-1]

    def label(budget: str) -> str:
        e, t = budget.split("x")
        return f"{int(e):,} × {t}"

    assert (f"the linear head swings from {signed(low[1]['linear_probe'], 2)} ({label(low[0])}) to "
            f"+{high[1]['linear_probe']:.2f} ({label(high[0])}) and is {signed(by['1024x64']['linear_probe'], 2)} at "
            f"the 1,024 × 64 reference") in flat
    logme = [b["logme"] for b in by.values()]
    assert f"LogME stays between {signed(min(logme), 2)} and +{max(logme):.2f}" in flat
