"""Are the intervals of `startpoint recommend` honest? Leave each known target out and rebuild the warehouse
without it by running the PRODUCTION SQL (every dbt model upstream of `leaderboard` and `target_effects`,
compiled, on a copy of `finetune_runs` without the held-out target: benchmarks/production_sql.py). The evidence
then goes through the production path unchanged: `read_frames` on the rebuilt tables, `build_evidence` (which
estimates its conformal scales from the remaining targets only: nested, the held-out target never informs its own
widening), `predict_target_effect` with what a user's file tells (train size, labels, majority share),
`predict_candidates`. Coverage of the 95% intervals is counted against what the full warehouse measured:

- the target's sensitivity (its mean gain over the candidates' kept cells);
- every ranked candidate's gain on it, kept cells (and the top 10's).

Each coverage comes with a target-cluster bootstrap 95% interval (resample the held-out targets with
replacement, recompute the coverage). Coverage is also reported per held-out target (every target, every
architecture) and summarized as the lowest target's coverage and the number of targets (with at least 20
candidates) below 0.85. The candidate-scale rules of RULES are compared on the same folds: the shipped per-target
rule, per-target rules at lower conformal levels, the previous pooled per-cell rule and no scaling at all.
Reads the warehouse in $STARTPOINT_HOME (run the `published` job first). Architectures are independent: runs
with --architecture A --out NAME give the same per-architecture results as one run.

    .venv/bin/python benchmarks/recommend_calibration.py [--top 10] [--resamples 2000] [--seed 0]
Prints coverage per architecture beside the nominal 0.95; writes benchmarks/results/recommend_calibration.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.production_sql import ModelChain, published_architectures  # noqa: E402
from benchmarks.results_file import write_results  # noqa: E402
from startpoint.recommend.predict import (  # noqa: E402
    COVERAGE,
    TOP_BAND,
    USER_FEATURES,
    conformal_scale,
    EvidenceFrames,
    build_evidence,
    predict_candidates,
    predict_target_effect,
    read_frames,
)

CHAIN_TARGETS = ("leaderboard", "target_effects")
MIN_CANDIDATES = 20  # per-target coverage is judged on targets with at least this many candidates
FLOOR = 0.85
SOURCE = "finetune_runs"


def production_chain() -> ModelChain:
    """The compiled production SQL of every model the evidence reads (compiled against $STARTPOINT_HOME)."""
    return ModelChain(CHAIN_TARGETS)


def loto_frames(con, chain: ModelChain, architecture: str, held: str | None) -> EvidenceFrames:
    """The evidence frames of `architecture` as the warehouse would hold them without target `held` (None: with
    every target): the production SQL rebuilt on `finetune_runs` minus that target, read by `read_frames`."""
    con.execute(
        f"create or replace temp table loto_{SOURCE} as select * from {SOURCE} "
        "where architecture = ? and dataset_id is distinct from ?", [architecture, held])
    tables = chain.build(con, {SOURCE: f"loto_{SOURCE}"}, prefix="loto_")
    return read_frames(con, architecture, relations={t: tables[t] for t in ("leaderboard", "target_effects", "gains")})


# The rules compared, nested: the shipped one (per-target scales, the largest over the known targets), per-target
# scales at lower conformal levels, the previous pooled per-cell 95% scale, and no scaling at all.
RULES = {
    "per_target_max": "per target, every known target (shipped)",
    "per_target_0.95": "per target, conformal level 0.95",
    "per_target_0.90": "per target, conformal level 0.90",
    "pooled_cells": "pooled cells, 95% (previous)",
    "uncalibrated": "uncalibrated",
}
SHIPPED = "per_target_max"


def rule_evidence(ev, rule: str):
    """The calibrated evidence with the candidate scales of `rule` (the sensitivity scale is the same for all)."""
    from dataclasses import replace

    if rule == SHIPPED or not ev.calibrated:
        return ev
    if rule == "uncalibrated":
        return replace(ev, sensitivity_scale=1.0, top_candidate_scale=1.0, candidate_scale=1.0)
    cal = ev.calibration
    if rule == "pooled_cells":
        scales = cal["pooled_scales"]
    else:
        level = float(rule.rsplit("_", 1)[1])
        scales = {band: conformal_scale(np.array(v), level) if v else 1.0
                  for band, v in cal["per_target_scores"].items()}
    return replace(ev, top_candidate_scale=scales["top"], candidate_scale=scales["rest"])


def evaluate(con, chain: ModelChain, architecture: str, top: int = 10) -> pd.DataFrame:
    """One row per held-out target: sensitivity hit, and per rule the candidate hits (all ranked, top `top`),
    errors and scales. Everything a rule uses comes from the remaining targets (nested)."""
    full = read_frames(con, architecture)
    truth = full.gains.to_pandas().set_index(["dataset_id", "model_id"])["gain"]
    rows = []
    for target in full.targets.iter_rows(named=True):
        held = target["dataset_id"]
        frames = loto_frames(con, chain, architecture, held)
        actual = truth.xs(held, level="dataset_id") if held in truth.index.get_level_values(0) else pd.Series(dtype=float)
        features = {k: target[k] for k in USER_FEATURES}
        calibrated = build_evidence(frames)
        row = {"dataset_id": held}
        # The shipped rule and the uncalibrated path go through predict_candidates; the other rules differ from the
        # shipped one only by the candidate scale, which multiplies the draws' spread around the expected gain, so
        # their interval ends are the shipped ones rescaled (exactly: quantiles are equivariant under scaling).
        predicted = {}
        for rule in (SHIPPED, "uncalibrated"):
            ev = rule_evidence(calibrated, rule)
            sens = predict_target_effect(ev, features)
            label = "" if rule == SHIPPED else f"{rule}:"
            row[f"{label}sens_hit"] = bool(sens.low <= target["mean_gain"] <= sens.high)
            row[f"{label}sens_width"] = sens.high - sens.low
            predicted[rule] = [(p.rank, p.model_id, p.expected_gain, p.low, p.high) for p in predict_candidates(ev, sens)]
        for rule in RULES:
            if rule in predicted:
                preds = predicted[rule]
            else:
                ev = rule_evidence(calibrated, rule)
                preds = []
                for i, (rank, model_id, expected, low, high) in enumerate(predicted[SHIPPED]):
                    old, new = ((calibrated.top_candidate_scale, ev.top_candidate_scale) if i < TOP_BAND
                                else (calibrated.candidate_scale, ev.candidate_scale))
                    k = new / old
                    preds.append((rank, model_id, expected, expected + k * (low - expected),
                                  expected + k * (high - expected)))
            label = "" if rule == SHIPPED else f"{rule}:"
            hits = total = top_hits = top_total = 0
            abs_err, widths = [], []
            for rank, model_id, expected, low, high in preds:
                if model_id not in actual.index or pd.isna(actual[model_id]):
                    continue
                y = float(actual[model_id])
                hit = low <= y <= high
                hits += hit
                total += 1
                widths.append(high - low)
                if rank <= top:
                    top_hits += hit
                    top_total += 1
                    abs_err.append(abs(y - expected))
            row |= {f"{label}cand_hits": hits, f"{label}cand_total": total, f"{label}top_hits": top_hits,
                    f"{label}top_total": top_total, f"{label}top_abs_err": float(np.sum(abs_err)),
                    f"{label}width_sum": float(np.sum(widths))}
        row |= {"sensitivity_scale": calibrated.sensitivity_scale,
                "top_candidate_scale": calibrated.top_candidate_scale, "candidate_scale": calibrated.candidate_scale}
        rows.append(row)
    return pd.DataFrame(rows)


def coverages(per_target: pd.DataFrame, label: str = "") -> dict[str, float]:
    out = {
        "candidate_coverage": float(per_target[f"{label}cand_hits"].sum() / per_target[f"{label}cand_total"].sum()),
        "top_coverage": float(per_target[f"{label}top_hits"].sum() / per_target[f"{label}top_total"].sum()),
    }
    if f"{label}sens_hit" in per_target:
        out["sensitivity_coverage"] = float(per_target[f"{label}sens_hit"].mean())
    return out


def per_target_summary(per_target: pd.DataFrame, label: str = "") -> dict:
    """Coverage of each held-out target's candidates, over the targets with at least MIN_CANDIDATES of them."""
    eligible = per_target[per_target[f"{label}cand_total"] >= MIN_CANDIDATES]
    cov = eligible[f"{label}cand_hits"] / eligible[f"{label}cand_total"]
    worst = eligible.loc[cov.idxmin()] if len(cov) else None
    return {"eligible_targets": int(len(eligible)),
            "min_target_coverage": float(cov.min()) if len(cov) else None,
            "min_target": None if worst is None else str(worst["dataset_id"]),
            "targets_below_floor": int((cov < FLOOR).sum()),
            "mean_interval_width": float(per_target[f"{label}width_sum"].sum() / per_target[f"{label}cand_total"].sum())}


