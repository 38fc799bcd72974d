"""Cheap proxy scores per candidate model: linear probe and LogME on the same cached frozen features.

Partitioned by model (the shared `base_models` dynamic partitions, keys from `encode_key`); the
`hub_new_models` sensor adds partitions for new zoo and accepted Hub models and requests their probe runs.
"""


import math

import dagster as dg
from pydantic import Field

from assets.check_results import check_results
from assets.partitions import base_models_partitions
from assets.resources import HomeResource, LakeResource
from startpoint import lake as lake_files
from startpoint.hub.architectures import ARCHITECTURES
from startpoint.hub.policy import SafetyPolicy
from startpoint.keys import decode_key
from startpoint.probes.candidates import hub_row, probe_relpath
from startpoint.probes.features import FeatureSettings
from startpoint.probes.run import METHODS, ProbeCaps, default_proxy, probe_model
from startpoint.schema import probe_scores_path

PROBE_SCORES = dg.AssetKey(["lake", "probe_scores"])

# Checks run in the partition's own run, on the model's probe files only.
PROBE_CHECKS: dict[str, str] = {
    "probe_scores_finite": (
        "Every probe row of the model has a finite score, the linear probe's accuracy in [0, 100]: a NaN or "
        "infinite LogME (e.g. from degenerate features) would sort first or last in the selection and mislead it."),
    "every_method_scored": (
        "The proxy just probed has exactly one row per method (linear probe, LogME): the selection ranks by "
        "one method and compares it with the other."),
}


def probe_problems(lake_url: str, model_id: str, proxy: str) -> dict[str, list[str]]:
    """Per check of PROBE_CHECKS, the offending rows of one model's probe files, described (empty: passes)."""
    rows = lake_files.read(lake_url, "probe_scores", probe_scores_path("local", model_id)).to_pylist()
    bad = [f"{r['proxy_dataset']} {r['method']}: {r['score']}" for r in rows
           if r["score"] is None or not math.isfinite(r["score"])
           or (r["method"] == "linear_probe" and not 0 <= r["score"] <= 100)]
    methods = [r["method"] for r in rows if r["proxy_dataset"] == proxy]
    missing = [f"{proxy} {m}: {methods.count(m)} rows" for m in sorted(set(METHODS) | set(methods))
               if methods.count(m) != 1]
    return {"probe_scores_finite": bad, "every_method_scored": missing}


class ProbeConfig(dg.Config):
    proxy_dataset: str | None = Field(None, description="Dataset id; default MNLI online, fine_foods offline")
    train_cap: int = Field(256, description="Proxy examples encoded (LogME on them, the linear head by 3-fold CV)")
    max_length: int = Field(16, description="Tokens read from each text (a text pair gets twice as many)")
    allow_pickle: list[str] = Field(default_factory=list, description="Hub model ids whose pickle weights you accept")


def _model_dir(model_id: str, home: HomeResource, lake_url: str, policy: SafetyPolicy):
    """(architecture, folder): a zoo model from disk, or an accepted Hub model downloaded now."""
    from startpoint.zoo import PRETRAINED, architecture_of, local_model_dir, resolve

    if model_id in PRETRAINED or local_model_dir(model_id, home.models_dir).is_dir():
        return architecture_of(model_id, home.models_dir), resolve(model_id, home.models_dir)
    row = hub_row(lake_url, model_id)
    if row is None:
        raise dg.Failure(
            f"model {model_id!r} is neither in the offline zoo ({home.models_dir}) nor in the Hub catalog; "
            "materialize lake/hub_models for its architecture first"
        )
    if row["status"] != "accepted" and model_id not in policy.allow_pickle:
        raise dg.Failure(f"model {model_id!r} is {row['status']} in the Hub catalog: {row['refusal_reason']}")
    from startpoint.hub.download import fetch_model
    from startpoint.hub.runtime import hub_access

    with hub_access():
        folder = fetch_model(
            model_id, ARCHITECTURES[row["architecture"]], policy, revision=row["revision"], cache_dir=home.cache_dir / "hub"
        )
    return row["architecture"], folder


@dg.asset(
    key_prefix="lake",
    name="probe_scores",
    group_name="probes",
    kinds={"parquet", "pytorch"},
    partitions_def=base_models_partitions,
    pool="probe",
    description="Linear-probe accuracy and LogME of one model's frozen features on the proxy dataset.",
    check_specs=[dg.AssetCheckSpec(name, asset=PROBE_SCORES, description=d) for name, d in PROBE_CHECKS.items()],
)
def probe_scores_lake(
    context: dg.AssetExecutionContext, config: ProbeConfig, lake: LakeResource, home: HomeResource
) -> dg.MaterializeResult:
    model_id = decode_key(context.partition_key)
    env = SafetyPolicy.from_env()
    policy = SafetyPolicy(env.allow_pickle | frozenset(config.allow_pickle), env.max_download_bytes)
    architecture, folder = _model_dir(model_id, home, lake.url, policy)
    proxy = config.proxy_dataset or default_proxy()
    rows = probe_model(
        model_id,
        architecture,
        folder,
        cache_dir=home.cache_dir,
        proxy=proxy,
        caps=ProbeCaps(train=config.train_cap),
        settings=FeatureSettings(max_length=config.max_length),
        policy=policy,
    )
    path = lake_files.write(lake.url, "probe_scores", probe_relpath(model_id, proxy), rows)
    scores = {r["method"]: r["score"] for r in rows}
    context.log.info(f"{model_id} on {proxy}: {scores}")
    return dg.MaterializeResult(
        metadata={
            "model_id": model_id,
            "architecture": architecture,
            "proxy_dataset": proxy,
            "linear_probe_accuracy": scores["linear_probe"],
            "logme": scores["logme"],
            "seconds": rows[0]["seconds"],
            "features_hash": rows[0]["features_hash"],
            "path": path,
        },
        check_results=check_results(PROBE_SCORES, probe_problems(lake.url, model_id, proxy)),
    )
