"""Training throughput of startpoint's engine against the Hugging Face Trainer, same recipe, data and seed.

Three contenders, run alternating within one invocation (so machine load hits all alike):
  (a) engine           — pipelines.engine.finetune (dynamic padding, length-grouped batches, cached tokens);
  (b) trainer_default  — transformers Trainer as the official text-classification example runs it by
                         default: every example padded to max_length 128, no length grouping;
  (c) trainer_grouped  — Trainer at its best: dynamic padding (DataCollatorWithPadding) + group_by_length.
Prints examples/s and ratios, test accuracy, and achieved FLOP/s against this machine's measured fp32 matmul
peak; writes benchmarks/results/finetune_throughput.json.

    .venv/bin/python benchmarks/finetune_throughput.py [--dataset tweets_sentiment] [--train 512] [--rounds 1]
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RESULTS = Path(__file__).resolve().parent / "results" / "finetune_throughput.json"


def matmul_peak_flops(n: int = 1024, seconds: float = 3.0) -> float:
    """Best sustained fp32 matmul FLOP/s of torch on this machine (all threads of this process)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(5):
            a @ b
        best = max(best, 5 * 2 * n**3 / (time.perf_counter() - t))
    return best


def flops_per_token(config, seq_len: float) -> float:
    """Training FLOPs per token: 6 × non-embedding parameters + attention scores/values (fwd + bwd)."""
    d, layers, inter = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    dense = layers * (4 * d * d + 2 * d * inter)
    return 6 * dense + 6 * layers * 2 * d * seq_len


def executed_flops(config, batches_lengths: list[list[int]], padded: bool) -> tuple[float, float]:
    """(FLOPs the hardware executed including padding, FLOPs on real tokens) for one epoch of batches."""
    executed = useful = 0.0
    for lengths in batches_lengths:
        width = max(lengths)
        executed += len(lengths) * width * flops_per_token(config, width)
        useful += sum(n * flops_per_token(config, n) for n in lengths)
    return executed, useful


def run_engine(model_dir, ds, recipe, seed):
    from pipelines.engine import finetune

    with tempfile.TemporaryDirectory() as cache:
        r = finetune(model_dir, ds, recipe, seed, log=lambda m: None, cache_dir=Path(cache))
    if r.status != "ok":
        raise RuntimeError(r.error)
    return {"examples_per_second": r.examples_per_second, "train_seconds": r.train_seconds,
            "accuracy": r.score / 100, "device": r.device}


