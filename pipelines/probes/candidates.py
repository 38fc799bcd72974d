"""Which models get probed, and where each one's folder comes from.

Candidates are the offline zoo (the packaged pretrained encoders plus every intermediate model saved under
`$STARTPOINT_HOME/models`) and the Hub catalog's accepted models. Zoo models load from disk; Hub models are
downloaded (allowed files only) on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines import lake as lake_files
from pipelines.partitions import decode_key, encode_key


@dataclass(frozen=True)
class Candidate:
    model_id: str
    architecture: str
    source: str  # local | hub
    revision: str | None = None


def zoo_models(models_dir: Path) -> list[Candidate]:
    """Packaged pretrained encoders that are installed, plus local models that have a config and a model card."""
    from pipelines.zoo import PRETRAINED, ModelDirError, architecture_of

    found = []
    for model_id, entry in PRETRAINED.items():
        try:
            entry.locate()
        except ModelDirError:
            continue
        found.append(Candidate(model_id, entry.architecture, "local"))
    if models_dir.is_dir():
        # Names starting with '.' are folders being written (the engine saves to a temp name, then renames).
        ready = (p for p in models_dir.iterdir() if not p.name.startswith(".") and (p / "config.json").is_file())
        for folder in sorted(ready):
            model_id = decode_key(folder.name)
            try:
                found.append(Candidate(model_id, architecture_of(model_id, models_dir), "local"))
            except ModelDirError:
                continue  # a folder without a model card is not a finished model
    return found


def hub_candidates(lake_url: str, architecture: str | None = None) -> list[Candidate]:
    """Accepted models of the Hub catalog in the lake (all architectures, or one)."""
    rows = lake_files.read(lake_url, "hub_models", "hub").to_pylist()
    return [
        Candidate(r["model_id"], r["architecture"], "hub", r["revision"])
        for r in rows
        if r["source"] == "hub" and r["status"] == "accepted" and (architecture is None or r["architecture"] == architecture)
    ]


def hub_row(lake_url: str, model_id: str) -> dict | None:
    rows = [r for r in lake_files.read(lake_url, "hub_models", "hub").to_pylist() if r["model_id"] == model_id]
    return rows[-1] if rows else None


def probe_relpath(model_id: str, proxy: str) -> str:
    safe_proxy = "".join(c if c.isalnum() or c in "-_." else "_" for c in proxy)
    return f"local/{encode_key(model_id)}/{safe_proxy}"


def is_probed(lake_url: str, model_id: str) -> bool:
    return bool(lake_files.list_files(lake_url, "probe_scores", f"local/{encode_key(model_id)}"))
