"""Does `recommend --run --finetunes 6` reach the decision `--finetunes 12` reaches? Bootstrap replays of a recorded run
(issue 19: the same decision in >= 80% of replays, with fewer finetunes on average; both reported).

1. Record (`--record`): one `startpoint recommend --run --budget C --seeds S` on an offline-suite target the default
   grid does not use (as benchmarks/recommend_run.py), S seeds of the pretrained model and of each candidate it
   reaches. Needs a home `make run` made (`--home`). The report is kept in benchmarks/results/recommend_recorded.json.
2. Replay: each replay draws, for every recorded model, a fresh sequence of seed scores with replacement from its
   recorded ones; the adaptive protocol (the product's own `run_adaptive`, in batches of `--batch` as on 2 cores)
   then spends `--small` and `--large` finetunes on the same draws, and the fixed protocol (every candidate every
   seed, `run_protocol`) runs on them too. Reported: the share of replays where the small budget's decision (start
   from X, or stay) equals the large one's, with a Wilson 95% interval, and the mean finetunes each spent.

The replay uses the candidates' predictions as recorded before the baseline (the run updates them once the
baseline is known; the screening stop can differ slightly), and the recorded seeds stand for the seed-to-seed
spread of this target.

    .venv/bin/python benchmarks/recommend_budget.py --record --home /tmp/mrkeep   # records, then replays
    .venv/bin/python benchmarks/recommend_budget.py                               # replays the kept recording

Writes benchmarks/results/recommend_budget.json (and recommend_recorded.json with --record).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.recommend_run import ARCH, user_csv  # noqa: E402
from benchmarks.results_file import RESULTS_DIR, write_results  # noqa: E402

RECORDED = RESULTS_DIR / "recommend_recorded.json"
GOAL_AGREEMENT = 0.8


def record(home: Path, budget: int, seeds: int, rows: int) -> dict:
    """One fixed-protocol run with `seeds` seeds per model on a fresh copy of `home`; its report."""
    import shutil

    with tempfile.TemporaryDirectory(prefix="recommend-record-") as tmp:
        copy = Path(tmp) / "home"
        shutil.copytree(home, copy, symlinks=True)
        name, csv = user_csv(None, rows, Path(tmp))
        env = {**os.environ, "STARTPOINT_HOME": str(copy), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        env.pop("STARTPOINT_LAKE", None)
        out = Path(tmp) / "report.json"
        cmd = [str(Path(sys.executable).parent / "startpoint"), "recommend", "--data", str(csv), "--architecture",
               ARCH, "--run", "--budget", str(budget), "--seeds", str(seeds), "--report", str(out)]
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"recording failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        report = json.loads(out.read_text())
    protocol = report["protocol"]
    runs = [protocol["pretrained"], *protocol["candidates"]]
    failed = sum(len(r["failures"]) for r in runs) + len(protocol["skipped"])
    if failed:
        raise SystemExit(f"recording had {failed} failed finetune(s) or skipped candidate(s): not a usable record")
    return {"dataset": name, "rows": rows, "budget": budget, "seeds": seeds,
            "seconds": round(time.perf_counter() - started, 1), "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
            "pretrained_model": report["pretrained_model"], "interaction_sd": report["interaction_sd"],
            "candidates": report["candidates"],
            "scores": {r["model_id"]: r["scores"] for r in runs},
            "decision": report["decision"]["text"]}


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(centre - half, 3), round(centre + half, 3)


def decision_key(decision: dict) -> tuple[str, str]:
    return decision["action"], decision["model_id"]


def replay(rec: dict, small: int, large: int, replays: int, max_seeds: int, batch: int, seed: int) -> dict:
    from startpoint.recommend.adaptive import run_adaptive
    from startpoint.recommend.predict import CandidatePrediction
    from startpoint.recommend.protocol import run_protocol

    evidence = SimpleNamespace(pretrained_model=rec["pretrained_model"], interaction_sd=rec["interaction_sd"])
    recorded = set(rec["scores"])
    preds = [CandidatePrediction(**c) for c in rec["candidates"] if c["model_id"] in recorded]
    n_candidates = len(preds)
    rng = np.random.default_rng(seed)
    quiet = lambda m: None  # noqa: E731
    same, same_fixed, spent = 0, 0, {"small": [], "large": [], "fixed": []}
    decisions: dict[str, dict[str, int]] = {"small": {}, "large": {}, "fixed": {}}
    for _ in range(replays):
        draws = {m: rng.choice(np.asarray(s, float), size=max(max_seeds, 2) + 2, replace=True)
                 for m, s in rec["scores"].items()}

        def train_one(model_id: str, s: int):
            return float(draws[model_id][s]), None

        def train_many(jobs):
            return [train_one(m, s) for m, s in jobs]

        runs = {
            "small": run_adaptive(evidence, preds, train_many, small, n_candidates, max_seeds, batch=batch, log=quiet),
            "large": run_adaptive(evidence, preds, train_many, large, n_candidates, max_seeds, batch=batch, log=quiet),
            "fixed": run_protocol(evidence, preds, train_one, list(range(max_seeds)), n_candidates, log=quiet),
        }
        for name, result in runs.items():
            n = len(result.spent) if name != "fixed" else (len(result.pretrained.scores)
                                                            + sum(len(c.scores) for c in result.candidates))
            spent[name].append(n)
            key = " ".join(decision_key(result.decision))
            decisions[name][key] = decisions[name].get(key, 0) + 1
        same += decision_key(runs["small"].decision) == decision_key(runs["large"].decision)
        same_fixed += decision_key(runs["small"].decision) == decision_key(runs["fixed"].decision)
    low, high = wilson(same, replays)
    low_f, high_f = wilson(same_fixed, replays)
    return {
        "replays": replays, "small": small, "large": large, "max_seeds": max_seeds, "batch": batch,
        "candidates": n_candidates,
        "agreement_small_large": round(same / replays, 3), "agreement_low": low, "agreement_high": high,
        "agreement_small_fixed": round(same_fixed / replays, 3), "agreement_fixed_low": low_f,
        "agreement_fixed_high": high_f,
        "mean_finetunes": {k: round(float(np.mean(v)), 2) for k, v in spent.items()},
        "decisions": decisions,
        "meets_goal": bool(same / replays >= GOAL_AGREEMENT and np.mean(spent["small"]) < np.mean(spent["large"])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="record a run first (needs --home)")
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("STARTPOINT_HOME", ".startpoint")))
    parser.add_argument("--budget", type=int, default=3, help="candidates of the recorded run")
    parser.add_argument("--record-seeds", type=int, default=6, help="seeds per model of the recorded run")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--small", type=int, default=6)
    parser.add_argument("--large", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=3, help="--seeds of the replayed commands (seed cap)")
    parser.add_argument("--replays", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=2, help="finetunes side by side (the workers of 2 cores)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.record:
        rec = record(args.home, args.budget, args.record_seeds, args.rows)
        write_results(RECORDED.stem, rec)
    if not RECORDED.exists():
        print(f"no recorded run at {RECORDED}: run with --record --home <a home `make run` made>")
        return 2
    rec = json.loads(RECORDED.read_text())
    out = {"recorded": {k: rec[k] for k in ("dataset", "rows", "budget", "seeds", "measured_at", "decision")},
           **replay(rec, args.small, args.large, args.replays, args.seeds, args.batch, args.seed)}
    write_results("recommend_budget", out)
    print(json.dumps({k: v for k, v in out.items() if k != "decisions"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
