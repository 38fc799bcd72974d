"""Does a cheap probe rank models like a 16x larger one? Sets the probe's default budget.

Every zoo model (the packaged pretrained encoder plus each intermediate model under $STARTPOINT_HOME/models) is
probed on the proxy dataset at a reference budget (1,024 examples x 64 tokens) and at cheaper budgets; for each
method (LogME, linear head) the Spearman correlation across models between a cheap budget and the reference says
how much of the ranking the cheap probe keeps. Encoder seconds are the mean per model.

    .venv/bin/python benchmarks/probe_fidelity.py [--make-sources SET ...] [--proxy fine_foods]

`--make-sources` first materializes `intermediate_models` for those offline sets (the default grid's sources
come from `make run`; more models make the correlation worth more). Writes benchmarks/results/probe_fidelity.json.
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
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REFERENCE = (1024, 64)
BUDGETS = [(256, 16), (128, 32), (256, 32), (384, 16), (512, 32)]


def zoo_models() -> list[str]:
    from startpoint.settings import get_settings
    from startpoint.zoo import DEFAULT_BASE, read_model_card

    models_dir = get_settings().models_dir
    cards = [read_model_card(p) for p in sorted(models_dir.iterdir())] if models_dir.is_dir() else []
    return [DEFAULT_BASE, *(c["model_id"] for c in cards if c.get("model_id") and c.get("base_model") == DEFAULT_BASE)]


def probe_scores(model_id: str, proxy: str, n: int, max_length: int) -> dict:
    from threadpoolctl import threadpool_limits

    from startpoint.data import SplitCaps, load_dataset
    from startpoint.probes.features import Features, FeatureSettings, encode
    from startpoint.probes.logme import logme
    from startpoint.probes.run import linear_probe
    from startpoint.zoo import resolve

    dataset = load_dataset(proxy, caps=SplitCaps(train=n, validation=1, test=1), seed=0)
    start = time.perf_counter()
    x = encode(resolve(model_id), dataset.train, FeatureSettings(max_length=max_length))
    seconds = time.perf_counter() - start
    y = dataset.train["label"].to_numpy()
    with threadpool_limits(limits=1, user_api="blas"):
        return {"logme": logme(x, y), "linear_probe": linear_probe(Features(x, y, "", seconds, False)), "encoder_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", default=None, help="proxy dataset (default: the probe's default)")
    parser.add_argument("--make-sources", nargs="*", default=[], help="offline sets to make intermediate models from")
    args = parser.parse_args()

    from scipy.stats import spearmanr

    from benchmarks.results_file import write_results
    from pipelines.launch import run_grid
    from startpoint.grid import Grid
    from startpoint.probes.run import default_proxy

    if args.make_sources:
        run_grid(Grid(name="fidelity", sources=tuple(args.make_sources), targets=(), seeds=()))
    proxy = args.proxy or default_proxy()
    models = zoo_models()
    if len(models) < 4:
        raise SystemExit(f"only {len(models)} zoo model(s); run `make run` or pass --make-sources SET ... first")
    budgets = [REFERENCE, *BUDGETS]
    scores: dict[str, dict[str, dict]] = {}
    for model_id in models:
        scores[model_id] = {f"{n}x{L}": probe_scores(model_id, proxy, n, L) for n, L in budgets}
        ref = scores[model_id][f"{REFERENCE[0]}x{REFERENCE[1]}"]
        print(f"{model_id}: reference LogME {ref['logme']:.3f}, LP {ref['linear_probe']:.1f}%", flush=True)

    ref_key = f"{REFERENCE[0]}x{REFERENCE[1]}"
    print(f"\n{len(models)} models, proxy {proxy}; Spearman of each budget's ranking with the {ref_key} reference")
    print(f"{'examples x tokens':>18}{'LogME':>8}{'linear head':>13}{'encoder s':>11}")
    rows = []
    for n, L in budgets:
        key = f"{n}x{L}"
        row = {"budget": key, "examples": n, "max_length": L,
               "encoder_seconds": statistics.mean(scores[m][key]["encoder_seconds"] for m in models)}
        for method in ("logme", "linear_probe"):
            row[method] = float(spearmanr([scores[m][ref_key][method] for m in models],
                                          [scores[m][key][method] for m in models])[0])
        rows.append(row)
        print(f"{key:>18}{row['logme']:>8.2f}{row['linear_probe']:>13.2f}{row['encoder_seconds']:>11.2f}")
    write_results("probe_fidelity", {"proxy_dataset": proxy, "models": models, "reference": ref_key, "budgets": rows,
                                     "scores": scores, "load_average": os.getloadavg()})


if __name__ == "__main__":
    main()
