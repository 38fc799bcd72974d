"""Everything the site shows, read from the warehouse's analytic tables in a few queries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from pipelines.warehouse.load import connect

REQUIRED = ("leaderboard", "gains", "target_effects", "variance_decomposition")
OPTIONAL = ("proxy_validation",)


class SiteDataError(RuntimeError):
    """The warehouse lacks what the site needs; the message says which table and how to build it."""


@dataclass
class SiteData:
    leaderboard: pd.DataFrame
    gains: pd.DataFrame
    target_effects: pd.DataFrame
    variance: pd.DataFrame
    proxy: pd.DataFrame
    datasets: pd.DataFrame
    warehouse: str

    @property
    def architectures(self) -> list[str]:
        return sorted(self.leaderboard["architecture"].dropna().unique())


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}


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
        q = lambda sql: con.execute(sql).df()  # noqa: E731
        lb_columns = {r[0] for r in con.execute(
            "select column_name from information_schema.columns where table_name = 'leaderboard'").fetchall()}
        # The score that orders the ranking, when the leaderboard publishes it (an extra column of issue 2).
        robust = "robust_score" if "robust_score" in lb_columns else "null::double as robust_score"
        data = SiteData(
            leaderboard=q(
                f"""select architecture, rank, model_id, avg_score, pretrained_avg, mean_gain, ci_low, ci_high,
                          win_rate, n_targets, probe_score, coalesce(flagged, false) as flagged, flag_reason, {robust}
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
            variance=q("select architecture, component, sum_sq, fraction from variance_decomposition"),
            proxy=q("select architecture, method, n_models, spearman, pearson from proxy_validation")
            if "proxy_validation" in have
            else pd.DataFrame(columns=["architecture", "method", "n_models", "spearman", "pearson"]),
            datasets=q("select dataset_id, metric, task_group from datasets")
            if "datasets" in have
            else pd.DataFrame(columns=["dataset_id", "metric", "task_group"]),
            warehouse=str(warehouse_path),
        )
    finally:
        con.close()
    if data.leaderboard.empty:
        raise SiteDataError(f"the leaderboard in {warehouse_path} is empty: import results or run the grid first")
    return data
