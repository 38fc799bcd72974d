"""Jobs: named selections of assets a user launches from the UI or `dagster job execute`."""

from __future__ import annotations

import dagster as dg

from pipelines.hub_automation import (
    hub_catalog_job,  # Hub catalog refresh, docs/hub_and_probes.md
)

# One named asset job per grid step (datasets, intermediate models, finetune runs, probe scores), executor from
# STARTPOINT_EXECUTOR; the grid and selection sensors (pipelines/sensors.py) launch them. docs/engine.md
from pipelines.launch import GRID_JOBS
from pipelines.maintenance import (
    compact_lake_job,  # lake compaction, docs/scale_out.md
)
from pipelines.recommend_job import (
    recommend_job,  # op job with run config, docs/recommend.md
)
from pipelines.recovery import (
    recovering_executor,  # kill -9 recovery and INFO on pool waits, docs/engine.md
)

# Import published results, load the warehouse, and derive every SQL model from it. The executor frees the
# `duckdb` slot of a run killed earlier and says at INFO who holds the pool while a step waits for it.
published_job = dg.define_asset_job(
    name="published",
    selection=dg.AssetSelection.groups("published", "warehouse", "analytics"),
    description="Import published finetuning results, load the warehouse and build every SQL model.",
    executor_def=recovering_executor,
)

# What people read, rebuilt from the warehouse: the static site and the model cards (group `product`).
product_job = dg.define_asset_job(
    name="product",
    selection=dg.AssetSelection.groups("product"),
    description="Build the leaderboard site and the model cards from the warehouse's SQL models.",
    executor_def=recovering_executor,
)

ALL_JOBS = [published_job, product_job, recommend_job, hub_catalog_job, compact_lake_job, *GRID_JOBS]
