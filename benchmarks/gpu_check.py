"""The GPU check that `benchmarks/gpu_check.sh` runs: engine vs Trainer with bf16 autocast on one GPU, for
MiniLM-L6 and one larger encoder, the share of the GPU's measured bf16 matmul peak, and a
`startpoint recommend --run --budget 3` timing. Writes benchmarks/results/gpu_check.json (or --out).

Without a GPU it still runs, at tiny sizes on CPU (fp32), to show the script works; the file then says
`gpu_found: false` and that none of its figures are GPU figures.

    .venv/bin/python benchmarks/gpu_check.py [--quick] [--out FILE] [--pack DIR]

--pack DIR is for a GPU machine that has torch and transformers but not this project's packages: DIR is what
`benchmarks/gpu_check_pack.py DIR` wrote here (MiniLM-L6's config and tokenizer, the dataset as a CSV). The two
encoders are then built from their configs with a fixed seed (MiniLM-L6, and a bert-base-sized 12 x 768 encoder
with the same tokenizer) instead of loading pretrained weights: throughput does not depend on the weights, and the
engine and the Trainer still start from the same initialisation, so accuracy parity still holds, but absolute
accuracy is then not meaningful. The throughput part needs no dagster: `startpoint` never imports it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
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

from benchmarks.finetune_throughput import ratio_cell  # noqa: E402  one cell format for both tables

RESULTS = ROOT / "benchmarks" / "results" / "gpu_check.json"
LARGE_CANDIDATES = ("sentence-transformers/all-mpnet-base-v2",)  # packaged ids tried in order
ARCH = "all-MiniLM-L6-v2"

FULL = {"train": 2048, "test": 1000, "rounds": 3, "contenders": "engine,trainer_grouped,trainer_default"}
QUICK = {"train": 64, "test": 48, "rounds": 1, "contenders": "engine,trainer_grouped"}


def larger_encoder() -> tuple[str | None, str]:
    """(model folder or None, why): $GPU_CHECK_LARGE_MODEL, else the first packaged larger encoder in the zoo."""
    from startpoint.zoo import PRETRAINED, resolve

    folder = os.environ.get("GPU_CHECK_LARGE_MODEL")
    if folder:
        if not (Path(folder) / "config.json").is_file():
            return None, f"GPU_CHECK_LARGE_MODEL={folder} is not a model folder (no config.json)"
        return folder, f"GPU_CHECK_LARGE_MODEL={folder}"
    reasons = []
    for model_id in LARGE_CANDIDATES:
        if model_id not in PRETRAINED:
            reasons.append(f"{model_id} is not in the zoo (startpoint.zoo.PRETRAINED)")
            continue
        try:
            return str(resolve(model_id)), model_id
        except Exception as exc:  # not installed: the zoo's own message says how to install it
            reasons.append(f"{model_id}: {exc}")
    return None, "; ".join(reasons) + "; set GPU_CHECK_LARGE_MODEL to a local model folder to use another one"


def throughput(model: str, device: str, sizes: dict, out: Path, log, dataset: str | None = None,
               env: dict | None = None) -> dict:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "finetune_throughput.py"), "--model", model,
           "--device", device, "--train", str(sizes["train"]), "--test", str(sizes["test"]),
           "--rounds", str(sizes["rounds"]), "--contenders", sizes["contenders"], "--out", str(out)]
    if dataset:
        cmd += ["--dataset", dataset]
    if device == "cuda":
        cmd += ["--bf16", "--warmup", str(sizes.get("warmup", 256))]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    seconds = round(time.perf_counter() - started, 1)
    log(proc.stdout.rstrip())
    if proc.returncode:
        log(proc.stderr[-3000:])
        return {"model": model, "status": "failed", "seconds": seconds, "error": proc.stderr.strip()[-500:]}
    r = json.loads(out.read_text())
    return {
        "model": model, "status": "ok", "seconds": seconds, "n_train": r["n_train"], "n_test": r["n_test"],
        "rounds": r["rounds"], "warmup_examples": r.get("warmup_examples", 0), "dataset": r["dataset"],
        "recipe": r["recipe"],
        "bf16": r["bf16"], "matmul_peak_gflops": r["matmul_peak_gflops"],
        "examples_per_second": {n: s["examples_per_second"] for n, s in r["summary"].items()},
        "executed_share_of_peak": {n: s["executed_share_of_peak"] for n, s in r["summary"].items()},
        "useful_share_of_peak": {n: s["useful_share_of_peak"] for n, s in r["summary"].items()},
        "accuracy_mean": {n: round(s["accuracy_mean"], 4) for n, s in r["summary"].items()},
        "executed_gflops": {n: s["executed_gflops"] for n, s in r["summary"].items()},
        "padding_share": {n: round(s["padding_share"], 4) for n, s in r["summary"].items()},
        "accuracy_per_round": {n: s["accuracy_per_round"] for n, s in r["summary"].items()},
        "parity": r["parity"], "ratios": r["ratios"], "goals": r["goals"],
    }


def seeded_encoders(pack: Path, work: Path, log) -> list[tuple[str, str, dict]]:
    """(label, model folder, description) for MiniLM-L6 and a bert-base-sized encoder, each built from its
    config with seed 0 and saved as safetensors with MiniLM-L6's tokenizer (same 30,522-token vocabulary)."""
    import torch
    from transformers import AutoConfig, AutoModel

    src = pack / "minilm-l6"
    if not (src / "config.json").is_file():
        raise SystemExit(f"gpu_check: --pack {pack}: no minilm-l6/config.json; run "
                         f"'.venv/bin/python benchmarks/gpu_check_pack.py {pack}' on a machine with the packages")
    base = json.loads((src / "config.json").read_text())
    large = {**base, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072}
    built = []
    for label, cfg in (("MiniLM-L6", base), ("bert-base-sized", large)):
        folder = work / "models" / label
        folder.mkdir(parents=True, exist_ok=True)
        for f in src.iterdir():
            if f.name != "config.json":
                shutil.copy2(f, folder / f.name)
        (folder / "config.json").write_text(json.dumps(cfg, indent=2))
        torch.manual_seed(0)
        model = AutoModel.from_config(AutoConfig.from_pretrained(folder))
        model.save_pretrained(folder, safe_serialization=True)
        n = sum(p.numel() for p in model.parameters())
        desc = {"architecture": cfg.get("architectures", ["BertModel"])[0], "layers": cfg["num_hidden_layers"],
                "hidden": cfg["hidden_size"], "heads": cfg["num_attention_heads"],
                "intermediate": cfg["intermediate_size"], "parameters": n,
                "weights": "random initialisation from config.json, torch seed 0 (not pretrained)"}
        log(f"built {label}: {desc}")
        built.append((label, str(folder), desc))
        del model
    return built


