"""Budgeted ranking, replayed offline on published grids: top-1 regret against finetunes bought (issue 19).

Protocol, per architecture of a warehouse built from published results:
- Split the targets at random into a selection half, where cells can be bought (one unit per (model, target)
  cell), and a judgment half (`--splits` times; benchmarks/heldout_ranking.py's `halves`).
- Each policy of startpoint.budget (probe_topk, uniform, adaptive) buys cells of the selection half within a budget
  of 5, 10, 20, 40 and 100% of the half's available cells; a bought cell reveals its kept gain (NaN where the
  finetune collapsed). The prior is the architecture's linear-probe score (`mnli_lp` of the published tables).
- After buying, the ranking is the product's own estimator on the bought cells: its integrity flags and pool
  (`heldout_ranking.product_pool`) and its winsorized two-way shrinkage at the shipped clip
  (`ranking_rules.product_rule`, `ranking_rules.order`; tests/test_one_scale.py checks it orders models exactly as
  the SQL leaderboard does). The adaptive policy ranks its survivors with the same estimator.
- Judgment (`heldout_ranking.judge`): the top-1 pick's mean gain on the judgment half; the oracle is the best
  mean gain there among rows the independent integrity rule does not call garbled, or 0 ("stay"). The regret
  reported is scoring B (a garbled pick is worth 0); scoring A (face value) is in the results file too.
- Intervals: percentile bootstrap over the splits (`heldout_ranking.interval`); paired differences on the same
  splits. "full" is the product's pick from every cell of the selection half (what 100% buys for probe_topk and
  uniform).
Usage: python benchmarks/budgeted_ranking.py [--published DIR] [--out FILE] [--splits 50] [--seed 0] [--write-docs]
Writes benchmarks/results/budgeted_ranking.json (or FILE) and, with --write-docs, an SVG per architecture in docs/
and the tables of docs/budgeted_ranking.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import heldout_ranking, ranking_rules  # noqa: E402
from benchmarks.published_home import build_published_warehouse  # noqa: E402
from startpoint.budget import ABLATIONS, POLICIES, Grid, make_policy, spend  # noqa: E402
from startpoint.settings import get_settings  # noqa: E402
from startpoint.tables import markdown_table  # noqa: E402
from startpoint.warehouse.load import connect  # noqa: E402

FRACTIONS = (0.05, 0.1, 0.2, 0.4, 1.0)
ADAPTIVE = ("adaptive", "adaptive_race")  # the designs the goals are checked for
RUN = POLICIES + ABLATIONS  # the policies, and the adaptive policy's first design (no leader verification)
GOAL_FRACTION = 0.2
GOAL_GAP = 0.2  # points: the "within 0.2 of the full budget"
DOCS = ROOT / "docs" / "budgeted_ranking.md"


def shipped_clip() -> float:
    """The clip the product ships (dbt var ranking_clip)."""
    return float(ranking_rules.dbt_var("ranking_clip"))


def load(con, arch: str) -> dict:
    """heldout_ranking's matrices plus the probe prior (linear probe; NaN where a model was not probed)."""
    data = heldout_ranking.load(con, arch)
    probes = dict(con.execute(
        "select model_id, avg(score) from probe_scores where architecture = ? and method = 'linear_probe' "
        "and score > 0 group by 1", [arch]).fetchall())
    data["prior"] = np.array([probes.get(m, np.nan) for m in data["models"]], float)
    return data


def product_top1(kept: np.ndarray, score: np.ndarray, clip: float) -> int:
    """The product's top-1 row from these cells (NaN: not bought; -1 is "stay")."""
    pool, rows, sel_mean = heldout_ranking.product_pool(kept, score)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        s = ranking_rules.product_rule(kept[pool], clip)[0]
    return int(rows[ranking_rules.order(s, sel_mean)[0]])


def product_ranker(score_sel: np.ndarray, clip: float):
    """The product's estimator as a startpoint.budget ranker: flagged rows and rows without cells score -inf."""

    def rank(gains: np.ndarray, measured: np.ndarray) -> np.ndarray:
        score = np.where(measured, score_sel, np.nan)
        pool, _, _ = heldout_ranking.product_pool(gains, score)
        out = np.full(len(gains), -np.inf)
        if pool.any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out[pool] = ranking_rules.product_rule(gains[pool], clip)[0][:-1]
        return out

    return rank


