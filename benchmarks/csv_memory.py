"""Peak memory of loading a user's `--data` CSV (`startpoint recommend`): before vs after, as multiples of the file.

Generates a CSV of realistic short labelled texts (~230 MB by default: review-like sentences of 4-45 words, 3
skewed classes, some fields quoted because they hold commas, a few non-ASCII characters) in a temporary folder,
then loads it through the real path, `startpoint.recommend.target.load_target` (file checks, CSV parsing, cleaning,
splits, the `datasets` row), in a fresh subprocess per round, and reads that process's peak RSS
(`resource.getrusage(RUSAGE_SELF).ru_maxrss` at exit; the imports alone are measured too).

"before" runs the `pipelines` package of a git revision (`--before-ref`, default the commit before the
pyarrow loader), extracted with `git archive` into the temp folder; "after" runs this checkout. Each is run
`--rounds` times (medians reported) and both must produce the same dataset (row counts, labels, a checksum of
the train texts). Writes benchmarks/results/csv_memory.json.

    .venv/bin/python benchmarks/csv_memory.py            # ~230 MB, 3 rounds each (a few minutes on 2 cores)
    .venv/bin/python benchmarks/csv_memory.py --mb 20 --rounds 1   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import write_results  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BEFORE_REF = "834dde5955a8fc17f6ba91e4cd735074bd137fe7"  # pandas read_csv on the decoded text (17x the file)

# Run in the child: import, measure, load, measure; one JSON line on stdout.
CHILD = r"""
import hashlib, json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import startpoint.recommend.target as target
assert target.__file__.startswith(sys.argv[1]), target.__file__
imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
loaded = target.load_target(sys.argv[2])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ds = loaded.dataset
digest = hashlib.sha256()
for t in ds.train["text"].head(20000):
    digest.update(t.encode())
