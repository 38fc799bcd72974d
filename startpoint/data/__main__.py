"""Print the offline suite's split statistics: `python -m startpoint.data [ids...] [--seed N]`."""

from __future__ import annotations

import argparse
import time

from startpoint.data import OFFLINE_SUITE, dataset_stats, load_offline
from startpoint.tables import markdown_row, markdown_table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("ids", nargs="*", help="suite ids (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    columns = ["id", "source", "labels", "train", "validation", "test", "majority", "median words", "split", "load s"]
    print(markdown_table(columns, [], align="llrrrrrrlr"), end="")
    for dataset_id in args.ids or OFFLINE_SUITE:
        entry = OFFLINE_SUITE[dataset_id]
        if entry.missing():
            print(markdown_row((dataset_id, entry.package, f"not installed: `{entry.install}`", *[""] * 7)), end="")
            continue
        started = time.perf_counter()
        ds = load_offline(dataset_id, seed=args.seed)
        seconds = time.perf_counter() - started
        s = dataset_stats(ds)
        print(markdown_row((dataset_id, entry.package, s["n_labels"], s["n_train"], s["n_validation"], s["n_test"],
                            f"{s['majority_share']:.3f}", f"{s['median_length']:.0f}", ds.notes["split"],
                            f"{seconds:.1f}")), end="", flush=True)


if __name__ == "__main__":
    main()
