"""Where one default-grid finetune spends its time, on one thread as a grid worker runs it: preparing (label checks,
model folder checks, tokenizing from the cache, loading the encoder), training, and scoring the test split, with
the evaluation batch of 128 beside the engine's CPU batch (`EVAL_BATCH`), and the parts of one training step
(forward, backward, gradient clipping, optimizer).

Each phase is timed in one process after a warm-up finetune, `--rounds` times; the file holds every measurement
and the medians. The two evaluation batch sizes score the same model on the same examples, so their accuracies are
compared too (they may differ only by float summation order).

    .venv/bin/python benchmarks/finetune_phases.py [--target tweets_sentiment] [--rounds 3]

Writes benchmarks/results/finetune_phases.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["STARTPOINT_THREADS"] = "1"  # as a grid worker runs


def one_finetune(folder, ds, recipe, seed: int, cache_dir: Path) -> dict:
    """One finetune through the engine's own functions, each phase timed."""
    from startpoint.engine import train as T

    result = T.FinetuneResult(status="failed", dataset_id=ds.dataset_id, metric=ds.metric, seed=seed)
    run = T._Run(Path(folder), ds, recipe, seed, lambda m: None, cache_dir)
    t = time.perf_counter()
    prep = T._prepare(run, result)
    prepare = time.perf_counter() - t
    t = time.perf_counter()
    T._train_epochs(run, prep, result)
    train = time.perf_counter() - t
    labels = ds.test["label"].to_numpy()
    out = {"prepare_s": prepare, "train_s": train, "train_examples": len(prep.train_y),
           "test_examples": len(labels)}
    for batch in (128, T.EVAL_BATCH["cpu"]):
        t = time.perf_counter()
        scores = T._predict(prep.model, prep.test_enc, prep.pad_id, prep.device, prep.dtype, batch)
        out[f"test_eval_batch{batch}_s"] = time.perf_counter() - t
        out[f"test_accuracy_batch{batch}"] = T._score(result.metric, scores, labels)
    return out


def step_parts(folder, rounds: int = 10) -> dict:
    """Forward, backward, clipping and optimizer of one training step: batch 16 × 32 tokens, the grid's shape."""
    import torch

    from startpoint.engine.model import EncoderClassifier
    from startpoint.engine.train import _optimizer
    from startpoint.engine.recipe import Recipe
    from startpoint.zoo.loading import load_encoder

    torch.set_num_threads(1)
    model = EncoderClassifier(load_encoder(folder), 3)
    model.train()
    optimizer = _optimizer(model, Recipe())
    ids = torch.randint(1000, 20000, (16, 32))
    mask = torch.ones_like(ids)
    y = torch.randint(0, 3, (16,))
    loss_fn = torch.nn.CrossEntropyLoss()
    parts = {"forward_s": [], "backward_s": [], "clip_s": [], "optimizer_s": []}
    for i in range(rounds + 3):
        t0 = time.perf_counter()
        loss = loss_fn(model(input_ids=ids, attention_mask=mask), y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        t3 = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        if i >= 3:  # warm-up steps left out
            for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                parts[key].append(value)
    return {key: round(statistics.median(values), 4) for key, values in parts.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="tweets_sentiment")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    import tempfile

    from benchmarks.results_file import machine, write_results
    from startpoint.data import load_dataset
    from startpoint.engine.train import EVAL_BATCH
    from startpoint.grid import target_recipe
    from startpoint.zoo import DEFAULT_BASE, resolve

    folder, recipe = resolve(DEFAULT_BASE), target_recipe(args.target)
    ds = load_dataset(args.target, caps=recipe.split_caps, seed=0)
    with tempfile.TemporaryDirectory() as cache:
        one_finetune(folder, ds, recipe, 0, Path(cache))  # warm-up: imports, token cache, first kernels
        runs = [one_finetune(folder, ds, recipe, r, Path(cache)) for r in range(args.rounds)]
    keys = [k for k in runs[0] if k.endswith("_s")]
    medians = {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}
    batch = EVAL_BATCH["cpu"]
    data = {
        "model": DEFAULT_BASE, "target": args.target, "recipe_hash": recipe.recipe_hash, "threads": 1,
        "rounds": args.rounds, "eval_batch_cpu": batch, "medians": medians,
        "test_eval_saving_pct": round(100 * (1 - medians[f"test_eval_batch{batch}_s"]
                                             / medians["test_eval_batch128_s"]), 1),
        "accuracy_abs_diff_max": round(max(abs(r[f"test_accuracy_batch{batch}"] - r["test_accuracy_batch128"])
                                           for r in runs), 4),
        "step_parts": step_parts(folder),
        "machine": machine(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "runs": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in runs],
    }
    write_results("finetune_phases", data)
    print(data["medians"], data["step_parts"], data["test_eval_saving_pct"], data["accuracy_abs_diff_max"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