def bootstrap(per_target: pd.DataFrame, resamples: int, seed: int, label: str = "") -> dict[str, list[float]]:
    """Target-cluster bootstrap: resample held-out targets with replacement, recompute each coverage; 2.5% and
    97.5% percentiles."""
    rng = np.random.default_rng(seed)
    n = len(per_target)
    draws = [coverages(per_target.iloc[rng.integers(0, n, n)], label) for _ in range(resamples)]
    return {f"{k}_ci": [float(np.percentile([d[k] for d in draws], 2.5)),
                        float(np.percentile([d[k] for d in draws], 97.5))] for k in draws[0]}


def summarize(per_target: pd.DataFrame, resamples: int, seed: int) -> dict:
    out = {"targets": int(len(per_target)), "candidate_predictions": int(per_target["cand_total"].sum()),
           "top_predictions": int(per_target["top_total"].sum())}
    out |= coverages(per_target)
    out |= bootstrap(per_target, resamples, seed)
    out |= per_target_summary(per_target)
    out["top_mean_abs_error"] = float(per_target["top_abs_err"].sum() / per_target["top_total"].sum())
    out["sensitivity_interval_width"] = float(per_target["sens_width"].mean())
    for scale in ("sensitivity_scale", "top_candidate_scale", "candidate_scale"):
        values = per_target[scale]
        out[scale] = {"median": float(values.median()), "min": float(values.min()), "max": float(values.max())}
    out["rules"] = {rule: coverages(per_target, "" if rule == SHIPPED else f"{rule}:")
                    | per_target_summary(per_target, "" if rule == SHIPPED else f"{rule}:") for rule in RULES}
    out["uncalibrated"] = coverages(per_target, "uncalibrated:") | bootstrap(per_target, resamples, seed, "uncalibrated:")
    records = []
    for r in per_target.to_dict("records"):
        rec = {"dataset_id": r["dataset_id"], "sens_hit": bool(r["sens_hit"]), "cand_hits": int(r["cand_hits"]),
               "cand_total": int(r["cand_total"]), "top_hits": int(r["top_hits"]), "top_total": int(r["top_total"]),
               "coverage": r["cand_hits"] / r["cand_total"] if r["cand_total"] else None}
        for rule in RULES:
            if rule != SHIPPED:
                rec[f"{rule}_coverage"] = r[f"{rule}:cand_hits"] / r[f"{rule}:cand_total"] if r[f"{rule}:cand_total"] else None
        records.append(rec)
    out["per_target"] = records
    return out


