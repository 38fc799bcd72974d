"""Cost of probing one model vs the full evaluation it stands in for (target: probe ≤ 1/50 of it).

Measured side by side in one process, interleaved (probe, then that target's finetunes, then the next probe ...):

* probe: the whole `probe_model` call with an empty feature cache (safety check, proxy dataset, model load,
  encoder pass, linear head, LogME) at the asset's default caps; the median of one probe per target;
* full evaluation: `finetune` of the same model on every target of the engine's default grid, with each target's
  recipe and every default seed (`--seeds N` measures the first N seeds and scales to all of them). Reported two
  ways: wall-clock of the `finetune` call (model load, training, validation, test scoring: what a partition
  pays) and `train_seconds` alone (training only: a lower bound that flatters finetuning).

Process start-up is left out of both: library imports, one untimed probe (transformers builds its weight-name
mappings on the first load in a process) and the first parse of every dataset (kept for the process's life).

    .venv/bin/python benchmarks/probe_cost.py [--model sentence-transformers/all-MiniLM-L6-v2] [--seeds 2]
Prints both times and the ratios; writes benchmarks/results/probe_cost.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TARGET_RATIO = 1 / 50


def probe(model_id: str, proxy: str) -> tuple[float, list[dict]]:
    from startpoint.probes.run import probe_model
    from startpoint.zoo import architecture_of, resolve

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        rows = probe_model(model_id, architecture_of(model_id), resolve(model_id), cache_dir=Path(cache), proxy=proxy)
        return time.perf_counter() - start, rows


def finetune_once(model_id: str, target: str, seed: int, token_cache: Path) -> dict:
    from startpoint.data import load_dataset
    from startpoint.engine import finetune
    from startpoint.grid import target_recipe
    from startpoint.zoo import resolve

    recipe = target_recipe(target)
    start = time.perf_counter()
    dataset = load_dataset(target, caps=recipe.split_caps)
    result = finetune(resolve(model_id), dataset, recipe, seed, log=lambda _m: None, cache_dir=token_cache)
    wall = time.perf_counter() - start
    if result.status != "ok":
        raise SystemExit(f"finetune of {model_id} on {target} (seed {seed}) failed: {result.error}")
    return {"target": target, "seed": seed, "recipe_hash": recipe.recipe_hash, "wall_seconds": round(wall, 2),
            "train_seconds": result.train_seconds, "score": round(result.score, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--seeds", type=int, default=None, help="measure the first N default seeds (default: all)")
    args = parser.parse_args()

    import torch

    from benchmarks.results_file import write_results
    from startpoint.data import load_dataset
    from startpoint.grid import DEFAULT_GRID
    from startpoint.probes.run import default_proxy

    proxy, targets, seeds = default_proxy(), DEFAULT_GRID.targets, list(DEFAULT_GRID.seeds)
    measured_seeds = seeds[: args.seeds or len(seeds)]
    for dataset_id in (proxy, *targets):  # first parse of each set: process start-up, kept in memory after
        load_dataset(dataset_id)
    probe(args.model, proxy)  # untimed: the first model load in a process builds transformers' mappings

    probes, runs = [], []
    with tempfile.TemporaryDirectory() as token_cache:
        for target in targets:
            seconds, rows = probe(args.model, proxy)
            probes.append(seconds)
            print(f"probe ({proxy}: LP {rows[0]['score']:.1f}%, LogME {rows[1]['score']:.3f}): {seconds:.2f} s", flush=True)
            for seed in measured_seeds:
                runs.append(finetune_once(args.model, target, seed, Path(token_cache)))
                r = runs[-1]
                print(f"  finetune {target} seed {seed}: {r['wall_seconds']:.1f} s wall, {r['train_seconds']:.1f} s "
                      f"training, {r['score']:.1f}%", flush=True)

    probe_s = statistics.median(probes)
    scale = len(seeds) / len(measured_seeds)
    full_wall = sum(r["wall_seconds"] for r in runs) * scale
    full_train = sum(r["train_seconds"] for r in runs) * scale
    ratio_wall, ratio_train = probe_s / full_wall, probe_s / full_train
    verdict = "PASS" if max(ratio_wall, ratio_train) <= TARGET_RATIO else "FAIL"
    print(f"\nfull evaluation = {len(targets)} targets ({', '.join(targets)}) x seeds {seeds}"
          + (f" (seeds {measured_seeds} measured, scaled x{scale:g})" if scale != 1 else ""))
    print(f"{'':34}{'seconds':>9}{'probe/it':>11}")
    print(f"{'probe (LP + LogME), median':34}{probe_s:>9.2f}")
    print(f"{'full evaluation, wall-clock':34}{full_wall:>9.1f}{'1/' + format(1 / ratio_wall, '.0f'):>11}")
    print(f"{'full evaluation, training only':34}{full_train:>9.1f}{'1/' + format(1 / ratio_train, '.0f'):>11}")
    print(f"target: probe <= 1/{1 / TARGET_RATIO:.0f} of the full evaluation (both ways): {verdict}")
    write_results("probe_cost", {
        "model": args.model, "proxy_dataset": proxy, "probe_seconds": round(probe_s, 3),
        "probe_seconds_each": [round(s, 3) for s in probes], "probe_rows": rows,
        "full_evaluation": {"targets": list(targets), "seeds": seeds, "measured_seeds": measured_seeds,
                            "wall_seconds": round(full_wall, 2), "train_seconds": round(full_train, 2), "runs": runs},
        "ratio_wall": ratio_wall, "ratio_train_only": ratio_train, "target_ratio": TARGET_RATIO, "pass": verdict == "PASS",
        "load_average": os.getloadavg(),
        "machine": {"cpu_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(), "python": platform.python_version()},
    })


if __name__ == "__main__":
    main()
