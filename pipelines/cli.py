"""The `startpoint` command line: read the warehouse and serve the results."""

from __future__ import annotations

import argparse
import sys

from pipelines.settings import get_settings


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from pipelines.tables import markdown_table
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


def _cmd_recommend(args: argparse.Namespace) -> int:
    """Predict (and with --run, check) which base model to start from for the user's dataset."""
    from pipelines.data import DatasetError
    from pipelines.recommend import RecommendError, RecommendOptions, recommend

    try:
        options = RecommendOptions(
            data=args.data, architecture=args.architecture, text_col=args.text_col, label_col=args.label_col,
            text_pair_col=args.text_pair_col, budget=args.budget, run=args.run,
            seeds=list(range(args.seeds)), train_cap=args.train_cap, report=args.report,
        )
        report = recommend(options, log=lambda msg: print(msg, file=sys.stderr))
    except (DatasetError, RecommendError, FileNotFoundError, ValueError) as exc:  # bad input, invalid recipe
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from pipelines.recommend.report import summary_lines

    print("\n".join(summary_lines(report)))
    return 0


def _cmd_site(args: argparse.Namespace) -> int:
    from pipelines.site import SiteDataError, build_site

    settings = get_settings()
    out = args.out or str(settings.artifacts_dir / "site")
    try:
        summary = build_site(settings.warehouse_path, out, progress=lambda msg: print(msg, file=sys.stderr))
    except (SiteDataError, FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"site: {summary.pages} pages for {', '.join(summary.architectures)} in {summary.out_dir}; "
          f"open {summary.out_dir / 'index.html'}")
    return 0


def _cmd_model_card(args: argparse.Namespace) -> int:
    from pipelines.modelcard import export_model_cards

    settings = get_settings()
    out = args.out or str(settings.artifacts_dir / "model_cards")
    try:
        summary = export_model_cards(settings.warehouse_path, out, top=args.top, site_url=args.site_url)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for card in summary.cards:
        print(f"{card.architecture} #{card.rank} {card.model_id}: {card.markdown_path}")
    print(f"{len(summary.cards)} model cards; index {summary.index_path}")
    return 0


def _cmd_grid(args: argparse.Namespace) -> int:
    from pipelines.engine.grid import DEFAULT_GRID, full_grid, run_grid

    grid = full_grid() if args.full else DEFAULT_GRID
    try:
        counts = run_grid(grid)
    except KeyboardInterrupt as exc:
        print(f"stopped: {exc or 'interrupted'}; finished runs are in the lake, rerun to complete the grid",
              file=sys.stderr)
        return 130
    print(f"{grid.name} grid: {counts['ok']} partition(s) materialized, {counts['failed']} failed")
    return 1 if counts["failed"] else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="startpoint", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("leaderboard", help="print the leaderboard of each architecture in the warehouse")
    p.add_argument("--architecture", help="only this architecture")
    p.add_argument("--top", type=int, default=10, help="rows per architecture (default 10)")
    p.set_defaults(func=_cmd_leaderboard)

    p = sub.add_parser("run-grid", help="finetune the embedded default grid (or --full) through Dagster")
    p.add_argument("--full", action="store_true", help="all installed offline sets as sources and targets, 3 seeds")
    p.set_defaults(func=_cmd_grid)

    p = sub.add_parser("recommend", help="which base model to start finetuning from, for your labelled data")
    p.add_argument("--data", required=True, help="your labelled data: CSV, TSV, JSONL or Parquet")
    p.add_argument("--text-col", default="text", help="text column (default text)")
    p.add_argument("--label-col", default="label", help="label column (default label)")
    p.add_argument("--text-pair-col", default=None, help="second text column, for pair tasks")
    p.add_argument("--architecture", default="all-MiniLM-L6-v2", help="which leaderboard to pick from")
    p.add_argument("--budget", type=int, default=3, help="candidate models to finetune with --run (default 3)")
    p.add_argument("--run", action="store_true", help="finetune the pretrained model and the top candidates")
    p.add_argument("--seeds", type=int, default=3, help="seeds per model with --run (default 3)")
    p.add_argument("--train-cap", type=int, default=256, help="training examples per run with --run (default 256)")
    p.add_argument("--report", default=None, help="write the JSON report here")
    p.set_defaults(func=_cmd_recommend)

    p = sub.add_parser("site", help="build the static leaderboard site from the warehouse")
    p.add_argument("--out", default=None, help="output folder (default $STARTPOINT_HOME/artifacts/site)")
    p.set_defaults(func=_cmd_site)

    p = sub.add_parser("model-card", help="write model-card sections and model-index YAML for the top models")
    p.add_argument("--out", default=None, help="output folder (default $STARTPOINT_HOME/artifacts/model_cards)")
    p.add_argument("--top", type=int, default=3, help="models per architecture (default 3)")
    p.add_argument("--site-url", default=None, help="where the site is published (source url in model-index)")
    p.set_defaults(func=_cmd_model_card)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
