"""Which models get probed, and where each one's folder comes from.

Candidates are the offline zoo (the packaged pretrained encoders plus every intermediate model saved under
`$STARTPOINT_HOME/models`) and the Hub catalog's accepted models. Zoo models load from disk; Hub models are
downloaded (allowed files only) on first use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from startpoint import lake as lake_files
from startpoint.keys import decode_key, encode_key
from startpoint.schema import probe_scores_path

# What a partition key may not hold (Dagster refuses these in any partition key), and whitespace, which no Hub or
# local model id has.
_ODD_NAME = re.compile(r"\.\.\.|[\s\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Candidate:
    model_id: str
    architecture: str
    source: str  # local | hub
    revision: str | None = None


@dataclass(frozen=True)
class SkippedFolder:
    """A folder under the models folder that is not a usable model, and why (the sensor reports these)."""

    folder: str
    reason: str

    def __str__(self) -> str:
        return f"{self.folder}: {self.reason}"


def folder_model_id(name: str) -> str:
    """The model id of a folder name under `$STARTPOINT_HOME/models`; ValueError for a name no model id encodes to."""
    if not name or _ODD_NAME.search(name):
        raise ValueError(f"folder name {name!r} holds whitespace, a control character or '...', which no model id has")
    model_id = decode_key(name)
    if any(not part for part in model_id.split("/")):
        raise ValueError(f"folder name {name!r} decodes to {model_id!r}, which has an empty part between '/'")
    if encode_key(model_id) != name:  # encode_key raises ValueError for , | [ ]
        raise ValueError(f"folder name {name!r} is not the encoding of a model id (org--name)")
    return model_id


def scan_zoo(models_dir: Path) -> tuple[list[Candidate], list[SkippedFolder]]:
    """(candidates, skipped folders): the packaged pretrained encoders that are installed, plus the local models
    that have a config and a model card naming their architecture. A folder with an odd name, no config.json, or a
    missing or malformed startpoint.json is skipped with its reason; it never hides the other models."""
    from startpoint.zoo import PRETRAINED, ModelDirError, architecture_of

    found, skipped = [], []
    for model_id, entry in PRETRAINED.items():
        try:
            entry.locate()
        except ModelDirError:
            continue
        found.append(Candidate(model_id, entry.architecture, "local"))
    models_dir = Path(models_dir)
    try:
        # Names starting with '.' are folders being written (the engine saves to a temp name, then renames).
        entries = sorted(p for p in models_dir.iterdir() if not p.name.startswith(".")) if models_dir.is_dir() else []
    except OSError as exc:
        return found, [SkippedFolder(str(models_dir), f"cannot be listed: {exc}")]
    for folder in entries:
        try:
            if not folder.is_dir():
                continue  # a stray file is not a model folder
            model_id = folder_model_id(folder.name)
            if model_id in PRETRAINED:
                continue  # a packaged encoder rebuilt into the models folder (MiniLM-L3): listed above
            if not (folder / "config.json").is_file():
                raise ValueError("has no config.json: not a model folder, or an unfinished copy")
            found.append(Candidate(model_id, architecture_of(model_id, models_dir), "local"))
        except (ModelDirError, ValueError, OSError) as exc:
            skipped.append(SkippedFolder(str(folder), str(exc)))
    return found, skipped


def zoo_models(models_dir: Path) -> list[Candidate]:
    """Packaged pretrained encoders that are installed, plus local models that have a config and a model card."""
    return scan_zoo(models_dir)[0]


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
    return probe_scores_path("local", model_id, proxy)


def is_probed(lake_url: str, model_id: str) -> bool:
    return lake_files.exists_under(lake_url, "probe_scores", probe_scores_path("local", model_id))


def install_hub_candidate(model_id: str, lake_url: str, models_dir: Path, cache_dir: Path) -> Path | None:
    """Link an accepted Hub model of the catalog into the models folder, where the engine looks (downloading its
    allowed files first); None when the model is packaged, already there, or not in the catalog. A refused model
    raises ValueError with the catalog's reason."""
    from startpoint.hub.architectures import ARCHITECTURES
    from startpoint.hub.download import install_for_engine
    from startpoint.hub.policy import SafetyPolicy
    from startpoint.hub.runtime import hub_access
    from startpoint.zoo import PRETRAINED, local_model_dir

    if model_id in PRETRAINED or local_model_dir(model_id, models_dir).is_dir():
        return None
    row = hub_row(lake_url, model_id)
    if row is None:
        return None
    policy = SafetyPolicy.from_env()
    if row["status"] != "accepted" and model_id not in policy.allow_pickle:
        raise ValueError(f"model {model_id!r} is {row['status']} in the Hub catalog: {row['refusal_reason']}")
    with hub_access():
        return install_for_engine(model_id, ARCHITECTURES[row["architecture"]], policy, revision=row["revision"],
                                  cache_dir=Path(cache_dir) / "hub", models_dir=models_dir)
