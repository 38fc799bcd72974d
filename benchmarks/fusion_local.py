"""Does the fused top-2 beat its best single member on the local grid? Reads `fusion_vs_members` and the
leaderboard from the warehouse that `make run` builds and writes benchmarks/results/fusion_local.json, which
docs/fusion.md quotes (tests/test_fusion_docs.py checks the table and the conclusion against the file).

    make run && .venv/bin/python benchmarks/fusion_local.py            # refresh after the grid changes
    .venv/bin/python benchmarks/fusion_local.py --write-docs           # ... and rewrite the table in the docs
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results_file import RESULTS_DIR, write_results  # noqa: E402

NAME = "fusion_local"
DOC = Path(__file__).resolve().parents[1] / "docs" / "fusion.md"
MARKER = re.compile(r"(<!-- fusion_local: table -->\n)((?:\|[^\n]*\|\n)*)")
CONCLUSION = re.compile(r"(<!-- fusion_local: conclusion -->\n)([^\n]*\n)")
PROVENANCE = re.compile(r"(<!-- fusion_local: provenance -->\n)([^\n]*\n)")


def collect(con) -> list[dict]:
    cur = con.execute(
        """
        select f.*, l.rank as fused_rank, lb.rank as best_member_rank,
               (select count(*) from leaderboard x where x.architecture = f.architecture and x.rank is not null)
                   as n_ranked
        from fusion_vs_members f
        left join leaderboard l on l.architecture = f.architecture and l.model_id = f.model_id
        left join leaderboard lb on lb.architecture = f.architecture and lb.model_id = f.best_member
        order by f.architecture, f.model_id
        """
    )
    names = [d[0] for d in cur.description]
    return [{k: (list(v) if k == "members" else v) for k, v in zip(names, row)} for row in cur.fetchall()]


def verdict(row: dict) -> str:
    low, high = row.get("diff_low"), row.get("diff_high")
    if low is None or high is None:
        return "no interval"
    return "fused better" if low > 0 else "fused worse" if high < 0 else "inconclusive"


def _ci(mean, low, high) -> str:
    if mean is None:
        return "–"
    if low is None or high is None:
        return f"{mean:+.2f}"
    return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"


def table(rows: list[dict]) -> str:
    head = ("| architecture | fused model | members | best member | targets | fused − best member [95% CI] "
            "| fused better on | fused − members' mean [95% CI] | fused − pretrained | rank (fused / best member / "
            "ranked) | verdict |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        rank = "/".join("–" if r.get(k) is None else str(r[k]) for k in ("fused_rank", "best_member_rank", "n_ranked"))
        gain = "–" if r.get("gain_over_pretrained") is None else f"{r['gain_over_pretrained']:+.2f}"
        lines.append(
            f"| {r['architecture']} | {r['model_id']} | {', '.join(r['members'])} | {r['best_member']} "
            f"| {r['n_targets']} | {_ci(r['diff_mean'], r['diff_low'], r['diff_high'])} "
            f"| {r['n_fused_better']} of {r['n_targets']} "
            f"| {_ci(r['diff_vs_members_mean'], r['diff_vs_members_low'], r['diff_vs_members_high'])} "
            f"| {gain} | {rank} | {verdict(r)} |"
        )
    return head + "".join(line + "\n" for line in lines)


def conclusion(rows: list[dict]) -> str:
    """One sentence that follows from the intervals and nothing else."""
    if not rows:
        return "No fused model has runs in this warehouse: run `make run` first."
    verdicts = [verdict(r) for r in rows]
    n = len(rows)
    if all(v == "inconclusive" for v in verdicts):
        most = max(r["n_targets"] for r in rows)
        return (f"On the local grid the question stays open: for {'each' if n > 1 else 'the'} fused top-2 model the "
                f"95% interval of (fused − best member) includes 0, so this grid, with {most} target"
                f"{'s' if most != 1 else ''}, is too small to say whether fusing beats the best single member.")
    counts = {v: sum(x == v for x in verdicts) for v in ("fused better", "fused worse", "inconclusive", "no interval")}
    return (f"On the local grid, of {n} fused model{'s' if n != 1 else ''}: {counts['fused better']} beat the best "
            f"member and {counts['fused worse']} fall behind it with 95% intervals that exclude 0, "
            f"{counts['inconclusive']} are inconclusive and {counts['no interval']} have too few targets for an "
            "interval.")


def provenance(con, models_dir: Path) -> dict:
    """What the figures were computed from, read from the warehouse and the model cards (not from the code's
    current grid, which may have changed since): bases, targets, seeds, and the intermediate models' recipes."""
    from startpoint.zoo import read_model_card

    bases = [r[0] for r in con.execute(
        "select distinct base_model from hub_models where role = 'fused' order by 1").fetchall()]
    targets = [r[0] for r in con.execute(
        "select distinct r.dataset_id from finetune_runs r join hub_models h using (architecture, model_id) "
        "where h.role = 'fused' and r.status = 'ok' order by 1").fetchall()]
    seeds = [r[0] for r in con.execute(
        "select distinct r.seed from finetune_runs r join hub_models h using (architecture, model_id) "
        "where h.role = 'fused' and r.status = 'ok' order by 1").fetchall()]
    recipes: dict[str, int | None] = {}
    sources: set[str] = set()
    for folder in sorted(Path(models_dir).glob("*")) if Path(models_dir).is_dir() else []:
        try:
            card = read_model_card(folder)
        except ValueError:
            continue
        if card.get("base_model") in bases and card.get("source_dataset") and card.get("recipe_hash"):
            recipes[card["recipe_hash"]] = json.loads(card.get("recipe") or "{}").get("train_cap")
            sources.add(card["source_dataset"])
    return {"bases": bases, "targets": targets, "seeds": seeds, "sources": sorted(sources),
            "source_recipes": {h: {"train_cap": cap} for h, cap in sorted(recipes.items())}}