def missing(*modules: str) -> list[str]:
    def absent(m: str) -> bool:
        try:
            return importlib.util.find_spec(m) is None
        except (ImportError, ValueError):
            return True

    return [m for m in modules if absent(m)]


def recommend_home(home: Path) -> str:
    """A home whose warehouse ranks three local MiniLM-L6 candidates, so --run finetunes 4 models.

    $STARTPOINT_HOME is used as it is when its warehouse already has a MiniLM-L6 leaderboard (after `make run`);
    otherwise a fresh home gets the recommend tests' fixture warehouse plus three local candidates that are
    copies of the packaged encoder (the timing needs real weights, not a real ranking)."""
    import duckdb

    from startpoint.settings import get_settings
    from startpoint.zoo import DEFAULT_BASE, resolve

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


DOC = ROOT / "docs" / "engine.md"
MARKER = "<!-- results: benchmarks/results/gpu_check.json -->\n"
END_MARKER = "<!-- end of GPU results -->\n"
NO_GPU = ("No GPU figures: the committed results file is a CPU run (no GPU was found), which only shows that the "
          "script works.\n")


def _spread(d: dict, scale: float = 1.0, fmt: str = ".1f") -> str:
    return f"{d['median'] * scale:{fmt}} ({d['min'] * scale:{fmt}}–{d['max'] * scale:{fmt}})"