def calibration_table(results: dict) -> str:
    """The markdown table docs/recommend.md quotes (tests/test_recommend_calibration.py compares the two)."""
    from startpoint.tables import markdown_table

    def cov(d: dict, key: str) -> str:
        lo, hi = d[f"{key}_ci"]
        return f"{d[key]:.2f} [{lo:.2f}, {hi:.2f}]"

    top = results["top"]
    rows = [(arch, r["targets"], r["candidate_predictions"], cov(r, "sensitivity_coverage"),
             cov(r, "candidate_coverage"), cov(r, "top_coverage"),
             f"{r['min_target_coverage']:.2f} ({r['min_target']})", f"{r['targets_below_floor']} of {r['eligible_targets']}",
             f"{r['uncalibrated']['sensitivity_coverage']:.2f} / {r['uncalibrated']['candidate_coverage']:.2f}",
             f"{r['top_mean_abs_error']:.2f}",
             " / ".join(f"{r[k]['median']:.2f}" for k in ("sensitivity_scale", "top_candidate_scale", "candidate_scale")))
            for arch, r in results["architectures"].items()]
    return markdown_table(["architecture", "targets", "candidate gains", "sensitivity covered [95% CI]",
                           "all ranked covered [95% CI]", f"top-{top} covered [95% CI]",
                           "lowest target's coverage", f"targets below {FLOOR:.2f}",
                           "uncalibrated: sensitivity / all ranked", f"top-{top} mean abs. error (points)",
                           f"conformal scales: sensitivity / top-{top} / rest (median over folds)"], rows)


