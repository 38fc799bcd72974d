"""Labelled text classification datasets in one normalized form, whatever their source.

    from startpoint.data import load_dataset, SplitCaps
    ds = load_dataset("tweets_sentiment", caps=SplitCaps(train=2000, validation=500, test=1000), seed=0)
    ds.train  # DataFrame: text, text_pair (None for single-text sets), label (int; ds.label_names[label])

`dataset_id` is an offline-suite id (`OFFLINE_SUITE`), ``hf:<id>[:<config>]`` for Hugging Face ``datasets``
(a Hub id or a local folder), or the path of a CSV / TSV / JSONL / Parquet file (``file:`` prefix optional).
Splits, caps and label ids are made the same way for every source: see :mod:`startpoint.data.core`.
"""

from __future__ import annotations

from pathlib import Path

from startpoint.data.core import (
    MIN_ROWS,
    TEST_FRACTION,
    VALIDATION_FRACTION,
    DatasetError,
    LabelledDataset,
    SplitCaps,
    build_dataset,
    dataset_stats,
)
from startpoint.data.files import SUFFIXES, load_file
from startpoint.data.hf import load_hf
from startpoint.data.offline import OFFLINE_SUITE, PYPI_ONLY, SuiteEntry, installed

__all__ = [
    "DatasetError",
    "LabelledDataset",
    "SplitCaps",
    "OFFLINE_SUITE",
    "PYPI_ONLY",
    "SuiteEntry",
    "MIN_ROWS",
    "TEST_FRACTION",
    "VALIDATION_FRACTION",
    "dataset_stats",
    "installed",
    "load_dataset",
    "load_file",
    "load_hf",
    "load_offline",
]


def load_offline(dataset_id: str, *, caps: SplitCaps | None = None, seed: int = 0) -> LabelledDataset:
    """One set of the offline suite, read from its installed package."""
    entry = OFFLINE_SUITE.get(dataset_id)
    if entry is None:
        raise DatasetError(f"unknown offline dataset {dataset_id!r}; the suite has {sorted(OFFLINE_SUITE)}")
    return build_dataset(
        entry.read(),
        dataset_id=dataset_id,
        source=entry.source,
        caps=caps,
        seed=seed,
        task_group=entry.task_group,
    )


def load_dataset(dataset_id: str, *, caps: SplitCaps | None = None, seed: int = 0) -> LabelledDataset:
    """Load by id: suite name, ``hf:<id>[:<config>]``, or a file path (default column names text/label)."""
    if dataset_id in OFFLINE_SUITE:
        return load_offline(dataset_id, caps=caps, seed=seed)
    if dataset_id.startswith("hf:"):
        hf_id, _, config = dataset_id[3:].partition(":")
        if not hf_id:
            raise DatasetError(f"dataset id {dataset_id!r}: write hf:<id>[:<config>], e.g. hf:nyu-mll/glue:sst2")
        return load_hf(hf_id, config=config or None, caps=caps, seed=seed, dataset_id=dataset_id)
    path = dataset_id[5:] if dataset_id.startswith("file:") else dataset_id
    if dataset_id.startswith("file:") or Path(path).suffix.lower() in SUFFIXES or Path(path).exists():
        return load_file(path, caps=caps, seed=seed)
    raise DatasetError(
        f"unknown dataset {dataset_id!r}: not an offline suite id ({', '.join(sorted(OFFLINE_SUITE))}), "
        "not hf:<id>[:<config>], and not a CSV/TSV/JSONL/Parquet file path"
    )
