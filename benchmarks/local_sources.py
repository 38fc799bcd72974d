"""Which sources make real intermediate models, and with which source recipe? Source test scores per local base.

For each local pretrained base (all-MiniLM-L6-v2, paraphrase-MiniLM-L3-v2) and each candidate source (``--sources``,
in order of preference; default the grid's), finetune with 400 examples, a candidate with 3x the examples, and a
reference that sees 6x as many (or every training example the source has, when it has fewer), and record the
source's test accuracy (95% Wilson interval over its test examples), the test split's majority share and the
training time. A source qualifies under a recipe when its accuracy on its own held-out test split (never a target's
score or gain) is, on every base, at least 10 points above the majority share and within 5 points of the
reference's (about 1.5 standard errors of a 300-example test score). The grid's source recipe is the cheapest
candidate that qualifies the most sources (up to 3); the grid's sources are the first that qualify under it. One-epoch
runs do no validation pass (the engine validates between epochs only).

Writes benchmarks/results/local_sources.json (each finished run is also kept in --partial, so a rerun resumes).
About 2 minutes per candidate source on 2 idle CPU cores.

    .venv/bin/python benchmarks/local_sources.py --sources fine_foods birdstrike_effect ucla_course_subject \
        drug_review_sentiment birdstrike_phase
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The selection rule (on the source's held-out test accuracy, in points).
MIN_ABOVE_MAJORITY = 10.0
MAX_BELOW_REFERENCE = 5.0
N_SOURCES = 3  # qualified sources wanted at most; the default grid uses fewer (docs/local_grid.md says why)


def candidates():
    from startpoint.engine.recipe import Recipe

    # (label, recipe), cheapest first; the last is the reference ("more source data"): 6x today's 400 examples.
    # One epoch each: on 2 cores the source recipe must leave `make run` within 10 minutes for two architectures
    # (about 40 examples/s for MiniLM-L6 at 64 tokens, 80 for MiniLM-L3).
    return [
        ("400x1", Recipe(train_cap=400, epochs=1)),
        ("1200x1", Recipe(train_cap=1200, epochs=1)),
        ("reference_2400x1", Recipe(train_cap=2400, epochs=1)),
    ]


def wilson(correct: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion, in percent."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(100 * (centre - half), 2), round(100 * (centre + half), 2))


def majority_share(labels) -> float:
    from collections import Counter

    values = list(labels)
    return max(Counter(values).values()) / len(values)


def from_model_card(base: str, source: str, label: str, recipe, models_dir: Path) -> dict | None:
    """The same run read from an intermediate model the grid already made with this very recipe (its model card
    holds the source test score), instead of training it again; None when there is none."""
    from startpoint.data import load_dataset
    from startpoint.zoo import intermediate_id, local_model_dir, read_model_card

    card = read_model_card(local_model_dir(intermediate_id(source, base), models_dir))
    if card.get("recipe_hash") != recipe.recipe_hash or card.get("seed") != 0 or card.get("test_score") is None:
        return None
    ds = load_dataset(source, caps=recipe.split_caps, seed=0)
    n, score = len(ds.test), float(card["test_score"])
    return {
        "base_model": base, "source": source, "recipe_label": label, "recipe": json.loads(recipe.to_json()),
        "recipe_hash": recipe.recipe_hash, "n_train": len(ds.train), "n_test": n, "epochs_run": None,
        "test_score": round(score, 2), "test_interval": wilson(score / 100 * n, n),
        "test_majority_share": round(100 * majority_share(ds.test["label"]), 2),
        "best_validation": None, "validation_scores": [], "train_seconds": None, "wall_seconds": None,
        "from_model_card": str(local_model_dir(intermediate_id(source, base), models_dir)),
    }


def run_one(base: str, source: str, label: str, recipe, cache_dir: Path) -> dict:
    from startpoint.data import load_dataset
    from startpoint.engine import finetune
    from startpoint.zoo import resolve

    ds = load_dataset(source, caps=recipe.split_caps, seed=0)
    majority = majority_share(ds.test["label"])
    start = time.perf_counter()
    result = finetune(resolve(base), ds, recipe, seed=0, log=lambda m: print(f"  {m}", file=sys.stderr, flush=True),
                      cache_dir=cache_dir)
    wall = time.perf_counter() - start
    if result.status != "ok":
        raise SystemExit(f"{base} on {source} with {label} failed: {result.error}")
    n = result.n_test
    return {
        "base_model": base, "source": source, "recipe_label": label, "recipe": json.loads(recipe.to_json()),
        "recipe_hash": recipe.recipe_hash, "n_train": result.n_train, "n_test": n, "epochs_run": result.epochs_run,
        "test_score": round(result.score, 2), "test_interval": wilson(result.score / 100 * n, n),
        "test_majority_share": round(100 * majority, 2), "best_validation": round(max(result.validation_scores), 2) if result.validation_scores else None,
        "validation_scores": [round(v, 2) for v in result.validation_scores],
        "train_seconds": round(result.train_seconds or 0.0, 1), "wall_seconds": round(wall, 1),
    }


def choose(runs: list[dict], labels: list[str], n_sources: int | None = None) -> dict:
    """Which candidate sources make real intermediate models, and the cheapest recipe that qualifies the most of
    them, up to ``n_sources`` (every source measured, when None), with each check's margins.

    A source qualifies under a recipe when, on every base, its test score is ``MIN_ABOVE_MAJORITY`` points above its
    majority share and at most ``MAX_BELOW_REFERENCE`` below the reference (the last label). A measured failure is
    final; a missing candidate or reference run leaves that source's verdict open (None), and while any run is
    missing nothing is chosen. Never a target's score or gain."""
    by = {(r["base_model"], r["source"], r["recipe_label"]): r for r in runs}
    pairs = sorted({(r["base_model"], r["source"]) for r in runs})
    pool = list(dict.fromkeys(r["source"] for r in runs))
    need = len(pool) if n_sources is None else n_sources
    reference = labels[-1]
    verdicts = []
    for label in labels[:-1]:
        checks, missing = [], []
        for base, source in pairs:
            r, ref = by.get((base, source, label)), by.get((base, source, reference))
            if r is None or ref is None:
                missing.append({"base_model": base, "source": source,
                                "not_measured": [x for x, v in ((label, r), (reference, ref)) if v is None]})
            if r is None:
                continue
            above = r["test_score"] - r["test_majority_share"]
            below = None if ref is None else ref["test_score"] - r["test_score"]
            failed = above < MIN_ABOVE_MAJORITY or (below is not None and below > MAX_BELOW_REFERENCE)
            checks.append({"base_model": base, "source": source, "above_majority": round(above, 2),
                           "below_reference": None if below is None else round(below, 2),
                           "more_data_in_reference": None if ref is None or "n_train" not in r
                           else ref["n_train"] > r["n_train"],
                           "ok": False if failed else (None if below is None else True)})
        qualifies = {}
        for source in pool:
            oks = [c["ok"] for c in checks if c["source"] == source]
            open_ = any(m["source"] == source for m in missing)
            qualifies[source] = False if False in oks else (None if open_ or None in oks or not oks else True)
        passed = [s for s in pool if qualifies[s]]
        possible = [s for s in pool if qualifies[s] is not False]
        meets = True if len(passed) >= need else (False if len(possible) < need else None)
        verdicts.append({"recipe_label": label, "meets_rule": meets, "qualifying_sources": passed,
                         "checks": checks, "missing": missing})
    chosen, sources = None, []
    complete = all(not v["missing"] for v in verdicts)
    if complete:  # the cheapest recipe that qualifies the most sources, up to the number wanted
        best = max(min(len(v["qualifying_sources"]), need) for v in verdicts)
        pick = next(v for v in verdicts if min(len(v["qualifying_sources"]), need) == best)
        if best:
            chosen, sources = pick["recipe_label"], pick["qualifying_sources"][:need]
    return {"chosen": chosen, "chosen_sources": sources, "n_sources": need, "complete": complete,
            "verdicts": verdicts}


