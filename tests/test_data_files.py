"""User files: CSV / TSV / JSONL / Parquet with chosen columns, and every kind of bad input."""

import json

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from startpoint.data import (
    DatasetError,
    SplitCaps,
    dataset_stats,
    load_dataset,
    load_file,
)

REVIEWS = [(f"review number {i} was {'great' if i % 3 else 'awful'}", "pos" if i % 3 else "neg") for i in range(30)]


def _write_csv(path, rows, header=("text", "label")):
    pl.DataFrame(rows, schema=list(header), orient="row").write_csv(path)
    return path


def test_csv_with_own_column_names_and_pairs(tmp_path):
    rows = [(t, f"pair {i}", lab) for i, (t, lab) in enumerate(REVIEWS)]
    path = _write_csv(tmp_path / "reviews.csv", rows, header=("body", "context", "stars"))
    ds = load_file(path, text_col="body", text_pair_col="context", label_col="stars", seed=1)
    assert ds.dataset_id == "reviews" and ds.source == f"file:{path.resolve()}"
    assert ds.label_names == ["neg", "pos"]
    assert len(ds.train) + len(ds.validation) + len(ds.test) == 30
    assert ds.train["text_pair"].str.starts_with("pair ").all()
    assert dataset_stats(ds)["n_labels"] == 2
    # the generic entry point takes a path too, with default column names
    _write_csv(tmp_path / "plain.csv", REVIEWS)
    assert load_dataset(str(tmp_path / "plain.csv")).label_names == ["neg", "pos"]


def test_jsonl_tsv_and_parquet_give_the_same_dataset(tmp_path):
    frame = pl.DataFrame(REVIEWS, schema=["text", "label"], orient="row")
    (tmp_path / "r.jsonl").write_text("\n".join(json.dumps({"text": t, "label": lab}) for t, lab in REVIEWS) + "\n")
    frame.write_csv(tmp_path / "r.tsv", separator="\t")
    frame.write_parquet(tmp_path / "r.parquet")
    loaded = [load_file(tmp_path / f"r.{ext}", caps=SplitCaps(train=10), seed=4) for ext in ("jsonl", "tsv", "parquet")]
    for ds in loaded[1:]:
        assert_frame_equal(ds.train, loaded[0].train)
        assert_frame_equal(ds.test, loaded[0].test)
    assert len(loaded[0].train) == 10


def test_split_column_keeps_user_splits(tmp_path):
    rows = [(t, lab, "test" if i >= 24 else "train") for i, (t, lab) in enumerate(REVIEWS)]
    path = _write_csv(tmp_path / "s.csv", rows, header=("text", "label", "split"))
    ds = load_file(path)
    assert len(ds.test) == 6 and set(ds.test["text"]) == {t for t, _ in REVIEWS[24:]}
    assert ds.notes["split"] == "official train/test"


@pytest.mark.parametrize(
    "name, content, kwargs, message",
    [
        ("missing.csv", None, {}, "file not found"),
        ("empty.csv", "", {}, "the file is empty"),
        ("header.csv", "text,label\n", {}, "no data rows"),
        ("nolabel.csv", "text,stars\na,1\nb,2\n", {}, r"no label column 'label'; the columns are \['text', 'stars'\]"),
        ("notext.csv", "body,label\na,1\nb,2\n", {}, r"no text column 'text'; the columns are \['body', 'label'\]"),
        ("three.csv", "text,label\na,x\nb,y\nc,x\n", {}, "only 3 labelled rows"),
        ("oneclass.csv", "text,label\n" + "".join(f"t{i},same\n" for i in range(20)), {}, "every row has the label 'same'"),
        ("badjson.jsonl", '{"text": "a", "label": 1}\n{"text": "b", label: 2}\n', {}, "line 2 is not valid JSON"),
        ("list.jsonl", '["a", 1]\n', {}, "line 1 is a JSON list"),
        ("data.xlsx", "x", {}, "an Excel workbook, not a text table; export the sheet as CSV"),
        ("gapsplit.csv", "text,label,split\n" + "".join(f"t{i},{i % 2},train\n" for i in range(12)) + "x,1,\n", {},
         r"unknown split name\(s\) \['\(empty\)'\] \(first at row 13\)"),
        ("badsplit.csv", "text,label,split\n" + "".join(f"t{i},{i % 2},holdout\n" for i in range(12)), {}, "unknown split name"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, name, content, kwargs, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=message) as err:
        load_file(path, **kwargs)
    assert name in str(err.value)


def test_test_labels_unseen_in_training_are_refused(tmp_path):
    rows = [(t, lab, "train") for t, lab in REVIEWS] + [("a brand new kind", "mixed", "test")] * 2 + [("ok", "pos", "test")]
    path = _write_csv(tmp_path / "unseen.csv", rows, header=("text", "label", "split"))
    with pytest.raises(DatasetError, match=r"test has label\(s\) never seen in train: \{'mixed': 2\} \(first at row 31\)"):
        load_file(path)


def test_non_utf8_file_reports_offset_and_line(tmp_path):
    path = tmp_path / "latin.csv"
    body = "text,label\n" + "".join(f"ok {i},{i % 2}\n" for i in range(12)) + "caf\xe9 au lait,1\n"
    path.write_bytes(body.encode("latin-1"))
    offset = body.encode("latin-1").index(b"\xe9")
    with pytest.raises(DatasetError, match=rf"byte 0xe9 at byte offset {offset} \(line 14\).*iconv -f latin1") as err:
        load_file(path)
    assert "latin.csv" in str(err.value)
    ds = load_file(path, encoding="latin-1")  # the suggested fix works
    assert "café au lait" in set(ds.train["text"]) | set(ds.validation["text"]) | set(ds.test["text"])


def test_empty_label_names_the_row(tmp_path):
    rows = list(REVIEWS)
    rows[6] = (rows[6][0], "")
    path = _write_csv(tmp_path / "gap.csv", rows)
    with pytest.raises(DatasetError, match="row 7 has an empty label"):
        load_file(path)


def test_files_above_the_size_cap_are_refused(tmp_path, monkeypatch):
    path = _write_csv(tmp_path / "big.csv", REVIEWS * 20)
    monkeypatch.setenv("STARTPOINT_MAX_DATASET_MB", "0.01")
    size = path.stat().st_size
    with pytest.raises(DatasetError, match=rf"big.csv: {size:,} bytes is above the 10,485-byte limit"):
        load_file(path)
    monkeypatch.delenv("STARTPOINT_MAX_DATASET_MB")
    assert len(load_file(path).train) > 0


def test_unknown_ids_are_explained():
    with pytest.raises(DatasetError, match="not an offline suite id"):
        load_dataset("no_such_set")
