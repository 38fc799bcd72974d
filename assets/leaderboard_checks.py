"""Checks on the `leaderboard` a reader relies on, run after each build of it (blocking: a leaderboard that fails
one does not reach the site and model cards of the same run).

They read the warehouse read-only, one query each, and name the offending rows. dbt tests (sql/) cover columns
and keys; these are the cross-row rules of a ranking: an interval around its value, competition ranks without
holes, a #1 and the "stay" row per architecture.
"""

from __future__ import annotations

import duckdb
import dagster as dg

from assets.resources import WarehouseResource
from startpoint.tables import markdown_table

LEADERBOARD = dg.AssetKey("leaderboard")
SHOWN = 10  # offending rows listed in a failed check's metadata

# name -> (description, SQL giving the offending rows, their column names)
CHECKS: dict[str, tuple[str, str, list[str]]] = {
    "interval_holds_its_value": (
        "Every gain lies inside its own 95% interval (ci_low <= mean_gain <= ci_high, where the interval exists); "
        "an interval beside its value means the interval or the gain was computed on different cells.",
        """select architecture, model_id, mean_gain, ci_low, ci_high from leaderboard
           where mean_gain is not null and (ci_low > mean_gain + 1e-9 or ci_high < mean_gain - 1e-9)
           order by architecture, rank""",
        ["architecture", "model_id", "mean_gain", "ci_low", "ci_high"],
    ),
    "ranks_have_no_gaps": (
        "Per architecture the ranked rows carry competition ranks: 1, then each rank is the previous one (an exact "
        "tie) or its position (1, 2, 2, 4); a hole or a repeat elsewhere means rows were lost or duplicated.",
        """select architecture, model_id, rank, position from (
               select architecture, model_id, rank,
                      row_number() over (partition by architecture order by rank, model_id) as position,
                      lag(rank) over (partition by architecture order by rank, model_id) as previous
               from leaderboard where rank is not null)
           where not (rank = position or rank = previous) order by architecture, position""",
        ["architecture", "model_id", "rank", "position"],
    ),
    "one_first_per_architecture": (
        "Every architecture with rows has exactly one #1, or several only when they are an exact tie (same gain and "
        "ranking score); no #1 leaves the architecture without an answer, two untied ones contradict each other.",
        """select architecture, count(*) filter (where rank = 1) as n_first,
                  count(distinct (round(mean_gain, 9), round(ranking_score, 9))) filter (where rank = 1) as distinct_first
           from leaderboard group by architecture
           having count(*) filter (where rank = 1) = 0 or distinct_first > 1
           order by architecture""",
        ["architecture", "n_first", "distinct_first"],
    ),
    "pretrained_row_present": (
        "Every architecture has exactly one row of its pretrained model (is_pretrained), ranked: the 'stay' answer "
        "every other gain is measured against.",
        """select architecture, count(*) filter (where is_pretrained) as n_pretrained,
                  count(*) filter (where is_pretrained and rank is not null) as n_ranked
           from leaderboard group by architecture
           having count(*) filter (where is_pretrained) <> 1 or count(*) filter (where is_pretrained and rank is not null) <> 1
           order by architecture""",
        ["architecture", "n_pretrained", "n_ranked"],
    ),
}


def leaderboard_problems(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Per check, the offending rows (empty: the check passes)."""
    return {name: con.execute(sql).fetchall() for name, (_, sql, _) in CHECKS.items()}


@dg.multi_asset_check(
    specs=[dg.AssetCheckSpec(name, asset=LEADERBOARD, description=description, blocking=True)
           for name, (description, _, _) in CHECKS.items()],
)
def leaderboard_checks(warehouse: WarehouseResource):
    """The ranking rules above, on the leaderboard as the warehouse holds it now."""
    con = warehouse.connect(read_only=True)
    try:
        problems = leaderboard_problems(con)
        n_rows = con.execute("select count(*) from leaderboard").fetchone()[0]
    finally:
        con.close()
    for name, rows in problems.items():
        columns = CHECKS[name][2]
        metadata: dict[str, dg.MetadataValue] = {"offending_rows": dg.MetadataValue.int(len(rows)),
                                                 "rows_checked": dg.MetadataValue.int(n_rows)}
        if rows:
            metadata["offending"] = dg.MetadataValue.md(markdown_table(columns, [tuple(map(str, r)) for r in rows[:SHOWN]]))
        yield dg.AssetCheckResult(
            asset_key=LEADERBOARD, check_name=name, passed=not rows, severity=dg.AssetCheckSeverity.ERROR,
            description=(f"{len(rows)} offending row(s), e.g. {dict(zip(columns, rows[0]))}" if rows else
                         f"holds on all {n_rows} rows"),
            metadata=metadata,
        )
