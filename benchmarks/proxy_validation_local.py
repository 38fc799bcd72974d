"""Does the probe predict the finetuning gain on the local grid? `proxy_validation` on many intermediate models.

Runs the product's own path in `$STARTPOINT_HOME` (use a scratch one; runs already in its lake are reused):
1. `intermediate_models` for the default grid's sources plus `--sources` (more models, a correlation worth more);
2. the `select_all_MiniLM_L6_v2` selection (the sensor's stages, run in process by `run_selection`) with k =
   every intermediate model: it probes each zoo model (LP and LogME) and finetunes all of them (seeds 0, 1) and
   the pretrained baseline (seeds 0-4) on the default grid's targets;
3. the `published` job's warehouse load and SQL models (no published folder needed);
then prints `proxy_validation` and each model's probe scores and mean gain (all from the warehouse), and, when
benchmarks/results/probe_fidelity.json holds the same models, the Spearman of every probe budget measured there
with the mean gain. Writes benchmarks/results/proxy_validation_local.json. About 20 minutes on 2 CPU cores with 8 extra sources.

    STARTPOINT_HOME=/tmp/pv .venv/bin/python benchmarks/proxy_validation_local.py \
        --sources shakespeare_genre tweets_sentiment trump_tweet_device fortunes_topic wordnet_noun ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ARCHITECTURE = "all-MiniLM-L6-v2"


def gain_correlation_by_budget(mean_gain: dict[str, float]) -> list[dict]:
    """Spearman of each budget's probe scores (probe_fidelity.json) with the mean gain, over the shared models."""
    from scipy.stats import spearmanr

    from benchmarks.results_file import RESULTS_DIR

    path = RESULTS_DIR / "probe_fidelity.json"
    fidelity = json.loads(path.read_text()) if path.is_file() else {"scores": {}, "budgets": []}
    shared = sorted(set(fidelity["scores"]) & set(mean_gain))
    if len(shared) < 4:
        return []
    rows = []
    print(f"\nSpearman with the mean gain by probe budget ({len(shared)} models in {path.name}):")
    for budget in (b["budget"] for b in fidelity["budgets"]):
        row = {"budget": budget, "n_models": len(shared)}
        for method in ("logme", "linear_probe"):
            row[method] = float(spearmanr([fidelity["scores"][m][budget][method] for m in shared],
                                          [mean_gain[m] for m in shared])[0])
        rows.append(row)
        print(f"  {budget:>8}  LogME {row['logme']:+.2f}  linear head {row['linear_probe']:+.2f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", nargs="*", default=[], help="offline sets to make more intermediate models from")
    args = parser.parse_args()
    if not os.environ.get("STARTPOINT_HOME"):
        raise SystemExit("set STARTPOINT_HOME to a scratch folder (this writes models, a lake and a warehouse there)")

    import dagster as dg

    from benchmarks.results_file import write_results
    from pipelines.definitions import defs
    from pipelines.launch import run_grid, run_selection
    from startpoint.grid import DEFAULT_GRID, Grid
    from startpoint.plan import SelectionOptions, selection_pretrained
    from startpoint.settings import get_settings
    from startpoint.warehouse.load import connect

    sources = tuple(dict.fromkeys((*DEFAULT_GRID.sources, *args.sources)))
    instance = dg.DagsterInstance.ephemeral()
    run_grid(Grid(name="validation", sources=sources, targets=(), seeds=()), instance)
    selection = run_selection(ARCHITECTURE, SelectionOptions(k=len(sources)), instance)
    if selection["failed"]:
        raise SystemExit(f"{selection['failed']} selection run(s) failed; see the log above")
    if not defs.resolve_job_def("published").execute_in_process(instance=instance).success:
        raise SystemExit("the published job (warehouse + SQL models) failed; see its log above")

    with connect(get_settings().warehouse_path, read_only=True) as con:
        validation = con.execute(
            "select method, proxy_dataset, n_models, spearman, pearson, top1_lost_gain, top3_lost_gain "
            "from proxy_validation where architecture = ? order by method", [ARCHITECTURE]).fetchall()
        models = con.execute(
            """select e.model_id, e.mean_gain, e.n_targets,
                      max(p.score) filter (where p.method = 'logme') as logme,
                      max(p.score) filter (where p.method = 'linear_probe') as linear_probe
               from base_model_effects e left join probe_scores p using (architecture, model_id)
               where e.architecture = ? group by all order by logme desc""", [ARCHITECTURE]).fetchall()
    print(f"\nproxy_validation, {ARCHITECTURE}, targets {list(DEFAULT_GRID.targets)}:")
    print(f"{'method':14}{'proxy':12}{'n':>4}{'Spearman':>10}{'Pearson':>9}{'lost top-1':>12}{'lost top-3':>12}")
    for method, proxy, n, rho, r, lost1, lost3 in validation:
        print(f"{method:14}{proxy:12}{n:>4}{rho:>10.2f}{r:>9.2f}{lost1:>12.2f}{lost3:>12.2f}")
    print(f"\n{'model':48}{'LogME':>8}{'LP %':>7}{'mean gain':>11}")
    for model_id, gain, _n, lm, lp in models:
        print(f"{model_id:48}{lm if lm is not None else float('nan'):>8.3f}"
              f"{lp if lp is not None else float('nan'):>7.1f}{gain:>11.2f}")
    by_budget = gain_correlation_by_budget({m[0]: m[1] for m in models if m[0] != selection_pretrained(ARCHITECTURE)})
    write_results("proxy_validation_local", {
        "gain_spearman_by_probe_budget": by_budget,
        "architecture": ARCHITECTURE, "sources": list(sources), "targets": list(DEFAULT_GRID.targets),
        "proxy_validation": [dict(zip(["method", "proxy_dataset", "n_models", "spearman", "pearson", "top1_lost_gain",
                                       "top3_lost_gain"], row)) for row in validation],
        "models": [dict(zip(["model_id", "mean_gain", "n_targets", "logme", "linear_probe"], row)) for row in models],
    })


if __name__ == "__main__":
    main()
