"""Everything the site shows, read from the warehouse's analytic tables in a few queries (the leaderboard and the
reliability of its order through :mod:`startpoint.warehouse.leaderboard`, like every other reader)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from startpoint.frames import frame
from startpoint.warehouse.leaderboard import (
    Reliability, read_leaderboard, read_reliability, select_or_null, table_columns, tables,
)
from startpoint.warehouse.load import connect

REQUIRED = ("leaderboard", "gains", "target_effects", "variance_decomposition")
OPTIONAL = ("proxy_validation", "ranking_reliability", "hub_models")

# variance_decomposition: component with its share of the variance (and 95% interval); older warehouses have
# sum_sq and fraction instead, read as share = fraction without an interval.
VARIANCE_COLUMNS = {
    "variance": "double", "variance_low": "double", "variance_high": "double", "share": "double",
    "share_low": "double", "share_high": "double", "sum_sq": "double", "n_models": "bigint", "n_targets": "bigint",
    "n_replicates": "bigint",
}
# gains: a cell's collapsed flag exists since the collapse rule (docs/data_quality.md); NULL before it.
GAIN_COLUMNS = {
    "architecture": "varchar", "model_id": "varchar", "dataset_id": "varchar", "n_seeds": "bigint",
    "score_mean": "double", "baseline_mean": "double", "gain": "double", "gain_se": "double", "collapsed": "boolean",
}
# hub_models: what the "how to use" block of a model page shows (catalog rows of source 'hub' carry the Hub's
# license, downloads and the safe-loading verdict; published rows carry the size and date of their own catalog).
CATALOG_COLUMNS = {
    "architecture": "varchar", "model_id": "varchar", "source": "varchar", "role": "varchar", "license": "varchar",
    "n_params": "bigint", "download_bytes": "bigint", "downloads": "bigint", "last_modified": "timestamptz",
    "status": "varchar", "refusal_reason": "varchar", "has_safetensors": "boolean",
}


class SiteDataError(RuntimeError):
    """The warehouse lacks what the site needs; the message says which table and how to build it."""


@dataclass
class SiteData:
    leaderboard: pl.DataFrame  # startpoint.warehouse.leaderboard.read_leaderboard: every row, reading order
    gains: pl.DataFrame
    target_effects: pl.DataFrame
    variance: pl.DataFrame  # architecture, component, share, share_low, share_high, variance (..low, ..high), sum_sq
    proxy: pl.DataFrame
    datasets: pl.DataFrame
    warehouse: str
    reliability: dict[str, Reliability] = field(default_factory=dict)  # read_reliability, by architecture
    catalog: pl.DataFrame | None = None  # hub_models rows (CATALOG_COLUMNS); empty when the table is absent

    @property
    def architectures(self) -> list[str]:
        return sorted(self.leaderboard["architecture"].drop_nulls().unique().to_list())


def _variance_sql(have: set[str]) -> str:
    cols = dict(VARIANCE_COLUMNS)
    if "share" not in have and "fraction" in have:  # the decomposition before its rewrite
        cols.pop("share")
        share = "fraction as share"
    else:
        share = None
    select = select_or_null(have, cols) + (f", {share}" if share else "")
    return f"select architecture, component, {select} from variance_decomposition order by architecture, component"


def read_site_data(warehouse_path: str | Path) -> SiteData:
    con = connect(warehouse_path, read_only=True)
    try:
        have = tables(con)
        missing = [t for t in REQUIRED if t not in have]
        if missing:
            raise SiteDataError(
                f"warehouse {warehouse_path} has no table(s) {', '.join(missing)}: build the SQL models first "
                "(`make run`, or the `published` job)"
            )
        q = lambda sql: frame(con.execute(sql))  # noqa: E731
        empty = lambda columns: pl.DataFrame(schema=dict.fromkeys(columns, pl.Utf8))  # noqa: E731
        data = SiteData(
            leaderboard=read_leaderboard(con),
            gains=q(f"select {select_or_null(table_columns(con, 'gains'), GAIN_COLUMNS)} from gains "
                    "where gain is not null"),
            target_effects=q(
                """select architecture, dataset_id, n_models, mean_gain, max_gain, baseline_mean, baseline_sd
                   from target_effects order by architecture, mean_gain desc"""
            ),
            variance=q(_variance_sql(table_columns(con, "variance_decomposition"))),
            proxy=q("select architecture, method, n_models, spearman, pearson from proxy_validation")
            if "proxy_validation" in have
            else empty(["architecture", "method", "n_models", "spearman", "pearson"]),
            datasets=q("select dataset_id, metric, task_group from datasets")
            if "datasets" in have
            else empty(["dataset_id", "metric", "task_group"]),
            warehouse=str(warehouse_path),
            reliability=read_reliability(con),
            catalog=q(f"select {select_or_null(table_columns(con, 'hub_models'), CATALOG_COLUMNS)} from hub_models")
            if "hub_models" in have
            else empty(CATALOG_COLUMNS),
        )
    finally:
        con.close()
    if data.leaderboard.is_empty():
        raise SiteDataError(f"the leaderboard in {warehouse_path} is empty: import results or run the grid first")
    return data