def rules_table(results: dict) -> str:
    """Per rule and architecture: overall coverage, lowest target's coverage, targets below the floor, mean width."""
    from startpoint.tables import markdown_table

    rows = []
    for rule, name in RULES.items():
        cells = []
        for r in results["architectures"].values():
            x = r["rules"][rule]
            cells.append(f"{x['candidate_coverage']:.3f} / {x['min_target_coverage']:.2f} / "
                         f"{x['targets_below_floor']} / {x['mean_interval_width']:.1f}")
        rows.append((name, *cells))
    return markdown_table(["rule (overall / lowest target / targets below 0.85 / mean width, points)",
                           *results["architectures"]], rows)


def per_target_table(results: dict) -> str:
    """Every held-out target's coverage of its candidates' gains, per architecture (shipped rule, and the previous
    pooled rule in brackets)."""
    from startpoint.tables import markdown_table

    archs = list(results["architectures"])
    by = {a: {t["dataset_id"]: t for t in results["architectures"][a]["per_target"]} for a in archs}
    datasets = sorted(set().union(*[set(v) for v in by.values()]))

    def cell(t):
        if t is None or t["coverage"] is None:
            return ""
        return f"{t['coverage']:.2f} ({t['pooled_cells_coverage']:.2f})"

    rows = [(d, *[cell(by[a].get(d)) for a in archs]) for d in datasets]
    return markdown_table(["target", *archs], rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--architecture", action="append", help="only these (default: every published one)")
    parser.add_argument("--out", default="recommend_calibration", help="results file name under benchmarks/results")
    args = parser.parse_args()

    from startpoint.settings import get_settings
    from startpoint.warehouse.load import connect

    chain = production_chain()
    con = connect(get_settings().warehouse_path, read_only=True)
    con.execute("set threads = 1")  # one summation order: the rebuilt tables (and ranks near ties) are reproducible
    archs = [a for a in published_architectures(con) if not args.architecture or a in args.architecture]
    if not archs:
        print("no published architectures in the warehouse: run the `published` job first", file=sys.stderr)
        return 2
    results = {}
    print(f"{'architecture':<18} {'targets':>7} {'sensitivity [95% CI]':>22} {'all ranked [95% CI]':>21} "
          f"{'top-' + str(args.top) + ' [95% CI]':>20}  lowest target  uncalibrated (sens / all)")
    for arch in archs:
        r = summarize(evaluate(con, chain, arch, args.top), args.resamples, args.seed)
        results[arch] = r
        u = r["uncalibrated"]

        def fmt(key: str, d: dict = r) -> str:
            lo, hi = d[f"{key}_ci"]
            return f"{d[key]:.2f} [{lo:.2f}, {hi:.2f}]"

        print(f"{arch:<18} {r['targets']:>7} {fmt('sensitivity_coverage'):>22} {fmt('candidate_coverage'):>21} "
              f"{fmt('top_coverage'):>20}  {r['min_target_coverage']:.2f} ({r['min_target']})  "
              f"{u['sensitivity_coverage']:.2f} / {u['candidate_coverage']:.2f}", flush=True)
    con.close()
    out = {"nominal": COVERAGE, "top": args.top, "bootstrap": {"resamples": args.resamples, "seed": args.seed},
           "architectures": results}
    write_results(args.out, out)
    print("\nfor docs/recommend.md:\n" + calibration_table(out) + "\n" + rules_table(out) + "\n"
          + per_target_table(out), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