def evaluate(data: dict, splits: int, rng, clip: float) -> dict:
    """Per policy and fraction, per split: regret B, regret A, cells bought, garbled pick; and the full pick's."""
    kept_all = np.where(data["collapsed"], np.nan, data["gain"])
    out: dict = {p: {f: {"B": [], "A": [], "cells": [], "garbled": []} for f in FRACTIONS} for p in RUN}
    full: dict = {"B": [], "A": [], "cells": [], "garbled": []}

    def record(res: dict, pick: int, j: dict, cells: int) -> None:
        res["B"].append(j["oracle"] - j["value_b"][pick])
        res["A"].append(max(0.0, j["oracle"] - j["value_a"][pick]))
        res["cells"].append(cells)
        res["garbled"].append(float(j["bad"][pick]))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of a sparse grid: expected, handled
        for _ in range(splits):
            _split(data, kept_all, rng, clip, out, full, record)
    arrays = {p: {f: {k: np.array(v, float) for k, v in r.items()} for f, r in fr.items()} for p, fr in out.items()}
    return {"policies": arrays, "full": {k: np.array(v, float) for k, v in full.items()}}


def _split(data: dict, kept_all: np.ndarray, rng, clip: float, out: dict, full: dict, record) -> None:
    """One split: the every-cell pick, then each policy at each budget."""
    sel, held = heldout_ranking.halves(len(data["targets"]), rng)
    j = heldout_ranking.judge(data, held)
    kept, score = kept_all[:, sel], data["score"][:, sel]
    available = ~np.isnan(data["gain"][:, sel])
    n_cells = int(available.sum())
    record(full, product_top1(kept, np.where(available, score, np.nan), clip), j, n_cells)
    seed = int(rng.integers(2**31))
    for f in FRACTIONS:
        budget = max(1, round(f * n_cells))
        for name in RUN:
            grid = Grid(data["models"], [data["targets"][t] for t in sel], data["prior"], available)
            policy = make_policy(name, budget, seed=seed, ranker=product_ranker(score, clip))
            done = spend(policy, grid, budget, lambda c: kept[c])
            pick = product_top1(grid.gains, np.where(grid.measured, score, np.nan), clip)
            record(out[name][f], pick, j, len(done.cells))


def summarize(raw: dict, n_cells_mean: float, boot_rng) -> dict:
    def cell(r: dict) -> dict:
        b = heldout_ranking.interval(r["B"], boot_rng)
        return {"regret": b["mean"], "low": b["low"], "high": b["high"], "cells": float(r["cells"].mean()),
                "regret_A": heldout_ranking.interval(r["A"], boot_rng), "garbled_top1": float(r["garbled"].mean())}

    policies = {p: {f"{f:g}": cell(r) for f, r in fr.items()} for p, fr in raw["policies"].items()}
    ad, tk = raw["policies"]["adaptive"], raw["policies"]["probe_topk"]
    g = GOAL_FRACTION
    paired = {
        f"adaptive - probe_topk at {g:g}": heldout_ranking.interval(ad[g]["B"] - tk[g]["B"], boot_rng),
        f"adaptive at {g:g} - full": heldout_ranking.interval(ad[g]["B"] - raw["full"]["B"], boot_rng),
        f"adaptive at {g:g} - adaptive at 1": heldout_ranking.interval(ad[g]["B"] - ad[1.0]["B"], boot_rng),
        f"probe_topk at {g:g} - full": heldout_ranking.interval(tk[g]["B"] - raw["full"]["B"], boot_rng),
        f"adaptive - adaptive_unverified at {g:g}": heldout_ranking.interval(
            ad[g]["B"] - raw["policies"]["adaptive_unverified"][g]["B"], boot_rng),
        f"adaptive_race - probe_topk at {g:g}": heldout_ranking.interval(
            raw["policies"]["adaptive_race"][g]["B"] - tk[g]["B"], boot_rng),
        f"adaptive_race at {g:g} - full": heldout_ranking.interval(
            raw["policies"]["adaptive_race"][g]["B"] - raw["full"]["B"], boot_rng),
    }
    goals = {}
    for name in ADAPTIVE:
        gap, vs = paired[f"{name} at {g:g} - full"], paired[f"{name} - probe_topk at {g:g}"]
        goals[name] = {"within_0.2_of_full": bool(gap["mean"] <= GOAL_GAP), "below_probe_topk": bool(vs["high"] < 0),
                       "below_probe_topk_point": bool(vs["mean"] < 0)}
    return {"selection_cells": n_cells_mean, "full": cell(raw["full"]), "policies": policies, "paired": paired,
            "goals": goals}


