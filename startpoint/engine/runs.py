"""Recording finetuning runs in the lake: one row per run (`record_run`, used by the `lake/finetune_runs` asset and
`recommend --run`), and the seeds of one model on one target (`run_seeds`, the asset's whole job).

A run that cannot happen (the model folder is refused, the dataset does not load) is recorded as failed with its
reason and the target's metric, so the lake says why a cell is empty instead of leaving it out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from startpoint import lake
from startpoint.engine.recipe import Recipe
from startpoint.engine.records import run_relpath, run_row
from startpoint.engine.train import FinetuneResult, finetune

Log = Callable[[str], None]
_log = logging.getLogger(__name__)


def target_metric(dataset_id: str) -> str:
    """The metric a run on `dataset_id` is scored with when no dataset was loaded to say it: the published targets'
    own (spearman for stsb), else accuracy (the engine's classification metric)."""
    from startpoint.published.targets import METRIC

    return METRIC.get(dataset_id, "accuracy")


def failed_result(dataset_id: str, seed: int, error: str, metric: str | None = None) -> FinetuneResult:
    """The result of a run that could not be made, with the target's metric."""
    return FinetuneResult(status="failed", dataset_id=dataset_id, metric=metric or target_metric(dataset_id),
                          seed=seed, error=error)


def record_run(lake_url: str, model_id: str, architecture: str, recipe: Recipe, result: FinetuneResult, *,
               dataset_id: str | None = None, origin: str = "local") -> str:
    """Write one run's row to its own lake file (atomically); returns the file's path. `dataset_id` names the file
    (default: the result's); origin `local` for the grid, `user` for recommend --run."""
    relpath = run_relpath(model_id, dataset_id or result.dataset_id, recipe, result.seed, origin=origin)
    return lake.write(lake_url, "finetune_runs", relpath, [run_row(model_id, architecture, recipe, result, origin)])


def recorded_row(lake_url: str, model_id: str, dataset_id: str, recipe: Recipe, seed: int) -> dict | None:
    """The lake's row of a local run already made (None: not made; {"status": "unknown"} for a file without a
    matching row)."""
    relpath = run_relpath(model_id, dataset_id, recipe, seed)
    if not lake.exists(lake_url, "finetune_runs", relpath):
        return None
    for row in lake.read(lake_url, "finetune_runs", relpath.rsplit("/", 1)[0]).to_pylist():
        if row["recipe_hash"] and relpath.endswith(f"{row['recipe_hash']}-seed{row['seed']}"):
            return row
    return {"status": "unknown"}


@dataclass
class SeedRuns:
    """What `run_seeds` did: scores (2 decimals) and errors per seed, the seeds skipped as already in the lake, and
    which of the scores were read from the lake rather than made now."""

    scores: dict[int, float] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)
    skipped: list[int] = field(default_factory=list)
    from_lake: list[int] = field(default_factory=list)


def run_seeds(lake_url: str, model_id: str, folder: str | Path, architecture: str, target: str, recipe: Recipe,
              seeds: Iterable[int], *, retry_failed: bool = False, cache_dir: Path | None = None,
              log: Log = _log.info, warn: Log = _log.warning) -> SeedRuns:
    """Finetune the model in `folder` on `target` once per seed not yet in the lake (failed ones too when
    `retry_failed`), each run recorded in its own lake file. The folder is checked and the dataset loaded once,
    before any run; if either fails, every seed to run is recorded as failed with the reason."""
    from startpoint.data import DatasetError, load_dataset
    from startpoint.zoo import ModelDirError, check_model_dir

    out, todo, recorded = SeedRuns(), [], {}
    for seed in seeds:
        row = recorded_row(lake_url, model_id, target, recipe, seed)
        if row is None or (retry_failed and row["status"] != "ok"):
            todo.append(seed)
        else:
            out.skipped.append(seed)
            recorded[seed] = row
    if out.skipped:
        log(f"seeds {out.skipped} of {model_id} on {target} are already in the lake; skipped")

    dataset, error = None, None
    if todo:
        try:  # the whole folder (weights, shards, tokenizer) once, before any data is loaded
            check_model_dir(folder)
        except ModelDirError as exc:
            error = f"model {model_id!r} is refused: {exc}"
    if todo and error is None:
        try:
            dataset = load_dataset(target, caps=recipe.split_caps, seed=0)
        except DatasetError as exc:
            error = f"dataset {target!r} could not be loaded: {exc}"
    if error is not None:
        warn(error)

    for seed in todo:
        if dataset is None:
            result = failed_result(target, seed, error)
        else:
            result = finetune(folder, dataset, recipe, seed, log=log, cache_dir=cache_dir)
        record_run(lake_url, model_id, architecture, recipe, result, dataset_id=target)
        if result.status == "ok":
            out.scores[seed] = round(result.score, 2)
        else:
            out.failures[seed] = result.error
            warn(f"{model_id} on {target}, seed {seed}: recorded as failed: {result.error}")
    for seed, row in recorded.items():  # seeds already in the lake show their recorded scores too
        if row["status"] == "ok" and row.get("score") is not None:
            out.scores[seed] = round(row["score"], 2)
            out.from_lake.append(seed)
        elif row["status"] != "ok":
            out.failures[seed] = row.get("error") or f"recorded as {row['status']}"
    out.from_lake.sort()
    return out
