"""The `startpoint` command line: read the warehouse and serve the results."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from startpoint.settings import get_settings
from startpoint.tables import (
    visible_text as _terminal,  # untrusted text made inert for the terminal
)


def _error(message: object) -> int:
    """The one line a refused command prints (on stderr), escaped for the terminal; the exit code for bad input."""
    print(f"error: {_terminal(message)}", file=sys.stderr)
    return 2


def _log(message: object) -> None:
    print(_terminal(message), file=sys.stderr)


def _warehouse_errors() -> tuple[type[BaseException], ...]:
    import duckdb

    return (duckdb.Error,)


def _warehouse_problem(exc: BaseException) -> str:
    """A DuckDB error on the warehouse as one line with the fix."""
    from startpoint.warehouse.load import WarehouseUnreadable

    text = " ".join(str(exc).split())
    if isinstance(exc, WarehouseUnreadable):  # already one line that names the file and the fix
        return text
    path = get_settings().warehouse_path
    if "does not exist" in text or "Catalog Error" in text:
        return f"the warehouse {path} lacks a table this command reads ({text[:200]}); rebuild it with `make run`"
    return f"cannot read the warehouse {path} ({text[:200]}); rebuild it with `make run` (or the `published` job)"


def _check_out_dir(out: str, flag: str = "--out") -> Path | None:
    """Refuse an output folder that cannot be written, before any work: a file, a path under a file, a read-only
    folder. Returns None after printing the error; nothing is created here."""
    import tempfile
    from pathlib import Path

    path = Path(out).expanduser().absolute()
    if path.exists() and not path.is_dir():
        _error(f"{flag} {path}: is a file, not a folder; give a folder path (it is created if missing)")
        return None
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        _error(f"{flag} {path}: {ancestor} is a file, so no folder can be created under it; choose another path")
        return None
    for folder in dict.fromkeys([ancestor, *([path] if path.is_dir() else [])]):
        try:  # a real probe: permission bits do not tell root or a read-only filesystem apart
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".startpoint-probe-"):
                pass
        except OSError as exc:
            _error(f"{flag} {path}: cannot write in {folder} ({exc.strerror or exc}); choose a writable folder")
            return None
    return path


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from startpoint.warehouse.load import connect

    if args.top < 1:
        return _error(f"--top must be at least 1 row per architecture, got {args.top}")
    try:
        return _print_leaderboard(args, connect(get_settings().warehouse_path, read_only=True))
    except FileNotFoundError as exc:
        return _error(exc)
    except _warehouse_errors() as exc:
        return _error(_warehouse_problem(exc))


def _print_leaderboard(args: argparse.Namespace, con) -> int:
    from startpoint.tables import markdown_table
    from startpoint.warehouse.leaderboard import (
        architectures, board_notes, ranking_table, read_leaderboard, read_reliability, reliability_text, tie_summary,
    )

    try:
        archs = architectures(con)
        if not archs:
            return _error("the leaderboard is empty: no model was ranked; see the warehouse's rejected_rows for what "
                          "the import refused, fix the results and rerun the `published` job")
        if args.architecture:
            known = archs
            archs = [a for a in archs if a == args.architecture]
            if not archs:
                return _error(f"no leaderboard for architecture {args.architecture!r}; the warehouse has "
                              f"{', '.join(known) or 'none'} (pass one of them to --architecture)")
        reliability = read_reliability(con)
        for arch in archs:
            board = read_leaderboard(con, architecture=arch, ranked=True)
            records = board.head(args.top).to_dicts()
            pretrained = board["pretrained_avg"].drop_nulls()
            heading = f"pretrained average {pretrained[0]:.2f}" if len(pretrained) else "pretrained average n/a"
            heading += f"; {reliability_text(reliability.get(arch))}"
            print(f"\n## {_terminal(arch)}  ({heading})\n")
            n = lambda v: None if v is None or v != v else float(v)  # noqa: E731  NULL / NaN -> None
            for note in board_notes(records):
                print(note)
            names, ranking_cells = ranking_table(records)
            table = [
                tuple(_terminal(c) if isinstance(c, str) else c for c in cells)
                + (n(r["avg_score"]), n(r["probe_score"]))
                for cells, r in zip(ranking_cells, records)
            ]
            cols = [*names, "avg", "probe"]
            print(markdown_table(cols, table))
            if records and records[0].get("order_has_evidence"):
                print(tie_summary(int(records[0]["n_tied"]), max(int(records[0]["n_ranked"]) - 1, 0)))
    finally:
        con.close()
    return 0


def _cmd_recommend(args: argparse.Namespace) -> int:
    """Predict (and with --run, check) which base model to start from for the user's dataset."""
    from startpoint.data import DatasetError
    from startpoint.progress import RunProgress
    from startpoint.recommend import RecommendError, RecommendOptions, recommend
    from startpoint.recommend.core import ReportWriteError
    from startpoint.recommend.report import summary_lines

    try:
        options = RecommendOptions(**{name: getattr(args, name) for name in _cli_fields(RecommendOptions)})
        if options.run:  # the pretrained model and up to `budget` candidates: every seed, or --finetunes in all
            options.check()
            total = options.finetunes or len(options.seed_list) * (1 + options.budget)
            with RunProgress(total, "recommend --run") as progress:
                report = recommend(options, log=lambda m: progress.log(_terminal(m)), progress=progress)
        else:
            report = recommend(options, log=_log)
    except ReportWriteError as exc:  # the decision stands: print it, then say the report is missing
        print("\n".join(_terminal(line) for line in summary_lines(exc.report)))
        return _error(exc)
    except (DatasetError, RecommendError, OSError, ValueError) as exc:  # bad input, invalid recipe, unreadable file
        return _error(exc)
    except _warehouse_errors() as exc:
        return _error(_warehouse_problem(exc))
    print("\n".join(_terminal(line) for line in summary_lines(report)))
    return 0


