"""Are the intervals of `startpoint recommend` honest? Leave each known target out and rebuild the warehouse
without it by running the PRODUCTION SQL (every dbt model upstream of `leaderboard` and `target_effects`,
compiled, on a copy of `finetune_runs` without the held-out target: benchmarks/production_sql.py). The evidence
then goes through the production path unchanged: `read_frames` on the rebuilt tables, `build_evidence` (which
estimates its conformal scales from the remaining targets only: nested, the held-out target never informs its own
widening), `predict_target_effect` with what a user's file tells (train size, labels, majority share),
`predict_candidates`. Coverage of the 95% intervals is counted against what the full warehouse measured:

- the target's sensitivity (its mean gain over the ranked models, `target_effects.mean_gain`);
- every ranked candidate's gain on it (and the top 10's).

Each coverage comes with a target-cluster bootstrap 95% interval (resample the held-out targets with
replacement, recompute the coverage). The same predictions without the conformal scales (`calibrate=False`)
are reported as `uncalibrated`. Reads the warehouse in $STARTPOINT_HOME (run the `published` job first).

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
    USER_FEATURES,
    EvidenceFrames,
    build_evidence,
    predict_candidates,
    predict_target_effect,
    read_frames,
)

CHAIN_TARGETS = ("leaderboard", "target_effects")
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


def evaluate(con, chain: ModelChain, architecture: str, top: int = 10) -> pd.DataFrame:
    """One row per held-out target: sensitivity hit, candidate hits (all ranked, top `top`), errors, scales,
    for the calibrated production path and for the same path without the conformal scales."""
    full = read_frames(con, architecture)
    truth = full.gains.to_pandas().set_index(["dataset_id", "model_id"])["gain"]
    rows = []
    for target in full.targets.iter_rows(named=True):
        held = target["dataset_id"]
        frames = loto_frames(con, chain, architecture, held)
        actual = truth.xs(held, level="dataset_id") if held in truth.index.get_level_values(0) else pd.Series(dtype=float)
        features = {k: target[k] for k in USER_FEATURES}
        row = {"dataset_id": held}
        for label, calibrate in (("", True), ("raw_", False)):
            ev = build_evidence(frames, calibrate=calibrate)
            sens = predict_target_effect(ev, features)
            row[f"{label}sens_hit"] = bool(sens.low <= target["mean_gain"] <= sens.high)
            row[f"{label}sens_width"] = sens.high - sens.low
            hits = total = top_hits = top_total = 0
            abs_err = []
            for pred in predict_candidates(ev, sens):
                if pred.model_id not in actual.index or pd.isna(actual[pred.model_id]):
                    continue
                y = float(actual[pred.model_id])
                hit = pred.low <= y <= pred.high
                hits += hit
                total += 1
                if pred.rank <= top:
                    top_hits += hit
                    top_total += 1
                    abs_err.append(abs(y - pred.expected_gain))
            row |= {f"{label}cand_hits": hits, f"{label}cand_total": total, f"{label}top_hits": top_hits,
                    f"{label}top_total": top_total, f"{label}top_abs_err": float(np.sum(abs_err))}
            if calibrate:
                row |= {"sensitivity_scale": ev.sensitivity_scale, "top_candidate_scale": ev.top_candidate_scale,
                        "candidate_scale": ev.candidate_scale}
        rows.append(row)
    return pd.DataFrame(rows)


def coverages(per_target: pd.DataFrame, label: str = "") -> dict[str, float]:
    return {
        "sensitivity_coverage": float(per_target[f"{label}sens_hit"].mean()),
        "candidate_coverage": float(per_target[f"{label}cand_hits"].sum() / per_target[f"{label}cand_total"].sum()),
        "top_coverage": float(per_target[f"{label}top_hits"].sum() / per_target[f"{label}top_total"].sum()),
    }


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
    out["top_mean_abs_error"] = float(per_target["top_abs_err"].sum() / per_target["top_total"].sum())
    out["sensitivity_interval_width"] = float(per_target["sens_width"].mean())
    for scale in ("sensitivity_scale", "top_candidate_scale", "candidate_scale"):
        values = per_target[scale]
        out[scale] = {"median": float(values.median()), "min": float(values.min()), "max": float(values.max())}
    out["uncalibrated"] = coverages(per_target, "raw_") | bootstrap(per_target, resamples, seed, "raw_")
    out["per_target"] = per_target[["dataset_id", "sens_hit", "cand_hits", "cand_total", "top_hits",
                                    "raw_sens_hit", "raw_cand_hits"]].to_dict("records")
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
             f"{r['uncalibrated']['sensitivity_coverage']:.2f} / {r['uncalibrated']['candidate_coverage']:.2f}",
             f"{r['top_mean_abs_error']:.2f}",
             " / ".join(f"{r[k]['median']:.2f}" for k in ("sensitivity_scale", "top_candidate_scale", "candidate_scale")))
            for arch, r in results["architectures"].items()]
    return markdown_table(["architecture", "targets", "candidate gains", "sensitivity covered [95% CI]",
                           "all ranked covered [95% CI]", f"top-{top} covered [95% CI]",
                           "uncalibrated: sensitivity / all ranked", f"top-{top} mean abs. error (points)",
                           f"conformal scales: sensitivity / top-{top} / rest (median over folds)"], rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from startpoint.settings import get_settings
    from startpoint.warehouse.load import connect

    chain = production_chain()
    con = connect(get_settings().warehouse_path, read_only=True)
    con.execute("set threads = 1")  # one summation order: the rebuilt tables (and ranks near ties) are reproducible
    archs = published_architectures(con)
    if not archs:
        print("no published architectures in the warehouse: run the `published` job first", file=sys.stderr)
        return 2
    results = {}
    print(f"{'architecture':<18} {'targets':>7} {'sensitivity [95% CI]':>22} {'all ranked [95% CI]':>21} "
          f"{'top-' + str(args.top) + ' [95% CI]':>20}  uncalibrated (sens / all)")
    for arch in archs:
        r = summarize(evaluate(con, chain, arch, args.top), args.resamples, args.seed)
        results[arch] = r
        u = r["uncalibrated"]

        def fmt(key: str, d: dict = r) -> str:
            lo, hi = d[f"{key}_ci"]
            return f"{d[key]:.2f} [{lo:.2f}, {hi:.2f}]"

        print(f"{arch:<18} {r['targets']:>7} {fmt('sensitivity_coverage'):>22} {fmt('candidate_coverage'):>21} "
              f"{fmt('top_coverage'):>20}  {u['sensitivity_coverage']:.2f} / {u['candidate_coverage']:.2f}")
    con.close()
    out = {"nominal": COVERAGE, "top": args.top, "bootstrap": {"resamples": args.resamples, "seed": args.seed},
           "architectures": results}
    write_results("recommend_calibration", out)
    print("\nfor docs/recommend.md:\n" + calibration_table(out), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
