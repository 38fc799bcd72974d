"""Time `startpoint recommend` on a target the warehouse has never seen (targets: < 10 s without --run,
≤ 600 s with --run --budget 3 on 2 cores), and set its predictions beside the gains it then observed.

Needs a warehouse with the offline-zoo leaderboard (`make run`: default grid + SQL models) in $STARTPOINT_HOME.
The user file is an offline-suite set the default grid does not use, written to CSV (default fortunes_topic,
else the first installed one outside the grid), capped at --rows rows.

    .venv/bin/python benchmarks/recommend_run.py [--dataset fortunes_topic] [--rows 3000] [--budget 3] [--no-run]
Prints the timings against their limits and predicted vs observed gains; writes
benchmarks/results/recommend_run.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import write_results  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PREDICT_LIMIT_S = 10.0
RUN_LIMIT_S = 600.0
ARCH = "all-MiniLM-L6-v2"


def user_csv(dataset: str | None, rows: int, folder: Path) -> tuple[str, Path]:
    from startpoint.data import installed, load_offline
    from startpoint.grid import DEFAULT_GRID

    used = set(DEFAULT_GRID.sources) | set(DEFAULT_GRID.targets)
    choices = [d for d in installed() if d not in used]
    name = dataset or ("fortunes_topic" if "fortunes_topic" in choices else choices[0])
    ds = load_offline(name)
    import polars as pl

    frame = ds.train.sample(n=min(rows, len(ds.train)), seed=0)
    frame = frame.select("text", pl.col("label").map_elements(lambda i: ds.label_names[i], return_dtype=pl.String))
    path = folder / f"{name}.csv"
    frame.write_csv(path)
    return name, path


def timed(cmd: list[str]) -> tuple[float, int, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if proc.returncode:
        sys.stderr.write(proc.stderr[-3000:])
    return seconds, proc.returncode, proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--budget", type=int, default=3)
    parser.add_argument("--no-run", action="store_true", help="only time the prediction")
    args = parser.parse_args()

    startpoint = str(Path(sys.executable).parent / "startpoint")
    with tempfile.TemporaryDirectory() as tmp:
        name, csv = user_csv(args.dataset, args.rows, Path(tmp))
        base = [startpoint, "recommend", "--data", str(csv), "--architecture", ARCH, "--budget", str(args.budget)]
        predict_s, rc, _ = timed(base + ["--report", f"{tmp}/predict.json"])
        if rc:
            print(f"recommend failed (exit {rc}); is there a {ARCH} leaderboard in $STARTPOINT_HOME?")
            return rc
        rows = [("recommend (predict only)", predict_s, PREDICT_LIMIT_S)]
        report = json.loads(Path(f"{tmp}/predict.json").read_text())
        if not args.no_run:
            run_s, rc, _ = timed(base + ["--run", "--report", f"{tmp}/run.json"])
            if rc:
                return rc
            rows.append((f"recommend --run --budget {args.budget}", run_s, RUN_LIMIT_S))
            report = json.loads(Path(f"{tmp}/run.json").read_text())

    print(f"user target: {name} ({report['target']['n_train']} train rows, {report['target']['n_labels']} labels), "
          f"{os.cpu_count()} CPUs, {platform.machine()}")
    print(f"{'step':<34} {'seconds':>8} {'limit':>7} {'ratio':>6}")
    for step, seconds, limit in rows:
        print(f"{step:<34} {seconds:8.1f} {limit:7.0f} {seconds / limit:6.2f}")
    result = {"dataset": name, "cpus": os.cpu_count(), "timings": [
        {"step": s, "seconds": round(t, 2), "limit_seconds": lim, "ratio": round(t / lim, 3)} for s, t, lim in rows]}
    protocol = report.get("protocol")
    if protocol:
        print(f"\n{'model':<50} {'predicted':>9} {'observed':>9}  95% CI")
        for g in protocol["gains"]:
            print(f"{g['model_id'][:50]:<50} {g['predicted_gain']:+9.2f} {g['gain']:+9.2f}  "
                  f"[{g['low']:+.2f}, {g['high']:+.2f}]")
        result["gains"] = protocol["gains"]
        result["stopped_early"] = protocol["stopped_early"]
    print(f"\nDecision: {report['decision']['text']}")
    result["decision"] = report["decision"]["text"]
    write_results("recommend_run", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
