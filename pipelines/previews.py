"""Markdown previews of warehouse tables for the Dagster UI (asset metadata)."""

from __future__ import annotations

import dagster as dg

from pipelines.resources import WarehouseResource
from pipelines.tables import markdown_table

LEADERBOARD_TOP = 10


def _query(warehouse: WarehouseResource, sql: str) -> tuple[list[str], list[tuple]]:
    con = warehouse.connect(read_only=True)
    try:
        cur = con.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()
    finally:
        con.close()


def preview_metadata(table: str, warehouse: WarehouseResource) -> dict[str, dg.MetadataValue]:
    """Row count for every model; a per-architecture preview for the tables people look at first."""
    meta: dict[str, dg.MetadataValue] = {}
    try:
        _, [(n,)] = _query(warehouse, f'select count(*) from "{table}"')
    except Exception:  # a view or ephemeral model has no table to count
        return meta
    meta["dagster/row_count"] = dg.MetadataValue.int(int(n))
    if table == "leaderboard":
        cols, rows = _query(
            warehouse,
            f"""select architecture, rank, model_id, round(avg_score, 2) as avg_score, round(mean_gain, 2) as gain,
                       round(ci_low, 2) as ci_low, round(ci_high, 2) as ci_high, round(win_rate, 2) as win_rate, flagged
                from leaderboard where rank <= {LEADERBOARD_TOP} order by architecture, rank""",
        )
        meta["preview"] = dg.MetadataValue.md(markdown_table(cols, rows))
    elif table == "variance_decomposition":
        cols, rows = _query(
            warehouse,
            "select architecture, component, round(sum_sq, 1) as sum_sq, round(fraction, 3) as fraction "
            "from variance_decomposition order by architecture, component",
        )
        meta["preview"] = dg.MetadataValue.md(markdown_table(cols, rows))
    return meta