def _cmd_site(args: argparse.Namespace) -> int:
    from startpoint.site import SiteDataError, build_site

    settings = get_settings()
    out = args.out or str(settings.artifacts_dir / "site")
    if not settings.warehouse_path.exists():
        return _error(f"no warehouse at {settings.warehouse_path}: run `make run` (or the `published` job) first")
    if _check_out_dir(out) is None:
        return 2
    try:
        summary = build_site(settings.warehouse_path, out, progress=_log)
    except (SiteDataError, OSError) as exc:
        return _error(exc)
    except _warehouse_errors() as exc:
        return _error(_warehouse_problem(exc))
    print(_terminal(f"site: {summary.pages} pages for {', '.join(summary.architectures)} in {summary.out_dir}; "
                    f"open {summary.out_dir / 'index.html'}"))
    return 0


def _cmd_model_card(args: argparse.Namespace) -> int:
    from startpoint.modelcard import export_model_cards
    from startpoint.modelcard.export import default_site_url, public_site_url

    settings = get_settings()
    try:  # refused before anything is written: a local path or file:// URI is no public site
        site_url = public_site_url(args.site_url if args.site_url is not None else default_site_url())
    except ValueError as exc:
        return _error(exc)
    out = args.out or str(settings.artifacts_dir / "model_cards")
    if args.top < 1:
        return _error(f"--top must be at least 1 model per architecture, got {args.top}")
    if not settings.warehouse_path.exists():
        return _error(f"no warehouse at {settings.warehouse_path}: run `make run` (or the `published` job) first")
    if _check_out_dir(out) is None:
        return 2
    try:
        summary = export_model_cards(settings.warehouse_path, out, top=args.top, site_url=site_url)
    except (ValueError, OSError) as exc:
        return _error(exc)
    except _warehouse_errors() as exc:
        return _error(_warehouse_problem(exc))
    for card in summary.cards:
        print(_terminal(f"{card.architecture} #{card.rank} {card.model_id}: {card.markdown_path}"))
    print(_terminal(f"{len(summary.cards)} model cards; index {summary.index_path}"
                    + ("" if summary.site_url else "; no site links (give --site-url or STARTPOINT_SITE_URL)")))
    return 0


