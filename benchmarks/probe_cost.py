"""Cost of probing one model vs the full evaluation it stands in for (target: probe ≤ 1/50 of it).

Probe: the whole `probe_model` call from a cold feature cache (model and proxy-dataset loading, the encoder
pass, the linear head and LogME), default caps, on the offline proxy dataset.
Full evaluation: finetuning the same model on every target of the engine's default grid with its seeds and
recipe. Read from the lake of a `make run` (`--lake`, the runs' `train_seconds`, which leave out model loading
and scoring, so the ratio is if anything flattering to finetuning), or measured here (`--measure-seeds N`
seeds per target, wall-clock around `finetune`, scaled to the grid's seed count).

    .venv/bin/python benchmarks/probe_cost.py [--model sentence-transformers/all-MiniLM-L6-v2] [--lake URL]
        [--measure-seeds 1]
Prints both times and the ratio; writes benchmarks/results/probe_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


def probe_seconds(model_id: str) -> tuple[float, list[dict]]:
    from pipelines.probes.run import default_proxy, probe_model
    from pipelines.zoo import architecture_of, resolve

    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    # Library imports are process start-up (the finetunes timed later never pay them either): the model's
    # modeling module and scikit-learn's heads.
    MODEL_MAPPING[type(AutoConfig.from_pretrained(resolve(model_id)))]
    import sklearn.linear_model  # noqa: F401
    import sklearn.model_selection  # noqa: F401

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        rows = probe_model(model_id, architecture_of(model_id), resolve(model_id), cache_dir=Path(cache), proxy=default_proxy())
        return time.perf_counter() - start, rows


def lake_finetune_seconds(lake_url: str, model_id: str) -> dict | None:
    """Sum of train_seconds over the default grid's targets x seeds, if the lake holds every one of them."""
    from pipelines import lake as lake_files
    from pipelines.engine.grid import DEFAULT_GRID

    rows = [
        r for r in lake_files.read(lake_url, "finetune_runs").to_pylist()
        if r["model_id"] == model_id and r["status"] == "ok" and r["recipe_hash"] == DEFAULT_GRID.target_recipe.recipe_hash
        and r["dataset_id"] in DEFAULT_GRID.targets and r["seed"] in DEFAULT_GRID.seeds and r["train_seconds"]
    ]
    cells = {(r["dataset_id"], r["seed"]): r["train_seconds"] for r in rows}
    if len(cells) < len(DEFAULT_GRID.targets) * len(DEFAULT_GRID.seeds):
        return None
    return {"seconds": sum(cells.values()), "runs": len(cells), "how": f"train_seconds from the lake {lake_url}"}


def measured_finetune_seconds(model_id: str, seeds_measured: int) -> dict:
    from pipelines.data import SplitCaps, load_dataset
    from pipelines.engine import finetune
    from pipelines.engine.grid import DEFAULT_GRID
    from pipelines.zoo import resolve

    recipe, per_target = DEFAULT_GRID.target_recipe, {}
    for target in DEFAULT_GRID.targets:
        dataset = load_dataset(target, caps=SplitCaps(train=recipe.train_cap, validation=recipe.eval_cap, test=recipe.test_cap))
        times = []
        for seed in list(DEFAULT_GRID.seeds)[:seeds_measured]:
            start = time.perf_counter()
            result = finetune(resolve(model_id), dataset, recipe, seed, log=lambda _m: None)
            times.append(time.perf_counter() - start)
            if result.status != "ok":
                raise SystemExit(f"finetune of {model_id} on {target} failed: {result.error}")
        per_target[target] = sum(times) / len(times)
        print(f"  finetune {target}: {per_target[target]:.1f} s per seed", flush=True)
    total = sum(per_target.values()) * len(DEFAULT_GRID.seeds)
    return {"seconds": total, "runs": len(DEFAULT_GRID.targets) * len(DEFAULT_GRID.seeds), "per_target_seed": per_target,
            "how": f"measured here: {seeds_measured} seed(s) per target, scaled to {len(DEFAULT_GRID.seeds)} seeds"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--lake", default=None, help="read finetune seconds from this lake (a `make run` lake)")
    parser.add_argument("--measure-seeds", type=int, default=1)
    args = parser.parse_args()

    import torch

    from pipelines.engine.grid import DEFAULT_GRID

    probe_s, rows = probe_seconds(args.model)
    print(f"probe ({rows[0]['proxy_dataset']}, LP {rows[0]['score']:.1f}%, LogME {rows[1]['score']:.3f}): {probe_s:.1f} s", flush=True)
    full = lake_finetune_seconds(args.lake, args.model) if args.lake else None
    if full is None:
        if args.lake:
            print(f"the lake {args.lake} lacks some default-grid runs of {args.model}; measuring instead")
        full = measured_finetune_seconds(args.model, args.measure_seeds)
    ratio = probe_s / full["seconds"]
    print(f"\n{'':28}{'seconds':>10}")
    print(f"{'probe (LP + LogME)':28}{probe_s:>10.1f}")
    print(f"{'full evaluation':28}{full['seconds']:>10.1f}   ({full['runs']} runs: {', '.join(DEFAULT_GRID.targets)} "
          f"x seeds {list(DEFAULT_GRID.seeds)}; {full['how']})")
    print(f"ratio probe/full = 1/{1 / ratio:.0f}  (target <= 1/{1 / TARGET_RATIO:.0f}: {'PASS' if ratio <= TARGET_RATIO else 'FAIL'})")
    out = ROOT / "benchmarks" / "results" / "probe_cost.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "model": args.model, "probe_seconds": round(probe_s, 2), "probe_rows": rows, "full_evaluation": full,
        "ratio": ratio, "target_ratio": TARGET_RATIO, "pass": ratio <= TARGET_RATIO,
        "machine": {"cpu_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(), "python": platform.python_version()},
    }, indent=2, default=str) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
