"""Hugging Face ``datasets`` sources: Hub ids, local data folders and ``save_to_disk`` folders.

``datasets.load_dataset`` is called without remote code (a dataset that needs a loading script is refused by
the library). Official splits are kept: ``train``, ``validation`` (or ``valid``/``dev``) and ``test``; rows
labelled -1 (hidden test labels, as in GLUE) are dropped, and a split left without labels is carved from
train instead. ``ClassLabel`` ids become their names, then follow the sorted-name order of every source.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from startpoint.data.core import (
    DatasetError,
    LabelledDataset,
    SplitCaps,
    _stripped,
    build_dataset,
)

# Tried in order when no column is named: (text, text_pair) pairs seen in common classification sets.
TEXT_COLUMNS = [
    ("text", None),
    ("sentence", None),
    ("sentence1", "sentence2"),
    ("premise", "hypothesis"),
    ("question", "sentence"),
    ("question1", "question2"),
    ("review", None),
    ("content", None),
]
_SPLIT_NAMES = {"train": "train", "validation": "validation", "valid": "validation", "dev": "validation", "test": "test"}


def _open(hf_id: str, config: str | None, cache_dir: str | None):
    import datasets  # heavy import, only when a Hugging Face source is used

    local = Path(hf_id).expanduser()
    try:
        if local.is_dir() and ((local / "dataset_dict.json").exists() or (local / "state.json").exists()):
            loaded = datasets.load_from_disk(str(local))
        else:
            loaded = datasets.load_dataset(hf_id, config, cache_dir=cache_dir)
    except Exception as err:  # the library raises many types (offline, not found, bad files)
        raise DatasetError(
            f"Hugging Face dataset {hf_id!r}{f' config {config!r}' if config else ''}: cannot load ({type(err).__name__}: "
            f"{err}). Without Hub access, save the dataset with `save_to_disk` or give a local folder of "
            "train/test CSV, JSON or Parquet files"
        ) from None
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    return loaded


def _pick_columns(columns: list[str], text_col: str | None, text_pair_col: str | None, where: str) -> tuple[str, str | None]:
    if text_col is not None:
        return text_col, text_pair_col
    for text, pair in TEXT_COLUMNS:
        if text in columns and (pair is None or pair in columns):
            return text, pair if text_pair_col is None else text_pair_col
    raise DatasetError(f"{where}: no text column found among {columns}; pass --text-col <column> (and --text-pair-col)")


def load_hf(
    hf_id: str,
    *,
    config: str | None = None,
    text_col: str | None = None,
    label_col: str = "label",
    text_pair_col: str | None = None,
    caps: SplitCaps | None = None,
    seed: int = 0,
    dataset_id: str | None = None,
    task_group: str = "other",
    cache_dir: str | None = None,
) -> LabelledDataset:
    """A labelled dataset from a Hub id or local folder; `text_col=None` guesses from common column names."""
    if cache_dir is None:
        from startpoint.settings import get_settings

        cache_dir = str(get_settings().cache_dir / "hf_datasets")
    where = f"Hugging Face dataset {hf_id!r}" + (f" config {config!r}" if config else "")
    loaded = _open(hf_id, config, cache_dir)
    parts = []
    for split_name, split in loaded.items():
        name = _SPLIT_NAMES.get(split_name.lower())
        if name is None:
            continue
        columns = list(split.column_names)
        text, pair = _pick_columns(columns, text_col, text_pair_col, where)
        for role, col in (("text", text), ("label", label_col), ("text pair", pair)):
            if col is not None and col not in columns:
                raise DatasetError(f"{where}, split {split_name!r}: no {role} column {col!r}; the columns are {columns}")
        feature = split.features[label_col]
        class_names = getattr(feature, "names", None)
        frame = pl.from_arrow(split.select_columns([c for c in (text, pair, label_col) if c]).with_format("arrow")[:])
        frame = frame.with_row_index("_row")
        labels = frame[label_col]
        labelled = labels.is_not_null() & (_stripped(labels) != "-1")
        if labels.dtype.is_float():
            labelled &= labels.is_not_nan()
        frame = frame.filter(labelled)
        if not len(frame):
            continue  # hidden test labels: this split is carved from train instead
        if class_names is not None:
            label_values = frame[label_col].cast(pl.Int64).map_elements(lambda i: class_names[i], return_dtype=pl.String)
        else:
            label_values = frame[label_col]
        parts.append(
            pl.DataFrame(
                {
                    "text": frame[text],
                    "text_pair": frame[pair] if pair else pl.Series([None] * len(frame), dtype=pl.String),
                    "label": label_values,
                    "split": pl.Series([name] * len(frame), dtype=pl.String),
                    "row": frame["_row"].cast(pl.Int64) + 1,
                }
            )
        )
    if not parts:
        raise DatasetError(f"{where}: no labelled train/validation/test split (splits: {list(loaded)})")
    raw = pl.concat(parts, how="vertical_relaxed")
    source = f"hf:{hf_id}" + (f":{config}" if config else "")
    return build_dataset(
        raw,
        dataset_id=dataset_id or (hf_id + (f":{config}" if config else "")),
        source=source,
        caps=caps,
        seed=seed,
        task_group=task_group,
        where=where,
    )
