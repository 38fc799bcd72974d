"""The one reader of the `leaderboard` dbt model: which columns a reader gets, the query, and the sentences a user
reads before the order (how reliable it is, who ties with #1, when to stay with the pretrained model).

The CLI, the Dagster previews and metadata, the site, the model cards and the product assets all read the
leaderboard through here, so one row prints the same way in every medium and a column added to the model is
wired in one place. Plain Python on a DuckDB connection (no dagster); callers escape the text for their medium.

A warehouse built before a column existed reads it as a typed NULL (see OPTIONAL_COLUMNS), so older warehouses
still render.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import duckdb
import polars as pl

from startpoint.frames import frame
from startpoint.tables import interval_text
from startpoint.warehouse.reliability import read_top_reliability, top_reliability_sentence

# Columns every leaderboard has (sql/models/leaderboard.sql).
COLUMNS: dict[str, str] = {
    "architecture": "varchar", "rank": "bigint", "model_id": "varchar", "avg_score": "double",
    "pretrained_avg": "double", "mean_gain": "double", "ci_low": "double", "ci_high": "double", "win_rate": "double",
    "n_targets": "bigint", "probe_score": "double",
}
# Columns of the ranking (base_model_effects.sql, leaderboard.sql) read where the leaderboard has them; NULL before.
OPTIONAL_COLUMNS: dict[str, str] = {
    "ranking_score": "double", "reliability": "double", "p_better_than_rank1": "double",
    "tied_with_rank1": "boolean", "tied": "boolean", "is_pretrained": "boolean", "order_has_evidence": "boolean",
    "best_is_pretrained": "boolean", "n_collapsed": "bigint", "flagged": "boolean", "flag_reason": "varchar",
    "n_suite_targets": "bigint", "few_cells": "boolean",
}
# Per-architecture counts every row carries (window columns of `read_leaderboard`).
DERIVED_COLUMNS = ("n_ranked", "n_tied", "pretrained_rank", "pretrained_id")

ORDER = "architecture, rank nulls last, mean_gain desc, model_id"


class LeaderboardMissing(RuntimeError):
    """The warehouse has no leaderboard table: the SQL models were never built."""


def tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of the warehouse's tables and views."""
    return {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """Names of a table's columns (empty when the table does not exist)."""
    return {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_name = ?", [table]).fetchall()}


def select_or_null(have: set[str], wanted: dict[str, str]) -> str:
    """Select list of `wanted` columns: the column where the table has it, else a typed NULL under its name."""
    return ", ".join(c if c in have else f"null::{t} as {c}" for c, t in wanted.items())


def _select(have: set[str]) -> str:
    """The leaderboard's select list: every column of COLUMNS and OPTIONAL_COLUMNS, with `flagged` and
    `is_pretrained` false where unknown and `tied` falling back to the older `tied_with_rank1`."""
    cols = select_or_null(have, {**COLUMNS, **OPTIONAL_COLUMNS})
    fixes = ["coalesce(flagged, false) as flagged", "coalesce(is_pretrained, false) as is_pretrained",
             "coalesce(tied, tied_with_rank1) as tied"]
    return f"select * replace ({', '.join(fixes)}) from (select {cols} from leaderboard)"


def read_leaderboard(con: duckdb.DuckDBPyConnection, *, architecture: str | None = None, ranked: bool = False,
                     top: int | None = None) -> pl.DataFrame:
    """Leaderboard rows in reading order (architecture, rank, then unranked rows by gain), with the columns of
    COLUMNS, OPTIONAL_COLUMNS and DERIVED_COLUMNS: `n_ranked` ranked rows of the architecture, `n_tied` other
    ranked rows that cannot be told apart from #1, the pretrained model's rank and id.

    `architecture`: one architecture only; `ranked`: only ranked rows; `top`: only rows with rank <= top."""
    have = table_columns(con, "leaderboard")
    if not have:
        raise LeaderboardMissing("the warehouse has no leaderboard table: build the SQL models first "
                                 "(`make run`, or the `published` job)")
    where, params = [], []
    if architecture is not None:
        where.append("architecture = ?")
        params.append(architecture)
    if ranked or top is not None:
        where.append("rank is not null")
    if top is not None:
        where.append("rank <= ?")
        params.append(int(top))
    return frame(con.execute(
        f"""with lb as ({_select(have)}),
                board as (
                    select *,
                           count(rank) over w as n_ranked,
                           count(*) filter (where tied and rank > 1) over w as n_tied,
                           min(rank) filter (where is_pretrained) over w as pretrained_rank,
                           min(model_id) filter (where is_pretrained) over w as pretrained_id
                    from lb window w as (partition by architecture))
            select * from board {'where ' + ' and '.join(where) if where else ''} order by {ORDER}""",
        params,
    ))


def architectures(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The architectures that have a leaderboard, sorted."""
    return [r[0] for r in con.execute(
        "select distinct architecture from leaderboard where architecture is not null order by 1").fetchall()]


def _float(v) -> float | None:
    """A number from the warehouse that may be NULL or NaN: None when missing."""
    if v is None or isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        return None
    return float(v)


def _true(value) -> bool:
    """A boolean from the warehouse that may be NULL (NULL is not true)."""
    return bool(value) if value is not None else False


# -- reliability ---------------------------------------------------------------------------------------------------

@dataclass
class Reliability:
    value: float
    n_targets: int | None = None
    n_models: int | None = None
    clip: float | None = None
    top: dict | None = None  # the architecture's top_reliability row: what the sentence a user reads is about


def read_reliability(con: duckdb.DuckDBPyConnection) -> dict[str, Reliability]:
    """The reliability of each architecture's ranking: `ranking_reliability` (with its targets and clip), else the
    leaderboard's `reliability` column; with the `top_reliability` row the sentence leads with, where present."""
    have = tables(con)
    tops = read_top_reliability(con)
    out: dict[str, Reliability] = {}
    if "ranking_reliability" in have:
        cols = select_or_null(table_columns(con, "ranking_reliability"),
                              {"architecture": "varchar", "reliability": "double", "n_targets": "bigint",
                               "n_models": "bigint", "clip": "double"})
        for arch, value, n_targets, n_models, clip in con.execute(
                f"select {cols} from ranking_reliability").fetchall():
            if _float(value) is not None:
                out[arch] = Reliability(float(value), None if n_targets is None else int(n_targets),
                                        None if n_models is None else int(n_models), _float(clip), tops.get(arch))
    if "reliability" in table_columns(con, "leaderboard"):
        for arch, value in con.execute(
                "select architecture, any_value(reliability) from leaderboard where isfinite(reliability) "
                "group by architecture").fetchall():
            out.setdefault(arch, Reliability(float(value), top=tops.get(arch)))
    return out


def reliability_text(rel: Reliability | None) -> str:
    """What a user reads about how far the order holds: the stability of the top (top_reliability, where the
    warehouse has it) first, then 'reliability 0.79: ...', the share of the spread of all models' mean gains that is
    signal rather than noise."""
    if rel is None:
        return "reliability n/a"
    over = f" over {rel.n_targets} targets" if rel.n_targets else ""
    if rel.value <= 0:
        text = (f"reliability {rel.value:.2f}: no difference between the models' mean gains{over} stands out from "
                "the noise")
    else:
        text = (f"reliability {rel.value:.2f}: {rel.value:.0%} of the spread of the models' mean gains{over} is "
                f"signal, {1 - rel.value:.0%} noise")
    if rel.top is None:
        return text
    return f"{top_reliability_sentence(rel.top)} All models: {text}."


# -- the order and ties with #1 -------------------------------------------------------------------------------------

def tie_mark(r: dict) -> str:
    """'≈1' for a row that cannot be told apart from #1 (rank 1 too when another row is tied with it)."""
    return "≈1" if _true(r.get("tied")) else ""


def model_label(r: dict) -> str:
    """The model's id, the pretrained model's row marked as the choice to stay."""
    return f"{r['model_id']} (pretrained: stay)" if _true(r.get("is_pretrained")) else str(r["model_id"])


RANKING_HEADERS = ["rank", "tied", "model", "gain, points (95% CI)", "win rate", "P(better than #1)", "targets"]


def percent(p) -> str:
    """A probability as a percentage; empty when missing or not a probability."""
    p = _float(p)
    if p is None or not 0.0 <= p <= 1.0:
        return ""
    return "<1%" if p < 0.005 else ">99%" if p > 0.995 else f"{p:.0%}"


def ranking_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """The ranking columns of leaderboard rows (rank order) as a text table, for the CLI and the Dagster preview:
    rank, ≈1 when tied with #1, model (the pretrained row marked "stay"), gain over the pretrained model in points
    with its 95% interval (the mean over kept cells), win rate, P(better than #1), targets measured of the suite
    ("few cells" where the rank rests on too few to be checked). Cells are unescaped; each medium escapes the
    strings it prints."""
    n = _float
    table = [[int(r["rank"]), tie_mark(r), model_label(r),
              interval_text(n(r["mean_gain"]), n(r["ci_low"]), n(r["ci_high"])),
              None if _true(r.get("is_pretrained")) else n(r["win_rate"]),
              "" if r["rank"] == 1 else percent(r.get("p_better_than_rank1")),
              targets_label(r)]
             for r in rows]
    return list(RANKING_HEADERS), table


def tie_summary(n_tied: int, n_others: int) -> str:
    """One line on how crowded the top is, for the CLI and the previews."""
    return (f"{n_tied} of the {n_others} other ranked rows cannot be told apart from #1 on these targets (≈1: the "
            "95% interval of their paired difference in gain from #1 holds zero). The order follows the ranking "
            "score (winsorized, shrunk; not a gain); P(better than #1) comes from the paired comparison.")


def targets_text(r: dict) -> str:
    """'5 of 36': the targets the row's figures rest on, of the architecture's suite ('5' where it is unknown)."""
    n, suite = r.get("n_targets"), r.get("n_suite_targets")
    if n is None:
        return ""
    return f"{int(n)} of {int(suite)}" if suite is not None else str(int(n))


def targets_label(r: dict) -> str:
    """'5 of 36 · few cells': `targets_text` marked where the rank rests on too few cells to be checked."""
    return targets_text(r) + (" · few cells" if _true(r.get("few_cells")) else "")


def few_cells_note(rows: list[dict]) -> str | None:
    """A sentence on the ranked candidates among `rows` whose rank rests on few cells (leaderboard.few_cells): fewer
    kept targets than the integrity checks need, so nobody checked their values and their interval is wide."""
    few = [r for r in rows if _true(r.get("few_cells")) and r.get("rank") is not None]
    if not few:
        return None
    candidates = [r for r in rows if r.get("rank") is not None and not _true(r.get("is_pretrained"))]
    why = ("fewer targets than the integrity checks need to judge a row (docs/data_quality.md), so their values were "
           "never checked for shifted columns, and their intervals are wide")
    if len(few) == len(candidates):
        counts = sorted({targets_text(r) for r in few})
        return (f"Every candidate's rank rests on few cells ({', '.join(counts)} targets): {why}. Finetune on more "
                "targets before trusting the order.")
    ranks = ", ".join(f"{int(r['rank'])} ({targets_text(r)} targets)" for r in few[:5])
    more = f" and {len(few) - 5} more" if len(few) > 5 else ""
    return (f"Ranks decided on few cells: {ranks}{more}. They rest on {why}; finetune them on more targets before "
            "starting from them.")


def board_notes(rows: list[dict]) -> list[str]:
    """What a reader must know before reading the order of one architecture's ranked rows (rank order): whether the
    order carries evidence at all, whether the best start is the pretrained model itself, and which ranks rest on
    few cells."""
    notes = []
    if rows and not _true(rows[0].get("order_has_evidence")):
        notes.append("The models cannot be told apart on these targets (no evidence that their gains differ): "
                     "the rows are ordered by their mean gain, every row is a tie, and the order carries no evidence.")
    if rows and _true(rows[0].get("best_is_pretrained")):
        notes.append("No candidate ranks above the pretrained model: start from the pretrained model (stay).")
    elif rows and _float(rows[0].get("mean_gain")) is not None and _float(rows[0]["mean_gain"]) <= 0:
        notes.append("Rank 1's gain is not above 0: starting from the pretrained model is expected to do as well.")
    few = few_cells_note(rows)
    if few is not None:
        notes.append(few)
    return notes


TIED_NOTE = (
    "Rows marked ≈ #1 cannot be told apart from #1 on these targets: over the targets they share with #1, the "
    "95% interval of their mean difference in gain from it holds zero. P(better than #1) is the chance, from that "
    "paired comparison, that the model's true gain is above #1's."
)


def ranking_note(rel: Reliability | None) -> str:
    """How to read the gain next to the order (the order follows the ranking score, not the gain)."""
    clip = f" at {rel.clip:g} robust SDs" if rel is not None and rel.clip is not None else ""
    return (
        "The gain is the mean over the targets where the model's finetune did not collapse, in points over the "
        "pretrained model, with its 95% interval across those targets. The order follows a ranking score, not a "
        f"gain: each target's gains winsorized{clip} and the models' means shrunk toward the architecture's mean "
        "as far as the reliability says, which held-out evaluation found picks better starts than the plain mean "
        "(docs/ranking.md). So a row can show a higher gain than a row ranked above it. The pretrained model is a "
        "row of the ranking (stay, gain 0)."
    )
