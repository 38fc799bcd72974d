"""List an architecture's finetuned models on the Hub and turn each into a `hub_models` row with a verdict.

One `HfApi.list_models` query per architecture (filter `base_model:<pretrained id>`, or the model-type tag),
expanded with the fields the catalog stores; then each model's `config.json` is fetched (cached by revision) so
the architecture check sees hidden size, depth and vocabulary, not just the model type.
Models listed before but missing now are kept with status 'gone' rather than dropped.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from startpoint.hub.architectures import ArchitectureSpec, warehouse_model_id
from startpoint.hub.policy import ModelFacts, SafetyPolicy, assess, weight_files

EXPAND = [
    "author",
    "cardData",
    "config",
    "downloads",
    "lastModified",
    "library_name",
    "likes",
    "pipeline_tag",
    "safetensors",
    "sha",
    "siblings",
    "tags",
    "usedStorage",
]
_DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2}


def hub_filter(arch: ArchitectureSpec, by: str = "base_model") -> list[str]:
    if by == "base_model":
        return [f"base_model:{arch.hub_id}"]
    if by == "model_type":
        return [arch.model_type]
    raise ValueError(f"unknown catalog filter {by!r}: use 'base_model' or 'model_type'")


def list_hub_models(arch: ArchitectureSpec, *, by: str = "base_model", limit: int | None = None, api=None) -> list:
    """Every model the Hub lists for the architecture (all pages), pretrained model itself excluded."""
    from huggingface_hub import HfApi

    api = api or HfApi()
    infos = api.list_models(filter=hub_filter(arch, by), expand=EXPAND, limit=limit, sort="downloads")
    return [i for i in infos if i.id not in arch.base_model_ids]


def weights_bytes(info) -> int | None:
    """Bytes of the weights we would download: from the safetensors header counts, else the repo's storage."""
    if info.safetensors and info.safetensors.parameters:
        return sum(n * _DTYPE_BYTES.get(dtype, 1) for dtype, n in info.safetensors.parameters.items())
    return info.used_storage


def fetch_config(model_id: str, revision: str | None, cache_dir: str | Path | None) -> dict | None:
    """The repo's config.json, or None when it has none; cached per revision by hf_hub_download."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        path = hf_hub_download(model_id, "config.json", revision=revision, cache_dir=cache_dir)
    except EntryNotFoundError:
        return None
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"model {model_id!r}: config.json at revision {revision} is not valid JSON ({exc})") from exc


def _license(info) -> str | None:
    card = info.card_data
    if card is not None and getattr(card, "license", None):
        lic = card.license
        return ",".join(lic) if isinstance(lic, list) else str(lic)
    for tag in info.tags or []:
        if tag.startswith("license:"):
            return tag.split(":", 1)[1]
    return None


def model_row(info, arch: ArchitectureSpec, policy: SafetyPolicy, cache_dir: str | Path | None) -> dict[str, Any]:
    files = tuple(s.rfilename for s in info.siblings or [])
    config = fetch_config(info.id, info.sha, cache_dir) if "config.json" in files else None
    facts = ModelFacts(info.id, files, config, tuple(info.tags or []), weights_bytes(info))
    decision = assess(facts, arch, policy)
    config = config or {}
    return {
        "model_id": info.id,
        "architecture": arch.name,
        "model_type": config.get("model_type") or (info.config or {}).get("model_type"),
        "n_params": info.safetensors.total if info.safetensors else None,
        "last_modified": info.last_modified,
        "source": "hub",
        "role": "intermediate",
        "base_model": warehouse_model_id(arch.hub_id),  # the Hub id stays in `tags` (base_model:<hub_id>)
        "n_layers": config.get("num_hidden_layers"),
        "hidden_size": config.get("hidden_size"),
        "vocab_size": config.get("vocab_size"),
        "downloads": info.downloads,
        "likes": info.likes,
        "license": _license(info),
        "library": info.library_name,
        "pipeline_tag": info.pipeline_tag,
        "tags": json.dumps(list(info.tags or [])),
        "has_safetensors": bool(weight_files(files)["safetensors"]),
        "status": decision.status,
        "refusal_reason": decision.refusal_reason,
        "download_bytes": facts.download_bytes,
        "revision": info.sha,
    }


def mark_gone(rows: list[dict[str, Any]], previous: Iterable[Mapping[str, Any]], now: dt.datetime) -> list[dict[str, Any]]:
    """Keep models the previous catalog had but the Hub no longer lists, with status 'gone'."""
    seen = {r["model_id"] for r in rows}
    out = list(rows)
    for old in previous:
        if old["model_id"] in seen or old.get("source") != "hub":
            continue
        gone = {k: v for k, v in old.items() if k != "ingested_at"}
        if gone.get("base_model"):  # a catalog written before the warehouse had one id per pretrained model
            gone["base_model"] = warehouse_model_id(gone["base_model"])
        if old.get("status") != "gone":
            gone["status"] = "gone"
            gone["refusal_reason"] = f"no longer listed on the Hub since {now:%Y-%m-%d %H:%M} UTC (deleted, renamed or private)"
        out.append(gone)
    return out


def build_catalog(
    arch: ArchitectureSpec,
    policy: SafetyPolicy,
    *,
    previous: Iterable[Mapping[str, Any]] = (),
    cache_dir: str | Path | None = None,
    by: str = "base_model",
    limit: int | None = None,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    now = now or dt.datetime.now(dt.timezone.utc)
    rows = [model_row(info, arch, policy, cache_dir) for info in list_hub_models(arch, by=by, limit=limit)]
    return mark_gone(rows, previous, now)
