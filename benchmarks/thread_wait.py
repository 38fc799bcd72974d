"""One finetune on 2 threads, idle and beside CPU-bound processes, with OpenMP's default wait policy (threads spin
before they sleep) and the passive one startpoint sets (`startpoint/__init__.py`), and on 1 thread beside them:
why `recommend --run`'s seeds outside the workers, and every run of `STARTPOINT_WORKERS=1`, use sleeping threads.

The recipe is `recommend --run`'s (256 training examples, 2 epochs, 64 tokens, batch 16) on an offline-suite target
the default grid does not use; each measurement is a fresh process (OpenMP reads the policy when torch loads), the
same seed, so every variant trains the same model and must reach the same score (checked; otherwise the file says
`all_succeeded: false` and the script exits 1). Rounds alternate the order of the variants; medians over rounds.

    .venv/bin/python benchmarks/thread_wait.py [--rounds 1] [--hogs 2] [--dataset fortunes_topic]

Writes benchmarks/results/thread_wait.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# name: (threads, OMP_WAIT_POLICY; "" makes libgomp warn and keep its default: spin, then sleep)
VARIANTS = {"2 threads, default wait": (2, ""), "2 threads, passive wait": (2, "PASSIVE"),
            "1 thread": (1, "PASSIVE")}

CHILD = """
import json, sys, time
from startpoint.data import load_offline
from startpoint.engine import Recipe, finetune
from startpoint.zoo import DEFAULT_BASE, resolve
ds = load_offline(sys.argv[1])
recipe = Recipe(train_cap=256, eval_cap=200, epochs=2, max_length=64, batch_size=16)
folder = resolve(DEFAULT_BASE)
started = time.perf_counter()
r = finetune(folder, ds, recipe, 0, log=lambda m: None, cache_dir=None)
import torch
print(json.dumps({"seconds": round(time.perf_counter() - started, 1), "score": r.score, "status": r.status,
                  "threads": torch.get_num_threads()}))
"""


def measure(dataset: str, variant: str, hogs: int) -> dict:
    from benchmarks.contention import spinning

    threads, policy = VARIANTS[variant]
    env = {**os.environ, "STARTPOINT_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "OMP_WAIT_POLICY": policy, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    with spinning(hogs):
        proc = subprocess.run([sys.executable, "-c", CHILD, dataset], cwd=ROOT, env=env, capture_output=True,
                              text=True)
    line = (proc.stdout.strip().splitlines() or ["{}"])[-1]
    out = json.loads(line) if line.startswith("{") else {}
    ok = proc.returncode == 0 and out.get("status") == "ok" and out.get("threads") == threads
    return {"variant": variant, "hogs": hogs, **out, "exit_code": proc.returncode, "ok": ok}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--hogs", type=int, default=2)
    parser.add_argument("--dataset", default="fortunes_topic")
    args = parser.parse_args(argv)
    from benchmarks.results_file import machine, write_results

    runs = []
    for r in range(args.rounds):
        order = [(v, h) for h in (0, args.hogs) for v in VARIANTS if not (h == 0 and VARIANTS[v][0] == 1)]
        for variant, hogs in (order if r % 2 == 0 else order[::-1]):
            runs.append({"round": r, **measure(args.dataset, variant, hogs)})
            print(runs[-1], flush=True)
    scores = {run.get("score") for run in runs}
    medians = {}
    for variant in VARIANTS:
        for hogs in (0, args.hogs):
            values = [x["seconds"] for x in runs if x["variant"] == variant and x["hogs"] == hogs and x["ok"]]
            if values:
                medians.setdefault(variant, {})["idle_seconds" if hogs == 0 else "contended_seconds"] = round(
                    statistics.median(values), 1)
    for m in medians.values():
        if "idle_seconds" in m and "contended_seconds" in m:
            m["contended_over_idle"] = round(m["contended_seconds"] / m["idle_seconds"], 2)
    data = {"dataset": args.dataset, "rounds": args.rounds, "hogs": args.hogs,
            "all_succeeded": all(x["ok"] for x in runs) and len(scores) == 1, "same_score": len(scores) == 1,
            "medians": medians,
            "machine": machine(),
            "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": runs}
    write_results("thread_wait", data)
    return 0 if data["all_succeeded"] else 1


if __name__ == "__main__":
    sys.exit(main())