def _cmd_grid(args: argparse.Namespace) -> int:
    from pipelines.launch import default_instance, record_hub_catalog, run_grid
    from startpoint.grid import DEFAULT_GRID, full_grid

    if not args.worker:
        # The grid runs in a child process so that Ctrl-C / SIGTERM stop it within seconds even while Dagster
        # waits for a pool slot (it ignores interrupts there); what the child held is freed after it stops.
        from pipelines.recovery import supervise

        cmd = [sys.executable, "-m", "pipelines.cli", "run-grid", "--worker", *(["--full"] if args.full else []),
               *(["--publish"] if args.publish else [])]
        return supervise(cmd, what="run-grid", instance_factory=default_instance,
                         hint="; finished runs are in the lake, rerun to complete the grid")
    from startpoint.plan import grid_steps
    from startpoint.progress import RunProgress

    grid = full_grid() if args.full else DEFAULT_GRID
    try:  # the runs of the named grid jobs, tagged startpoint/grid=<name> (pipelines/launch.py)
        with RunProgress(len(grid_steps(grid)), f"{grid.name} grid") as progress:
            counts = run_grid(grid, log=lambda m: progress.log(_terminal(m)), progress=progress)
        # lake/hub_models too, so that nothing upstream of `published` is left unmaterialized (offline: as it stands)
        catalog = record_hub_catalog(grid.name, log=lambda m: print(_terminal(m), file=sys.stderr))
        counts = {k: counts[k] + catalog[k] for k in counts}
    except KeyboardInterrupt as exc:
        print(f"stopped: {exc or 'interrupted'}; finished runs are in the lake, rerun to complete the grid",
              file=sys.stderr)
        return 130
    print(f"{grid.name} grid: {counts['ok']} partition(s) materialized, {counts['failed']} failed")
    if counts["failed"]:
        return 1
    return _cmd_publish(args) if args.publish else 0


def _cmd_publish(args: argparse.Namespace) -> int:
    """The `published` job in this process; its last line says what failed and how to fix it."""
    from pipelines.launch import default_instance
    from pipelines.publish import publish

    try:
        return publish(default_instance())
    except KeyboardInterrupt:
        print("stopped: interrupted; the live warehouse is unchanged unless a swap had finished", file=sys.stderr)
        return 130


def _cmd_recover(args: argparse.Namespace) -> int:
    """Free the pool slots of killed runs; show who holds each pool."""
    from pipelines.launch import default_instance as _instance
    from pipelines.recovery import describe_holders, free_dead_runs, release_run

    instance = _instance()
    if instance.is_ephemeral:
        print("error: DAGSTER_HOME is not set: there is no persistent Dagster instance to recover", file=sys.stderr)
        return 2
    for run_id in args.run_id:
        if instance.get_run_by_id(run_id) is None:
            print(f"error: no run {_terminal(run_id)}", file=sys.stderr)
            return 2
        release_run(instance, run_id, "marked failed and its pool slots freed by `startpoint recover --run-id`",
                    log=print)
        print(f"run {run_id}: marked failed, pool slots freed")
    released = free_dead_runs(instance, log=print)
    storage = instance.event_log_storage
    pools = sorted(storage.get_concurrency_keys()) if storage.supports_global_concurrency_limits else []
    for pool in pools:
        print(describe_holders(instance, pool))
    print(f"{len(released)} dead or finished run(s) released" + ("" if pools else "; no pools in use"))
    return 0


def _cmd_register(args: argparse.Namespace) -> int:
    """Tell a fresh Dagster instance what the lake holds: partitions and materializations, without retraining."""
    import dagster as dg

    from pipelines.register import register

    if not os.environ.get("DAGSTER_HOME"):
        return _error("DAGSTER_HOME is not set: there is no persistent Dagster instance to register into "
                      "(`make dagster-home` makes one under $STARTPOINT_HOME)")
    lake_url = get_settings().lake_url
    with dg.DagsterInstance.get() as instance:
        reported = register(instance, lake_url, log=print)
    print(f"{sum(reported.values())} materialization(s) registered from {lake_url}")
    return 0


