"""Training throughput of startpoint's engine against the Hugging Face Trainer, like for like.

Every contender trains the very same network: the engine's own `EncoderClassifier` (the packaged encoder, mean
pooling over real tokens, dropout 0.1 and a fresh linear head initialised from the same seed), with the engine's
AdamW parameter groups (no decay on biases and LayerNorm, head at `head_lr_multiplier` × lr), the engine's linear
warm-up/decay schedule, gradient clipping at 1.0, the same data, batch size, max length and epochs. Test accuracy
is computed by the same function for all. What differs is only how each feeds and drives the training:

  engine           `startpoint.engine.finetune` (cached tokens, length-grouped batches, dynamic padding);
  trainer_grouped  transformers `Trainer` at its best: dynamic padding (`DataCollatorWithPadding`) and
                   `group_by_length`;
  trainer_default  `Trainer` as the text-classification example runs it: every example padded to max_length,
                   random order.

The contenders alternate within one invocation, `--rounds` times (round r uses seed r for all, and starts with a
different contender), so load on a shared machine hits all alike; ratios are taken within a round (side by side)
and reported as the median and min–max over rounds. A ratio is quoted only for a contender whose mean test
accuracy is within `--parity` points of the engine's; otherwise the file says why it is missing.

FLOP/s: "executed" counts every token the hardware computed (padding included, from the batches each contender
really formed); "useful" counts only real tokens. Both are set against the matmul peak measured in the same round
(fp32 on CPU, bf16 on CUDA, as the contenders compute).

    .venv/bin/python benchmarks/finetune_throughput.py                 # CPU: 1,024 / 1,600 examples, 5 rounds
    .venv/bin/python benchmarks/finetune_throughput.py --device cuda --bf16 --model DIR --out FILE

Writes benchmarks/results/finetune_throughput.json (or --out).
"""

from __future__ import annotations

import argparse
import dataclasses
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
CONTENDERS = ("engine", "trainer_grouped", "trainer_default")
PARITY_POINTS = 2.0
GOAL_RATIO = 1.25
GOAL_PEAK_SHARE = 0.60
MIN_EXAMPLES, MIN_ROUNDS = 1000, 3  # what a results file needs before the docs may quote it
DOC = Path(__file__).resolve().parent.parent / "docs" / "engine.md"
MARKER = "<!-- results: benchmarks/results/finetune_throughput.json -->\n"
END_MARKER = "<!-- end of results -->\n"
NOT_MEASURED = ("No like-for-like figures are committed yet: the run needs a quiet machine (see the command above); "
                "`--write-docs` puts its table here once a results file has enough examples and rounds.\n")


def matmul_peak_flops(device: str = "cpu", bf16: bool = False, seconds: float = 2.0) -> float:
    """Best sustained matmul FLOP/s of torch on this device (fp32 on CPU with all threads; bf16 if asked)."""
    import torch

    n = 1024 if device == "cpu" else 8192
    dtype = torch.bfloat16 if bf16 else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(5):
            a @ b
        sync()
        best = max(best, 5 * 2 * n**3 / (time.perf_counter() - t))
    return best


def flops_per_token(config, seq_len: float) -> float:
    """Training FLOPs per token: 6 × non-embedding encoder parameters + attention scores/values (fwd + bwd)."""
    d, layers, inter = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    dense = layers * (4 * d * d + 2 * d * inter)
    return 6 * dense + 6 * layers * 2 * d * seq_len


def batch_flops(config, batches: list[tuple[int, list[int]]]) -> tuple[float, float]:
    """(executed, useful) training FLOPs of batches given as (padded width, real lengths of the rows)."""
    executed = useful = 0.0
    for width, lengths in batches:
        executed += len(lengths) * width * flops_per_token(config, width)
        useful += sum(n * flops_per_token(config, n) for n in lengths)
    return executed, useful


def _same_model(model_dir, n_out: int, seed: int):
    """The engine's network, built the way `finetune` builds it (seed first, so the head starts identical)."""
    from startpoint.engine.model import EncoderClassifier
    from startpoint.engine.train import _seed_everything
    from startpoint.zoo.loading import load_encoder

    _seed_everything(seed)
    return EncoderClassifier(load_encoder(model_dir), n_out)


