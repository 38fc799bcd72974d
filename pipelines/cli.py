"""The `startpoint` command line: read the warehouse and serve the results."""

from __future__ import annotations

import argparse
import sys

from pipelines.settings import get_settings


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from pipelines.previews import markdown_table
    from pipelines.warehouse.load import connect

    con = connect(get_settings().warehouse_path, read_only=True)
    try:
        archs = [r[0] for r in con.execute("select distinct architecture from leaderboard order by 1").fetchall()]
        if args.architecture:
            archs = [a for a in archs if a == args.architecture]
            if not archs:
                print(f"no leaderboard for architecture {args.architecture!r}", file=sys.stderr)
                return 2
        for arch in archs:
            cur = con.execute(
                """select rank, model_id, round(avg_score, 2) as avg, round(mean_gain, 2) as gain,
                          '[' || round(ci_low, 2) || ', ' || round(ci_high, 2) || ']' as ci95,
                          round(win_rate, 2) as win_rate, n_targets, round(probe_score, 2) as probe,
                          round(pretrained_avg, 2) as pretrained_avg
                   from leaderboard where architecture = ? and rank is not null order by rank limit ?""",
                [arch, args.top],
            )
            cols = [d[0] for d in cur.description]
            rows = cur.fetchall()
            pretrained = rows[0][-1] if rows else None
            print(f"\n## {arch}  (pretrained average {pretrained})\n")
            print(markdown_table(cols[:-1], [r[:-1] for r in rows]))
    finally:
        con.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="startpoint", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("leaderboard", help="print the leaderboard of each architecture in the warehouse")
    p.add_argument("--architecture", help="only this architecture")
    p.add_argument("--top", type=int, default=10, help="rows per architecture (default 10)")
    p.set_defaults(func=_cmd_leaderboard)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
