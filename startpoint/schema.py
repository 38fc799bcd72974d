"""The warehouse's base tables: one canonical column list per table.

Writers put Parquet files under ``<lake>/<table>/...`` with any subset of these columns; the loader
(:mod:`startpoint.warehouse.load`) casts every file to the schema below, fills absent columns with NULL and
keeps one row per key (the most recently ingested). Adding a column means adding it here, nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from startpoint.keys import encode_key  # ids become keys the way partitions encode them


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    description: str


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    # Every table carries the time its row was written, used to keep the newest row per key.
    return pa.schema([*fields, ("ingested_at", pa.timestamp("us", tz="UTC"))])


HUB_MODELS = TableSpec(
    name="hub_models",
    key=("architecture", "model_id"),
    description="Candidate base models per architecture: the pretrained model, published and local intermediates, "
    "Hub catalog entries, with the reason a model was refused where it was.",
    schema=_schema(
        ("model_id", pa.string()),
        ("architecture", pa.string()),
        ("model_type", pa.string()),
        ("n_params", pa.int64()),
        ("last_modified", pa.timestamp("us", tz="UTC")),
        ("source", pa.string()),  # published | local | hub
        ("role", pa.string()),  # pretrained | intermediate | fused
        ("base_model", pa.string()),
        ("n_layers", pa.int64()),
        ("hidden_size", pa.int64()),
        ("vocab_size", pa.int64()),
        ("downloads", pa.int64()),
        ("likes", pa.int64()),
        ("license", pa.string()),
        ("library", pa.string()),
        ("pipeline_tag", pa.string()),
        ("tags", pa.string()),  # JSON list
        ("has_safetensors", pa.bool_()),
        ("status", pa.string()),  # accepted | refused | gone
        ("refusal_reason", pa.string()),
        ("local_path", pa.string()),
        ("download_bytes", pa.int64()),  # weights a load would fetch (hub catalog)
        ("revision", pa.string()),  # Hub commit the catalog checked
        ("members", pa.list_(pa.string())),  # a fused model's member model ids (NULL for other roles)
    ),
)

DATASETS = TableSpec(
    name="datasets",
    key=("dataset_id",),
    description="Target and source datasets with their metric, task group and split statistics.",
    schema=_schema(
        ("dataset_id", pa.string()),
        ("metric", pa.string()),  # accuracy | spearman
        ("task_group", pa.string()),
        ("source", pa.string()),
        ("n_train", pa.int64()),
        ("n_validation", pa.int64()),
        ("n_test", pa.int64()),
        ("n_labels", pa.int64()),
        ("majority_share", pa.float64()),
        ("median_length", pa.float64()),
    ),
)

FINETUNE_RUNS = TableSpec(
    name="finetune_runs",
    key=("run_id",),
    description="One row per finetuning run (model x target x seed); score in percent. Failed runs keep "
    "status 'failed' and a NULL score.",
    schema=_schema(
        ("run_id", pa.string()),
        ("model_id", pa.string()),
        ("architecture", pa.string()),
        ("dataset_id", pa.string()),
        ("seed", pa.int64()),
        ("score", pa.float64()),
        ("metric", pa.string()),
        ("origin", pa.string()),  # published | local | user
        ("recipe", pa.string()),  # JSON of the recipe, or a name for published runs
        ("recipe_hash", pa.string()),
        ("status", pa.string()),  # ok | failed
        ("error", pa.string()),
        ("library_versions", pa.string()),
        ("code_version", pa.string()),
        ("device", pa.string()),
        ("train_seconds", pa.float64()),
        ("examples_per_second", pa.float64()),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
    ),
)

PROBE_SCORES = TableSpec(
    name="probe_scores",
    key=("architecture", "model_id", "proxy_dataset", "method"),
    description="Cheap proxy scores used to pre-rank candidates (linear probe, LogME).",
    schema=_schema(
        ("model_id", pa.string()),
        ("architecture", pa.string()),
        ("proxy_dataset", pa.string()),
        ("method", pa.string()),  # linear_probe | logme
        ("score", pa.float64()),
        ("seconds", pa.float64()),
        ("features_hash", pa.string()),
        ("origin", pa.string()),
    ),
)

REJECTED_ROWS = TableSpec(
    name="rejected_rows",
    key=("file", "line", "column"),
    description="Input rows or cells that could not be loaded, with the file, line, column and reason.",
    schema=_schema(
        ("file", pa.string()),
        ("line", pa.int64()),
        ("column", pa.string()),
        ("value", pa.string()),
        ("reason", pa.string()),
        ("origin", pa.string()),
    ),
)

TABLES: dict[str, TableSpec] = {t.name: t for t in (HUB_MODELS, DATASETS, FINETUNE_RUNS, PROBE_SCORES, REJECTED_ROWS)}


# Where rows live in the lake, ``<lake>/<table>/<path>.parquet``: each table's path is built here, next to its schema,
# the same way for every origin (local grid, user runs of `recommend --run`, published imports, the Hub catalog).
def finetune_run_id(origin: str, architecture: str, model_id: str, dataset_id: str, recipe: str, seed: int | None) -> str:
    """A run's key in `finetune_runs`: origin, architecture, model, target, recipe and seed (`single` for a
    published run whose seed is not named)."""
    return f"{origin}|{architecture}|{model_id}|{dataset_id}|{recipe}|{'single' if seed is None else seed}"


def finetune_runs_path(origin: str, model_id: str, dataset_id: str, recipe_hash: str, seed: int) -> str:
    """One file per run: ``<origin>/<model key>/<target key>/<recipe_hash>-seed<seed>``."""
    return f"{origin}/{encode_key(model_id)}/{encode_key(dataset_id)}/{recipe_hash}-seed{seed}"


def hub_models_path(source: str, model_id: str) -> str:
    """One file per local model: ``<source>/<model key>``."""
    return f"{source}/{encode_key(model_id)}"


def datasets_path(origin: str, dataset_id: str) -> str:
    """One file per dataset: ``<origin>/<dataset key>``."""
    return f"{origin}/{encode_key(dataset_id)}"


def probe_scores_path(origin: str, model_id: str, proxy: str | None = None) -> str:
    """One file per (model, probe set): ``<origin>/<model key>/<proxy>``; without a proxy, the model's folder."""
    folder = f"{origin}/{encode_key(model_id)}"
    if proxy is None:
        return folder
    return f"{folder}/{''.join(c if c.isalnum() or c in '-_.' else '_' for c in proxy)}"
