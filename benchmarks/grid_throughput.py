"""Grid throughput, previous design against parallel workers, on an idle machine and beside CPU-bound processes.

  previous  `STARTPOINT_WORKERS=1`: every step in one process, torch using every core;
  new       the default: a stage's finetunes in one single-threaded worker process per core (pipelines/workers.py).

Each measurement is `run_grid` of the chosen grid in a fresh `STARTPOINT_HOME` and `DAGSTER_HOME`, in its own
process (the same command for both designs), timed around `run_grid` alone. "Contended" runs it beside
`--hogs` processes that spin (`while True: pass`), as a busy laptop or a CI neighbour would. Within a round the
four measurements alternate (the order flips every round) so load drift hits both designs; the file holds every
measurement and the medians over rounds.

Also per run: Dagster's per-step overhead (a run's wall time minus its step's compute time, from the instance's
run and step stats), and the finetune scores, so that the designs' scores can be compared (same recipe and seeds;
only the thread count differs). A measurement with a failed step makes the file say so (`all_steps_succeeded`)
and the script exit 1: no figure from a failed run is quoted.

    .venv/bin/python benchmarks/grid_throughput.py                      # quick grid, 1 round, 2 hogs
    .venv/bin/python benchmarks/grid_throughput.py --grid default --rounds 2

Writes benchmarks/results/grid_throughput.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DESIGNS = {"previous": {"STARTPOINT_WORKERS": "1"}, "new": {}}


def grids() -> dict:
    from startpoint.grid import DEFAULT_GRID, Grid

    return {
        "default": DEFAULT_GRID,
        # The default grid's finetune stage alone: both bases on the three targets, one seed (6 finetunes, 2 probes).
        "quick": Grid(name="quick", sources=(), targets=DEFAULT_GRID.targets, seeds=(0,),
                      base_models=DEFAULT_GRID.base_models, fusion_recipes=()),
    }


def child(grid_name: str) -> None:
    """In a fresh home: run the grid, then print one JSON line with the time, counts, overheads and scores."""
    import dagster as dg

    from pipelines.launch import run_grid
    from startpoint import lake
    from startpoint.plan import grid_steps
    from startpoint.settings import get_settings

    grid = grids()[grid_name]
    instance = dg.DagsterInstance.get()
    started = time.perf_counter()
    counts = run_grid(grid, instance, log=lambda m: print(m, file=sys.stderr, flush=True))
    seconds = time.perf_counter() - started
    overheads, finetunes = [], 0
    for run in instance.get_runs():
        stats = instance.get_run_stats(run.run_id)
        steps = instance.get_run_step_stats(run.run_id)
        if stats.start_time and stats.end_time and steps:
            compute = sum((s.end_time or 0) - (s.start_time or 0) for s in steps)
            overheads.append(round(stats.end_time - stats.start_time - compute, 3))
        finetunes += run.job_name == "grid_finetune_runs"
    rows = lake.read(get_settings().lake_url, "finetune_runs").to_pylist()
    scores = {f"{r['model_id']}|{r['dataset_id']}|{r['seed']}": r["score"] for r in rows if r["status"] == "ok"}
    print(json.dumps({"seconds": round(seconds, 2), "counts": counts, "steps": len(grid_steps(grid)),
                      "finetune_partitions": finetunes, "finetune_rows": len(rows), "overheads": overheads,
                      "scores": scores}))


def measure(grid_name: str, design: str, hogs: int) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"grid-{design}-"))
    (home / "dagster").mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    env = {**os.environ, "STARTPOINT_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", **DESIGNS[design]}
    env.pop("STARTPOINT_LAKE", None)
    if "STARTPOINT_WORKERS" not in DESIGNS[design]:
        env.pop("STARTPOINT_WORKERS", None)
    from benchmarks.contention import spinning

    with spinning(hogs):
        load_before = os.getloadavg()[0]
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", grid_name], env=env,
                              cwd=ROOT, capture_output=True, text=True)
    shutil.rmtree(home, ignore_errors=True)
    if done.returncode != 0 or not done.stdout.strip():
        return {"design": design, "hogs": hogs, "ok": False, "error": done.stderr.strip().splitlines()[-3:]}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out.update(design=design, hogs=hogs, load_before=round(load_before, 2), ok=out["counts"]["failed"] == 0)
    return out


def summarize(runs: list[dict], grid_name: str, hogs: int, rounds: int) -> dict:
    designs = {}
    for design in DESIGNS:
        idle = [r for r in runs if r["design"] == design and r["hogs"] == 0 and r["ok"]]
        busy = [r for r in runs if r["design"] == design and r["hogs"] > 0 and r["ok"]]
        entry: dict = {}
        if idle:
            entry["idle_seconds"] = round(statistics.median(r["seconds"] for r in idle), 1)
        if busy:
            entry["contended_seconds"] = round(statistics.median(r["seconds"] for r in busy), 1)
        if idle and busy:
            entry["contended_over_idle"] = round(entry["contended_seconds"] / entry["idle_seconds"], 2)
        partitions = max((r["finetune_partitions"] for r in idle + busy), default=0)
        for key, label in (("idle_seconds", "idle"), ("contended_seconds", "contended")):
            if key in entry:
                entry[f"finetune_partitions_per_hour_{label}"] = round(partitions * 3600 / entry[key], 1)
        overheads = [o for r in idle + busy for o in r["overheads"]]
        if overheads:
            entry["per_step_overhead_seconds_median"] = round(statistics.median(overheads), 2)
            entry["per_step_overhead_seconds_max"] = round(max(overheads), 2)
        designs[design] = entry
    prev, new = designs["previous"], designs["new"]
    ratios = {f"previous_over_new_{k}": round(prev[f"{k}_seconds"] / new[f"{k}_seconds"], 2)
              for k in ("idle", "contended") if f"{k}_seconds" in prev and f"{k}_seconds" in new}
    diffs = []
    by_design = {d: [r for r in runs if r["design"] == d and r["ok"]] for d in DESIGNS}
    for a in by_design["previous"]:
        for b in by_design["new"]:
            diffs += [abs(a["scores"][k] - b["scores"][k]) for k in a["scores"].keys() & b["scores"].keys()]
    return {
        "grid": grid_name, "rounds": rounds, "hogs": hogs,
        "all_steps_succeeded": all(r["ok"] for r in runs),
        "designs": designs, **ratios,
        "score_abs_diff_previous_vs_new": {"max": round(max(diffs), 2), "median": round(statistics.median(diffs), 2),
                                           "pairs": len(diffs)} if diffs else None,
        "machine": {"cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                    "platform": platform.platform()},
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "runs": [{k: v for k, v in r.items() if k != "scores"} for r in runs],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", choices=("quick", "default"), default="quick")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--hogs", type=int, default=2, help="CPU-bound processes beside the contended runs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "grid_throughput.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    runs = []
    for r in range(args.rounds):
        order = [(d, h) for h in (0, args.hogs) for d in DESIGNS]
        for design, hogs in (order if r % 2 == 0 else order[::-1]):
            result = measure(args.grid, design, hogs)
            print(f"round {r + 1}: {design}, {hogs} hogs: "
                  + (f"{result['seconds']} s" if result["ok"] else f"FAILED {result.get('error') or result['counts']}"),
                  flush=True)
            runs.append(result)
    summary = summarize(runs, args.grid, args.hogs, args.rounds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if summary["all_steps_succeeded"] else 1


if __name__ == "__main__":
    sys.exit(main())