def _test_accuracy(model, tokenizer, ds, recipe, device, dtype) -> float:
    from startpoint.engine import batching
    from startpoint.engine.train import _predict, _score

    test = batching.encode(tokenizer, [str(t) for t in ds.test["text"]], None, recipe.max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return _score("accuracy", _predict(model, test, pad_id, device, dtype), np.asarray(ds.test["label"])) / 100


def run_engine(model_dir, ds, recipe, seed, device):
    from startpoint.engine import batching, finetune

    recorded: list[tuple[int, list[int]]] = []
    original = batching.length_grouped_batches

    def recording(lengths, batch_size, rng, *a, **kw):  # the batches the engine really trains on
        batches = original(lengths, batch_size, rng, *a, **kw)
        recorded.extend((int(lengths[b].max()), lengths[b].tolist()) for b in batches)
        return batches

    batching.length_grouped_batches = recording
    try:
        with tempfile.TemporaryDirectory() as cache:
            r = finetune(model_dir, ds, recipe, seed, device=device, log=lambda m: None, cache_dir=Path(cache))
    finally:
        batching.length_grouped_batches = original
    if r.status != "ok":
        raise RuntimeError(r.error)
    return {"examples_per_second": r.examples_per_second, "train_seconds": r.train_seconds,
            "accuracy": r.score / 100, "device": r.device}, recorded


def run_trainer(model_dir, ds, recipe, seed, device, bf16: bool, grouped: bool):
    import torch
    from transformers import (
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )

    from startpoint.engine.device import autocast_dtype
    from startpoint.engine.train import _optimizer, _schedule
    from startpoint.zoo.loading import load_tokenizer

    tok = load_tokenizer(model_dir)
    pad = False if grouped else "max_length"
    enc = tok([str(t) for t in ds.train["text"]], padding=pad, max_length=recipe.max_length, truncation=True)
    train = [{**{k: v[i] for k, v in enc.items()}, "labels": int(y)} for i, y in enumerate(ds.train["label"])]

    n_out = len(ds.label_names)
    model = _same_model(model_dir, n_out, seed).to(device)  # on its device before the optimizer, as the engine does

    class Adapter(torch.nn.Module):
        """Trainer expects a model that returns its loss; the network inside is the engine's, unchanged."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None):
            logits = self.inner(input_ids, attention_mask, token_type_ids)
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            return {"loss": loss, "logits": logits}

    optimizer = _optimizer(model, recipe)
    steps = -(-len(train) // recipe.batch_size) * recipe.epochs
    scheduler = _schedule(optimizer, steps, recipe.warmup_ratio)

    recorded: list[tuple[int, list[int]]] = []
    base_collator = DataCollatorWithPadding(tok) if grouped else default_data_collator

    def collator(features):
        batch = base_collator(features)
        mask = batch["attention_mask"]
        recorded.append((int(mask.shape[1]), mask.sum(1).tolist()))
        return batch

    with tempfile.TemporaryDirectory() as out:
        common = dict(
            output_dir=out, per_device_train_batch_size=recipe.batch_size, num_train_epochs=recipe.epochs,
            learning_rate=recipe.lr, weight_decay=recipe.weight_decay, max_grad_norm=1.0, seed=seed,
            eval_strategy="no", save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True,
            dataloader_num_workers=0, bf16=bf16, use_cpu=device == "cpu",
        )
        try:  # the name of length grouping in recent transformers, then the older flag
            args = TrainingArguments(**common, train_sampling_strategy="group_by_length" if grouped else "random")
        except TypeError:
            args = TrainingArguments(**common, group_by_length=grouped)
        trainer = Trainer(model=Adapter(model), args=args, train_dataset=train, data_collator=collator,
                          optimizers=(optimizer, scheduler))
        trainer.remove_callback(PrinterCallback)  # it prints the metrics dict; the table below says it all
        metrics = trainer.train().metrics
    acc = _test_accuracy(model, tok, ds, recipe, device, autocast_dtype(device))  # as the engine scores
    return {"examples_per_second": metrics["train_samples_per_second"], "train_seconds": metrics["train_runtime"],
            "accuracy": acc, "device": device}, recorded


def summarize(runs: dict[str, list[dict]], parity_points: float = PARITY_POINTS) -> dict:
    """Medians and min–max per contender, parity against the engine, and the engine's within-round ratios
    (only where parity holds)."""

    def spread(values):
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    summary = {}
    for name, rs in runs.items():
        accs = [r["accuracy"] for r in rs]
        summary[name] = {
            "examples_per_second": spread([r["examples_per_second"] for r in rs]),
            "accuracy_mean": statistics.fmean(accs),
            "accuracy_per_round": [round(a, 4) for a in accs],
            "executed_gflops": spread([r["executed_flops"] / 1e9 for r in rs]),
            "useful_gflops": spread([r["useful_flops"] / 1e9 for r in rs]),
            "executed_share_of_peak": spread([r["executed_flops"] / r["peak_flops"] for r in rs]),
            "useful_share_of_peak": spread([r["useful_flops"] / r["peak_flops"] for r in rs]),
            "padding_share": 1 - rs[0]["useful_flops"] / rs[0]["executed_flops"],
        }
    ratios, parity = {}, {}
    eng = runs.get("engine")
    for name, rs in runs.items():
        if name == "engine" or eng is None:
            continue
        delta = round(100 * (summary["engine"]["accuracy_mean"] - summary[name]["accuracy_mean"]), 6)
        ok = abs(delta) <= parity_points
        parity[name] = {"delta_points": round(delta, 2), "within": ok, "limit_points": parity_points}
        per_round = [e["examples_per_second"] / t["examples_per_second"] for e, t in zip(eng, rs)]
        if ok:
            ratios[f"engine_vs_{name}"] = {**spread(per_round), "per_round": [round(x, 3) for x in per_round]}
        else:
            ratios[f"engine_vs_{name}"] = {
                "median": None,
                "withheld": f"accuracy differs by {delta:+.1f} points (limit ±{parity_points:g}): not the same work",
            }
    return {"summary": summary, "parity": parity, "ratios": ratios}


def goals(result: dict) -> dict:
    """The issue's goals against the best Trainer setting (the fastest one with parity)."""
    trainers = [n for n in result["summary"] if n != "engine" and result["parity"][n]["within"]]
    best = max(trainers, key=lambda n: result["summary"][n]["examples_per_second"]["median"], default=None)
    ratio = result["ratios"][f"engine_vs_{best}"]["median"] if best else None
    share = result["summary"]["engine"]["executed_share_of_peak"]["median"]
    return {"best_trainer": best, "ratio": ratio, "ratio_goal": GOAL_RATIO,
            "ratio_met": ratio is not None and ratio >= GOAL_RATIO,
            "share_of_peak": share, "share_goal": GOAL_PEAK_SHARE, "share_met": share >= GOAL_PEAK_SHARE}


def _range(d: dict, fmt: str) -> str:
    return f"{d['median']:{fmt}} ({d['min']:{fmt}}–{d['max']:{fmt}})"


def _share(d: dict) -> str:
    return f"{100 * d['median']:.0f}%, {100 * d['min']:.0f}–{100 * d['max']:.0f}%"


def ratio_cell(ratio: dict | None) -> str:
    """A table cell for one engine ÷ contender ratio (None: the engine's own row)."""
    if ratio is None:
        return "—"
    if ratio["median"] is None:
        return f"withheld: {ratio['withheld']}"
    return f"{ratio['median']:.2f}× ({ratio['min']:.2f}–{ratio['max']:.2f})"


def markdown(out: dict) -> str:
    """The table and verdict that docs/engine.md quotes, rendered from a results file (tests compare them)."""
    lines = ["| contender | examples/s, median (min–max) | test accuracy, mean | executed GFLOP/s, median "
             "(share of peak, min–max) | useful GFLOP/s, median (share of peak, min–max) | engine ÷ contender, "
             "median (min–max) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, s in out["summary"].items():
        ratio = ratio_cell(None if name == "engine" else out["ratios"][f"engine_vs_{name}"])
        lines.append(
            f"| {name} | {_range(s['examples_per_second'], '.1f')} | {100 * s['accuracy_mean']:.1f}% | "
            f"{s['executed_gflops']['median']:.1f} ({_share(s['executed_share_of_peak'])}) | "
            f"{s['useful_gflops']['median']:.1f} ({_share(s['useful_share_of_peak'])}) | {ratio} |")
    peak = out["matmul_peak_gflops"]
    per_round = ", ".join(f"{p:.1f}" for p in peak["per_round"])
    load = out["machine"]
    lines += ["", f"{out['dataset']}, {out['n_train']} training / {out['n_test']} test examples, {out['epochs']} "
              f"epoch, batch {out['recipe']['batch_size']}, max_length {out['recipe']['max_length']}, "
              f"{out['rounds']} alternating rounds (seeds 0–{out['rounds'] - 1}), {out['device']}, "
              f"{out['threads']} threads, {'bf16 autocast' if out['bf16'] else 'fp32'}; measured "
              f"{peak['dtype']} matmul peak per round {per_round} GFLOP/s; load average (1 min) "
              f"{load['load_average_at_start'][0]:.1f} at the start, {load['load_average_at_end'][0]:.1f} at the end."]
    for name, p in out["parity"].items():
        lines.append(f"Parity, engine − {name}: {p['delta_points']:+.1f} accuracy points "
                     f"({'within' if p['within'] else 'outside'} ±{p['limit_points']:g}; per round: engine "
                     f"{', '.join(f'{100 * a:.1f}' for a in out['summary']['engine']['accuracy_per_round'])}, "
                     f"{name} {', '.join(f'{100 * a:.1f}' for a in out['summary'][name]['accuracy_per_round'])}).")
    g = out["goals"]
    ratio = f"{g['ratio']:.2f}×" if g["ratio"] is not None else "no ratio (no Trainer setting at parity)"
    lines.append(f"Goal: engine ÷ best Trainer setting ({g['best_trainer']}) = {ratio}, target ≥ {g['ratio_goal']}×: "
                 f"**{'met' if g['ratio_met'] else 'not met'}**; engine at {100 * g['share_of_peak']:.0f}% of the "
                 f"measured peak (executed FLOP/s), target ≥ {100 * g['share_goal']:.0f}%: "
                 f"**{'met' if g['share_met'] else 'not met'}**.")
    return "\n".join(lines) + "\n"


def quotable(out: dict) -> str | None:
    """Why a results file may not be quoted in the docs, or None when it may."""
    if out.get("n_train", 0) < MIN_EXAMPLES or out.get("rounds", 0) < MIN_ROUNDS:
        return (f"it has {out.get('n_train')} training examples and {out.get('rounds')} completed round(s); "
                f"the docs quote only runs with at least {MIN_EXAMPLES} examples and {MIN_ROUNDS} rounds")
    return None


def docs_block(text: str) -> tuple[int, int]:
    """(start, end) of the block between the results markers in docs/engine.md."""
    start = text.index(MARKER) + len(MARKER)
    return start, text.index(END_MARKER, start)


def write_docs(results_path: Path, doc: Path = DOC) -> int:
    out = json.loads(results_path.read_text())
    why = quotable(out)
    if why:
        print(f"{results_path}: not written into {doc.name}: {why}", file=sys.stderr)
        return 2
    text = doc.read_text(encoding="utf-8")
    start, end = docs_block(text)
    doc.write_text(text[:start] + markdown(out) + text[end:], encoding="utf-8")
    print(f"wrote the table of {results_path.name} into {doc}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="tweets_sentiment")
    parser.add_argument("--model", default=None, help="packaged model id or model folder (default: MiniLM-L6)")
    parser.add_argument("--train", type=int, default=1024, help="training examples")
    parser.add_argument("--test", type=int, default=1600, help="test examples (fewer make the parity check noisy)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64, help="tokens (the recipe default)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (seeds 0..rounds-1)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for every contender (GPU mode)")
    parser.add_argument("--warmup", type=int, default=0, metavar="N",
                        help="before round 0, run every contender once on N training examples, untimed (on a GPU "
                             "the first run in a process otherwise pays for CUDA/cuBLAS start-up)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--write-docs", action="store_true",
                        help="only render the results file (--out) into docs/engine.md, then exit")
    args = parser.parse_args(argv)
    if args.write_docs:
        return write_docs(Path(args.out))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ["STARTPOINT_BF16"] = "1" if args.bf16 else "0"  # the engine and the Trainer compute alike
    names = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = sorted(set(names) - set(CONTENDERS))
    if unknown or "engine" not in names:
        print(f"--contenders: unknown {unknown} or no engine; choose from {', '.join(CONTENDERS)}", file=sys.stderr)
        return 2

    import torch
    import transformers
    from transformers import AutoConfig

    try:  # Hugging Face datasets is only used for hf: sources; a GPU machine may not have it
        import datasets
    except ImportError:
        pass
    else:
        datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()

    from startpoint.data import SplitCaps, load_dataset
    from startpoint.engine import Recipe
    from startpoint.engine.device import configure_threads, pick_device
    from startpoint.zoo import DEFAULT_BASE, resolve

    device = pick_device(args.device)
    threads = configure_threads()
    model_id = args.model or DEFAULT_BASE
    model_dir = str(Path(model_id) if Path(model_id).is_dir() else resolve(model_id))
    recipe = Recipe(lr=1e-4, epochs=args.epochs, batch_size=args.batch_size, max_length=args.max_length,
                    train_cap=args.train, warmup_ratio=0.1, weight_decay=0.01, patience=0, eval_cap=None,
                    test_cap=args.test)
    ds = load_dataset(args.dataset, caps=SplitCaps(train=args.train, validation=1, test=args.test), seed=0)
    ds = dataclasses.replace(ds, validation=ds.validation.head(0))  # no validation: the Trainer runs none either
    config = AutoConfig.from_pretrained(model_dir)
    load_start = os.getloadavg()
    print(f"{args.dataset}: {len(ds.train)} train / {len(ds.test)} test, {args.epochs} epoch(s), batch "
          f"{args.batch_size}, max_length {args.max_length}, {model_id} on {device} ({threads} thread(s)), "
          f"{'bf16 autocast' if args.bf16 else 'fp32'}; load average {load_start[0]:.2f}", flush=True)

    if args.warmup:
        warm = dataclasses.replace(ds, train=ds.train.head(args.warmup), test=ds.test.head(32))
        t = time.perf_counter()
        for name in names:
            if name == "engine":
                run_engine(model_dir, warm, recipe, 0, device)
            else:
                run_trainer(model_dir, warm, recipe, 0, device, args.bf16, name == "trainer_grouped")
        print(f"warm-up: every contender once on {len(warm.train)} examples, untimed "
              f"({time.perf_counter() - t:.1f} s)", flush=True)
    runs: dict[str, list[dict]] = {n: [] for n in names}
    peaks = []
    for rnd in range(args.rounds):
        peak = matmul_peak_flops(device, args.bf16)
        peaks.append(peak)
        order = names[rnd % len(names):] + names[: rnd % len(names)]
        print(f"round {rnd} (seed {rnd}): matmul peak {peak / 1e9:.1f} GFLOP/s", flush=True)
        for name in order:
            t = time.perf_counter()
            if name == "engine":
                r, batches = run_engine(model_dir, ds, recipe, rnd, device)
            else:
                r, batches = run_trainer(model_dir, ds, recipe, rnd, device, args.bf16, name == "trainer_grouped")
            executed, useful = batch_flops(config, batches)
            r.update(executed_flops=executed / r["train_seconds"], useful_flops=useful / r["train_seconds"],
                     peak_flops=peak, n_batches=len(batches), wall_seconds=round(time.perf_counter() - t, 1))
            runs[name].append(r)
            print(f"  {name:16s} {r['examples_per_second']:7.1f} ex/s  acc {r['accuracy']:.3f}  "
                  f"executed {r['executed_flops'] / 1e9:7.1f} GFLOP/s ({r['executed_flops'] / peak:.0%} of peak), "
                  f"useful {r['useful_flops'] / 1e9:7.1f} ({r['useful_flops'] / peak:.0%})", flush=True)
        runs = {n: runs[n] for n in names}
        out = _results(args, model_id, ds, device, recipe, threads, load_start, peaks, runs)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")  # after every round: a killed run keeps them
    print()
    print(markdown(out))
    print(f"wrote {args.out}")
    return 0


def _results(args, model_id, ds, device, recipe, threads, load_start, peaks, runs) -> dict:
    import torch

    result = summarize(runs)
    result["goals"] = goals(result)
    return {
        "dataset": args.dataset, "model": model_id, "n_train": len(ds.train), "n_test": len(ds.test),
        "epochs": args.epochs, "rounds": len(peaks), "rounds_asked": args.rounds, "device": device,
        "warmup_examples": args.warmup,
        "bf16": args.bf16, "recipe": json.loads(recipe.to_json()), "threads": threads,
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
                    "load_average_at_start": load_start, "load_average_at_end": os.getloadavg()},
        "matmul_peak_gflops": {"per_round": [p / 1e9 for p in peaks], "max": max(peaks) / 1e9,
                               "dtype": "bf16" if args.bf16 else "fp32"},
        **result, "runs": runs,
    }


if __name__ == "__main__":
    sys.exit(main())
