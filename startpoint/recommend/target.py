"""The user's target dataset: loaded and validated by the datasets layer, identified by its content."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from startpoint.data import (
    DatasetError,
    LabelledDataset,
    SplitCaps,
    dataset_stats,
    load_file,
)
from startpoint.data.files import resolve_data_path


@dataclass
class UserTarget:
    dataset: LabelledDataset
    dataset_id: str  # user/<name>-<content hash>: same file, same id, so reruns replace their own runs
    path: Path
    stats: dict  # the `datasets` row: n_train, n_labels, majority_share, ...


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:10]


def user_dataset_id(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.]+", "_", path.stem).strip("_.") or "data"
    return f"user/{name[:40]}-{content_hash(path)}"


def load_target(
    path: str | Path,
    text_col: str = "text",
    label_col: str = "label",
    text_pair_col: str | None = None,
    caps: SplitCaps | None = None,
    seed: int = 0,
) -> UserTarget:
    """Load the user's file; bad files raise DatasetError with the file, row or column and the fix."""
    path = resolve_data_path(path)  # a symbolic-link loop is a DatasetError, not a traceback
    if path.is_dir():
        raise DatasetError(f"{path}: is a directory, not a data file; pass --data <path to one CSV/TSV/JSONL/Parquet "
                           "file> (e.g. a file inside that directory)")
    if not path.exists():
        raise DatasetError(f"{path}: no such file; pass --data <path to a CSV/TSV/JSONL/Parquet file>")
    if not path.is_file():
        raise DatasetError(f"{path}: not a regular file (a device, pipe or socket); pass --data <path to a "
                           "CSV/TSV/JSONL/Parquet file>")
    dataset_id = user_dataset_id(path)
    ds = load_file(
        path, text_col=text_col, label_col=label_col, text_pair_col=text_pair_col, caps=caps, seed=seed,
        dataset_id=dataset_id,
    )
    stats = dataset_stats(ds)
    stats["source"] = f"user:{path}"
    return UserTarget(dataset=ds, dataset_id=dataset_id, path=path, stats=stats)
