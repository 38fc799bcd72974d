"""The Hub catalog per architecture: every finetune the Hub lists, accepted or refused with its reason.

Partitioned by architecture; each materialization lists the Hub again, re-checks every model's config and files
against the safe-loading policy, and rewrites `<lake>/hub_models/hub/<architecture>.parquet`, keeping models the
Hub no longer lists as status 'gone'. The refused models and their reasons are in the materialization metadata.
"""


import dagster as dg
from pydantic import Field

from assets.resources import HomeResource, LakeResource
from startpoint import lake as lake_files
from startpoint.hub.architectures import ARCHITECTURES
from startpoint.hub.catalog import build_catalog
from startpoint.hub.policy import DEFAULT_MAX_DOWNLOAD_BYTES, SafetyPolicy
from startpoint.hub.runtime import hub_access, hub_offline

hub_architectures_partitions = dg.StaticPartitionsDefinition(sorted(ARCHITECTURES))


class HubCatalogConfig(dg.Config):
    allow_pickle: list[str] = Field(
        default_factory=list, description="Model ids whose pickle (.bin) weights you accept; added to STARTPOINT_ALLOW_PICKLE"
    )
    max_download_mb: float = Field(DEFAULT_MAX_DOWNLOAD_BYTES / 1024**2, description="Refuse models whose weights exceed this")
    filter_by: str = Field("base_model", description="'base_model' (base_model:<id> tag) or 'model_type' (model-type tag)")
    limit: int | None = Field(None, description="Most models to list (None: all)")
    recording: str | None = Field(None, description="Replay a recorded catalog folder instead of the live Hub")
    offline: str = Field(
        "error",
        description="With the Hub offline (HF_HUB_OFFLINE) and no recording: 'error', or 'keep' the previous catalog "
        "as it is (none yet: an empty one), said so in the metadata; `make run` keeps, offline by design",
    )
    contact_hub: bool = Field(
        True,
        description="False: do not list the Hub at all and keep the catalog as it stands (none yet: an empty one); "
        "`startpoint register` records an architecture whose catalog was never listed this way",
    )


def catalog_policy(config: HubCatalogConfig) -> SafetyPolicy:
    env = SafetyPolicy.from_env()
    return SafetyPolicy(
        allow_pickle=env.allow_pickle | frozenset(config.allow_pickle),
        max_download_bytes=int(config.max_download_mb * 1024**2),
    )


def _refusals_markdown(rows: list[dict]) -> str:
    from startpoint.tables import markdown_table

    refused = [(r["model_id"], r["status"], r["refusal_reason"] or "") for r in rows if r["status"] != "accepted"]
    return markdown_table(["model", "status", "reason"], refused) if refused else "every listed model was accepted"


@dg.asset(
    key_prefix="lake",
    name="hub_models",
    group_name="hub",
    kinds={"parquet", "huggingface"},
    partitions_def=hub_architectures_partitions,
    description="Hub finetunes of each architecture with downloads, likes, license, files and the safe-loading verdict.",
)
def hub_models_lake(
    context: dg.AssetExecutionContext, config: HubCatalogConfig, lake: LakeResource, home: HomeResource
) -> dg.MaterializeResult:
    arch = ARCHITECTURES[context.partition_key]
    relpath = f"hub/{arch.name}"
    previous = lake_files.read(lake.url, "hub_models", relpath + ".parquet").to_pylist() if lake_files.exists(
        lake.url, "hub_models", relpath
    ) else []
    if config.offline not in ("error", "keep"):
        raise dg.Failure(f"offline must be 'error' or 'keep', got {config.offline!r}")
    offline = config.offline == "keep" and hub_offline(config.recording)
    if offline or not config.contact_hub:
        # Nothing is fetched and nothing stored changes: the previous catalog stays (rows, ingestion times).
        path = relpath if previous else lake_files.write(lake.url, "hub_models", relpath, [])
        why = "not listed: the Hub was not contacted (contact_hub off)" if not config.contact_hub else \
            "offline: the Hub was not contacted (HF_HUB_OFFLINE)"
        context.log.info(f"{arch.name}: {why}; kept the previous catalog ({len(previous)} rows)")
        return dg.MaterializeResult(metadata={
            "dagster/row_count": len(previous),
            "source": f"{why}; kept the previous catalog, {len(previous)} rows",
            "path": path,
        })
    with hub_access(config.recording) as where:
        rows = build_catalog(
            arch,
            catalog_policy(config),
            previous=previous,
            cache_dir=home.cache_dir / "hub",
            by=config.filter_by,
            limit=config.limit,
        )
    path = lake_files.write(lake.url, "hub_models", relpath, rows)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("accepted", "refused", "gone")}
    context.log.info(f"{arch.name} from {where}: {counts}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            **{f"n_{k}": v for k, v in counts.items()},
            "source": where,
            "path": path,
            "refused": dg.MetadataValue.md(_refusals_markdown(rows)),
        }
    )
