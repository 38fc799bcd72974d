"""The offline suite's datasets, described in the lake table `datasets` (one file per dataset).

The stats are those of the full dataset unless caps are set in the config, so the table says how much data
each target really has; the engine applies its own caps when it trains.
"""

import dagster as dg
from pydantic import Field

from assets.resources import LakeResource
from startpoint import lake as lake_files
from startpoint.data import (
    OFFLINE_SUITE,
    DatasetError,
    SplitCaps,
    dataset_stats,
    load_offline,
)
from startpoint.schema import datasets_path


class DatasetsConfig(dg.Config):
    dataset_ids: list[str] = Field(default_factory=list, description="Suite ids to describe; empty: every installed one")
    train_cap: int | None = None
    validation_cap: int | None = None
    test_cap: int | None = None
    seed: int = 0


def _markdown(rows: list[dict]) -> str:
    from startpoint.tables import markdown_table

    return markdown_table(
        ["dataset", "task group", "source", "train", "validation", "test", "labels", "majority", "median words"],
        [(r["dataset_id"], r["task_group"], r["source"], r["n_train"], r["n_validation"], r["n_test"], r["n_labels"],
          f"{r['majority_share']:.3f}", f"{r['median_length']:.0f}") for r in rows],
        align="lllrrrrrr",
    )


@dg.asset(
    key_prefix="lake",
    name="datasets",
    group_name="offline_suite",
    kinds={"parquet"},
    description="Split statistics of the offline suite's labelled datasets, written to the lake table `datasets`.",
)
def datasets_lake(context: dg.AssetExecutionContext, config: DatasetsConfig, lake: LakeResource) -> dg.MaterializeResult:
    unknown = sorted(set(config.dataset_ids) - set(OFFLINE_SUITE))
    if unknown:
        raise DatasetError(f"unknown suite id(s) {unknown}; the suite has {sorted(OFFLINE_SUITE)}")
    wanted = config.dataset_ids or list(OFFLINE_SUITE)
    caps = SplitCaps(train=config.train_cap, validation=config.validation_cap, test=config.test_cap)
    rows, skipped = [], {}
    for dataset_id in wanted:
        missing = OFFLINE_SUITE[dataset_id].missing()
        if missing:
            context.log.warning(f"skipping {dataset_id}: {missing}")
            skipped[dataset_id] = missing
            continue
        stats = dataset_stats(load_offline(dataset_id, caps=caps, seed=config.seed))
        lake_files.write(lake.url, "datasets", datasets_path("local", dataset_id), [stats])
        context.log.info(f"{dataset_id}: {stats['n_train']}/{stats['n_validation']}/{stats['n_test']} rows, {stats['n_labels']} labels")
        rows.append(stats)
    metadata = {
        "stats": dg.MetadataValue.md(_markdown(rows)),
        "datasets_written": len(rows),
        "skipped": dg.MetadataValue.json(skipped),
    }
    return dg.MaterializeResult(metadata=metadata)