def run_trainer(model_dir, ds, recipe, seed, grouped: bool):
    import torch
    from datasets import Dataset
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              Trainer, TrainingArguments, default_data_collator)

    tok = AutoTokenizer.from_pretrained(model_dir)
    pad = False if grouped else "max_length"

    def prep(frame):
        data = Dataset.from_pandas(frame[["text", "label"]].reset_index(drop=True))
        return data.map(lambda b: tok(b["text"], padding=pad, max_length=recipe.max_length, truncation=True),
                        batched=True, remove_columns=["text"]).rename_column("label", "labels")

    train, test = prep(ds.train), prep(ds.test)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(ds.label_names))
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=recipe.batch_size, per_device_eval_batch_size=128,
            learning_rate=recipe.lr, num_train_epochs=recipe.epochs, warmup_steps=recipe.warmup_ratio,
            weight_decay=recipe.weight_decay, seed=seed, eval_strategy="no",
            train_sampling_strategy="group_by_length" if grouped else "random",  # v5 name of group_by_length
            save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True,
            dataloader_num_workers=0,
        )
        collator = DataCollatorWithPadding(tok) if grouped else default_data_collator
        trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collator)
        metrics = trainer.train().metrics
        logits = trainer.predict(test).predictions
    acc = float((np.argmax(logits, -1) == np.asarray(test["labels"])).mean())
    return {"examples_per_second": metrics["train_samples_per_second"], "train_seconds": metrics["train_runtime"],
            "accuracy": acc, "device": "cuda" if torch.cuda.is_available() else "cpu"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="tweets_sentiment")
    parser.add_argument("--train", type=int, default=512, help="training examples")
    parser.add_argument("--test", type=int, default=400, help="test examples")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds (seeds 0..rounds-1)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch
    from transformers import AutoConfig

    from pipelines.data import SplitCaps, load_dataset
    from pipelines.engine import Recipe
    from pipelines.engine.batching import encode, length_grouped_batches
    from pipelines.engine.device import configure_threads
    from pipelines.zoo import DEFAULT_BASE, load_tokenizer, resolve

    threads = configure_threads()
    model_dir = str(resolve(DEFAULT_BASE))
    recipe = Recipe(lr=1e-4, epochs=args.epochs, batch_size=32, max_length=128, train_cap=args.train,
                    warmup_ratio=0.1, weight_decay=0.01, patience=0, eval_cap=None, test_cap=args.test)
    ds = load_dataset(args.dataset, caps=SplitCaps(train=args.train, validation=1, test=args.test), seed=0)
    ds = type(ds)(**{**ds.__dict__, "validation": ds.validation.iloc[:0]})  # no validation: same work as Trainer
    peak = matmul_peak_flops()
    print(f"{args.dataset}: {len(ds.train)} train / {len(ds.test)} test, {args.epochs} epoch(s), batch 32, "
          f"max_length 128, {threads} thread(s); torch fp32 matmul peak {peak / 1e9:.1f} GFLOP/s")

    # FLOPs per epoch from the token lengths each contender really pads to.
    config = AutoConfig.from_pretrained(model_dir)
    lengths = encode(load_tokenizer(model_dir), ds.train["text"].tolist(), None, 128).lengths
    grouped = [lengths[b].tolist() for b in length_grouped_batches(lengths, 32, np.random.default_rng(0))]
    fixed = [[128] * len(b) for b in np.array_split(np.arange(len(lengths)), len(grouped))]
    real = [lengths[b].tolist() for b in np.array_split(np.arange(len(lengths)), len(grouped))]
    flops = {"engine": executed_flops(config, grouped, True),
             "trainer_grouped": executed_flops(config, grouped, True),
             "trainer_default": (executed_flops(config, fixed, True)[0], executed_flops(config, real, True)[1])}

    runs = {name: [] for name in ("engine", "trainer_default", "trainer_grouped")}
    for seed in range(args.rounds):
        for name in runs:
            t = time.perf_counter()
            if name == "engine":
                r = run_engine(model_dir, ds, recipe, seed)
            else:
                r = run_trainer(model_dir, ds, recipe, seed, grouped=name == "trainer_grouped")
            executed, useful = flops[name]
            r["achieved_flops"] = executed * args.epochs / r["train_seconds"]
            r["useful_flops"] = useful * args.epochs / r["train_seconds"]
            r["wall_seconds"] = round(time.perf_counter() - t, 1)
            runs[name].append(r)
            print(f"  round {seed} {name:16s} {r['examples_per_second']:7.1f} ex/s  acc {r['accuracy']:.3f}  "
                  f"{r['achieved_flops'] / 1e9:6.1f} GFLOP/s executed ({r['achieved_flops'] / peak:.0%} of peak)",
                  flush=True)

    summary = {}
    for name, rs in runs.items():
        summary[name] = {
            "examples_per_second": statistics.median(r["examples_per_second"] for r in rs),
            "accuracy_mean": statistics.fmean(r["accuracy"] for r in rs),
            "accuracy_per_seed": [round(r["accuracy"], 4) for r in rs],
            "achieved_gflops": statistics.median(r["achieved_flops"] for r in rs) / 1e9,
            "useful_gflops": statistics.median(r["useful_flops"] for r in rs) / 1e9,
        }
        summary[name]["share_of_peak"] = summary[name]["achieved_gflops"] * 1e9 / peak
    eng = summary["engine"]["examples_per_second"]
    ratios = {"engine_vs_trainer_default": eng / summary["trainer_default"]["examples_per_second"],
              "engine_vs_trainer_grouped": eng / summary["trainer_grouped"]["examples_per_second"]}
    print("\n| contender | examples/s | accuracy | executed GFLOP/s | share of matmul peak |\n|---|---|---|---|---|")
    for name, s in summary.items():
        print(f"| {name} | {s['examples_per_second']:.1f} | {s['accuracy_mean']:.3f} | "
              f"{s['achieved_gflops']:.1f} | {s['share_of_peak']:.0%} |")
    print(f"\nengine / trainer_default = {ratios['engine_vs_trainer_default']:.2f}x (target ≥ 2x); "
          f"engine / trainer_grouped = {ratios['engine_vs_trainer_grouped']:.2f}x (target ≥ 1.25x); "
          f"matmul peak {peak / 1e9:.1f} GFLOP/s")
    out = {
        "dataset": args.dataset, "n_train": len(ds.train), "n_test": len(ds.test), "epochs": args.epochs,
        "rounds": args.rounds, "recipe": json.loads(recipe.to_json()), "threads": threads,
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                    "load_average_at_end": os.getloadavg()},
        "matmul_peak_gflops": peak / 1e9, "summary": summary, "ratios": ratios, "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