def _cmd_compact(args: argparse.Namespace) -> int:
    """Merge the lake's per-unit files now, in this process: what the `compact_lake` job does."""
    from pathlib import Path

    from startpoint import lake
    from startpoint.settings import compact_files_threshold

    try:
        min_files = compact_files_threshold() if args.min_files is None else args.min_files
    except ValueError as exc:
        return _error(exc)
    if min_files < 2:
        return _error(f"--min-files {min_files}: give at least 2 (one file is already as few as it gets)")
    lake_url = get_settings().lake_url
    try:
        if lake.is_local(lake_url) and Path(lake_url).exists() and not Path(lake_url).is_dir():
            return _error(f"the lake {lake_url} is a file, not a folder; set STARTPOINT_LAKE to a folder or a URL")
        done = lake.compact_due(lake_url, min_files=min_files)
    except (ValueError, ImportError, OSError) as exc:
        return _error(f"cannot compact the lake {lake_url} ({' '.join(str(exc).split())[:200]}); "
                      "set STARTPOINT_LAKE to a folder or an fsspec URL (s3://bucket/prefix)")
    for c in done:
        print(_terminal(c.line()))
    if not done:
        print(_terminal(f"nothing to compact: no origin of {lake_url} holds {min_files:,} per-unit files"))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one `error: ...` line (and where to read the usage) instead of the usage block."""

    def error(self, message: str):  # argparse API
        self.exit(2, f"error: {_terminal(message)} (see `{self.prog} --help`)\n")


def _cli_fields(model) -> list[str]:
    """The fields of a pydantic model that are CLI flags (all but those marked ``cli=False``)."""
    return [name for name, f in model.model_fields.items() if (f.json_schema_extra or {}).get("cli", True)]


def _add_model_flags(parser: argparse.ArgumentParser, model) -> None:
    """One flag per field of `model` (`text_col` -> `--text-col`), with its type, default and description: the
    options are declared once, in the model, for the CLI and the Dagster config alike."""
    for name in _cli_fields(model):
        f = model.model_fields[name]
        flag = "--" + name.replace("_", "-")
        if f.annotation is bool:
            parser.add_argument(flag, dest=name, action="store_true", help=f.description)
            continue
        kind = next((t for t in (int, float) if f.annotation in (t, Optional[t])), str)
        if f.is_required():
            parser.add_argument(flag, dest=name, type=kind, required=True, help=f.description)
        else:
            shown = "" if f.default is None else f" (default {f.default})"
            parser.add_argument(flag, dest=name, type=kind, default=f.default, help=f"{f.description}{shown}")


def build_parser() -> argparse.ArgumentParser:
    from startpoint.recommend.core import RecommendOptions

    parser = _Parser(prog="startpoint", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("leaderboard", help="print the leaderboard of each architecture in the warehouse")
    p.add_argument("--architecture", help="only this architecture")
    p.add_argument("--top", type=int, default=10, help="rows per architecture (default 10)")
    p.set_defaults(func=_cmd_leaderboard)

    p = sub.add_parser("run-grid", help="finetune the embedded default grid (or --full) through Dagster")
    p.add_argument("--full", action="store_true", help="all installed offline sets as sources and targets, 3 seeds")
    p.add_argument("--publish", action="store_true",
                   help="then run `startpoint publish` in the same process (saves loading the definitions twice)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # the supervised child process
    p.set_defaults(func=_cmd_grid)

    p = sub.add_parser("publish", help="import the published results, load the warehouse and build every SQL model "
                       "(the `published` job, in this process); the last line says what failed")
    p.set_defaults(func=_cmd_publish)

    p = sub.add_parser("register", help="register the lake's partitions and materializations in a fresh Dagster "
                                        "instance, without retraining")
    p.set_defaults(func=_cmd_register)

    p = sub.add_parser("recover", help="free the Dagster pool slots of killed runs and show who holds each pool")
    p.add_argument("--run-id", action="append", default=[],
                   help="also mark this unfinished run failed and free its slots (a run on another host, or "
                        "started without process tags); repeatable")
    p.set_defaults(func=_cmd_recover)

    p = sub.add_parser("compact", help="merge the lake's per-unit files of every origin holding enough of them "
                                       "(what the compact_lake job does)")
    p.add_argument("--min-files", type=int, default=None,
                   help="compact an origin holding at least this many per-unit files (default "
                        "$STARTPOINT_COMPACT_FILES, else 1000)")
    p.set_defaults(func=_cmd_compact)

    p = sub.add_parser("recommend", help="which base model to start finetuning from, for your labelled data")
    _add_model_flags(p, RecommendOptions)
    p.set_defaults(func=_cmd_recommend)

    p = sub.add_parser("site", help="build the static leaderboard site from the warehouse")
    p.add_argument("--out", default=None, help="output folder (default $STARTPOINT_HOME/artifacts/site)")
    p.set_defaults(func=_cmd_site)

    p = sub.add_parser("model-card", help="write model-card sections and model-index YAML for the top models")
    p.add_argument("--out", default=None, help="output folder (default $STARTPOINT_HOME/artifacts/model_cards)")
    p.add_argument("--top", type=int, default=3, help="models per architecture (default 3)")
    p.add_argument("--site-url", default=None,
                   help="public http(s) base URL the site is published at, for the cards' links and the model-index "
                        "source (default $STARTPOINT_SITE_URL; without one the cards carry no site link)")
    p.set_defaults(func=_cmd_model_card)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
