"""Everything the site shows, read from the warehouse's analytic tables in a few queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from startpoint.frames import frame
from startpoint.warehouse.load import connect
from startpoint.warehouse.reliability import read_top_reliability

REQUIRED = ("leaderboard", "gains", "target_effects", "variance_decomposition")
OPTIONAL = ("proxy_validation", "ranking_reliability")

# Columns of the ranking (sql/models/base_model_effects.sql, leaderboard.sql) read when the leaderboard has them;
# a warehouse built before them reads NULL.
RANKING_COLUMNS = {
    "ranking_score": "double", "reliability": "double", "p_better_than_rank1": "double",
    "tied_with_rank1": "boolean", "tied": "boolean", "is_pretrained": "boolean", "order_has_evidence": "boolean",
    "best_is_pretrained": "boolean", "n_collapsed": "bigint",
}
# variance_decomposition: component with its share of the variance (and 95% interval); older warehouses have
# sum_sq and fraction instead, read as share = fraction without an interval.
VARIANCE_COLUMNS = {
    "variance": "double", "variance_low": "double", "variance_high": "double", "share": "double",
    "share_low": "double", "share_high": "double", "sum_sq": "double", "n_models": "bigint", "n_targets": "bigint",
    "n_replicates": "bigint",
}
RELIABILITY_COLUMNS = ("architecture", "n_models", "n_targets", "n_cells", "var_base", "var_residual", "reliability",
                       "clip")


class SiteDataError(RuntimeError):
    """The warehouse lacks what the site needs; the message says which table and how to build it."""


@dataclass
class SiteData:
    leaderboard: pl.DataFrame
    gains: pl.DataFrame
    target_effects: pl.DataFrame
    variance: pl.DataFrame  # architecture, component, share, share_low, share_high, variance (..low, ..high), sum_sq
    proxy: pl.DataFrame
    datasets: pl.DataFrame
    warehouse: str
    reliability: pl.DataFrame | None = None  # ranking_reliability, one row per architecture (empty when absent)
    top_reliability: dict = field(default_factory=dict)  # top_reliability rows by architecture ({} when absent)

    @property
    def architectures(self) -> list[str]:
        return sorted(self.leaderboard["architecture"].drop_nulls().unique().to_list())


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_name = ?", [table]).fetchall()}


def _select(have: set[str], wanted: dict[str, str]) -> str:
    """Select list of `wanted` columns: the column where the table has it, else a typed NULL under its name."""
    return ", ".join(c if c in have else f"null::{t} as {c}" for c, t in wanted.items())


def _variance_sql(have: set[str]) -> str:
    cols = dict(VARIANCE_COLUMNS)
    if "share" not in have and "fraction" in have:  # the decomposition before its rewrite
        cols.pop("share")
        share = "fraction as share"
    else:
        share = None
    select = _select(have, cols) + (f", {share}" if share else "")
    return f"select architecture, component, {select} from variance_decomposition order by architecture, component"


def read_site_data(warehouse_path: str | Path) -> SiteData:
    con = connect(warehouse_path, read_only=True)
    try:
        have = _tables(con)
        missing = [t for t in REQUIRED if t not in have]
        if missing:
            raise SiteDataError(
                f"warehouse {warehouse_path} has no table(s) {', '.join(missing)}: build the SQL models first "
                "(`make run`, or the `published` job)"
            )
        q = lambda sql: frame(con.execute(sql))  # noqa: E731
        empty = lambda columns: pl.DataFrame(schema=dict.fromkeys(columns, pl.Utf8))  # noqa: E731
        ranking = _select(_columns(con, "leaderboard"), RANKING_COLUMNS)
        data = SiteData(
            leaderboard=q(
                f"""select architecture, rank, model_id, avg_score, pretrained_avg, mean_gain, ci_low, ci_high,
                          win_rate, n_targets, probe_score, coalesce(flagged, false) as flagged, flag_reason, {ranking}
                   from leaderboard order by architecture, rank nulls last, mean_gain desc, model_id"""
            ),
            gains=q(
                """select architecture, model_id, dataset_id, n_seeds, score_mean, baseline_mean, gain, gain_se
                   from gains where gain is not null"""
            ),
            target_effects=q(
                """select architecture, dataset_id, n_models, mean_gain, max_gain, baseline_mean, baseline_sd
                   from target_effects order by architecture, mean_gain desc"""
            ),
            variance=q(_variance_sql(_columns(con, "variance_decomposition"))),
            proxy=q("select architecture, method, n_models, spearman, pearson from proxy_validation")
            if "proxy_validation" in have
            else empty(["architecture", "method", "n_models", "spearman", "pearson"]),
            datasets=q("select dataset_id, metric, task_group from datasets")
            if "datasets" in have
            else empty(["dataset_id", "metric", "task_group"]),
            warehouse=str(warehouse_path),
            reliability=q(f"select {', '.join(RELIABILITY_COLUMNS)} from ranking_reliability")
            if "ranking_reliability" in have
            else empty(RELIABILITY_COLUMNS),
            top_reliability=read_top_reliability(con),
        )
    finally:
        con.close()
    if data.leaderboard.is_empty():
        raise SiteDataError(f"the leaderboard in {warehouse_path} is empty: import results or run the grid first")
    return data
