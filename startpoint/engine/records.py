"""Lake rows the engine writes: one `finetune_runs` file per run, one `hub_models` file per local model."""

from __future__ import annotations

import datetime as dt
import json
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

from startpoint.engine.recipe import Recipe
from startpoint.engine.train import FinetuneResult
from startpoint.schema import finetune_run_id, finetune_runs_path, hub_models_path
from startpoint.settings import REPO_ROOT


def run_relpath(model_id: str, dataset_id: str, recipe: Recipe, seed: int, origin: str = "local") -> str:
    """The run's file in the lake table (startpoint.schema.finetune_runs_path)."""
    return finetune_runs_path(origin, model_id, dataset_id, recipe.recipe_hash, seed)


@lru_cache(maxsize=1)
def library_versions() -> str:
    import tokenizers
    import torch
    import transformers

    return json.dumps(
        {"python": platform.python_version(), "torch": torch.__version__,
         "transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
        sort_keys=True,
    )


@lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of this checkout (suffixed `+dirty` when files differ), else the package version."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return "startpoint " + version("startpoint")
        except PackageNotFoundError:
            return "unknown"


def run_row(model_id: str, architecture: str, recipe: Recipe, result: FinetuneResult, origin: str = "local") -> dict:
    """A `finetune_runs` row of an engine run (origin `local` for the grid, `user` for recommend --run); a failed
    run keeps its error and a NULL score."""
    ok = result.status == "ok"
    return {
        "run_id": finetune_run_id(origin, architecture, model_id, result.dataset_id, recipe.recipe_hash, result.seed),
        "model_id": model_id,
        "architecture": architecture,
        "dataset_id": result.dataset_id,
        "seed": result.seed,
        "score": result.score if ok else None,
        "metric": result.metric,
        "origin": origin,
        "recipe": recipe.to_json(),
        "recipe_hash": recipe.recipe_hash,
        "status": result.status,
        "error": None if ok else (result.error or "unknown error"),
        "library_versions": library_versions(),
        "code_version": code_version(),
        "device": result.device,
        "train_seconds": result.train_seconds,
        "examples_per_second": result.examples_per_second,
    }


def model_row(model_id: str, architecture: str, folder: Path, *, role: str, base_model: str | None,
              tags: list[str] | None = None, members: list[str] | None = None) -> dict:
    """A `hub_models` row for a pretrained or local model, read from its folder's config (`members`: the model
    ids a fused model was merged from)."""
    config = json.loads((Path(folder) / "config.json").read_text())
    n_params = None
    weights = Path(folder) / "model.safetensors"
    if weights.is_file():
        from safetensors import safe_open

        with safe_open(str(weights), framework="np") as fh:
            n_params = 0
            for name in fh.keys():
                shape = fh.get_slice(name).get_shape()
                count = 1
                for d in shape:
                    count *= d
                n_params += count
    return {
        "model_id": model_id,
        "architecture": architecture,
        "model_type": config.get("model_type"),
        "n_params": n_params,
        "last_modified": dt.datetime.fromtimestamp((Path(folder) / "config.json").stat().st_mtime, dt.timezone.utc),
        "source": "local",
        "role": role,
        "base_model": base_model,
        "n_layers": config.get("num_hidden_layers"),
        "hidden_size": config.get("hidden_size"),
        "vocab_size": config.get("vocab_size"),
        "library": "transformers",
        "tags": json.dumps(tags or []),
        "has_safetensors": weights.is_file(),
        "status": "accepted",
        "local_path": str(folder),
        "members": list(members) if members is not None else None,
    }


def model_relpath(model_id: str) -> str:
    return hub_models_path("local", model_id)


def write_pretrained_row(lake_url: str, model_id: str) -> None:
    """The `hub_models` row of a packaged pretrained model (role `pretrained`), written beside the models made from
    it so the warehouse knows every base a local run or model names."""
    from startpoint import lake
    from startpoint.zoo import PRETRAINED

    entry = PRETRAINED[model_id]
    row = model_row(model_id, entry.architecture, entry.locate(), role="pretrained", base_model=None,
                    tags=[f"package:{entry.package}"])
    lake.write(lake_url, "hub_models", model_relpath(model_id), [row])
