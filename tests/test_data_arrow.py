"""The pyarrow CSV path of user files gives the same dataset, stats and errors as Python's csv module (its
fallback, which reads files as pandas' parser did)."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from startpoint.data import dataset_stats, load_file
from startpoint.data import files as files_module
from startpoint.data.core import WHITESPACE_CLASS

TRICKY = [
    ("  padded both sides  ", "pos"), ("\u3000ideographic space\u2003", " neg "), ("tab\tinside, and comma", "pos"),
    ("line\nbreak inside quotes", "neg"), ('a "quoted" word', "pos"), ("café naïve 😀 \u00a0", "neg"),
    ("   ", "pos"), ("", "neg"), ("\x1cfile separator\x1f", "pos"), ("NA", "neg"), ("null", "pos"),
    ("word\u2028line separator", "neg"),
] + [(f"review {'great' if i % 2 else 'awful'} number {i}", "pos" if i % 2 else "neg") for i in range(60)]


def _both(path, **kwargs):
    fast = load_file(path, **kwargs)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(files_module, "_read_csv_arrow", lambda *a, **k: None)  # the csv-module fallback
        slow = load_file(path, **kwargs)
    return fast, slow


def _same(fast, slow):
    assert fast.label_names == slow.label_names and fast.notes == slow.notes
    for name in ("train", "validation", "test"):
        a, b = fast.split(name), slow.split(name)
        assert a["text"].dtype == b["text"].dtype
        assert_frame_equal(a, b)
    assert dataset_stats(fast) == dataset_stats(slow)


def test_whitespace_class_is_pythons():
    assert WHITESPACE_CLASS == "".join(f"\\x{{{ord(c):x}}}" for c in map(chr, range(0x110000)) if c.isspace())


@pytest.mark.parametrize("bom", [False, True])
def test_csv_with_unicode_whitespace_quotes_and_newlines_reads_the_same_both_ways(tmp_path, bom):
    path = tmp_path / "tricky.csv"
    frame = pl.DataFrame(TRICKY, schema=["text", "label"], orient="row").with_columns(unused=pl.lit("x" * 50))
    path.write_text(("\ufeff" if bom else "") + frame.write_csv(), encoding="utf-8")
    fast, slow = _both(path)
    _same(fast, slow)
    assert fast.notes["dropped_empty_text"] == 2
    assert "ideographic space" in set(fast.train["text"]) | set(fast.validation["text"]) | set(fast.test["text"])


def test_tsv_with_pairs_and_split_column_reads_the_same_both_ways(tmp_path):
    rows = [(t, f"  pair {i} ", lab, ["train", "dev", "test"][i % 3] if i > 5 else "train")
            for i, (t, lab) in enumerate(TRICKY)]
    path = tmp_path / "pairs.tsv"
    pl.DataFrame(rows, schema=["a", "b", "y", "split"], orient="row").write_csv(path, separator="\t")
    fast, slow = _both(path, text_col="a", text_pair_col="b", label_col="y", caps=None)
    _same(fast, slow)
    assert fast.notes["split"] == "official train/validation/test"


def test_only_the_used_columns_are_read_and_missing_ones_list_every_column(tmp_path):
    path = tmp_path / "wide.csv"
    pl.DataFrame({"text": ["a b"] * 20, "label": ["x", "y"] * 10, "other": ["z"] * 20}).write_csv(path)
    frame = files_module.read_table(path, columns=["text", "label"], optional=["split"])
    assert list(frame.columns) == ["text", "label", files_module.ROW]
    with pytest.raises(Exception, match=r"no label column 'stars'; the columns are \['text', 'label', 'other'\]"):
        load_file(path, label_col="stars")


def test_ragged_and_duplicate_header_files_fall_back_to_the_csv_module(tmp_path):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(12)) + "a,b,c\n", encoding="utf-8")
    with pytest.raises(Exception, match=r"cannot parse as CSV: Expected 2 fields in line 14"):
        load_file(ragged)
    dup = tmp_path / "dup.csv"
    dup.write_text("text,text,label\n" + "".join(f"t{i},u{i},{i % 2}\n" for i in range(12)), encoding="utf-8")
    with pytest.raises(Exception, match=r"repeats the column 'text' \(columns 1, 2\)"):  # a used column twice
        load_file(dup)
    assert files_module._read_csv_arrow(dup, ",", ["text.1", "label"], []) is not None  # pandas' name, by pyarrow
    fast, slow = _both(dup, text_col="text.1")
    _same(fast, slow)


def test_the_fallback_names_columns_and_pads_rows_as_pandas_did(tmp_path):
    odd = tmp_path / "odd.csv"
    odd.write_text("text,,text,label\n\n" + "".join(f"t{i},e{i},u{i},{i % 2}\n" for i in range(11)) + "short\n",
                   encoding="utf-8")
    frame = files_module.read_table(odd)
    assert frame.columns == ["text", "Unnamed: 1", "text.1", "label", files_module.ROW]
    assert frame.row(11) == ("short", "", "", "", 12)  # blank lines skipped, a short row padded with empty cells
    assert frame["Unnamed: 1"][0] == "e0" and frame["text.1"][10] == "u10"
    with pytest.raises(Exception, match=r"repeats the column 'text' \(columns 1, 3\)"):
        load_file(odd)
    assert load_file(odd, text_col="text.1").notes["dropped_empty_text"] == 1  # the padded row has no text.1
