"""`lake/finetune_runs`: finetune one base model on one target (a 2-D dynamic partition), several seeds.

A model folder that `check_model_dir` refuses (no tokenizer, a tiny vocabulary, truncated or fake safetensors)
gives every seed a `failed` row naming the file and the reason; nothing is trained and no exception escapes.
Each run writes one Parquet file atomically under `<lake>/finetune_runs/local/<model>/<target>/`; a run whose
file exists is skipped, so an interrupted backfill resumes where it stopped and never duplicates. Partitions
write only the lake and the models folder, never DuckDB, so any number may run at once.
"""


import dagster as dg

from assets.partitions import finetune_partitions
from assets.resources import HomeResource, LakeResource
from startpoint.keys import decode_key


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
    return dg.MaterializeResult(
        metadata={"model_id": model_id, "target": target, "recipe_hash": recipe.recipe_hash,
                  "scores": {s: runs.scores[s] for s in sorted(runs.scores)}, "failed": runs.failures,
                  "skipped_seeds": runs.skipped, "scores_taken_from_lake": runs.from_lake}
    )
