"""Import of published finetuning results (model-recycling format) into the lake.

Reads `$STARTPOINT_PUBLISHED_RESULTS` (default `../shared/model-recycling`); every row and cell lands in a lake
table or in `rejected_rows`, and the counts are in the asset metadata.
"""


import errno

import dagster as dg

from assets.resources import LakeResource
from startpoint.lake import CorruptFileError
from startpoint.published.importer import counts_markdown, counts_table, import_folder
from startpoint.published.reader import PublishedFormatError
from startpoint.settings import get_settings


def printable(text: object) -> str:
    """`text` on one line with every control character escaped (`\\x1b`, `\\n`, ...): a file name holding escape
    sequences reaches the log and the UI as text, never as terminal codes."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(text))


def clear_failure(exc: BaseException, retry: bool = False) -> dg.Failure:
    """The step failure for a known error of the domain code: its one line (escaped) is the failure's description,
    what the UI shows and the CLI prints last, instead of a stack trace. `retry`: whether a run retry may help
    (a full disk, a busy writer), unlike a bad input file."""
    return dg.Failure(description=printable(" ".join(str(exc).split()) or type(exc).__name__), allow_retries=retry)


def _disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


@dg.asset(key_prefix="lake", group_name="published", kinds={"parquet"})
def published_results(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Published results as lake files: models, runs (one per seed/cell), probe scores, rejected rows."""
    folder = get_settings().published_results
    if folder is None:
        context.log.info("No published results: STARTPOINT_PUBLISHED_RESULTS is unset and ../shared/model-recycling "
                         "does not exist; import skipped.")
        return dg.MaterializeResult(metadata={"skipped": True})
    try:
        imported = import_folder(folder, lake.url)
    except (PublishedFormatError, CorruptFileError) as exc:
        raise clear_failure(exc) from None
    except OSError as exc:
        if not _disk_full(exc):
            raise
        raise clear_failure(exc, retry=True) from None
    meta: dict[str, object] = {"folder": printable(folder), "counts": dg.MetadataValue.md(counts_markdown(imported))}
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
    context.log.info(printable(f"Imported {', '.join(imported.architectures)} from {folder}"))
    return dg.MaterializeResult(metadata=meta)
