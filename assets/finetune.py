"""`lake/finetune_runs`: finetune one base model on one target (a 2-D dynamic partition), several seeds.

A model folder that `check_model_dir` refuses (no tokenizer, a tiny vocabulary, truncated or fake safetensors)
gives every seed a `failed` row naming the file and the reason; nothing is trained and no exception escapes.
Each run writes one Parquet file atomically under `<lake>/finetune_runs/local/<model>/<target>/`; a run whose
file exists is skipped, so an interrupted backfill resumes where it stopped and never duplicates. Partitions
write only the lake and the models folder, never DuckDB, so any number may run at once.
"""


import math

import dagster as dg

from assets.check_results import check_results
from assets.partitions import finetune_partitions
from assets.resources import HomeResource, LakeResource
from startpoint.keys import decode_key, encode_key

FINETUNE_RUNS = dg.AssetKey(["lake", "finetune_runs"])

# Checks run in the partition's own run, on the partition's lake files only (one model x target folder).
RUN_CHECKS: dict[str, str] = {
    "runs_scored_or_failed": (
        "Every run row of the partition is `ok` with a finite score in [0, 100] (the target's metric in percent), "
        "or `failed` with its error and no score: a score out of range cannot be a gain, a failure without its "
        "reason cannot be fixed, and either would reach the warehouse as it stands."),
    "configured_seeds_recorded": (
        "Every seed the run was configured with has exactly one row for the run's recipe: a missing seed is a lost "
        "run, a repeated one would count twice in the cell's mean."),
}


def run_problems(lake_url: str, model_id: str, target: str, recipe_hash: str, seeds: list[int]) -> dict[str, list[str]]:
    """Per check of RUN_CHECKS, the offending rows of one partition's lake files, described (empty: passes)."""
    from startpoint import lake

    rows = lake.read(lake_url, "finetune_runs", f"local/{encode_key(model_id)}/{encode_key(target)}").to_pylist()
    bad_rows = []
    for r in rows:
        score, ok = r["score"], r["status"] == "ok"
        if ok and (score is None or not math.isfinite(score) or not 0 <= score <= 100):
            bad_rows.append(f"seed {r['seed']}: status ok with score {score}")
        elif not ok and (r["status"] != "failed" or not (r["error"] or "").strip() or score is not None):
            bad_rows.append(f"seed {r['seed']}: status {r['status']!r}, error {r['error']!r}, score {score}")
    counts: dict[int, int] = {}
    for r in rows:
        if r["recipe_hash"] == recipe_hash:
            counts[r["seed"]] = counts.get(r["seed"], 0) + 1
    bad_seeds = [f"seed {s}: {counts.get(s, 0)} rows" for s in sorted(set(seeds)) if counts.get(s, 0) != 1]
    return {"runs_scored_or_failed": bad_rows, "configured_seeds_recorded": bad_seeds}


class FinetuneConfig(dg.Config):
    seeds: list[int] = [0, 1]
    recipe: str = ""  # Recipe JSON; empty: startpoint.grid.target_recipe(target)
    retry_failed: bool = False  # also rerun seeds whose recorded run failed (e.g. after fixing the data)


@dg.asset(
    key_prefix="lake",
    name="finetune_runs",
    partitions_def=finetune_partitions,
    group_name="engine",
    kinds={"pytorch", "parquet"},
    deps=[dg.AssetDep(dg.AssetKey(["lake", "intermediate_models"]), partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep(dg.AssetKey(["lake", "fused_models"]), partition_mapping=dg.AllPartitionMapping())],
    description="Finetuning runs of a base model (dimension `model`) on a target (dimension `target`), one "
    "Parquet file per seed in the lake.",
    check_specs=[dg.AssetCheckSpec(name, asset=FINETUNE_RUNS, description=d) for name, d in RUN_CHECKS.items()],
)
def finetune_runs(
    context: dg.AssetExecutionContext, config: FinetuneConfig, lake: LakeResource, home: HomeResource
) -> dg.MaterializeResult:
    from startpoint.engine import Recipe
    from startpoint.engine.records import write_pretrained_row
    from startpoint.engine.runs import run_seeds
    from startpoint.grid import target_recipe
    from startpoint.probes.candidates import install_hub_candidate
    from startpoint.zoo import PRETRAINED, architecture_of, resolve

    keys = context.partition_key.keys_by_dimension
    model_id, target = decode_key(keys["model"]), decode_key(keys["target"])
    recipe = Recipe.from_json(config.recipe) if config.recipe else target_recipe(target)
    try:  # an accepted Hub model (a selection's top k) is downloaded here, in the run, the first time
        install_hub_candidate(model_id, lake.url, home.models_dir, home.cache_dir)
    except ValueError as exc:
        raise dg.Failure(str(exc)) from None
    folder = resolve(model_id, home.models_dir)  # a model that was never made is an ordering error: fail loudly
    architecture = architecture_of(model_id, home.models_dir)
    if model_id in PRETRAINED:
        write_pretrained_row(lake.url, model_id)
    runs = run_seeds(lake.url, model_id, folder, architecture, target, recipe, config.seeds,
                     retry_failed=config.retry_failed, cache_dir=home.cache_dir, log=context.log.info,
                     warn=context.log.warning)
    problems = run_problems(lake.url, model_id, target, recipe.recipe_hash, config.seeds)
    return dg.MaterializeResult(
        metadata={"model_id": model_id, "target": target, "recipe_hash": recipe.recipe_hash,
                  "scores": {s: runs.scores[s] for s in sorted(runs.scores)}, "failed": runs.failures,
                  "skipped_seeds": runs.skipped, "scores_taken_from_lake": runs.from_lake},
        check_results=check_results(FINETUNE_RUNS, problems),
    )
