"""Held-out regret of the default ranking vs the published plain average.

For many random splits of an architecture's targets into a selection half and an evaluation half:
pick the top model using the selection targets only, then measure its mean gain on the evaluation targets.
Regret = best achievable held-out mean gain (over models that pass the data-quality rule on all data)
minus the held-out mean gain of the pick. Lower is better.

The default ranking is computed by the production SQL itself: the compiled dbt models `model_flags` and
`base_model_effects` run on a `gains` table restricted to the selection targets (flags included, so nothing
is learned from the evaluation half). Rankings compared:
- `startpoint`: the data-quality flags judged on each whole row (as in production: they check the record's
  integrity, not the model's merit), the robust score on the selection targets only;
- `startpoint_strict`: flags too judged on the selection targets only (nothing at all seen of the held-out half);
- `plain_average_all_rows`: the published ranking, the plain average over all rows;
- `plain_average_same_pool`: the plain average among the rows startpoint keeps (isolates the scoring rule).

Needs a warehouse with the published data (`make run`, or the `published` job). Usage:
    python benchmarks/heldout_ranking.py [--splits 500] [--seed 0]
Writes benchmarks/results/heldout_ranking.json.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import write_results  # noqa: E402
from pipelines.dbt import run_dbt  # noqa: E402
from pipelines.settings import SQL_DIR, get_settings  # noqa: E402
from pipelines.warehouse.load import connect  # noqa: E402



def compiled_sql(model: str) -> str:
    """The production SQL of a dbt model, compiled against this warehouse."""
    run_dbt("compile", "--select", model, capture_output=True)
    return (SQL_DIR / "target" / "compiled" / "startpoint" / "models" / f"{model}.sql").read_text()


def retarget(sql: str, replacements: dict[str, str]) -> str:
    """Point the compiled SQL's relations (`"db"."main"."gains"`) at restricted temp tables."""
    for name, temp in replacements.items():
        sql = re.sub(rf'"[^"]+"\."main"\."{name}"', temp, sql)
    return sql


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    flags_sql = compiled_sql("model_flags")
    effects_sql = compiled_sql("base_model_effects")
    con = connect(get_settings().warehouse_path, read_only=True)
    archs = [r[0] for r in con.execute(
        "select distinct architecture from gains where architecture in "
        "(select architecture from hub_models where source = 'published') order by 1").fetchall()]
    if not archs:
        print("no published architectures in the warehouse: run `make run` first", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    results: dict[str, dict] = {}
    for arch in archs:
        gains = con.execute(
            "select model_id, dataset_id, gain from gains where architecture = ?", [arch]).df()
        matrix = gains.pivot(index="model_id", columns="dataset_id", values="gain")
        matrix = matrix.dropna()  # models with every target (the published rows have all 36)
        trusted = set(con.execute(
            "select model_id from model_flags where architecture = ? and not flagged", [arch]).df().model_id)
        models = matrix.index.to_numpy()
        targets = matrix.columns.to_numpy()
        values = matrix.to_numpy()
        pool = np.array([m in trusted for m in models])
        regrets = {k: [] for k in ("startpoint", "startpoint_strict", "plain_average_all_rows",
                                   "plain_average_same_pool", "startpoint_top3", "plain_average_all_rows_top3")}
        con.execute("create or replace temp table flags_all as select * from model_flags where architecture = ?", [arch])
        for _ in range(args.splits):
            perm = rng.permutation(len(targets))
            sel, held = perm[: len(targets) // 2], perm[len(targets) // 2:]
            truth = values[:, held].mean(axis=1)
            best = truth[pool].max()
            con.execute("create or replace temp table gains_sel as select * from gains "
                        "where architecture = ? and dataset_id in (select unnest(?))", [arch, list(targets[sel])])
            con.execute(f"create or replace temp table flags_sel as {retarget(flags_sql, {'gains': 'gains_sel'})}")
            index = {m: i for i, m in enumerate(models)}

            def top(flags: str) -> list[int]:
                sql = retarget(effects_sql, {"gains": "gains_sel", "model_flags": flags})
                ranked = con.execute(f"select model_id from ({sql}) where rank is not null order by rank").fetchall()
                return [index[m] for (m,) in ranked if m in index][:3]

            picks = top("flags_all")
            regrets["startpoint_strict"].append(best - truth[top("flags_sel")[0]])
            regrets["startpoint"].append(best - truth[picks[0]])
            regrets["startpoint_top3"].append(best - truth[picks].max())
            plain = values[:, sel].mean(axis=1)
            order_all = np.argsort(-plain, kind="stable")
            regrets["plain_average_all_rows"].append(best - truth[order_all[0]])
            regrets["plain_average_all_rows_top3"].append(best - truth[order_all[:3]].max())
            order_pool = [i for i in order_all if pool[i]]
            regrets["plain_average_same_pool"].append(best - truth[order_pool[0]])
        summary = {k: float(np.mean(v)) for k, v in regrets.items()}
        summary["n_models"] = int(len(models))
        summary["n_trusted"] = int(pool.sum())
        summary["n_targets"] = int(len(targets))
        summary["ratio_plain_over_startpoint"] = summary["plain_average_all_rows"] / max(summary["startpoint"], 1e-9)
        results[arch] = summary
    con.close()

    header = f"{'architecture':<20}{'models':>7}{'startpoint':>12}{'strict':>8}{'plain(all)':>12}" \
             f"{'plain(pool)':>13}{'ratio':>8}{'top3 sp':>9}{'top3 plain':>12}"
    print(f"Held-out regret (points of mean gain, lower is better), {args.splits} random half splits of targets")
    print(header)
    for arch, s in results.items():
        print(f"{arch:<20}{s['n_models']:>7}{s['startpoint']:>12.3f}{s['startpoint_strict']:>8.3f}"
              f"{s['plain_average_all_rows']:>12.3f}"
              f"{s['plain_average_same_pool']:>13.3f}{s['ratio_plain_over_startpoint']:>8.2f}"
              f"{s['startpoint_top3']:>9.3f}{s['plain_average_all_rows_top3']:>12.3f}")
    write_results("heldout_ranking", {"splits": args.splits, "seed": args.seed, "architectures": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
