"""The sentence a user reads about how far the top of a ranking can be trusted, from a `top_reliability` row.

Pure Python (no dagster, no database): the CLI, the site, the asset previews and the model cards pass the row as a
dict. The words come from the TOP figures (sql/models/top_reliability.sql, docs/reliability.md), never from the
all-model reliability, which stays high when only the bulk of clearly worse models is told apart.

Thresholds, on ``p_rank1_in_top10`` (how often rank 1 of one half of the targets is in the other half's top 10,
averaged over both directions and the splits), fixed in advance and not tuned to any architecture:

- ``p >= 0.8`` and the interval's lower end ``>= 0.5``: "fairly stable": rank 1 is usually near the top on other
  targets, and even the pessimistic end says more often than not;
- ``p >= 0.5`` (or ``p >= 0.8`` with a lower end below 0.5): "only partly stable": more often than not, but the
  interval leaves room for a coin flip, so read the top 10 as candidates and compare them on your own target;
- ``p < 0.5``: "not stable": rank 1 is more often outside the other half's top 10 than in it; treat the top 10 as a
  shortlist.

With no figure (10 or fewer models, or fewer than 2 targets) the sentence says the top cannot be judged.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

STABLE_P = 0.8
STABLE_LOW = 0.5
PARTLY_P = 0.5


def _num(row: Mapping[str, Any], key: str) -> float | None:
    v = row.get(key)
    if v is None:
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%"


def top_reliability_verdict(row: Mapping[str, Any]) -> str:
    """'stable', 'partly stable', 'not stable' or 'unknown', by the thresholds of the module docstring."""
    p, low = _num(row, "p_rank1_in_top10"), _num(row, "p_rank1_in_top10_low")
    if p is None:
        return "unknown"
    if p >= STABLE_P and (low is None or low >= STABLE_LOW):
        return "stable"
    if p >= PARTLY_P:
        return "partly stable"
    return "not stable"


def top_reliability_sentence(row: Mapping[str, Any]) -> str:
    """One or two sentences on the stability of the top of an architecture's list, from a `top_reliability` row
    (keys as its columns; missing keys read as unknown)."""
    p = _num(row, "p_rank1_in_top10")
    if p is None:
        n = row.get("n_models")
        few = f" ({n} models)" if n is not None else ""
        return (f"Too few models or targets{few} to say whether the top of this list is stable: "
                "compare the first few on your own target.")
    low, high = _num(row, "p_rank1_in_top10_low"), _num(row, "p_rank1_in_top10_high")
    interval = f" (95% interval {_pct(low)}-{_pct(high)})" if low is not None and high is not None else ""
    head = (f"Rank 1 of one half of the targets is in the other half's top 10 in {_pct(p)} of splits{interval}")
    overlap = _num(row, "top10_overlap")
    tail = f"; the two halves share {_pct(overlap)} of their top 10" if overlap is not None else ""
    verdict = top_reliability_verdict(row)
    if verdict == "stable":
        return f"{head}{tail}: the top of this list is fairly stable."
    if verdict == "partly stable":
        return (f"{head}{tail}: the top of this list is only partly stable; "
                "compare the top 10 on your own target before picking one.")
    return f"{head}{tail}: the top of this list is not stable; treat the top 10 as a shortlist, not an order."


def read_top_reliability(con) -> dict[str, dict]:
    """The `top_reliability` rows of a warehouse by architecture; {} for a warehouse built before the table."""
    if not con.execute("select count(*) from information_schema.tables where table_name = 'top_reliability'"
                       ).fetchone()[0]:
        return {}
    cur = con.execute("select * from top_reliability")
    names = [d[0] for d in cur.description]
    return {row[0]: dict(zip(names, row)) for row in cur.fetchall()}