def intertraining_gains(home: Path, architectures: list[str], pretrained: list[str] = ()) -> dict:
    """Gains over the pretrained model on the local grid, read from the warehouse `make run` built in `home`:
    per model, the mean gain across targets with its 95% t-interval (base_model_effects), and per cell, the gain
    with gain_se (gains). The `pretrained` models' own rows (gain 0 by definition) are left out."""
    import duckdb

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        marks = ", ".join("?" for _ in architectures)
        models = con.execute(
            f"""select architecture, model_id, n_targets, mean_gain, ci_low, ci_high, win_rate, rank
                from base_model_effects where architecture in ({marks}) order by architecture, model_id""",
            architectures).fetchall()
        reliability = dict(con.execute(
            f"select architecture, reliability from ranking_reliability where architecture in ({marks})",
            architectures).fetchall())
        cells = con.execute(
            f"""select architecture, model_id, dataset_id, n_seeds, score_mean, baseline_robust, gain, gain_se
                from gains where architecture in ({marks}) order by architecture, model_id, dataset_id""",
            architectures).fetchall()
    finally:
        con.close()
    r = lambda v: None if v is None else round(float(v), 2)  # noqa: E731
    return {
        "reliability": {a: r(v) for a, v in reliability.items()},
        "models": [{"architecture": a, "model_id": m, "n_targets": n, "mean_gain": r(g), "ci_low": r(lo),
                    "ci_high": r(hi), "win_rate": r(w), "rank": rank} for a, m, n, g, lo, hi, w, rank in models
                   if m not in pretrained],
        "cells": [{"architecture": a, "model_id": m, "target": d, "n_seeds": n, "score": r(sc), "baseline": r(b),
                   "gain": r(g), "gain_se": r(se)} for a, m, d, n, sc, b, g, se in cells],
    }


