"""What each column of the warehouse's base tables means, kept beside their schemas (`schema.py`).

The Dagster UI shows these in each table's Columns panel (`assets/warehouse.py` turns them into column-schema
metadata); a column added to a schema without a line here fails `tests/test_definitions.py`.
"""

from __future__ import annotations

from startpoint.schema import TABLES

INGESTED_AT = "When the row was written to the lake (UTC); the newest row per key wins at load."

COLUMN_DOCS: dict[str, dict[str, str]] = {
    "hub_models": {
        "model_id": "Model id: a Hub repo id, or the local name of an intermediate or fused model.",
        "architecture": "Pretrained architecture the model was finetuned from (the leaderboard it belongs to).",
        "model_type": "Transformers `model_type` from the model's config.",
        "n_params": "Number of parameters.",
        "last_modified": "Last change of the Hub repo (Hub catalog rows).",
        "source": "Where the row comes from: published, local or hub.",
        "role": "pretrained (the baseline), intermediate (a candidate start) or fused (merged from members).",
        "base_model": "The model this one was finetuned from; it has its own row.",
        "n_layers": "Transformer layers, from the config.",
        "hidden_size": "Hidden size, from the config.",
        "vocab_size": "Vocabulary size, from the config.",
        "downloads": "Hub downloads at catalog time.",
        "likes": "Hub likes at catalog time.",
        "license": "License declared on the Hub.",
        "library": "Library declared on the Hub (e.g. transformers).",
        "pipeline_tag": "Hub pipeline tag (e.g. text-classification).",
        "tags": "Hub tags, as a JSON list.",
        "has_safetensors": "Whether the repo ships safetensors weights (only those are loaded).",
        "status": "accepted, refused (see refusal_reason) or gone (no longer listed by the Hub).",
        "refusal_reason": "Why the safe-loading policy refused the model; NULL when accepted.",
        "local_path": "Folder of a model made on this machine.",
        "download_bytes": "Bytes of weights a load would fetch (Hub catalog).",
        "revision": "Hub commit the catalog checked.",
        "members": "A fused model's member model ids; NULL for other roles.",
        "ingested_at": INGESTED_AT,
    },
    "datasets": {
        "dataset_id": "Dataset id (target or source set).",
        "metric": "Metric its runs report: accuracy or spearman (in percent).",
        "task_group": "Task family of the offline suite; NULL for published targets and user sets.",
        "source": "Where the dataset comes from (package, published results, user file).",
        "n_train": "Training examples.",
        "n_validation": "Validation examples.",
        "n_test": "Test examples.",
        "n_labels": "Number of distinct labels.",
        "majority_share": "Share of the most frequent label in the training split (the gains' collapse rule reads it).",
        "median_length": "Median text length in words.",
        "ingested_at": INGESTED_AT,
    },
    "finetune_runs": {
        "run_id": "Run id: model, target, recipe and seed, hashed into one key.",
        "model_id": "Base model that was finetuned.",
        "architecture": "Architecture of the base model.",
        "dataset_id": "Target dataset.",
        "seed": "Random seed of the run.",
        "score": "Test score in percent; NULL when the run failed.",
        "metric": "Metric of the score (accuracy or spearman).",
        "origin": "published, local (the grid) or user (startpoint recommend --run).",
        "recipe": "JSON of the training recipe, or a name for published runs.",
        "recipe_hash": "Hash of the recipe (part of the run id).",
        "status": "ok or failed.",
        "error": "The failure in one line; NULL for ok runs.",
        "library_versions": "Versions of torch and transformers the run used.",
        "code_version": "Code version of the finetuning asset.",
        "device": "Device the run trained on (cpu, cuda).",
        "train_seconds": "Training time in seconds.",
        "examples_per_second": "Training throughput.",
        "source_file": "Published file the row was read from.",
        "source_line": "Line of that file.",
        "ingested_at": INGESTED_AT,
    },
    "probe_scores": {
        "model_id": "Probed model.",
        "architecture": "Architecture of the probed model.",
        "proxy_dataset": "Dataset the probe ran on.",
        "method": "linear_probe or logme.",
        "score": "Probe score (higher is better).",
        "seconds": "Time the probe took.",
        "features_hash": "Hash of the cached features the probe read.",
        "origin": "published or local.",
        "ingested_at": INGESTED_AT,
    },
    "rejected_rows": {
        "file": "Input file the row or cell came from.",
        "line": "Line in that file.",
        "column": "Column of the rejected cell; NULL when the whole row was rejected.",
        "value": "The rejected value as read.",
        "reason": "Why it was rejected, with the fix.",
        "origin": "Which import rejected it.",
        "ingested_at": INGESTED_AT,
    },
}


def column_docs(table: str) -> list[tuple[str, str, str]]:
    """(name, type, description) of every column of a base table, in schema order."""
    docs = COLUMN_DOCS.get(table, {})
    return [(f.name, str(f.type), docs.get(f.name, "")) for f in TABLES[table].schema]
