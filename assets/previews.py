"""Markdown previews of warehouse tables for the Dagster UI (asset metadata)."""

from __future__ import annotations

import dagster as dg

from assets.resources import WarehouseResource
from startpoint.tables import interval_text, markdown_table
from startpoint.tables import markdown_text as _md

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
        meta["preview"] = dg.MetadataValue.md(_leaderboard_preview(warehouse))
    elif table == "variance_decomposition":
        meta["preview"] = dg.MetadataValue.md(_variance_preview(warehouse))
    return meta


def _columns(warehouse: WarehouseResource, table: str) -> set[str]:
    _, rows = _query(warehouse, f"select column_name from information_schema.columns where table_name = '{table}'")
    return {r[0] for r in rows}


def _leaderboard_preview(warehouse: WarehouseResource) -> str:
    """Top rows per architecture by rank (the pretrained model among them): gain with its interval, win rate, the
    comparison with rank 1 (≈1: cannot be told apart from it), under a heading with the ranking's reliability and
    the notes a reader needs first (no evidence for the order; the pretrained model ranks first)."""
    from startpoint.warehouse.leaderboard import (
        board_notes, ranking_table, read_leaderboard, read_reliability, reliability_text, tie_summary,
    )

    con = warehouse.connect(read_only=True)
    try:
        board, reliability = read_leaderboard(con, top=LEADERBOARD_TOP), read_reliability(con)
    finally:
        con.close()
    if board.is_empty():
        return "_no ranked models_"
    out = []
    for (arch,), block in board.group_by("architecture", maintain_order=True):
        lines = block.to_dicts()
        first = lines[0]
        head = f"**{_md(arch)}** ({reliability_text(reliability.get(arch))})"
        notes = "".join(f"\n{_md(note)}\n" for note in board_notes(lines))
        names, cells = ranking_table(lines)
        table = [tuple(_md(c) if isinstance(c, str) else c for c in row) for row in cells]
        tail = (f"\n{_md(tie_summary(first['n_tied'], max(first['n_ranked'] - 1, 0)))}\n"
                if first.get("order_has_evidence") else "")
        out.append(f"{head}\n{notes}\n{markdown_table(names, table)}{tail}")
    return "\n".join(out)


def _variance_preview(warehouse: WarehouseResource) -> str:
    """Each component's share of the variance with its 95% interval; a decomposition from before the rewrite
    (sum_sq, fraction) shows its fraction as the share, without an interval."""
    have = _columns(warehouse, "variance_decomposition")
    if "share" in have:
        interval = ("share_low", "share_high") if {"share_low", "share_high"} <= have else ("null", "null")
        sql = f"select architecture, component, share, {interval[0]}, {interval[1]} from variance_decomposition"
    elif "fraction" in have:
        sql = "select architecture, component, fraction, null, null from variance_decomposition"
    else:
        return "_no share column in variance_decomposition_"
    _, rows = _query(warehouse, sql + " order by architecture, component")
    has_interval = any(low is not None for *_, low, _high in rows)
    table = [
        (_md(arch), _md(component), interval_text(share, low, high, digits=3, signed=False)
         + (" (n/a)" if has_interval and share is not None and low is None else ""))
        for arch, component, share, low, high in rows
    ]
    return markdown_table(["architecture", "component", "share (95%)"], table)
