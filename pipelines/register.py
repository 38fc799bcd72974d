"""`startpoint register`: a fresh Dagster instance learns what the lake already holds, without retraining.

The lake is the record of every run; the Dagster instance (`$DAGSTER_HOME`) only remembers materializations. On
a new `DAGSTER_HOME` (or after deleting it) this adds the dynamic partitions the lake's local files belong to and
reports one runless materialization per asset partition whose files exist and that the instance has not seen,
marked `registered_from_lake` with the rows found. Assets it covers: `lake/published_results`, `lake/datasets`,
`lake/hub_models` (per architecture), `lake/intermediate_models`, `lake/fused_models`, `lake/finetune_runs`,
`lake/probe_scores`. Running it
twice reports nothing new.

An architecture whose Hub catalog was never listed (no `hub_models/hub/<architecture>.parquet`, e.g. a lake made
by the `published` job or the grid sensors, which do not list the catalog) gets its catalog recorded as it stands,
without contacting the Hub: a `hub_catalog` run with `contact_hub: false` writes its empty catalog file, as
`startpoint run-grid` does offline. So nothing upstream of the `published` job is left unmaterialized, and the UI
does not warn that `lake/hub_models` is missing when `published` is launched.
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from startpoint import lake
from startpoint.hub.architectures import ARCHITECTURES
from startpoint.keys import encode_key, source_key

_info = logging.getLogger(__name__).info  # the CLI passes print for its own output

PUBLISHED = dg.AssetKey(["lake", "published_results"])
DATASETS = dg.AssetKey(["lake", "datasets"])
HUB_MODELS = dg.AssetKey(["lake", "hub_models"])
INTERMEDIATE = dg.AssetKey(["lake", "intermediate_models"])
FUSED = dg.AssetKey(["lake", "fused_models"])
FINETUNE = dg.AssetKey(["lake", "finetune_runs"])
PROBES = dg.AssetKey(["lake", "probe_scores"])
# The key of `register`'s report that counts the Hub catalogs it recorded as they stand (none listed before).
CATALOG_RECORDED = "lake/hub_models (catalog recorded as it stands)"


@dataclass
class Found:
    """What the lake holds, as asset partitions (None: unpartitioned) with their rows and a short summary."""

    partitions: dict[dg.AssetKey, dict[str | dg.MultiPartitionKey | None, dict]] = field(
        default_factory=lambda: defaultdict(dict))
    dynamic: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def _rows(lake_url: str, table: str, prefix: str) -> list[dict]:
    if not lake.list_files(lake_url, table, prefix):
        return []
    return lake.read(lake_url, table, prefix).to_pylist()


def scan(lake_url: str) -> Found:
    """Read the lake's local, hub and published files and name the asset partitions they came from."""
    found = Found()
    published = sum(len(_rows(lake_url, t, "published")) for t in ("finetune_runs", "hub_models"))
    if published:
        found.partitions[PUBLISHED][None] = {"rows": published}

    datasets = _rows(lake_url, "datasets", "local")
    if datasets:
        found.partitions[DATASETS][None] = {"rows": len(datasets),
                                            "datasets": ", ".join(sorted(r["dataset_id"] for r in datasets))}

    for path in lake.list_files(lake_url, "hub_models", "hub"):  # one file per architecture, rows or none
        arch = posixpath.basename(path).removesuffix(".parquet")
        if arch in ARCHITECTURES:
            table = lake.read_file(lake_url, "hub_models", path)
            found.partitions[HUB_MODELS][arch] = {"rows": table.num_rows if table is not None else 0}

    for row in _rows(lake_url, "hub_models", "local"):
        if row.get("role") not in ("intermediate", "fused") or not row.get("base_model"):
            continue
        tags = json.loads(row.get("tags") or "[]")
        if row["role"] == "intermediate":
            for source in [t.split(":", 1)[1] for t in tags if t.startswith("source:")]:
                key = source_key(row["base_model"], source)
                found.dynamic["sources"].add(key)
                found.partitions[INTERMEDIATE][key] = {"rows": 1, "model_id": row["model_id"]}
        else:  # fused: partition (base, recipe), the recipe in its `fusion:<recipe>` tag
            for recipe in [t.split(":", 1)[1] for t in tags if t.startswith("fusion:")]:
                found.dynamic["pretrained_bases"].add(encode_key(row["base_model"]))
                key = dg.MultiPartitionKey({"base": encode_key(row["base_model"]), "recipe": recipe})
                found.partitions[FUSED][key] = {"rows": 1, "model_id": row["model_id"]}

    runs: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in _rows(lake_url, "finetune_runs", "local"):
        runs[(row["model_id"], row["dataset_id"])].append(row)
    for (model, target), rows in runs.items():
        found.dynamic["base_models"].add(encode_key(model))
        found.dynamic["targets"].add(encode_key(target))
        key = dg.MultiPartitionKey({"model": encode_key(model), "target": encode_key(target)})
        ok = [r["score"] for r in rows if r.get("status") == "ok" and r.get("score") is not None]
        found.partitions[FINETUNE][key] = {
            "rows": len(rows), "seeds": ", ".join(str(s) for s in sorted({r["seed"] for r in rows})),
            "runs_ok": len(ok), **({"mean_score": round(sum(ok) / len(ok), 4)} if ok else {}),
        }

    for row in _rows(lake_url, "probe_scores", "local"):
        key = encode_key(row["model_id"])
        found.dynamic["base_models"].add(key)
        entry = found.partitions[PROBES].setdefault(key, {"rows": 0})
        entry["rows"] += 1
    return found


def _seen(instance: dg.DagsterInstance, asset: dg.AssetKey) -> set:
    if asset in (PUBLISHED, DATASETS):
        return {None} if instance.get_latest_materialization_event(asset) is not None else set()
    return set(instance.get_materialized_partitions(asset))


def register(instance: dg.DagsterInstance, lake_url: str, log: Callable[[str], None] = _info) -> dict[str, int]:
    """Add the lake's dynamic partitions and report the materializations the instance lacks; returns the number
    reported per asset (0 where it already knew them all)."""
    found = scan(lake_url)
    for name, keys in found.dynamic.items():
        new = sorted(set(keys) - set(instance.get_dynamic_partitions(name)))
        if new:
            instance.add_dynamic_partitions(name, new)
            log(f"partitions {name}: +{len(new)}")
    reported: dict[str, int] = {}
    for asset, parts in found.partitions.items():
        seen = _seen(instance, asset)
        count = 0
        for partition, summary in parts.items():
            if partition in seen or (partition is not None and str(partition) in {str(s) for s in seen}):
                continue
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key=asset,
                partition=str(partition) if partition is not None else None,
                description="Registered from the lake by `startpoint register` (no step ran).",
                metadata={"registered_from_lake": True, "lake": lake_url, **summary},
            ))
            count += 1
        reported[asset.to_user_string()] = count
        log(f"{asset.to_user_string()}: {count} registered, {len(parts) - count} already known")
    unlisted = sorted(set(ARCHITECTURES) - set(found.partitions.get(HUB_MODELS, {})))
    if unlisted:
        from pipelines.launch import record_hub_catalog

        counts = record_hub_catalog("register", instance, log=log, architectures=unlisted, contact_hub=False,
                                    lake_url=lake_url)
        reported[CATALOG_RECORDED] = counts["ok"]
    return reported