def run(warehouse: Path, splits: int, seed: int) -> dict:
    started = time.time()
    con = connect(warehouse, read_only=True)
    archs = [r[0] for r in con.execute(
        """select distinct g.architecture from gains g join datasets d using (dataset_id)
           where d.source = 'published' order by 1""").fetchall()]
    data = {a: load(con, a) for a in archs}
    con.close()
    clip = shipped_clip()
    rng, boot_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    results: dict = {"splits": splits, "seed": seed, "clip": clip, "fractions": list(FRACTIONS),
                     "policies": list(RUN), "scoring": "B", "architectures": {}}
    for a in archs:
        t0 = time.time()
        raw = evaluate(data[a], splits, rng, clip)
        n_cells = float(raw["full"]["cells"].mean())
        results["architectures"][a] = {"n_models": len(data[a]["models"]), "n_targets": len(data[a]["targets"]),
                                       "n_probed": int(np.sum(~np.isnan(data[a]["prior"]))),
                                       **summarize(raw, n_cells, boot_rng), "seconds": round(time.time() - t0, 1)}
        print(f"{a}: {time.time() - t0:.0f}s", file=sys.stderr)
    results["seconds_replay"] = round(time.time() - started, 1)
    return results


LABELS = {"probe_topk": "probe top-k (paper)", "uniform": "uniform cells", "adaptive": "adaptive (probe halving)",
          "adaptive_unverified": "adaptive, first design", "adaptive_race": "adaptive race in probe order"}
COLORS = {"probe_topk": "#1f77b4", "uniform": "#7f7f7f", "adaptive": "#d62728", "adaptive_unverified": "#ff9896",
          "adaptive_race": "#2ca02c"}


def _cell(m: dict) -> str:
    return f"{m['regret']:.2f} ({m['low']:.2f}..{m['high']:.2f})"


def markdown(results: dict) -> str:
    """Per architecture and policy: top-1 regret (scoring B) and mean cells bought at each budget fraction."""
    fr = [f"{f:g}" for f in results["fractions"]]
    rows = []
    for arch, res in results["architectures"].items():
        for p in results["policies"]:
            cells = res["policies"][p]
            rows.append((arch, LABELS[p], *(f"{_cell(cells[f])}; {cells[f]['cells']:.0f}" for f in fr)))
        rows.append((arch, "every selection cell (full)", *[""] * (len(fr) - 1),
                     f"{_cell(res['full'])}; {res['full']['cells']:.0f}"))
    return markdown_table(["architecture", "policy", *(f"{float(f):.0%} budget" for f in fr)], rows,
                          align="ll" + "r" * len(fr))


def garbled_markdown(results: dict) -> str:
    """Share of splits whose top-1 pick the independent rule calls garbled, per policy and budget."""
    fr = [f"{f:g}" for f in results["fractions"]]
    rows = [(arch, LABELS[p], *(f"{res['policies'][p][f]['garbled_top1']:.2f}" for f in fr))
            for arch, res in results["architectures"].items() for p in results["policies"]]
    return markdown_table(["architecture", "policy", *(f"{float(f):.0%} budget" for f in fr)], rows,
                          align="ll" + "r" * len(fr))