def verdict(model: dict) -> str:
    if model["ci_low"] is not None and model["ci_low"] > 0:
        return "helps"
    if model["ci_high"] is not None and model["ci_high"] < 0:
        return "hurts"
    return "no clear effect"


def sources_markdown(results: dict) -> str:
    """The source-recipe table docs/local_grid.md quotes (tests/test_local_grid.py checks it)."""
    lines = ["| base | source | recipe | train examples | test accuracy (95% CI) | majority share |",
             "|---|---|---|---|---|---|"]
    for r in results["runs"]:
        lo, hi = r["test_interval"]
        lines.append(f"| {r['base_model'].split('/')[-1]} | {r['source']} | {r['recipe_label']} | {r['n_train']} | "
                     f"{r['test_score']:.1f} ({lo:.1f}-{hi:.1f}) | {r['test_majority_share']:.1f} |")
    return "\n".join(lines)


def status_markdown(results: dict) -> str:
    """One line per candidate recipe: which sources qualify on every base, why the others do not, what is not
    measured, and the choice (quoted by docs/local_grid.md, generated, never typed)."""
    rule = results["rule"]
    name = lambda c: f"{c['base_model'].split('/')[-1]} on {c['source']}"  # noqa: E731
    verdict = {True: "meets the rule", False: "does not meet the rule", None: "not decided (runs missing)"}
    lines = []
    for v in results["verdicts"]:
        low = [c for c in v["checks"] if c["above_majority"] < rule["min_test_above_majority"]]
        far = [c for c in v["checks"]
               if c["below_reference"] is not None and c["below_reference"] > rule["max_test_below_reference"]]
        qualifying = ", ".join(v["qualifying_sources"]) or "none"
        parts = [(f"- `{v['recipe_label']}` {verdict[v['meets_rule']]} ({results['n_sources']} sources needed): "
                  f"qualifying on every base: {qualifying}")]
        if low:
            parts.append("; less than 10 points above the majority share: "
                         + ", ".join(f"{name(c)} ({c['above_majority']:+.1f})" for c in low))
        if far:
            parts.append("; more than 5 points below the reference: "
                         + ", ".join(f"{name(c)} ({c['below_reference']:.1f})" for c in far))
        if v["missing"]:
            parts.append("; not measured: " + ", ".join(f"{m['base_model'].split('/')[-1]} on {m['source']} "
                                                        f"({' and '.join(m['not_measured'])})" for m in v["missing"]))
        lines.append("".join(parts) + ".")
    limit = sorted({c["source"] for v in results["verdicts"] for c in v["checks"]
                    if v["recipe_label"] == results["chosen"] and c["more_data_in_reference"] is False})
    if limit:
        lines.append(f"- At their data limit under the chosen recipe: {', '.join(limit)} (the reference had no more "
                     "training examples to use, so the reference check holds trivially: these models already saw "
                     "all of their source's training data).")
    grid = next((r["recipe_label"] for r in results["runs"] if r["recipe"] == results["source_recipe"]), "unmeasured")
    if results["chosen"]:
        short = len(results["chosen_sources"]) < results["n_sources"]
        lines.append(f"- Chosen: `{results['chosen']}` with the sources {', '.join(results['chosen_sources'])}"
                     + (f" ({len(results['chosen_sources'])} of the {results['n_sources']} wanted: no candidate recipe "
                        "qualifies more of the candidate sources)." if short else "."))
    elif results["complete"]:
        lines.append(f"- Chosen: none; no candidate recipe qualifies any source. The grid's source recipe is "
                     f"`{grid}`.")
    else:
        lines.append(f"- Chosen: not decided (runs missing). The grid's source recipe is `{grid}`.")
    return "\n".join(lines)


def gains_summary(results: dict) -> str:
    """Per architecture: how many local models help, hurt or show no clear effect (95% interval across targets)."""
    out = []
    for arch in sorted({m["architecture"] for m in results["intertraining"]["models"]}):
        verdicts = [verdict(m) for m in results["intertraining"]["models"] if m["architecture"] == arch]
        counts = ", ".join(f"{verdicts.count(v)} {v}" for v in ("helps", "hurts", "no clear effect") if v in verdicts)
        out.append(f"- {arch}: {len(verdicts)} local models: {counts}.")
    return "\n".join(out)


