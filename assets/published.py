"""Import of published finetuning results (model-recycling format) into the lake.

Reads `$STARTPOINT_PUBLISHED_RESULTS` (default `../shared/model-recycling`); every row and cell lands in a lake
table or in `rejected_rows`, and the counts are in the asset metadata.
"""


import dagster as dg

from assets.resources import LakeResource
from startpoint.published.importer import counts_markdown, counts_table, import_folder
from startpoint.settings import get_settings


@dg.asset(key_prefix="lake", group_name="published", kinds={"parquet"})
def published_results(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Published results as lake files: models, runs (one per seed/cell), probe scores, rejected rows."""
    folder = get_settings().published_results
    if folder is None:
        context.log.info("No published results: STARTPOINT_PUBLISHED_RESULTS is unset and ../shared/model-recycling "
                         "does not exist; import skipped.")
        return dg.MaterializeResult(metadata={"skipped": True})
    imported = import_folder(folder, lake.url)
    meta: dict[str, object] = {"folder": str(folder), "counts": dg.MetadataValue.md(counts_markdown(imported))}
    for arch, result in imported.architectures.items():
        meta[f"{arch}/models"] = len(result.hub_models)
        meta[f"{arch}/runs"] = len(result.finetune_runs)
        meta[f"{arch}/rejected"] = len(result.rejected_rows)
        meta[f"{arch}/row0_vs_seed_mean_max_abs_diff"] = round(result.row0_max_abs_diff, 6)
    totals = counts_table(imported)
    meta["rows_read"] = sum(c.rows_read for c in totals)
    meta["rows_rejected"] = sum(c.rows_rejected for c in totals)
    meta["cells_read"] = sum(c.cells_read for c in totals)
    meta["cells_rejected"] = sum(c.cells_rejected for c in totals)
    context.log.info(f"Imported {', '.join(imported.architectures)} from {folder}")
    return dg.MaterializeResult(metadata=meta)