def paired_markdown(results: dict) -> str:
    """The paired differences at the goal's budget, per architecture (negative: the first loses less)."""
    rows = []
    for arch, res in results["architectures"].items():
        for name, d in res["paired"].items():
            rows.append((arch, name, f"{d['mean']:+.2f} ({d['low']:+.2f}..{d['high']:+.2f})"))
    return markdown_table(["architecture", "paired difference of top-1 regret", "mean (95% interval)"], rows,
                          align="llr")


def reading(results: dict) -> str:
    """Whether the issue's goals were met, per adaptive design and architecture, written from the results file."""
    g = f"{GOAL_FRACTION:g}"
    lines = []
    for name in ADAPTIVE:
        met = all(r["goals"][name]["within_0.2_of_full"] and r["goals"][name]["below_probe_topk"]
                  for r in results["architectures"].values())
        lines.append(f"{LABELS[name]}: goals (at {GOAL_FRACTION:.0%} of the cells, within {GOAL_GAP:g} points of "
                     f"every cell's regret and below probe_topk, paired) **{'met' if met else 'not met'}** on "
                     f"all {len(results['architectures'])} architectures together.")
        for arch, res in results["architectures"].items():
            ad, tk = res["policies"][name][g], res["policies"]["probe_topk"][g]
            gap, vs = res["paired"][f"{name} at {g} - full"], res["paired"][f"{name} - probe_topk at {g}"]
            goals = res["goals"][name]
            lines.append(
                f"- {arch}: top-1 regret {ad['regret']:.2f} ({ad['cells']:.0f} cells), every cell's "
                f"{res['full']['regret']:.2f} ({res['full']['cells']:.0f} cells), a gap of {gap['mean']:+.2f} "
                f"({gap['low']:+.2f}..{gap['high']:+.2f}): {'within' if goals['within_0.2_of_full'] else 'not within'} "
                f"{GOAL_GAP:g} points. probe_topk at the same budget: {tk['regret']:.2f}; {name} minus probe_topk "
                f"{vs['mean']:+.2f} ({vs['low']:+.2f}..{vs['high']:+.2f}): "
                + ("below, the interval excludes 0." if goals["below_probe_topk"] else
                   "lower, but the interval reaches 0." if goals["below_probe_topk_point"] else "not below."))
    return "\n".join(lines)


