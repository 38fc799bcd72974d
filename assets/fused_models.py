"""Fused start points: the top-k models of one pretrained base, by the current ranking, merged into one model.

Partitioned by (`base`: a pretrained base, dynamic; `recipe`: `top<k>-avg` or `top<k>-ta<scale>`). Members are
the base and its local intermediate models, ranked by the warehouse leaderboard when it ranks at least k of them,
else by mean gain over the base in the lake's finetuning runs (config `ranking`); the choice is in the metadata.
The result is saved under `$STARTPOINT_HOME/models/<encoded fused id>` (safetensors + tokenizer + startpoint.json
with members, weights, method, scale) and written to `hub_models` with role `fused` and its members. Domain logic:
`startpoint.zoo.fusion`; docs/fusion.md.

Data flow: the ranking is read as an input (lake files or the warehouse file), not as an upstream asset. A fused
model chosen from this round's runs is finetuned in `lake/finetune_runs` and ranked by the next warehouse build:
a second round, not a cycle in the asset graph (the only declared dependency is `intermediate_models`).
"""


import dagster as dg

from assets.resources import HomeResource, LakeResource
from startpoint import lake as lake_files
from startpoint.keys import decode_key

# Pretrained bases that fused models are made from (keys from encode_key); `startpoint run-grid` adds its bases.
pretrained_bases_partitions = dg.DynamicPartitionsDefinition(name="pretrained_bases")
RECIPES = ("top2-avg", "top3-avg", "top5-avg", "top2-ta0.5")  # = startpoint.zoo.fusion.RECIPE_KEYS
fused_partitions = dg.MultiPartitionsDefinition(
    {"base": pretrained_bases_partitions, "recipe": dg.StaticPartitionsDefinition(list(RECIPES))}
)


class FusedModelConfig(dg.Config):
    ranking: str = "auto"  # auto (warehouse leaderboard if it ranks >= k candidates, else lake runs) | warehouse | lake
    weights: list[float] = []  # averaging only: one weight per member in rank order; empty = uniform
    include_pretrained: bool = True  # the pretrained base may be a member when it ranks in the top k


@dg.asset(
    key_prefix="lake",  # it writes lake files (a hub_models row), as every `lake/` asset does
    name="fused_models",
    partitions_def=fused_partitions,
    group_name="engine",
    kinds={"pytorch", "parquet"},
    deps=[dg.AssetDep(dg.AssetKey(["lake", "intermediate_models"]), partition_mapping=dg.AllPartitionMapping())],
    description="Top-k models of a pretrained base (by the current ranking) merged by weight averaging or task "
    "arithmetic; saved under $STARTPOINT_HOME/models, a `hub_models` row with role `fused`.",
)
def fused_models(
    context: dg.AssetExecutionContext, config: FusedModelConfig, lake: LakeResource, home: HomeResource
) -> dg.MaterializeResult:
    from startpoint.engine.records import model_relpath, model_row, write_pretrained_row
    from startpoint.settings import get_settings
    from startpoint.zoo import PRETRAINED
    from startpoint.zoo.fusion import FusionError, FusionRecipe, make_fused_model

    keys = context.partition_key.keys_by_dimension
    base, recipe_key = decode_key(keys["base"]), keys["recipe"]
    if base not in PRETRAINED:
        raise dg.Failure(f"base {base!r} is not a packaged pretrained model ({', '.join(PRETRAINED)})")
    architecture = PRETRAINED[base].architecture
    try:
        recipe = FusionRecipe.parse(recipe_key)
        card, folder, made = make_fused_model(
            base, architecture, recipe, lake_url=lake.url, models_dir=home.models_dir,
            warehouse_path=get_settings().warehouse_path, ranking=config.ranking, weights=config.weights or None,
            include_pretrained=config.include_pretrained, log=context.log.info,
        )
    except FusionError as exc:
        raise dg.Failure(str(exc)) from None
    write_pretrained_row(lake.url, base)
    row = model_row(card["model_id"], architecture, folder, role="fused", base_model=base,
                    tags=[f"fusion:{recipe.key}", f"method:{card['method']}"], members=card["members"])
    lake_files.write(lake.url, "hub_models", model_relpath(card["model_id"]), [row])
    return dg.MaterializeResult(
        metadata={"model_id": card["model_id"], "path": str(folder), "members": card["members"],
                  "weights": card["weights"], "method": card["method"], "scale": card.get("scale"),
                  "ranking": card.get("ranking"), "member_gains": card.get("member_gains", {}),
                  "fused_now": made}
    )
