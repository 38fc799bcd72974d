"""Splits, caps, label ids and stats of the normalized dataset, on small hand-made frames."""

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from startpoint.data import DatasetError, SplitCaps, dataset_stats
from startpoint.data.core import build_dataset, label_order


def _raw(counts: dict[str, int], words: int = 3) -> pl.DataFrame:
    rows = []
    for label, n in counts.items():
        rows += [{"text": " ".join([f"{label}{i}"] * words), "label": label} for i in range(n)]
    return pl.DataFrame(rows)


def _build(raw, **kw):
    return build_dataset(raw, dataset_id="toy", source="test:toy", **kw)


def test_stats_on_a_small_fixture():
    split = ["train"] * 4 + ["test"] * 2 + ["train"] * 4 + ["test"] * 2
    split[3] = split[9] = "validation"
    raw = pl.DataFrame(
        {
            "text": ["a b", "a b c", "a", "b b b b", "x y", "c", "d d", "e e e", "f", "g g", "h", "i i i i i"],
            "label": ["pos", "pos", "pos", "pos", "pos", "pos", "neg", "neg", "neg", "neg", "neg", "neg"],
            "split": split,
        }
    )
    ds = _build(raw, seed=3)
    stats = dataset_stats(ds)
    assert ds.label_names == ["neg", "pos"]
    assert (stats["n_train"], stats["n_validation"], stats["n_test"], stats["n_labels"]) == (6, 2, 4, 2)
    assert stats["majority_share"] == 0.5
    # train texts: "a b", "a b c", "a", "d d", "e e e", "f" -> word counts 2,3,1,2,3,1 -> median 2
    assert stats["median_length"] == 2.0
    assert stats["source"] == "test:toy" and stats["metric"] == "accuracy"
    assert sorted(ds.test["text"]) == ["c", "h", "i i i i i", "x y"]


def test_empty_validation_after_carving_is_an_error():
    raw = _raw({"a": 5, "b": 5})
    raw = raw.with_columns(split=pl.Series(["train", "train", "test", "test", "test"] * 2))   # two train rows per label: none to spare
    with pytest.raises(DatasetError, match="validation split is empty"):
        _build(raw)


def test_random_split_is_stratified_and_deterministic():
    raw = _raw({"a": 100, "b": 50, "c": 20})
    one, two, other = _build(raw, seed=7), _build(raw, seed=7), _build(raw, seed=8)
    for name in ("train", "validation", "test"):
        assert_frame_equal(one.split(name), two.split(name))
    assert set(one.test["text"]) != set(other.test["text"])
    # 20% test per label, then 10% of the rest for validation
    assert one.test["label"].value_counts().sort("label")["count"].to_list() == [20, 10, 4]
    assert one.validation["label"].value_counts().sort("label")["count"].to_list() == [8, 4, 2]
    assert len(one.train) == 170 - 34 - 14
    texts = [set(one.split(n)["text"]) for n in ("train", "validation", "test")]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])


def test_caps_are_stratified_deterministic_and_keep_every_label():
    raw = _raw({"a": 300, "b": 100, "c": 5})
    caps = SplitCaps(train=40, validation=5, test=12)
    ds = _build(raw, caps=caps, seed=1)
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (40, 5, 12)
    train_counts = ds.train["label"].value_counts().sort("label")["count"].to_list()
    assert train_counts[2] >= 1 and abs(train_counts[0] - 3 * train_counts[1]) <= 3
    assert set(ds.validation["label"]) == {0, 1, 2}  # the cap allows one row per label
    again = _build(raw, caps=caps, seed=1)
    assert_frame_equal(ds.train, again.train)
    assert set(_build(raw, caps=caps, seed=2).train["text"]) != set(ds.train["text"])


def test_labels_map_to_sorted_ids_numeric_when_numbers():
    assert label_order(["10", "2", "1"]) == ["1", "2", "10"]
    assert label_order(["b", "a", "10"]) == ["10", "a", "b"]
    ds = _build(_raw({"10": 10, "2": 10, "1": 10}))
    assert ds.label_names == ["1", "2", "10"]
    row = ds.train.row(0, named=True)
    assert row["text"].startswith(ds.label_names[row["label"]])


def test_empty_texts_are_dropped_and_empty_labels_named():
    raw = _raw({"a": 10, "b": 10})
    raw = raw.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("   ")).otherwise("text").alias("text"))
    ds = _build(raw)
    assert ds.notes["dropped_empty_text"] == 1
    assert len(ds.train) + len(ds.validation) + len(ds.test) == 19
    raw = raw.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("")).otherwise("label").alias("label"))
    with pytest.raises(DatasetError, match="row 6 has an empty label"):
        _build(raw)


def test_bad_caps_refused():
    with pytest.raises(DatasetError, match="SplitCaps.train=0"):
        SplitCaps(train=0)


def test_text_pairs_are_str_or_none():
    raw = pl.DataFrame(
        {
            "text": [f"t{i}" for i in range(20)],
            "text_pair": [None if i % 2 else f"p{i}" for i in range(19)] + [" "],
            "label": [i % 2 for i in range(20)],
        }
    )
    ds = _build(raw)
    pairs = pl.concat([ds.train, ds.validation, ds.test])["text_pair"].to_list()
    assert sorted(p for p in pairs if p is not None) == sorted(f"p{i}" for i in range(0, 19, 2))
    assert sum(p is None for p in pairs) == 10