def svg(arch: str, res: dict, fractions: list[float], policies: list[str]) -> str:
    """Regret (scoring B) against the budget fraction, log x axis, one line per policy with its 95% interval as
    whiskers, and the every-cell regret as a dashed line."""
    w, h, left, right, top, bottom = 560, 340, 60, 190, 30, 50
    xs = np.log(fractions)
    vals = [res["policies"][p][f"{f:g}"][k] for p in policies for f in fractions for k in ("low", "high")]
    ymax = max(max(vals), res["full"]["high"], 0.5) * 1.05

    def px(x: float) -> float:
        return left + (x - xs[0]) / (xs[-1] - xs[0]) * (w - left - right)

    def py(y: float) -> float:
        return top + (1 - y / ymax) * (h - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
           f'font-size="11">', f'<text x="{left}" y="18" font-size="13">{arch}: top-1 regret vs budget</text>',
           f'<line x1="{left}" y1="{py(0)}" x2="{w - right}" y2="{py(0)}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{py(0)}" stroke="black"/>']
    step = 0.5 if ymax <= 3 else 1.0
    for k in range(int(ymax / step) + 1):
        y = k * step
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    for f, x in zip(fractions, xs):
        out.append(f'<text x="{px(x):.1f}" y="{py(0) + 16:.1f}" text-anchor="middle">{f:.0%}</text>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 10}" text-anchor="middle">budget (share of the '
               f'selection half\'s cells, log scale)</text>')
    out.append(f'<text x="14" y="{(top + h - bottom) / 2}" transform="rotate(-90 14 {(top + h - bottom) / 2})" '
               f'text-anchor="middle">regret, points</text>')
    fy = py(res["full"]["regret"])
    out.append(f'<line x1="{left}" y1="{fy:.1f}" x2="{w - right}" y2="{fy:.1f}" stroke="black" '
               f'stroke-dasharray="4 3"/>')
    for n, p in enumerate(policies):
        c = COLORS.get(p, "black")
        pts = [(px(x), res["policies"][p][f"{f:g}"]) for f, x in zip(fractions, xs)]
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="'
                   + " ".join(f"{x:.1f},{py(m['regret']):.1f}" for x, m in pts) + '"/>')
        for x, m in pts:
            out.append(f'<line x1="{x:.1f}" y1="{py(m["low"]):.1f}" x2="{x:.1f}" y2="{py(m["high"]):.1f}" '
                       f'stroke="{c}"/><circle cx="{x:.1f}" cy="{py(m["regret"]):.1f}" r="3" fill="{c}"/>')
        ly = top + 10 + 18 * n
        out.append(f'<line x1="{w - right + 12}" y1="{ly}" x2="{w - right + 32}" y2="{ly}" stroke="{c}" '
                   f'stroke-width="2"/><text x="{w - right + 36}" y="{ly + 4}">{LABELS.get(p, p)}</text>')
    ly = top + 10 + 18 * len(policies)
    out.append(f'<line x1="{w - right + 12}" y1="{ly}" x2="{w - right + 32}" y2="{ly}" stroke="black" '
               f'stroke-dasharray="4 3"/><text x="{w - right + 36}" y="{ly + 4}">every cell</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def svg_name(arch: str) -> str:
    return "budgeted_ranking_" + "".join(c if c.isalnum() else "_" for c in arch) + ".svg"


def runtime(results: dict) -> str:
    """How long the run took, as measured by the script (the machine's other load included)."""
    return (f"Runtime of the run quoted here: {results['seconds_total']:.0f} s in all, "
            f"{results['seconds_build']:.0f} s building the warehouse and {results['seconds_replay']:.0f} s "
            f"replaying {results['splits']} splits per architecture (2 cores shared with other work).")


def figures(results: dict) -> str:
    return "\n".join(f"![{a}: top-1 regret against budget]({svg_name(a)})" for a in results["architectures"])


def write_docs(results: dict, docs: Path = DOCS) -> None:
    """The SVGs next to docs/budgeted_ranking.md and its tables between the budget markers."""
    for arch, res in results["architectures"].items():
        (docs.parent / svg_name(arch)).write_text(svg(arch, res, results["fractions"], results["policies"]))
    text = docs.read_text()
    for tag, body in (("figures", figures(results)), ("regret", markdown(results)),
                      ("paired", paired_markdown(results)), ("reading", reading(results)),
                      ("garbled", garbled_markdown(results)),
                      ("runtime", runtime(results))):
        start, end = f"<!-- budget:{tag} -->", f"<!-- /budget:{tag} -->"
        head, rest = text.split(start, 1)
        text = head + start + "\n" + body + "\n" + end + rest.split(end, 1)[1]
    docs.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--published", metavar="DIR",
                        help="a folder in the model-recycling format: build its warehouse first (the published job "
                             "in a temporary home) and replay that instead of $STARTPOINT_HOME's")
    parser.add_argument("--out", metavar="FILE", default=str(ROOT / "benchmarks" / "results" /
                                                             "budgeted_ranking.json"))
    parser.add_argument("--splits", type=int, default=50, help="target half splits per architecture")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-docs", action="store_true",
                        help="write the SVGs and the tables of docs/budgeted_ranking.md")
    args = parser.parse_args(argv)
    started = time.time()
    warehouse = build_published_warehouse(args.published) if args.published else get_settings().warehouse_path
    built = time.time() - started
    results = run(warehouse, args.splits, args.seed)
    if not results["architectures"]:
        print("no published architectures in the warehouse: run `make run` or the `published` job first",
              file=sys.stderr)
        return 2
    results["seconds_build"] = round(built, 1)
    results["seconds_total"] = round(time.time() - started, 1)
    print(render(results))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out} in {results['seconds_total']:.0f}s", file=sys.stderr)
    if args.write_docs:
        write_docs(results)
    return 0


def render(results: dict) -> str:
    return markdown(results) + "\n\n" + paired_markdown(results) + "\n\n" + reading(results)


if __name__ == "__main__":
    sys.exit(main())
