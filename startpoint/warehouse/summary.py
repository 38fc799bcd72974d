"""Per-architecture figures of a built warehouse, read from the dbt models (`leaderboard` through its one reader,
`ranking_reliability`, `variance_decomposition`) so that each is one SQL query away from what the UI shows.

Plain Python on a DuckDB connection: the Dagster wiring (`assets/sql_models.py`) turns these into typed table
metadata and the numbers the Plots tab charts over materializations.
"""

from __future__ import annotations

from dataclasses import dataclass

from startpoint.warehouse.leaderboard import read_leaderboard, read_reliability

# The columns of the per-architecture table: rank, the gain with its 95% interval as one readable column, then the
# same numbers as sortable floats (rounded to 2 decimals: the UI prints floats in full), what ties it to #1.
TOP_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("rank", "int", "Rank by the ranking score (1 = best; the ranking score is not a gain; the pretrained model scores 0)."),
    ("model_id", "string", "Base model."),
    ("gain_95ci", "string", "Gain over the pretrained model in points with its 95% interval: mean [low, high]."),
    ("mean_gain", "float", "Gain over the pretrained model in points: mean over the model's kept cells (2 decimals)."),
    ("ci_low", "float", "Lower end of the gain's 95% interval (2 decimals)."),
    ("ci_high", "float", "Upper end of the gain's 95% interval (2 decimals)."),
    ("p_better_than_rank1", "float", "Probability this model beats rank 1 (2 decimals; empty for rank 1)."),
    ("tied", "bool", "Cannot be told apart from rank 1 on these targets, or the order carries no evidence."),
    ("n_targets", "int", "Targets the gain is the mean over."),
    ("n_suite_targets", "int", "The architecture's targets: n_targets of these were measured."),
    ("few_cells", "bool", "The rank rests on fewer targets than the integrity checks need: unchecked, wide interval."),
    ("is_pretrained", "bool", "The pretrained model itself (stay; gain 0)."),
)
ROUNDED = ("mean_gain", "ci_low", "ci_high", "p_better_than_rank1")


def round2(value: float | None) -> float | None:
    """Two decimals (None stays None): what the UI shows for a gain, a probability or a reliability."""
    return None if value is None else round(float(value), 2)


def gain_text(value: float | None, low: float | None, high: float | None) -> str | None:
    """A gain in points with its interval, signed, 2 decimals: "+1.23 [+0.45, +2.01]" (no interval: the value)."""
    if value is None:
        return None
    if low is None or high is None:
        return f"{value:+.2f}"
    return f"{value:+.2f} [{low:+.2f}, {high:+.2f}]"


def percent(value: float | None) -> float | None:
    """A share (0..1) as a percent with 1 decimal."""
    return None if value is None else round(100 * float(value), 1)


def share_text(value: float | None, low: float | None, high: float | None) -> str | None:
    """A share as a percent with its interval: "42.0% [30.5%, 55.1%]" (no interval: the value)."""
    if value is None:
        return None
    if low is None or high is None:
        return f"{percent(value):.1f}%"
    return f"{percent(value):.1f}% [{percent(low):.1f}%, {percent(high):.1f}%]"


@dataclass(frozen=True)
class ArchitectureSummary:
    architecture: str
    models: int  # ranked models (flagged ones keep a row without a rank)
    top_model: str | None
    top_score: float | None  # rank 1's gain (mean over its kept cells), points over the pretrained model
    top_score_low: float | None
    top_score_high: float | None
    reliability: float | None  # reliability of a model's mean gain (ranking_reliability)
    base_share: float | None  # share of the gain's variance due to the base model
    base_share_low: float | None
    base_share_high: float | None
    target_share: float | None  # share due to the target
    target_share_low: float | None
    target_share_high: float | None


def top_rows(con, top: int = 10) -> dict[str, list[dict]]:
    """The first `top` ranked rows of each architecture's leaderboard, columns as in TOP_COLUMNS (floats rounded as
    the UI shows them; `gain_95ci` formatted from the unrounded numbers)."""
    names = [c for c, _, _ in TOP_COLUMNS]
    out: dict[str, list[dict]] = {}
    for row in read_leaderboard(con, top=top).iter_rows(named=True):
        row["gain_95ci"] = gain_text(row["mean_gain"], row["ci_low"], row["ci_high"])
        row.update({n: round2(row[n]) for n in ROUNDED})
        out.setdefault(row["architecture"], []).append({n: row[n] for n in names})
    return out


def summaries(con) -> list[ArchitectureSummary]:
    """One summary per architecture on the leaderboard: rank 1 and the count from the leaderboard reader, the
    reliability the site prints, the base and target shares from variance_decomposition."""
    board = read_leaderboard(con)
    reliability = read_reliability(con)
    shares = {r[0]: r[1:] for r in con.execute(
        """select architecture,
                  max(share) filter (where component = 'base'), max(share_low) filter (where component = 'base'),
                  max(share_high) filter (where component = 'base'), max(share) filter (where component = 'target'),
                  max(share_low) filter (where component = 'target'),
                  max(share_high) filter (where component = 'target')
           from variance_decomposition group by architecture"""
    ).fetchall()}
    out = []
    for (arch,), rows in board.group_by("architecture", maintain_order=True):
        ranked = rows.filter(rows["rank"].is_not_null())
        first = ranked.row(0, named=True) if len(ranked) else {}
        rel = reliability.get(arch)
        out.append(ArchitectureSummary(
            arch, len(ranked), first.get("model_id"), first.get("mean_gain"), first.get("ci_low"),
            first.get("ci_high"), rel.value if rel else None, *shares.get(arch, (None,) * 6)))
    return sorted(out, key=lambda s: s.architecture)
