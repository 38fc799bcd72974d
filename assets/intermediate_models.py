"""Intermediate models: a pretrained base finetuned on one source dataset each (partition = base model + source,
key `source_key(base, source)`, e.g. `sentence-transformers--paraphrase-MiniLM-L3-v2@fine_foods`; a key with the
source alone means the config's base model).

Each partition saves safetensors + tokenizer under `$STARTPOINT_HOME/models/<encoded id>` and writes the
model's `hub_models` row (source `local`, role `intermediate`) plus the base model's row (role `pretrained`)
to the lake. A model already saved with the same recipe is not trained again.
"""


import dagster as dg

from assets.partitions import sources_partitions
from assets.resources import HomeResource, LakeResource
from startpoint import lake as lake_files
from startpoint.keys import parse_source_key


class IntermediateModelConfig(dg.Config):
    base_model: str = ""  # empty: the partition key's base (or all-MiniLM-L6-v2 for a key with the source alone)
    recipe: str = ""  # Recipe JSON; empty: SOURCE_RECIPE of startpoint.grid
    seed: int = 0


@dg.asset(
    key_prefix="lake",  # it writes lake files (hub_models rows), as every `lake/` asset does
    name="intermediate_models",
    partitions_def=sources_partitions,
    group_name="engine",
    kinds={"pytorch", "parquet"},
    description="Each local base encoder finetuned on each source dataset (partition = base@source); saved under "
    "$STARTPOINT_HOME/models.",
)
def intermediate_models(
    context: dg.AssetExecutionContext, config: IntermediateModelConfig, lake: LakeResource, home: HomeResource
) -> dg.MaterializeResult:
    from startpoint.data import load_dataset
    from startpoint.engine import Recipe, finetune
    from startpoint.engine.records import model_relpath, model_row, write_pretrained_row
    from startpoint.grid import SOURCE_RECIPE
    from startpoint.zoo import (
        DEFAULT_BASE,
        PRETRAINED,
        intermediate_id,
        local_model_dir,
        read_model_card,
        resolve,
    )

    try:
        base_model, source = parse_source_key(context.partition_key, config.base_model or DEFAULT_BASE)
    except ValueError as exc:
        raise dg.Failure(str(exc)) from None
    if config.base_model and config.base_model != base_model:
        raise dg.Failure(f"partition {context.partition_key!r} is for base model {base_model!r} but the config names "
                         f"{config.base_model!r}; leave base_model empty or use the matching partition")
    if base_model not in PRETRAINED:
        raise dg.Failure(f"base model {base_model!r} is not a packaged pretrained model ({list(PRETRAINED)})")
    architecture = PRETRAINED[base_model].architecture
    recipe = Recipe.from_json(config.recipe) if config.recipe else SOURCE_RECIPE
    model_id = intermediate_id(source, base_model)
    folder = local_model_dir(model_id, home.models_dir)
    write_pretrained_row(lake.url, base_model)

    card = read_model_card(folder)
    if card.get("recipe_hash") == recipe.recipe_hash and (folder / "model.safetensors").is_file():
        context.log.info(f"{model_id} already trained with recipe {recipe.recipe_hash}; not training again")
        source_score = card.get("test_score")
    else:
        ds = load_dataset(source, caps=recipe.split_caps, seed=0)
        card = {"model_id": model_id, "architecture": architecture, "base_model": base_model,
                "source_dataset": source, "recipe": recipe.to_json(), "recipe_hash": recipe.recipe_hash,
                "seed": config.seed}
        result = finetune(resolve(base_model), ds, recipe, config.seed, log=context.log.info,
                          cache_dir=home.cache_dir, save_to=folder, model_card=card)
        if result.status != "ok":
            raise dg.Failure(f"training {model_id} on {source} failed: {result.error}")
        source_score = result.score
    row = model_row(model_id, architecture, folder, role="intermediate", base_model=base_model,
                    tags=[f"source:{source}"])
    lake_files.write(lake.url, "hub_models", model_relpath(model_id), [row])
    return dg.MaterializeResult(
        metadata={"model_id": model_id, "base_model": base_model, "source": source, "path": str(folder), "recipe_hash": recipe.recipe_hash,
                  "source_test_score": source_score}
    )
