"""The GPU check that `benchmarks/gpu_check.sh` runs: engine vs Trainer with bf16 autocast on one GPU, for
MiniLM-L6 and one larger encoder, the share of the GPU's measured bf16 matmul peak, and a
`startpoint recommend --run --budget 3` timing. Writes benchmarks/results/gpu_check.json (or --out).

Without a GPU it still runs, at tiny sizes on CPU (fp32), to show the script works; the file then says
`gpu_found: false` and that none of its figures are GPU figures.

    .venv/bin/python benchmarks/gpu_check.py [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "gpu_check.json"
LARGE_CANDIDATES = ("sentence-transformers/all-mpnet-base-v2",)  # packaged ids tried in order
ARCH = "all-MiniLM-L6-v2"

FULL = {"train": 2048, "test": 1000, "rounds": 3, "contenders": "engine,trainer_grouped,trainer_default"}
QUICK = {"train": 64, "test": 48, "rounds": 1, "contenders": "engine,trainer_grouped"}


def larger_encoder() -> tuple[str | None, str]:
    """(model folder or None, why): $GPU_CHECK_LARGE_MODEL, else the first packaged larger encoder in the zoo."""
    from pipelines.zoo import PRETRAINED, resolve

    folder = os.environ.get("GPU_CHECK_LARGE_MODEL")
    if folder:
        if not (Path(folder) / "config.json").is_file():
            return None, f"GPU_CHECK_LARGE_MODEL={folder} is not a model folder (no config.json)"
        return folder, f"GPU_CHECK_LARGE_MODEL={folder}"
    reasons = []
    for model_id in LARGE_CANDIDATES:
        if model_id not in PRETRAINED:
            reasons.append(f"{model_id} is not in the zoo (pipelines.zoo.PRETRAINED)")
            continue
        try:
            return str(resolve(model_id)), model_id
        except Exception as exc:  # not installed: the zoo's own message says how to install it
            reasons.append(f"{model_id}: {exc}")
    return None, "; ".join(reasons) + "; set GPU_CHECK_LARGE_MODEL to a local model folder to use another one"


def throughput(model: str, device: str, sizes: dict, out: Path, log) -> dict:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "finetune_throughput.py"), "--model", model,
           "--device", device, "--train", str(sizes["train"]), "--test", str(sizes["test"]),
           "--rounds", str(sizes["rounds"]), "--contenders", sizes["contenders"], "--out", str(out)]
    if device == "cuda":
        cmd.append("--bf16")
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = round(time.perf_counter() - started, 1)
    log(proc.stdout.rstrip())
    if proc.returncode:
        log(proc.stderr[-3000:])
        return {"model": model, "status": "failed", "seconds": seconds, "error": proc.stderr.strip()[-500:]}
    r = json.loads(out.read_text())
    return {
        "model": model, "status": "ok", "seconds": seconds, "n_train": r["n_train"], "rounds": r["rounds"],
        "bf16": r["bf16"], "matmul_peak_gflops": r["matmul_peak_gflops"],
        "examples_per_second": {n: s["examples_per_second"] for n, s in r["summary"].items()},
        "executed_share_of_peak": {n: s["executed_share_of_peak"] for n, s in r["summary"].items()},
        "useful_share_of_peak": {n: s["useful_share_of_peak"] for n, s in r["summary"].items()},
        "accuracy_mean": {n: round(s["accuracy_mean"], 4) for n, s in r["summary"].items()},
        "parity": r["parity"], "ratios": r["ratios"], "goals": r["goals"],
    }


def recommend_home(home: Path) -> str:
    """A home whose warehouse ranks three local MiniLM-L6 candidates, so --run finetunes 4 models.

    $STARTPOINT_HOME is used as it is when its warehouse already has a MiniLM-L6 leaderboard (after `make run`);
    otherwise a fresh home gets the recommend tests' fixture warehouse plus three local candidates that are
    copies of the packaged encoder (the timing needs real weights, not a real ranking)."""
    import duckdb

    from pipelines.settings import get_settings
    from pipelines.zoo import DEFAULT_BASE, resolve

    existing = get_settings().warehouse_path
    if existing.exists():
        con = duckdb.connect(str(existing), read_only=True)
        try:
            n = con.execute("select count(*) from leaderboard where architecture = ?", [ARCH]).fetchone()[0]
        except duckdb.Error:
            n = 0
        con.close()
        if n >= 3:
            return f"the warehouse in $STARTPOINT_HOME ({existing}), {n} ranked {ARCH} models"
    sys.path.insert(0, str(ROOT / "tests"))
    from product_fixture import build

    (home / "models").mkdir(parents=True, exist_ok=True)
    build(home / "warehouse.duckdb")
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    for i in range(3):
        (home / "models" / f"local--gpu-check-{i}").symlink_to(resolve(DEFAULT_BASE), target_is_directory=True)
        con.execute(
            """insert into leaderboard (architecture, rank, model_id, avg_score, pretrained_avg, mean_gain, ci_low,
                                        ci_high, win_rate, n_targets, probe_score, flagged, flag_reason)
               values (?, ?, ?, 80.0, 79.0, 1.0, 0.5, 1.5, 0.9, 9, null, false, null)""",
            [ARCH, i + 1, f"local/gpu-check-{i}"],
        )
    con.execute("update leaderboard set rank = rank + 3 where architecture = ? and model_id not like 'local/%'",
                [ARCH])
    con.close()
    os.environ["STARTPOINT_HOME"] = str(home)
    os.environ.pop("STARTPOINT_LAKE", None)
    return "fixture warehouse (tests/product_fixture.py) with 3 local candidates = copies of the packaged MiniLM-L6"


def recommend_timing(work: Path, quick: bool, log) -> dict:
    from benchmarks.recommend_run import user_csv

    warehouse = recommend_home(work / "home")
    name, csv = user_csv(None, 3000, work)
    cmd = [str(Path(sys.executable).parent / "startpoint"), "recommend", "--data", str(csv), "--architecture", ARCH,
           "--budget", "3", "--run", "--report", str(work / "recommend.json")]
    if quick:
        cmd += ["--seeds", "2", "--train-cap", "48"]
    if not Path(cmd[0]).exists():
        cmd[0:1] = [sys.executable, "-m", "pipelines.cli"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=os.environ.copy())
    seconds = round(time.perf_counter() - started, 1)
    log(proc.stdout.rstrip()[-2000:])
    out = {"command": " ".join(["startpoint"] + cmd[1:]).replace(str(work), "<tmp>"), "dataset": name,
           "warehouse": warehouse, "seconds": seconds, "exit_code": proc.returncode}
    if proc.returncode:
        out["error"] = (proc.stderr or proc.stdout).strip()[-500:]
        return out
    report = json.loads((work / "recommend.json").read_text())
    protocol = report.get("protocol") or {}
    out["runs"] = len(protocol.get("lake_files", []))
    out["candidates_run"] = [c["model_id"] for c in protocol.get("candidates", [])]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (always so without a GPU)")
    parser.add_argument("--no-recommend", action="store_true",
                        help="skip the recommend timing (a machine without the warehouse's packages)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    from pipelines.zoo import DEFAULT_BASE

    def log(text: str) -> None:
        if text:
            print(text, flush=True)

    started = time.perf_counter()
    gpu = torch.cuda.is_available()
    quick = args.quick or not gpu
    device = "cuda" if gpu else "cpu"
    sizes = QUICK if quick else FULL
    note = (f"GPU: {torch.cuda.get_device_name(0)}; bf16 autocast for every contender; peak = measured bf16 matmul"
            if gpu else "no GPU was found (torch.cuda.is_available() is False): this ran on CPU in fp32 at tiny sizes "
            "only to show that the script works; none of these figures are GPU figures")
    log(f"gpu_check: {note}; sizes {sizes}")
    out = {"gpu_found": gpu, "note": note, "device": device, "quick": quick, "sizes": sizes,
           "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                       "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0) if gpu else None,
                       "load_average_at_start": os.getloadavg()},
           "models": [], "skipped": []}
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        work = Path(tmp)
        large, why = larger_encoder()
        models = [("MiniLM-L6", DEFAULT_BASE)] + ([("larger", large)] if large else [])
        if not large:
            out["skipped"].append({"what": "larger encoder", "why": why})
            log(f"skipped the larger encoder: {why}")
        for label, model in models:
            log(f"\n== throughput, {label}: {model}")
            r = throughput(model, device, sizes, work / f"{label}.json", log)
            out["models"].append({"label": label, **r})
        if args.no_recommend:
            out["recommend_run"] = {"seconds": None, "exit_code": None, "skipped": "--no-recommend"}
            out["skipped"].append({"what": "recommend --run --budget 3", "why": "--no-recommend"})
        else:
            log("\n== startpoint recommend --run --budget 3")
            out["recommend_run"] = recommend_timing(work, quick, log)
        shutil.rmtree(work / "home", ignore_errors=True)
    out["machine"]["load_average_at_end"] = os.getloadavg()
    out["total_seconds"] = round(time.perf_counter() - started, 1)
    rec = out["recommend_run"]
    log(f"\ngpu_check: {out['total_seconds']} s in all; recommend --run --budget 3: "
        + (f"{rec['seconds']} s (exit {rec['exit_code']})" if rec["exit_code"] is not None else "skipped"))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    log(f"wrote {args.out}")
    failed = [m["label"] for m in out["models"] if m["status"] != "ok"] + (
        ["recommend"] if out["recommend_run"]["exit_code"] else [])  # None (skipped) is not a failure
    if failed:
        print(f"gpu_check: failed steps: {', '.join(failed)} (details in {args.out})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
