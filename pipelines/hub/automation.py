"""The catalog's schedule and sensor, and the per-architecture selection jobs.

- `hub_catalog_refresh` (daily) re-lists every architecture on the Hub (one run per partition of lake/hub_models);
- `hub_new_models` (sensor) reads the catalog and the offline zoo, adds a `base_models` partition for each model
  never seen before and requests its `lake/probe_scores` run; its cursor remembers what it requested, so a
  tick with nothing new requests nothing;
- `select_<architecture>` jobs rank probed models and request finetune runs for the top k (pipelines/probes/selection.py).
"""

from __future__ import annotations

import json

import dagster as dg

from pipelines.hub.architectures import ARCHITECTURES
from pipelines.partitions import base_models_partitions, encode_key
from pipelines.resources import HomeResource, LakeResource

HUB_MODELS_KEY = dg.AssetKey(["lake", "hub_models"])
PROBE_SCORES_KEY = dg.AssetKey(["lake", "probe_scores"])

hub_catalog_job = dg.define_asset_job(
    name="hub_catalog",
    selection=dg.AssetSelection.assets(HUB_MODELS_KEY),
    description="List one architecture's finetunes on the Hub and check each against the safe-loading policy.",
)


@dg.schedule(name="hub_catalog_refresh", cron_schedule="0 4 * * *", job=hub_catalog_job, execution_timezone="UTC")
def hub_catalog_refresh(context: dg.ScheduleEvaluationContext):
    """Re-list every architecture once a day; new models then reach the probe sensor."""
    for arch in sorted(ARCHITECTURES):
        yield dg.RunRequest(run_key=f"{arch}:{context.scheduled_execution_time:%Y-%m-%d}", partition_key=arch)


def new_probe_requests(lake_url: str, models_dir, known: set[str], seen: set[str]) -> tuple[list[str], list[str]]:
    """(partition keys to add, keys to probe) for candidates the cursor has not seen and the lake has no probe for."""
    from pipelines.probes.candidates import hub_candidates, is_probed, zoo_models

    keys = []
    for cand in [*zoo_models(models_dir), *hub_candidates(lake_url)]:
        key = encode_key(cand.model_id)
        if key in seen or key in keys or is_probed(lake_url, cand.model_id):
            continue
        keys.append(key)
    return [k for k in keys if k not in known], keys


@dg.sensor(
    name="hub_new_models",
    minimum_interval_seconds=600,
    asset_selection=dg.AssetSelection.assets(PROBE_SCORES_KEY),
    description="Adds a base_models partition for each new zoo or accepted Hub model and requests its probe run.",
)
def hub_new_models(context: dg.SensorEvaluationContext, lake: LakeResource, home: HomeResource):
    seen = set(json.loads(context.cursor)) if context.cursor else set()
    known = set(context.instance.get_dynamic_partitions(base_models_partitions.name))
    to_add, to_probe = new_probe_requests(lake.url, home.models_dir, known, seen)
    if not to_probe:
        return dg.SkipReason("no new zoo or accepted Hub model to probe")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=f"probe:{key}", partition_key=key, asset_selection=[PROBE_SCORES_KEY]) for key in to_probe
        ],
        dynamic_partitions_requests=[base_models_partitions.build_add_request(to_add)] if to_add else [],
        cursor=json.dumps(sorted(seen | set(to_probe))),
    )
