"""Which ordering rule earns its place: strict, nested held-out regret of the product's ranking and simpler rules.

Protocol, per architecture of a warehouse built from published results (`make run`, or the `published` job):
- Split the targets at random into a selection half and an evaluation half (`--splits` times). On the selection
  half only (strict): the integrity flags (the product's `model_flags` rule, recomputed on those columns), the
  kept cells (not collapsed) and every rule's scores (benchmarks/ranking_rules.py: plain mean, median, Huber,
  z-clipped mean, two-way precision-weighted, and the product's winsorized two-way shrinkage at several clips).
  Each rule also scores the pretrained model ("stay", gain 0 on every target), so a pick can be "stay".
- Held-out value of a pick: its mean gain over its kept cells of the evaluation half; "stay" is worth 0. A row is
  garbled on the evaluation half when the Spearman correlation of its scores there with the pretrained model's
  seed means is below 0.7 (an independent rule: ranks against another reference, not the product's flags). The
  oracle is max(0, the best held-out value among the rows that are not garbled): never the product's flags.
  Scoring A (held-out gain): regret = max(0, oracle - the pick's held-out value), a garbled pick taken at face
  value (one whose shifted values beat the oracle counts 0). Scoring B (integrity): a garbled pick is a failure
  worth 0, so its regret is the oracle.
  Top-1 = the first row; top-3 = the best of the first three rows (the paper's "try the top few").
- Intervals: percentile bootstrap over the splits (2,000 resamples) of the mean regret, and of paired differences
  between rules on the same splits; a regret is never negative, so neither is its interval. The splits share
  targets, so these intervals describe the split-to-split variation on these targets, not a new set of targets.
- Nested choice: for each architecture, the rule is chosen on the OTHER architectures, then reported on this one
  (`choose`: the simplest rule not worse than any other in top-1 regret, scoring B, on any choosing architecture;
  else the smallest worst-case excess regret). Scoring B decides because scoring A rewards picking a garbled row
  whose shifted values look like gains on the evaluation half too; both are reported. The rule the product ships
  is the same criterion over all the architectures (`shipped` in the results file).
Usage: python benchmarks/heldout_ranking.py [--splits 200] [--seed 0] [--write-docs] [--published DIR] [--out FILE]
Writes benchmarks/results/heldout_ranking.json (or FILE). With --published DIR it first builds DIR's warehouse in a
temporary home, so it runs unchanged on any folder in the model-recycling format.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import ranking_rules  # noqa: E402
from benchmarks.published_home import build_published_warehouse  # noqa: E402
from benchmarks.results_file import write_results  # noqa: E402
from startpoint.settings import get_settings  # noqa: E402
from startpoint.tables import markdown_table  # noqa: E402
from startpoint.warehouse.load import connect  # noqa: E402

INTEGRITY_RHO = 0.7  # the independent rule: Spearman with the pretrained seed means on the evaluation half
PROFILE_R = 0.8  # the product's model_flags rule (sql/models/model_flags.sql), recomputed per selection half
MIN_FLAG_TARGETS = ranking_rules.dbt_var("integrity_min_targets")  # model_flags judges a row on this many
BOOT = 2000
METRICS = ("top1_A", "top1_B", "top3_A", "top3_B")


def load(con, arch: str) -> dict:
    """The architecture's matrices: gains, scores, collapsed cells (models x targets) and pretrained seed means."""
    rows = con.execute("select model_id, dataset_id, gain, score_mean, collapsed from gains where architecture = ?",
                       [arch]).fetchall()
    models = sorted({r[0] for r in rows})
    targets = sorted({r[1] for r in rows})
    mi, ti = {m: i for i, m in enumerate(models)}, {t: i for i, t in enumerate(targets)}
    gain = np.full((len(models), len(targets)), np.nan)
    score = gain.copy()
    collapsed = np.zeros(gain.shape, bool)
    for m, t, g, s, c in rows:
        gain[mi[m], ti[t]], score[mi[m], ti[t]], collapsed[mi[m], ti[t]] = g, s, bool(c)
    seeds = dict(con.execute(
        """select r.dataset_id, avg(r.score) from finetune_runs r join hub_models h using (architecture, model_id)
           where h.role = 'pretrained' and r.architecture = ? and r.status = 'ok' group by 1""", [arch]).fetchall())
    return {"models": models, "targets": targets, "gain": gain, "score": score, "collapsed": collapsed,
            "seed_means": np.array([seeds.get(t, np.nan) for t in targets])}


