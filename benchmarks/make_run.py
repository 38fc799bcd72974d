"""`make run` end to end, on an idle machine and beside CPU-bound processes: the README's promise, measured.

Each measurement runs `make run` (the venv and the dbt manifest already made, as after a first `make run`) in a
fresh `STARTPOINT_HOME`, so the grid, the published import, the SQL models and the leaderboards are all made
again. "Contended" runs it beside `--hogs` processes that spin (`while True: pass`), as a browser or a CI
neighbour would. The order of idle and contended flips every round; the file holds every measurement and the
medians over rounds.

A measurement counts only when `make run` exited 0, the grid said `0 failed` and `startpoint publish` said what it
materialized; otherwise the file says so (`all_succeeded: false`) and the script exits 1, so no time from a run
with a failed step is quoted.

    .venv/bin/python benchmarks/make_run.py                  # 1 round, 1 hog
    .venv/bin/python benchmarks/make_run.py --rounds 2 --hogs 1

Writes benchmarks/results/make_run.json (or --out).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
GRID_LINE = re.compile(r"default grid: (\d+) partition\(s\) materialized, (\d+) failed")
PUBLISH_LINE = re.compile(r"^published: \d+ asset\(s\) materialized", re.MULTILINE)
BOUND_SECONDS = 600  # the README's bound for `make run` on 2 cores, even beside a busy process


def measure(hogs: int, keep_log: Path | None = None, keep_home: Path | None = None) -> dict:
    """One `make run` in a fresh home beside `hogs` spinning processes (kept at `keep_home` when given)."""
    home = Path(tempfile.mkdtemp(prefix="startpoint-make-run-"))
    from benchmarks.contention import spinning

    try:
        with spinning(hogs):
            load_before = os.getloadavg()[0]
            started = time.perf_counter()
            proc = subprocess.run(["make", "-s", "run", f"STARTPOINT_HOME={home}"], cwd=ROOT, capture_output=True,
                                  text=True, env={**os.environ, "STARTPOINT_HOME": str(home)})
            seconds = time.perf_counter() - started
    finally:
        if keep_home is not None:
            shutil.rmtree(keep_home, ignore_errors=True)
            shutil.move(str(home), keep_home)
        else:
            shutil.rmtree(home, ignore_errors=True)
    out = proc.stdout + proc.stderr
    if keep_log is not None:
        keep_log.write_text(out)
    grid = GRID_LINE.search(out)
    published = PUBLISH_LINE.search(out) is not None
    ok = proc.returncode == 0 and grid is not None and grid.group(2) == "0" and published
    return {"hogs": hogs, "seconds": round(seconds, 1), "exit_code": proc.returncode,
            "grid_partitions": int(grid.group(1)) if grid else None,
            "grid_failed": int(grid.group(2)) if grid else None, "published": published,
            "load_before": round(load_before, 2), "ok": bool(ok),
            "last_line": (out.strip().splitlines() or [""])[-1][:300] if not ok else None}


def summarize(runs: list[dict], hogs: int) -> dict:
    def median(h):
        values = [r["seconds"] for r in runs if r["hogs"] == h]
        return round(statistics.median(values), 1) if values else None

    idle, contended = median(0), median(hogs)
    return {"idle_seconds": idle, "contended_seconds": contended,
            "contended_over_idle": round(contended / idle, 2) if idle and contended else None,
            "within_bound": {"idle": idle is not None and idle <= BOUND_SECONDS,
                             "contended": contended is not None and contended <= BOUND_SECONDS}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--hogs", type=int, default=1, help="spinning processes beside the contended runs")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--logs", type=Path, default=None, help="folder to keep each run's output in")
    parser.add_argument("--keep-home", type=Path, default=None,
                        help="keep the last idle run's STARTPOINT_HOME here (for the figures read from its warehouse)")
    args = parser.parse_args(argv)
    from benchmarks.results_file import machine, write_results

    runs = []
    for r in range(args.rounds):
        for hogs in ((0, args.hogs) if r % 2 == 0 else (args.hogs, 0)):
            log = args.logs / f"round{r}-hogs{hogs}.log" if args.logs else None
            if log is not None:
                log.parent.mkdir(parents=True, exist_ok=True)
            runs.append({"round": r, **measure(hogs, log, args.keep_home if hogs == 0 else None)})
            print(runs[-1], flush=True)
    data = {"rounds": args.rounds, "hogs": args.hogs, "bound_seconds": BOUND_SECONDS,
            "all_succeeded": all(r["ok"] for r in runs), **summarize(runs, args.hogs),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
            "machine": machine(),
            "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": runs}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(__import__("json").dumps(data, indent=2) + "\n")
    else:
        write_results("make_run", data)
    return 0 if data["all_succeeded"] else 1


if __name__ == "__main__":
    sys.exit(main())
