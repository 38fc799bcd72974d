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
from startpoint import lake as lake_files
from startpoint.keys import decode_key


class FinetuneConfig(dg.Config):
    seeds: list[int] = [0, 1]
    recipe: str = ""  # Recipe JSON; empty: startpoint.grid.target_recipe(target)
    retry_failed: bool = False  # also rerun seeds whose recorded run failed (e.g. after fixing the data)


def _recorded_row(lake_url: str, relpath: str) -> dict | None:
    """The lake's row of a run already made ({"status": "unknown"} for a file without a matching row)."""
    if not lake_files.exists(lake_url, "finetune_runs", relpath):
        return None
    rows = lake_files.read(lake_url, "finetune_runs", relpath.rsplit("/", 1)[0]).to_pylist()
    for row in rows:
        if row["recipe_hash"] and relpath.endswith(f"{row['recipe_hash']}-seed{row['seed']}"):
            return row
    return {"status": "unknown"}


@dg.asset(
    key_prefix="lake",
    name="finetune_runs",
    partitions_def=finetune_partitions,
    group_name="engine",
    kinds={"pytorch", "parquet"},
    deps=[dg.AssetDep("intermediate_models", partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep("fused_models", partition_mapping=dg.AllPartitionMapping())],
    description="Finetuning runs of a base model (dimension `model`) on a target (dimension `target`), one "
    "Parquet file per seed in the lake.",
)
def finetune_runs(
    context: dg.AssetExecutionContext, config: FinetuneConfig, lake: LakeResource, home: HomeResource
) -> dg.MaterializeResult:
    from assets.intermediate_models import write_pretrained_row
    from startpoint.data import DatasetError, load_dataset
    from startpoint.engine import FinetuneResult, Recipe, finetune
    from startpoint.engine.records import run_relpath, run_row
    from startpoint.grid import target_recipe
    from startpoint.probes.candidates import install_hub_candidate
    from startpoint.zoo import (
        PRETRAINED,
        ModelDirError,
        architecture_of,
        check_model_dir,
        resolve,
    )

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

    todo, skipped, recorded = [], [], {}
    for seed in config.seeds:
        row = _recorded_row(lake.url, run_relpath(model_id, target, recipe, seed))
        if row is None or (config.retry_failed and row["status"] != "ok"):
            todo.append(seed)
        else:
            skipped.append(seed)
            recorded[seed] = row
    if skipped:
        context.log.info(f"seeds {skipped} of {model_id} on {target} are already in the lake; skipped")

    dataset, load_error, model_error = None, None, None
    if todo:
        try:  # the whole folder (weights, shards, tokenizer) once, before any data is loaded
            check_model_dir(folder)
        except ModelDirError as exc:
            model_error = f"model {model_id!r} is refused: {exc}"
            context.log.error(model_error)
    if todo and model_error is None:
        try:
            dataset = load_dataset(target, caps=recipe.split_caps, seed=0)
        except DatasetError as exc:
            load_error = f"dataset {target!r} could not be loaded: {exc}"
            context.log.error(load_error)

    scores, failures = {}, {}
    for seed in todo:
        if model_error is not None:
            result = FinetuneResult(status="failed", dataset_id=target, metric="accuracy", seed=seed, error=model_error)
        elif dataset is None:
            result = FinetuneResult(status="failed", dataset_id=target, metric="accuracy", seed=seed, error=load_error)
        else:
            result = finetune(folder, dataset, recipe, seed, log=context.log.info, cache_dir=home.cache_dir)
        lake_files.write(lake.url, "finetune_runs", run_relpath(model_id, target, recipe, seed),
                         [run_row(model_id, architecture, recipe, result)])
        if result.status == "ok":
            scores[seed] = round(result.score, 2)
        else:
            failures[seed] = result.error
            context.log.warning(f"{model_id} on {target}, seed {seed}: recorded as failed: {result.error}")
    # Seeds already in the lake show their recorded scores too, marked as taken from the lake.
    for seed, row in recorded.items():
        if row["status"] == "ok" and row.get("score") is not None:
            scores[seed] = round(row["score"], 2)
        elif row["status"] != "ok":
            failures[seed] = row.get("error") or f"recorded as {row['status']}"
    return dg.MaterializeResult(
        metadata={"model_id": model_id, "target": target, "recipe_hash": recipe.recipe_hash,
                  "scores": {s: scores[s] for s in sorted(scores)}, "failed": failures, "skipped_seeds": skipped,
                  "scores_taken_from_lake": sorted(s for s in recorded if s in scores)}
    )