def _row_pearson(x: np.ndarray, y: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Pearson r of each row of x with the row(s) y over that row's `ok` cells (NaN where a row is constant)."""
    n = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = np.where(ok, x - np.where(ok, x, 0).sum(axis=1, keepdims=True) / n[:, None], 0.0)
        dy = np.where(ok, y - np.where(ok, y, 0).sum(axis=1, keepdims=True) / n[:, None], 0.0)
        return (dx * dy).sum(axis=1) / np.sqrt((dx * dx).sum(axis=1) * (dy * dy).sum(axis=1))


def flagged(score: np.ndarray) -> np.ndarray:
    """The product's integrity flags (model_flags) computed on the given columns only (rows at once: the budgeted
    replay calls this thousands of times)."""
    profile = ranking_rules.column_nanmedian(score)
    profile_sd = float(np.std(profile[~np.isnan(profile)], ddof=1))
    ok = ~np.isnan(score)
    profiles = np.broadcast_to(profile, score.shape)
    r = _row_pearson(score, profiles, ok)
    worst = np.max(np.where(ok, score - profiles, -np.inf), axis=1, initial=-np.inf)
    with np.errstate(invalid="ignore"):
        return (ok.sum(axis=1) >= MIN_FLAG_TARGETS) & (r < PROFILE_R) & (worst > profile_sd)


def garbled(score: np.ndarray, seed_means: np.ndarray) -> np.ndarray:
    """The independent integrity rule: Spearman rho with the pretrained seed means below INTEGRITY_RHO. Rows
    with every cell where the seed means exist are ranked at once; the others one by one."""
    out = np.zeros(len(score), bool)
    valid = ~np.isnan(seed_means)
    complete = ~np.isnan(score[:, valid]).any(axis=1)
    if valid.sum() >= 3 and complete.any():
        ranks = stats.rankdata(score[complete][:, valid], axis=1)
        ref = np.broadcast_to(stats.rankdata(seed_means[valid]), ranks.shape)
        rho = _row_pearson(ranks, ref, np.ones(ranks.shape, bool))
        with np.errstate(invalid="ignore"):
            out[complete] = np.isnan(rho) | (rho < INTEGRITY_RHO)
    for i in np.flatnonzero(~complete):
        row = score[i]
        ok = ~np.isnan(row) & valid
        if ok.sum() >= 3:
            rho = stats.spearmanr(row[ok], seed_means[ok])[0]
            out[i] = bool(np.isnan(rho) or rho < INTEGRITY_RHO)
    return out


def rule_scores(kept: np.ndarray) -> dict[str, np.ndarray]:
    """Every rule's scores for the pool rows plus the pretrained zero row (last)."""
    out = {name: fn(kept) for name, fn in ranking_rules.RULES.items()}
    for clip in ranking_rules.PRODUCT_CLIPS:
        out[f"product_clip{clip:g}"] = ranking_rules.product_rule(kept, clip)[0]
    return out


def halves(n_targets: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """One random split of the target columns: (selection half, evaluation half)."""
    perm = rng.permutation(n_targets)
    return perm[: n_targets // 2], perm[n_targets // 2:]


def judge(data: dict, held: np.ndarray) -> dict:
    """What a pick is worth on the evaluation half (index -1: "stay", worth 0): held-out mean gain over kept cells
    (scoring A), a garbled row worth 0 (scoring B), which rows are garbled, and the oracle (the best row that is not
    garbled, or 0)."""
    kept_all = np.where(data["collapsed"], np.nan, data["gain"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        held_value = np.append(np.nanmean(kept_all[:, held], axis=1), 0.0)
    bad = np.append(garbled(data["score"][:, held], data["seed_means"][held]), False)
    value_a = np.nan_to_num(held_value, nan=-np.inf)
    value_b = np.where(bad, 0.0, value_a)
    oracle = max(0.0, float(np.max(np.where(bad[:-1], -np.inf, value_a[:-1]))))
    return {"value_a": value_a, "value_b": value_b, "bad": bad, "oracle": oracle}


def product_pool(kept: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows the product ranks from these columns (NaN: no cell): not flagged by its integrity rule and with a
    kept cell. Returns the pool mask, the row positions of the ranking (the pool, then -1 for "stay") and each
    ranked row's raw mean gain (the tie-breaker)."""
    pool = ~flagged(score) & ~np.isnan(kept).all(axis=1)
    rows = np.append(np.where(pool)[0], -1)  # -1: the pretrained model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sel_mean = np.nanmean(np.vstack([kept[pool], np.zeros(kept.shape[1])]), axis=1)
    return pool, rows, sel_mean


def evaluate(data: dict, splits: int, rng) -> dict[str, dict[str, np.ndarray]]:
    """Per rule, per metric: the regret of each split."""
    gain, score, collapsed = data["gain"], data["score"], data["collapsed"]
    kept_all = np.where(collapsed, np.nan, gain)
    n_targets = gain.shape[1]
    out: dict[str, dict[str, list]] = {}
    for _ in range(splits):
        sel, held = halves(n_targets, rng)
        kept = kept_all[:, sel]
        pool, rows, sel_mean = product_pool(kept, score[:, sel])
        j = judge(data, held)
        value_a, value_b, bad, oracle = j["value_a"], j["value_b"], j["bad"], j["oracle"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            scores = rule_scores(kept[pool])
        for name, s in scores.items():
            picks = rows[ranking_rules.order(s, sel_mean)[:3]]
            res = out.setdefault(name, {m: [] for m in (*METRICS, "garbled_top1")})
            res["top1_A"].append(max(0.0, oracle - value_a[picks[0]]))
            res["top1_B"].append(oracle - value_b[picks[0]])
            res["top3_A"].append(max(0.0, oracle - max(value_a[p] for p in picks)))
            res["top3_B"].append(oracle - max(value_b[p] for p in picks))
            res["garbled_top1"].append(float(bad[picks[0]]))
    return {name: {m: np.array(v, float) for m, v in res.items()} for name, res in out.items()}


def interval(x: np.ndarray, rng) -> dict:
    means = x[rng.integers(0, len(x), (BOOT, len(x)))].mean(axis=1)
    return {"mean": float(x.mean()), "low": float(np.quantile(means, 0.025)),
            "high": float(np.quantile(means, 0.975))}


def simplicity(names: list[str]) -> list[str]:
    """Rules simplest first: the plain rules in the order of RULES, then the product's rule from the widest clip (the
    least winsorizing, closest to the plain mean) to the narrowest."""
    plain = [n for n in ranking_rules.RULES if n in names]
    product = sorted((n for n in names if n.startswith("product_clip")),
                     key=lambda n: -float(n.removeprefix("product_clip")))
    return plain + product


def choose(per_arch: dict, archs: list[str], rng) -> tuple[str, str, dict]:
    """The rule to ship from the evidence on `archs`, how it was decided, and why simpler rules were not.

    1. The simplest rule whose top-1 regret (scoring B) is not worse than any other rule's on any of `archs`: the
       paired bootstrap interval of the difference reaches 0 or below.
    2. If no rule qualifies: the rule with the smallest worst-case excess regret, max over `archs` of its top-1
       regret (scoring B) minus the best rule's on that architecture."""
    names = simplicity(list(next(iter(per_arch.values()))))
    verdict = {}
    for name in names:
        worse = []
        for other in names:
            for a in archs:
                d = interval(per_arch[a][name]["top1_B"] - per_arch[a][other]["top1_B"], rng)
                if d["low"] > 0:
                    worse.append(f"{other} on {a}: {d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]")
        verdict[name] = worse
        if not worse:
            return name, "simplest not worse than any other", verdict
    best = {a: min(per_arch[a][n]["top1_B"].mean() for n in names) for a in archs}
    excess = {n: max(per_arch[a][n]["top1_B"].mean() - best[a] for a in archs) for n in names}
    return min(names, key=lambda n: excess[n]), "smallest worst-case excess regret (no rule was never worse)", verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=200, help="half splits per architecture")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-docs", action="store_true", help="render the tables into docs/ranking.md")
    parser.add_argument("--published", metavar="DIR",
                        help="a folder in the model-recycling format: build its warehouse first (the published job "
                             "in a temporary home) and evaluate that instead of $STARTPOINT_HOME's")
    parser.add_argument("--out", metavar="FILE", help="write the results here instead of benchmarks/results/")
    args = parser.parse_args()

    warehouse = build_published_warehouse(args.published) if args.published else get_settings().warehouse_path
    con = connect(warehouse, read_only=True)
    archs = [r[0] for r in con.execute(
        """select distinct g.architecture from gains g join datasets d using (dataset_id)
           where d.source = 'published' order by 1""").fetchall()]
    if not archs:
        print("no published architectures in the warehouse: run `make run` or the `published` job first",
              file=sys.stderr)
        return 2
    data = {a: load(con, a) for a in archs}
    con.close()
    rng = np.random.default_rng(args.seed)
    per_arch = {a: evaluate(data[a], args.splits, rng) for a in archs}

    boot_rng = np.random.default_rng(args.seed + 1)
    results: dict = {"splits": args.splits, "seed": args.seed, "integrity_rho": INTEGRITY_RHO,
                     "rules": list(per_arch[archs[0]]), "architectures": {}}
    for a in archs:
        others = [o for o in archs if o != a] or [a]
        nested, how, verdict = choose(per_arch, others, boot_rng)
        rules = {n: {m: interval(v[m], boot_rng) for m in (*METRICS, "garbled_top1")}
                 for n, v in per_arch[a].items()}
        paired = {n: {m: interval(per_arch[a][nested][m] - v[m], boot_rng) for m in METRICS}
                  for n, v in per_arch[a].items() if n != nested}
        results["architectures"][a] = {
            "n_models": len(data[a]["models"]), "n_targets": len(data[a]["targets"]), "chosen_on": others,
            "nested": nested, "nested_decided_by": how,
            "not_chosen_because": {k: v for k, v in verdict.items() if v},
            "lowest_top1_A": min(rules, key=lambda n: rules[n]["top1_A"]["mean"]),
            "lowest_top1_B": min(rules, key=lambda n: rules[n]["top1_B"]["mean"]),
            "rules": rules, "paired_nested_minus": paired}
    shipped, how, verdict = choose(per_arch, archs, boot_rng)
    results["shipped"] = shipped
    results["shipped_decided_by"] = how
    results["shipped_not_chosen_because"] = {k: v for k, v in verdict.items() if v}
    print(render(results))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}")
    else:
        write_results("heldout_ranking", results)
    if args.write_docs:
        write_docs(results)
    return 0


LABELS = {"mean": "plain mean", "median": "median", "huber": "Huber M-estimate", "zclip": "z-clipped mean",
          "twoway_precision": "two-way, precision-weighted"}


def label(name: str) -> str:
    return LABELS.get(name) or f"winsorized shrinkage, clip {name.removeprefix('product_clip')}"


def _cell(m: dict) -> str:
    return f"{m['mean']:.2f} ({m['low']:.2f}..{m['high']:.2f})"


def markdown(results: dict) -> str:
    """Per architecture and rule: top-1 and top-3 regret in both scorings, and how often the top-1 was garbled."""
    rows = []
    for arch, res in results["architectures"].items():
        for name, m in res["rules"].items():
            mark = " (nested choice)" if name == res["nested"] else ""
            rows.append((arch, label(name) + mark, _cell(m["top1_A"]), _cell(m["top1_B"]), _cell(m["top3_A"]),
                         _cell(m["top3_B"]), f"{m['garbled_top1']['mean']:.2f}"))
    return markdown_table(["architecture", "rule", "top-1, A", "top-1, B", "top-3, A", "top-3, B",
                           "top-1 garbled"], rows, align="llrrrrr")


def paired_markdown(results: dict) -> str:
    """The nested choice minus each other rule, top-1 regret, both scorings (negative: the choice loses less)."""
    rows = []
    for arch, res in results["architectures"].items():
        for name, d in res["paired_nested_minus"].items():
            rows.append((arch, f"{label(res['nested'])} − {label(name)}",
                         f"{d['top1_A']['mean']:+.2f} ({d['top1_A']['low']:+.2f}..{d['top1_A']['high']:+.2f})",
                         f"{d['top1_B']['mean']:+.2f} ({d['top1_B']['low']:+.2f}..{d['top1_B']['high']:+.2f})"))
    return markdown_table(["architecture", "paired difference", "top-1, A", "top-1, B"], rows, align="llrr")


def _verdicts(res: dict, metric: str) -> tuple[list[str], list[str]]:
    """Rules the nested choice beats / loses to on `metric` (paired interval excluding 0)."""
    beats = [label(n) for n, d in res["paired_nested_minus"].items() if d[metric]["high"] < 0]
    loses = [label(n) for n, d in res["paired_nested_minus"].items() if d[metric]["low"] > 0]
    return beats, loses


def reading(results: dict) -> str:
    """What the tables say, per architecture, written from the results file (so the docs' words follow its numbers)."""
    lines = [f"The product ships **{label(results['shipped'])}** (chosen on all {len(results['architectures'])} "
             f"architectures by: {results['shipped_decided_by']})."]
    for arch, res in results["architectures"].items():
        b_beats, b_loses = _verdicts(res, "top1_B")
        a_beats, a_loses = _verdicts(res, "top1_A")
        nested = res["rules"][res["nested"]]
        lines.append(
            f"- {arch}: chosen on {', '.join(res['chosen_on'])}: {label(res['nested'])} "
            f"({res['nested_decided_by']}); top-1 regret {nested['top1_B']['mean']:.2f} (B) and "
            f"{nested['top1_A']['mean']:.2f} (A), top-1 garbled in {nested['garbled_top1']['mean']:.0%} of splits. "
            f"Scoring B: lower than {', '.join(b_beats) or 'no other rule'}"
            f"{'; higher than ' + ', '.join(b_loses) if b_loses else ''}. "
            f"Scoring A: lower than {', '.join(a_beats) or 'no other rule'}"
            f"{'; higher than ' + ', '.join(a_loses) if a_loses else ''}. "
            f"Lowest top-1 regret: {label(res['lowest_top1_B'])} (B), {label(res['lowest_top1_A'])} (A).")
    return "\n".join(lines)


def render(results: dict) -> str:
    return markdown(results) + "\n\n" + paired_markdown(results) + "\n\n" + reading(results)


def write_docs(results: dict) -> None:
    """Replace the tables between the benchmark's markers in docs/ranking.md."""
    path = ROOT / "docs" / "ranking.md"
    text = path.read_text()
    for tag, table in (("regret", markdown(results)), ("paired", paired_markdown(results)),
                       ("reading", reading(results))):
        start, end = f"<!-- heldout:{tag} -->", f"<!-- /heldout:{tag} -->"
        head, rest = text.split(start, 1)
        text = head + start + "\n" + table + "\n" + end + rest.split(end, 1)[1]
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
