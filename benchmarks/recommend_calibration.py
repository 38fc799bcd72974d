"""Are the intervals of `startpoint recommend` honest? Leave each known target out, rebuild the evidence from the
other targets only (base effects, target effects, interaction spread, recomputed from `gains`), predict the
held-out target as if a user brought it, and count how often the 95% intervals cover what was measured:

- the target's sensitivity (its mean gain over the ranked models);
- each of the top-10 candidates' gain on it.

Nominal coverage is 95%. Reads the warehouse in $STARTPOINT_HOME (run the `published` job first).

    .venv/bin/python benchmarks/recommend_calibration.py [--top 10]
Prints coverage per architecture beside the nominal 0.95; writes benchmarks/results/recommend_calibration.json.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import write_results  # noqa: E402

NOMINAL = 0.95


def evidence_without(ev, gains, held: str):
    """Evidence rebuilt from every target but `held`, the way the SQL models build it from all of them."""
    from scipy import stats

    from pipelines.recommend.predict import Evidence, interaction_sd

    rest = gains[gains["dataset_id"] != held]
    per_model = rest.groupby("model_id")["gain"].agg(["mean", "std", "count"])
    cands = ev.candidates[ev.candidates["model_id"].isin(per_model.index)].copy()
    m = per_model.loc[cands["model_id"]]
    half = stats.t.ppf(0.975, (m["count"] - 1).clip(lower=1)) * m["std"] / m["count"] ** 0.5
    cands["base_effect"] = cands["mean_gain"] = m["mean"].to_numpy()
    cands["ci_low"], cands["ci_high"] = (m["mean"] - half).to_numpy(), (m["mean"] + half).to_numpy()
    cands = cands.sort_values("base_effect", ascending=False)
    targets = ev.targets[ev.targets["dataset_id"] != held].reset_index(drop=True)
    return Evidence(architecture=ev.architecture, pretrained_model=ev.pretrained_model, targets=targets,
                    candidates=cands.reset_index(drop=True), interaction_sd=interaction_sd(rest),
                    mean_target_effect=float(targets["mean_gain"].mean()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()

    from pipelines.recommend.predict import load_evidence, predict_candidates, predict_target_effect
    from pipelines.settings import get_settings
    from pipelines.warehouse.load import connect

    con = connect(get_settings().warehouse_path, read_only=True)
    archs = [r[0] for r in con.execute("select distinct architecture from leaderboard order by 1").fetchall()]
    results = {}
    print(f"{'architecture':<20} {'targets':>7} {'sensitivity cov':>15} {'candidate cov':>13} {'nominal':>7} "
          f"{'mean |err|':>10}")
    for arch in archs:
        ev = load_evidence(con, arch)
        gains = con.execute("select model_id, dataset_id, gain from gains where architecture = ? and gain is not null",
                            [arch]).df()
        gains = gains[gains["model_id"].isin(set(ev.candidates["model_id"]))]
        feats = {r["dataset_id"]: r for r in ev.targets.to_dict("records")}
        t_hits = c_hits = c_total = 0
        errors = []
        for held in ev.targets["dataset_id"]:
            if len(ev.targets) < 4:
                break
            sub = evidence_without(ev, gains, held)
            known = {k: v for k, v in feats[held].items() if k in ("n_train", "n_labels", "majority_share")}
            target = predict_target_effect(sub, known)
            actual = gains[gains["dataset_id"] == held].set_index("model_id")["gain"]
            t_hits += target.low <= actual.mean() <= target.high
            for pred in predict_candidates(sub, target, top=args.top):
                if pred.model_id in actual.index and not math.isnan(actual[pred.model_id]):
                    c_total += 1
                    c_hits += pred.low <= actual[pred.model_id] <= pred.high
                    errors.append(abs(actual[pred.model_id] - pred.expected_gain))
        n = len(ev.targets)
        if not c_total:
            print(f"{arch:<20} {n:>7}  too few targets to hold one out")
            continue
        results[arch] = {"targets": n, "sensitivity_coverage": t_hits / n, "candidate_coverage": c_hits / c_total,
                         "candidate_predictions": c_total, "mean_abs_error": sum(errors) / len(errors),
                         "nominal": NOMINAL}
        r = results[arch]
        print(f"{arch:<20} {n:>7} {r['sensitivity_coverage']:>15.2f} {r['candidate_coverage']:>13.2f} "
              f"{NOMINAL:>7.2f} {r['mean_abs_error']:>10.2f}")
    con.close()
    write_results("recommend_calibration", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
