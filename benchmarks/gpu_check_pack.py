"""Pack what `benchmarks/gpu_check.sh --pack DIR` needs on a GPU machine that has torch and transformers but not
this project's packages (the offline dataset package, the packaged encoder's 91 MB of weights, duckdb, dagster).

It writes, into DIR (an ignored folder of the checkout that travels with it):

  minilm-l6/       config.json and the tokenizer files of the packaged MiniLM-L6 (a few hundred KB, no weights):
                   gpu_check.py builds the same architecture from this config with a fixed seed there;
  dataset.csv      the benchmark's dataset (tweets_sentiment), already split and capped the way
                   finetune_throughput.py loads it here (text, label, split columns), so both machines train on
                   the same rows.

    .venv/bin/python benchmarks/gpu_check_pack.py DIR [--train 2048] [--test 1000]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CONFIG_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir")
    parser.add_argument("--dataset", default="tweets_sentiment")
    parser.add_argument("--train", type=int, default=2048)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--validation", type=int, default=64)
    args = parser.parse_args(argv)

    from startpoint.data import SplitCaps, load_dataset
    from startpoint.zoo import DEFAULT_BASE, resolve

    out = Path(args.dir)
    arch = out / "minilm-l6"
    arch.mkdir(parents=True, exist_ok=True)
    src = Path(resolve(DEFAULT_BASE))
    for name in CONFIG_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, arch / name)
    ds = load_dataset(args.dataset, caps=SplitCaps(train=args.train, validation=args.validation, test=args.test),
                      seed=0)
    names = list(ds.label_names)
    with open(out / "dataset.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label", "split"])
        for split, frame in (("train", ds.train), ("validation", ds.validation), ("test", ds.test)):
            for text, label in zip(frame["text"].to_list(), frame["label"].to_list()):
                w.writerow([text, names[int(label)], split])
    print(f"packed {arch} ({', '.join(p.name for p in sorted(arch.iterdir()))}) and {out / 'dataset.csv'} "
          f"({len(ds.train)} train / {len(ds.validation)} validation / {len(ds.test)} test rows of {args.dataset})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