def _pct(d: dict) -> str:
    return f"{100 * d['median']:.2f}% ({100 * d['min']:.2f}–{100 * d['max']:.2f}%)"


def markdown(out: dict) -> str:
    """The GPU table and notes that docs/engine.md quotes, rendered from gpu_check.json (a test compares them)."""
    if not out["gpu_found"]:
        return NO_GPU
    lines = ["| encoder | contender | examples/s, median (min–max) | test accuracy, mean | executed TFLOP/s, median "
             "(min–max) | share of the bf16 peak, median (min–max) | engine ÷ contender, median (min–max) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for m in out["models"]:
        if m["status"] != "ok":
            lines.append(f"| {m['label']} | — | failed: {m.get('error', '')[:80]} | | | | |")
            continue
        for name, eps in m["examples_per_second"].items():
            ratio = ratio_cell(None if name == "engine" else m["ratios"][f"engine_vs_{name}"])
            lines.append(f"| {m['label']} | {name} | {_spread(eps)} | {100 * m['accuracy_mean'][name]:.1f}% | "
                         f"{_spread(m['executed_gflops'][name], 1e-3, '.2f')} | "
                         f"{_pct(m['executed_share_of_peak'][name])} | {ratio} |")
    lines.append("")
    ok = [m for m in out["models"] if m["status"] == "ok"]
    if ok:
        m0 = ok[0]
        peaks = [p for m in ok for p in m["matmul_peak_gflops"]["per_round"]]
        mach = out["machine"]
        lines.append(
            f"{mach['gpu']}, torch {mach['torch']}, transformers {mach['transformers']}, bf16 autocast for every "
            f"contender; {m0['n_train']} training / {m0['n_test']} test examples of {m0['dataset'].split('/')[-1]} "
            f"(tweets_sentiment, packed), one epoch, batch {m0['recipe']['batch_size']}, max_length "
            f"{m0['recipe']['max_length']}, {m0['rounds']} alternating rounds after an untimed warm-up of "
            f"{m0['warmup_examples']} examples per contender; measured bf16 matmul peak (8192³) "
            f"{min(peaks) / 1e3:.1f}–{max(peaks) / 1e3:.1f} TFLOP/s over the rounds.")
        for m in ok:
            e = m.get("encoder")
            if e:
                lines.append(f"{m['label']}: {e['layers']} layers × {e['hidden']} hidden, {e['parameters']:,} "
                             "parameters, random initialisation from its config with seed 0 (not pretrained).")
        for m in ok:
            lines.append(f"Parity ({m['label']}): " + "; ".join(
                f"engine − {n} {p['delta_points']:+.1f} points ({'within' if p['within'] else 'outside'} "
                f"±{p['limit_points']:g})" for n, p in m["parity"].items()) + ".")
    rec = out["recommend_run"]
    if rec.get("exit_code") is None:
        lines.append(f"`recommend --run --budget 3`: not timed on the GPU ({rec.get('skipped')}).")
    else:
        lines.append(f"`recommend --run --budget 3`: {rec['seconds']:.1f} s, exit code {rec['exit_code']}.")
    return "\n".join(lines) + "\n"


def write_docs(results_path: Path, doc: Path = DOC) -> int:
    out = json.loads(results_path.read_text())
    text = doc.read_text(encoding="utf-8")
    start = text.index(MARKER) + len(MARKER)
    end = text.index(END_MARKER, start)
    doc.write_text(text[:start] + markdown(out) + text[end:], encoding="utf-8")
    print(f"wrote the GPU table of {results_path.name} into {doc}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (always so without a GPU)")
    parser.add_argument("--no-recommend", action="store_true",
                        help="skip the recommend timing (a machine without the warehouse's packages)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--pack", default=None,
                        help="folder from benchmarks/gpu_check_pack.py: seeded encoders + the dataset as a CSV")
    parser.add_argument("--sizes", default=None, metavar="TRAIN,TEST,ROUNDS",
                        help="override the training/test examples and rounds (a smoke test of the script)")
    parser.add_argument("--write-docs", action="store_true",
                        help="only render the results file (--out) into docs/engine.md, then exit")
    args = parser.parse_args(argv)
    if args.write_docs:
        return write_docs(Path(args.out))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    def log(text: str) -> None:
        if text:
            print(text, flush=True)

    started = time.perf_counter()
    gpu = torch.cuda.is_available()
    quick = args.quick or not gpu
    device = "cuda" if gpu else "cpu"
    sizes = dict(QUICK if quick else FULL)
    if args.sizes:
        train, test, rounds = (int(x) for x in args.sizes.split(","))
        sizes.update(train=train, test=test, rounds=rounds)
    note = (f"GPU: {torch.cuda.get_device_name(0)}; bf16 autocast for every contender; peak = measured bf16 matmul"
            if gpu else "no GPU was found (torch.cuda.is_available() is False): this ran on CPU in fp32 at tiny sizes "
            "only to show that the script works; none of these figures are GPU figures")
    log(f"gpu_check: {note}; sizes {sizes}")
    out = {"gpu_found": gpu, "note": note, "device": device, "quick": quick, "sizes": sizes,
           "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                       "python": platform.python_version(), "torch": torch.__version__,
                       "transformers": importlib.metadata.version("transformers"), "gpu": torch.cuda.get_device_name(0) if gpu else None,
                       "load_average_at_start": os.getloadavg()},
           "models": [], "skipped": []}
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        work = Path(tmp)
        env, dataset = os.environ.copy(), None
        if args.pack:
            pack = Path(args.pack).resolve()
            dataset = str(pack / "dataset.csv")
            built = seeded_encoders(pack, work, log)
            models = [(label, folder) for label, folder, _ in built]
            descriptions = {label: desc for label, _, desc in built}
            out["pack"] = {"dir": args.pack, "dataset": "tweets_sentiment as packed by gpu_check_pack.py "
                           "(the same split and caps as the suite loader gives here)",
                           "weights": "seeded random initialisation, not pretrained: examples/s, FLOP/s and "
                           "accuracy parity are meaningful, absolute accuracy is not"}
        else:
            from startpoint.zoo import DEFAULT_BASE

            descriptions = {}
            large, why = larger_encoder()
            models = [("MiniLM-L6", DEFAULT_BASE)] + ([("larger", large)] if large else [])
            if not large:
                out["skipped"].append({"what": "larger encoder", "why": why})
                log(f"skipped the larger encoder: {why}")
        for label, model in models:
            log(f"\n== throughput, {label}: {model}")
            r = throughput(model, device, sizes, work / f"{label}.json", log, dataset, env)
            if label in descriptions:
                r["model"] = f"{label} ({descriptions[label]['layers']} x {descriptions[label]['hidden']}, seeded)"
                r["encoder"] = descriptions[label]
            out["models"].append({"label": label, **r})
        lacking = missing("duckdb", "dagster")
        if args.no_recommend or lacking:
            why = ("--no-recommend" if args.no_recommend else
                   f"{', '.join(lacking)} not installed on this machine: `startpoint recommend --run` reads the "
                   "warehouse (duckdb) and the CLI imports dagster, and it finetunes the packaged encoders' real "
                   "weights (91 MB for MiniLM-L6 alone); with the polars wheels (54 MB) they do not fit the 64 MiB "
                   "that can be carried to the device, so recommend was not timed on the GPU")
            out["recommend_run"] = {"seconds": None, "exit_code": None, "skipped": why}
            out["skipped"].append({"what": "recommend --run --budget 3", "why": why})
            log(f"skipped recommend: {why}")
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