print(json.dumps({
    "imports_kib": imports, "peak_kib": peak, "seconds": seconds,
    "rows": [len(ds.train), len(ds.validation), len(ds.test)], "labels": ds.label_names,
    "train_head_sha": digest.hexdigest()[:16], "median_length": loaded.stats["median_length"],
    "majority_share": loaded.stats["majority_share"], "text_dtype": str(ds.train["text"].dtype),
}))
"""

WORDS = (
    "the a this that it was is not very really quite so too just good great bad awful fine okay nice terrible "
    "excellent poor love hate liked disliked movie film book product service food meal staff price quality "
    "delivery arrived late early broken works working stopped again never always would recommend buy return "
    "refund taste smell color size fit small large cheap expensive worth money time day week month year friend "
    "family kids husband wife order ordered package box bottle flavor sweet salty fresh stale hot cold because "
    "but and or with without after before when while only also even still yet though however definitely maybe"
).split()
ACCENTED = ["café", "naïve", "déjà vu", "jalapeño", "crème brûlée", "it’s", "–", "😀", "👍"]


def generate(path: Path, target_bytes: int, seed: int = 0) -> dict:
    """A CSV of `text,label` rows until `target_bytes`; returns its shape."""
    rng = np.random.default_rng(seed)
    vocab = np.array(WORDS)
    labels = np.array(["negative", "neutral", "positive"])
    written, rows = 0, 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("text,label\n")
        while written < target_bytes:
            n = 20000
            lengths = rng.integers(4, 46, size=n)
            words = vocab[rng.integers(0, len(vocab), size=int(lengths.sum()))]
            cuts = np.cumsum(lengths)[:-1]
            picks = labels[rng.choice(3, size=n, p=[0.3, 0.2, 0.5])]
            extras = rng.random(n)
            lines = []
            for i, sentence in enumerate(np.split(words, cuts)):
                text = " ".join(sentence)
                if extras[i] < 0.02:
                    text += " " + ACCENTED[i % len(ACCENTED)]
                if extras[i] > 0.85:  # a clause with a comma: the field is quoted, as CSV writers do
                    text = '"' + text.replace(" but ", ", but ", 1) + ', really"'
                lines.append(f"{text},{picks[i]}\n")
            chunk = "".join(lines)
            fh.write(chunk)
            written += len(chunk.encode("utf-8"))
            rows += n
    return {"bytes": path.stat().st_size, "rows": rows}


def extract(ref: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "pipelines"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def measure(tree: Path, csv: Path) -> dict:
    env = {**os.environ, "STARTPOINT_MAX_DATASET_MB": "1024", "PYTHONHASHSEED": "0"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(tree), str(csv)], capture_output=True, text=True,
                         env=env, cwd=tree)
    if out.returncode != 0:
        raise RuntimeError(f"load in {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=230, help="CSV size in MB (10^6 bytes)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before-ref", default=BEFORE_REF, help="git revision of the 'before' loader")
    parser.add_argument("--no-write", action="store_true", help="print, do not write benchmarks/results")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="csv_memory_") as tmp:
        tmp = Path(tmp)
        csv = tmp / "reviews.csv"
        started = time.perf_counter()
        shape = generate(csv, int(args.mb * 1e6))
        print(f"generated {shape['bytes'] / 1e6:.0f} MB, {shape['rows']:,} rows in {time.perf_counter() - started:.0f} s")
        trees = {"before": extract(args.before_ref, tmp / "before"), "after": REPO}
        runs: dict[str, list[dict]] = {k: [] for k in trees}
        for r in range(args.rounds):
            for name, tree in trees.items():  # interleaved, so load on the machine hits both alike
                runs[name].append(measure(tree, csv))
                last = runs[name][-1]
                print(f"round {r + 1} {name}: peak {last['peak_kib'] / 1024:.0f} MiB, "
                      f"imports {last['imports_kib'] / 1024:.0f} MiB, {last['seconds']:.1f} s")
    size = shape["bytes"]
    summary = {}
    for name, rs in runs.items():
        peak = statistics.median(r["peak_kib"] * 1024 for r in rs)
        imports = statistics.median(r["imports_kib"] * 1024 for r in rs)
        summary[name] = {
            "peak_rss_mb": round(peak / 1e6, 1),
            "imports_rss_mb": round(imports / 1e6, 1),
            "peak_over_file": round(peak / size, 2),
            "loading_over_file": round((peak - imports) / size, 2),  # the peak less the interpreter and imports
            "seconds": round(statistics.median(r["seconds"] for r in rs), 2),
            "rounds": [{k: r[k] for k in ("peak_kib", "imports_kib", "seconds")} for r in rs],
        }
    same = {k: runs["before"][0][k] == runs["after"][0][k]
            for k in ("rows", "labels", "train_head_sha", "median_length", "majority_share")}
    result = {
        "benchmark": "peak RSS of load_target on a generated CSV (startpoint recommend --data)",
        "file_mb": round(size / 1e6, 1),
        "file_rows": shape["rows"],
        "before_ref": args.before_ref,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "before": summary["before"],
        "after": summary["after"],
        "ratio_peak_over_file": {"before": summary["before"]["peak_over_file"], "after": summary["after"]["peak_over_file"]},
        "same_dataset": same,
        "dataset": {k: runs["after"][0][k] for k in ("rows", "labels", "median_length", "majority_share", "text_dtype")},
    }
    print(json.dumps({k: result[k] for k in ("file_mb", "ratio_peak_over_file", "same_dataset")}, indent=1))
    for name in trees:
        s = summary[name]
        print(f"{name:>6}: peak {s['peak_rss_mb']:.0f} MB = {s['peak_over_file']:.2f}x the file "
              f"(loading alone {s['loading_over_file']:.2f}x), {s['seconds']:.1f} s")
    if not all(same.values()):
        print(f"WARNING: before and after datasets differ: {same}")
    if not args.no_write:
        write_results("csv_memory", result)


if __name__ == "__main__":
    main()
