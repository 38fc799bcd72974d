"""The catalog's schedule and sensor; the per-architecture selection sensors are in pipelines/launch.py.

- `hub_catalog_refresh` (daily) re-lists every architecture on the Hub (one run per partition of lake/hub_models);
- `hub_new_models` (sensor) reads the catalog and the offline zoo, adds a `base_models` partition for each model
  never seen before and requests its `lake/probe_scores` run; its cursor remembers what it requested, so a
  tick with nothing new requests nothing; a model folder it cannot use (odd name, malformed startpoint.json,
  files the loader refuses) is skipped and reported in the tick's log, and never hides the other models;
- `select_<architecture>` sensors (pipelines/launch.py) rank probed models and request finetune runs for the top k
  (startpoint/probes/selection.py).
"""

from __future__ import annotations

import json

import dagster as dg

from assets.partitions import base_models_partitions
from assets.resources import HomeResource, LakeResource
from startpoint.hub.architectures import ARCHITECTURES
from startpoint.keys import encode_key

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


def new_probe_requests(
    lake_url: str, models_dir, known: set[str], seen: set[str], skipped: list | None = None
) -> tuple[list[str], list[str]]:
    """(partition keys to add, keys to probe) for candidates the cursor has not seen and the lake has no probe for.

    One bad model folder never hides the others: a zoo folder with an odd name, a malformed startpoint.json, or
    files `check_model_dir` refuses (no tokenizer, truncated weights, ...) is left out and appended to `skipped`
    (a `SkippedFolder`: folder and reason), as is a catalog id no partition key can hold. A refused folder is
    checked again on the next tick, so fixing it is enough."""
    from startpoint.probes.candidates import (
        SkippedFolder,
        hub_candidates,
        is_probed,
        scan_zoo,
    )
    from startpoint.zoo import ModelDirError, check_model_dir, resolve

    skipped = skipped if skipped is not None else []
    zoo, bad_folders = scan_zoo(models_dir)
    skipped.extend(bad_folders)
    keys = []
    for cand in [*zoo, *hub_candidates(lake_url)]:
        try:
            key = encode_key(cand.model_id)
        except ValueError as exc:
            skipped.append(SkippedFolder(cand.model_id, str(exc)))
            continue
        if key in seen or key in keys or is_probed(lake_url, cand.model_id):
            continue
        if cand.source == "local":  # a Hub model's download is checked when it is fetched
            where = cand.model_id
            try:
                where = str(resolve(cand.model_id, models_dir))
                check_model_dir(where)
            except (ModelDirError, OSError) as exc:
                skipped.append(SkippedFolder(where, str(exc)))
                continue
        keys.append(key)
    return [k for k in keys if k not in known], keys


@dg.sensor(
    name="hub_new_models",
    minimum_interval_seconds=600,
    asset_selection=dg.AssetSelection.assets(PROBE_SCORES_KEY),
    description="Adds a base_models partition for each new zoo or accepted Hub model and requests its probe run; "
    "model folders it cannot use are skipped and reported.",
)
def hub_new_models(context: dg.SensorEvaluationContext, lake: LakeResource, home: HomeResource):
    seen = set(json.loads(context.cursor)) if context.cursor else set()
    known = set(context.instance.get_dynamic_partitions(base_models_partitions.name))
    skipped: list = []
    to_add, to_probe = new_probe_requests(lake.url, home.models_dir, known, seen, skipped)
    for item in skipped:
        context.log.warning(f"skipped model folder {item}")
    if not to_probe:
        note = f"; skipped {len(skipped)}: " + " | ".join(map(str, skipped)) if skipped else ""
        return dg.SkipReason(f"no new zoo or accepted Hub model to probe{note}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=f"probe:{key}", partition_key=key, asset_selection=[PROBE_SCORES_KEY]) for key in to_probe
        ],
        dynamic_partitions_requests=[base_models_partitions.build_add_request(to_add)] if to_add else [],
        cursor=json.dumps(sorted(seen | set(to_probe))),
    )
