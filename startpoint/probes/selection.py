"""Pick the models worth a full evaluation: rank an architecture's probed candidates, take the top k.

A selection (`select_<architecture>` sensor, stages from `startpoint.plan.selection_steps`) probes every
candidate of one architecture (offline zoo + accepted Hub models), ranks them by one probe method, then finetunes
the top k on the target suite through the engine's `lake/finetune_runs` partitions; the pretrained model gets
more seeds, since every gain is measured against its mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FinetunePlan:
    model_id: str
    targets: tuple[str, ...]
    seeds: tuple[int, ...]
    reason: str  # 'baseline' or 'top <rank> by <method> (<score>)'


def rank_by_probe(
    rows: Iterable[Mapping[str, Any]], architecture: str, method: str, proxy_dataset: str | None = None
) -> list[tuple[str, float]]:
    """(model id, score) best first; the newest score per model wins; ties broken by model id for stability."""
    latest: dict[str, tuple[Any, float]] = {}
    for r in rows:
        if r["architecture"] != architecture or r["method"] != method or r["score"] is None:
            continue
        if proxy_dataset is not None and r["proxy_dataset"] != proxy_dataset:
            continue
        stamp = r.get("ingested_at")
        if r["model_id"] not in latest or (stamp is not None and stamp >= latest[r["model_id"]][0]):
            latest[r["model_id"]] = (stamp, float(r["score"]))
    return sorted(((m, s) for m, (_, s) in latest.items()), key=lambda ms: (-ms[1], ms[0]))


def plan_finetunes(
    ranked: list[tuple[str, float]],
    *,
    k: int,
    pretrained: str,
    targets: Iterable[str],
    seeds: Iterable[int],
    baseline_seeds: Iterable[int],
    method: str,
) -> list[FinetunePlan]:
    """The pretrained baseline (more seeds) plus the k best-probed candidates (the pretrained one is no candidate)."""
    if k < 1:
        raise ValueError(f"top k must be at least 1, got {k}")
    targets = tuple(targets)
    plans = [FinetunePlan(pretrained, targets, tuple(baseline_seeds), "baseline")]
    candidates = [(m, s) for m, s in ranked if m != pretrained][:k]
    for rank, (model_id, score) in enumerate(candidates, 1):
        plans.append(FinetunePlan(model_id, targets, tuple(seeds), f"top {rank} by {method} ({score:.4g})"))
    return plans
