"""Figures quoted in the docs, checked against the warehouse.

A docs table that quotes warehouse numbers sits right under a marker that holds the SQL it comes from:

    <!-- figures: select architecture, round(reliability, 2) as reliability from ranking_reliability order by 1 -->
    | architecture | reliability |
    |---|---|
    | ... | ... |

`python benchmarks/docs_figures.py --write` refreshes every such table from the warehouse in $STARTPOINT_HOME;
without `--write` it lists the tables that differ and exits 1. The tests run the check on a warehouse built from
the shared published results, so a docs number that the data do not support fails the build. Round in the SQL:
values are rendered as the query returns them (floats to 2 decimals).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb

from startpoint.settings import REPO_ROOT
from startpoint.tables import markdown_table

MARKER = re.compile(r"<!--\s*figures:\s*(?P<sql>.*?)-->\n(?P<table>(?:\|[^\n]*\|\n)*)", re.S)
DOC_FILES = ("README.md", "docs")


@dataclass
class Figures:
    path: Path
    sql: str
    quoted: str  # the table as it stands in the file
    start: int
    end: int


def doc_paths(root: Path = REPO_ROOT) -> list[Path]:
    out = []
    for name in DOC_FILES:
        p = root / name
        out += sorted(p.glob("*.md")) if p.is_dir() else [p] if p.exists() else []
    return out


def find_figures(path: Path) -> list[Figures]:
    text = path.read_text(encoding="utf-8")
    return [Figures(path, " ".join(m["sql"].split()), m["table"], m.start("table"), m.end("table"))
            for m in MARKER.finditer(text)]


def render(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    cur = con.execute(sql)
    return markdown_table([d[0] for d in cur.description], cur.fetchall())


def stale(con: duckdb.DuckDBPyConnection, root: Path = REPO_ROOT) -> list[tuple[Figures, str]]:
    """Every docs table whose quoted numbers differ from what its query returns now."""
    out = []
    for path in doc_paths(root):
        for fig in find_figures(path):
            fresh = render(con, fig.sql)
            if fresh != fig.quoted:
                out.append((fig, fresh))
    return out


def write(con: duckdb.DuckDBPyConnection, root: Path = REPO_ROOT) -> int:
    changed = 0
    for path in doc_paths(root):
        figs = find_figures(path)
        text = path.read_text(encoding="utf-8")
        for fig in reversed(figs):
            fresh = render(con, fig.sql)
            if fresh != fig.quoted:
                text = text[: fig.start] + fresh + text[fig.end:]
                changed += 1
        path.write_text(text, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    from startpoint.settings import get_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="refresh the tables instead of checking them")
    args = parser.parse_args(argv)
    con = duckdb.connect(str(get_settings().warehouse_path), read_only=True)
    try:
        if args.write:
            print(f"{write(con)} docs table(s) refreshed")
            return 0
        bad = stale(con)
    finally:
        con.close()
    for fig, fresh in bad:
        print(f"{fig.path.relative_to(REPO_ROOT)}: table under `{fig.sql[:60]}...` differs from the warehouse:\n{fresh}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
