"""Per-architecture figures of a built warehouse, read from the dbt models (`leaderboard`, `ranking_reliability`,
`variance_decomposition`) so that each is one SQL query away from what the UI shows.

Plain Python on a DuckDB connection: the Dagster wiring (`assets/sql_models.py`) turns these into typed table
metadata and the numbers the Plots tab charts over materializations.
"""

from __future__ import annotations

from dataclasses import dataclass

# The columns of the per-architecture table: rank, the gain with its 95% interval, what ties it to #1.
TOP_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("rank", "int", "Rank by the ranking score (1 = best; the ranking score is not a gain; the pretrained model scores 0)."),
    ("model_id", "string", "Base model."),
    ("is_pretrained", "bool", "The pretrained model itself (stay; gain 0)."),
    ("mean_gain", "float", "Gain over the pretrained model in points: mean over the model's kept cells."),
    ("ci_low", "float", "Lower end of the gain's 95% interval."),
    ("ci_high", "float", "Upper end of the gain's 95% interval."),
    ("p_better_than_rank1", "float", "Probability this model beats rank 1 (empty for rank 1)."),
    ("tied", "bool", "Cannot be told apart from rank 1 on these targets, or the order carries no evidence."),
    ("n_targets", "int", "Targets the gain is the mean over."),
)


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
    """The first `top` ranked rows of each architecture's leaderboard, columns as in TOP_COLUMNS."""
    names = [c for c, _, _ in TOP_COLUMNS]
    rows = con.execute(
        f"select architecture, {', '.join(names)} from leaderboard where rank is not null and rank <= ? "
        "order by architecture, rank, mean_gain desc",
        [top],
    ).fetchall()
    out: dict[str, list[dict]] = {}
    for arch, *values in rows:
        out.setdefault(arch, []).append(dict(zip(names, values)))
    return out


def summaries(con) -> list[ArchitectureSummary]:
    """One summary per architecture on the leaderboard."""
    rows = con.execute(
        """with ranked as (
               select architecture, count(rank) as models,
                      arg_min(model_id, rank) filter (where rank is not null) as top_model,
                      arg_min(mean_gain, rank) filter (where rank is not null) as top_score,
                      arg_min(ci_low, rank) filter (where rank is not null) as top_score_low,
                      arg_min(ci_high, rank) filter (where rank is not null) as top_score_high
               from leaderboard group by architecture),
           shares as (
               select architecture,
                      max(share) filter (where component = 'base') as base_share,
                      max(share_low) filter (where component = 'base') as base_share_low,
                      max(share_high) filter (where component = 'base') as base_share_high,
                      max(share) filter (where component = 'target') as target_share,
                      max(share_low) filter (where component = 'target') as target_share_low,
                      max(share_high) filter (where component = 'target') as target_share_high
               from variance_decomposition group by architecture)
           select r.architecture, r.models, r.top_model, r.top_score, r.top_score_low, r.top_score_high,
                  rel.reliability, s.base_share, s.base_share_low, s.base_share_high,
                  s.target_share, s.target_share_low, s.target_share_high
           from ranked r
           left join ranking_reliability rel using (architecture)
           left join shares s using (architecture)
           order by r.architecture"""
    ).fetchall()
    return [ArchitectureSummary(*row) for row in rows]