def results_from(warehouse: Path, models_dir: Path) -> dict:
    import duckdb

    from startpoint.engine.records import code_version

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = collect(con)
        grid = provenance(con, models_dir)
    finally:
        con.close()
    return {
        "what": "fused top-2 (average) vs its best single member, paired over targets (seed means), 95% t-interval",
        "grid": grid,
        "code_version": code_version(),
        "written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "rows": rows,
    }


def provenance_line(results: dict) -> str:
    g = results["grid"]
    caps = sorted({str(r["train_cap"]) for r in g["source_recipes"].values()})
    return (f"Computed from: bases {', '.join(g['bases']) or '–'}; intermediate models on "
            f"{', '.join(g['sources']) or '–'} with {' / '.join(caps) or '?'} source examples; targets "
            f"{', '.join(g['targets']) or '–'}; seeds {', '.join(map(str, g['seeds'])) or '–'}; code "
            f"{results['code_version'][:12]}.")


def write_docs(results: dict, doc: Path = DOC) -> None:
    text = doc.read_text(encoding="utf-8")
    text = MARKER.sub(lambda m: m[1] + table(results["rows"]), text, count=1)
    text = CONCLUSION.sub(lambda m: m[1] + conclusion(results["rows"]) + "\n", text, count=1)
    text = PROVENANCE.sub(lambda m: m[1] + provenance_line(results) + "\n", text, count=1)
    doc.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    from startpoint.settings import get_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, default=None, help="default: the warehouse in $STARTPOINT_HOME")
    parser.add_argument("--write-docs", action="store_true", help="also rewrite the table in docs/fusion.md")
    args = parser.parse_args(argv)
    warehouse = args.warehouse or get_settings().warehouse_path
    if not warehouse.is_file():
        print(f"no warehouse at {warehouse}: run `make run` first", file=sys.stderr)
        return 2
    results = results_from(warehouse, get_settings().models_dir)
    write_results(NAME, results)
    print(table(results["rows"]) + conclusion(results["rows"]) + "\n" + provenance_line(results))
    if args.write_docs:
        write_docs(results)
        print(f"rewrote the table in {DOC}")
    return 0


def committed() -> dict:
    return json.loads((RESULTS_DIR / f"{NAME}.json").read_text())


if __name__ == "__main__":
    sys.exit(main())
