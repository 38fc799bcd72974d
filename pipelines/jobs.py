"""Jobs: named selections of assets a user launches from the UI or `dagster job execute`."""

from __future__ import annotations

import dagster as dg

# Import published results, load the warehouse, and derive every SQL model from it.
published_job = dg.define_asset_job(
    name="published",
    selection=dg.AssetSelection.groups("published", "warehouse", "analytics"),
    description="Import published finetuning results, load the warehouse and build every SQL model.",
)

from pipelines.recommend.job import recommend_job  # noqa: E402  (op job with run config, see docs/recommend.md)

ALL_JOBS = [published_job, recommend_job]

from pipelines.hub.automation import hub_catalog_job  # noqa: E402

ALL_JOBS.append(hub_catalog_job)

from pipelines.probes.selection_job import SELECTION_JOBS  # noqa: E402

ALL_JOBS.extend(SELECTION_JOBS)

from pipelines.engine.grid import default_grid_job, full_grid_job  # noqa: E402  (finetuning grids, docs/engine.md)

ALL_JOBS.extend([default_grid_job, full_grid_job])