def gains_markdown(results: dict) -> str:
    """The intertraining table docs/local_grid.md quotes: each local model's mean gain over its pretrained model."""
    lines = ["| architecture | model | targets | mean gain (95% CI) | win rate | verdict |", "|---|---|---|---|---|---|"]
    for m in results["intertraining"]["models"]:
        ci = "n/a" if m["ci_low"] is None else f"{m['ci_low']:+.1f} to {m['ci_high']:+.1f}"
        lines.append(f"| {m['architecture']} | {m['model_id']} | {m['n_targets']} | {m['mean_gain']:+.2f} ({ci}) | "
                     f"{m['win_rate']:.2f} | {verdict(m)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partial", type=Path, default=Path("/tmp/local_sources.partial.jsonl"))
    parser.add_argument("--only", nargs="*", default=None, help="recipe labels to run (default: all)")
    parser.add_argument("--models-from", type=Path, nargs="*", default=[],
                        help="STARTPOINT_HOMEs whose intermediate models (same recipe, seed 0) count as runs")
    parser.add_argument("--order", nargs="*", default=None, help="recipe labels in the order to run them")
    parser.add_argument("--measured-only", action="store_true",
                        help="train nothing: write the results file from --partial and --models-from alone")
    parser.add_argument("--note", default="", help="conditions of the measurement, kept in the results file")
    parser.add_argument("--reverse-bases", action="store_true", help="run the bases last to first (MiniLM-L3 first)")
    parser.add_argument("--sources", nargs="*", default=None,
                        help="candidate sources, in order of preference (default: the grid's sources)")
    parser.add_argument("--gains-from", type=Path, default=None,
                        help="a STARTPOINT_HOME where `make run` finished: add its local gains to the results file")
    args = parser.parse_args()
    from benchmarks.results_file import write_results
    from startpoint.grid import DEFAULT_GRID
    from startpoint.settings import get_settings

    bases = list(DEFAULT_GRID.base_models)
    pool = list(args.sources or DEFAULT_GRID.sources)
    cands = [(label, rec) for label, rec in candidates() if args.only is None or label in args.only]
    done = {}
    if args.partial.is_file():
        for line in args.partial.read_text().splitlines():
            r = json.loads(line)
            done[(r["base_model"], r["source"], r["recipe_label"], r["recipe_hash"])] = r
    runs = []
    order = sorted(cands, key=lambda c: args.order.index(c[0]) if args.order and c[0] in args.order else -1)
    for label, recipe in order:
        for base in bases[::-1] if args.reverse_bases else bases:
            for source in pool:
                key = (base, source, label, recipe.recipe_hash)
                if key not in done:
                    for home in args.models_from:
                        done[key] = done.get(key) or from_model_card(base, source, label, recipe, home / "models")
                    if done.get(key) is None and args.measured_only:
                        print(f"{label:>17} {base.split('/')[-1]:>24} {source:>22}: not measured", flush=True)
                        continue
                    if done.get(key) is None:
                        done[key] = run_one(base, source, label, recipe, get_settings().cache_dir)
                    with args.partial.open("a") as f:
                        f.write(json.dumps(done[key]) + "\n")
                r = done[key]
                runs.append(r)
                print(f"{label:>17} {base.split('/')[-1]:>24} {source:>22}: test {r['test_score']:5.1f} "
                      f"{r['test_interval']} (majority {r['test_majority_share']:.1f}), "
                      f"{r['train_seconds'] or 0:.0f} s training", flush=True)
    labels = [label for label, _ in cands]
    runs.sort(key=lambda r: (labels.index(r["recipe_label"]), bases.index(r["base_model"]),
                             pool.index(r["source"])))
    if args.only is not None:
        return
    selection = choose(runs, labels, n_sources=N_SOURCES)
    print(f"chosen source recipe: {selection['chosen']}, sources: {selection['chosen_sources']}")
    from startpoint.zoo import architecture_of

    gains = (intertraining_gains(args.gains_from, [architecture_of(b) for b in bases], bases)
             if args.gains_from else None)
    write_results("local_sources", {
        "source_recipe": json.loads(DEFAULT_GRID.source_recipe.to_json()),
        "intertraining": gains,
        "rule": {"min_test_above_majority": MIN_ABOVE_MAJORITY,
                 "max_test_below_reference": MAX_BELOW_REFERENCE, "reference": labels[-1]},
        "cores": os.cpu_count(), "note": args.note, "candidate_sources": pool, "runs": runs, **selection,
    })


if __name__ == "__main__":
    main()
