"""Hugging Face `datasets` sources, offline: a save_to_disk folder and a folder of Parquet split files."""

import polars as pl
import pytest

from startpoint.data import DatasetError, SplitCaps, load_dataset, load_hf

NAMES = ["negative", "positive"]


def _rows(n, offset=0):
    return {
        "sentence": [f"sentence {offset + i} is {NAMES[(offset + i) % 2]}" for i in range(n)],
        "idx": list(range(offset, offset + n)),
        "label": [(offset + i) % 2 for i in range(n)],
    }


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("STARTPOINT_HOME", str(tmp_path / "home"))


def test_save_to_disk_folder_keeps_official_splits_and_class_names(tmp_path):
    import datasets

    features = datasets.Features(
        {"sentence": datasets.Value("string"), "idx": datasets.Value("int32"), "label": datasets.ClassLabel(names=NAMES)}
    )
    glue_like = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(_rows(40), features=features),
            "validation": datasets.Dataset.from_dict(_rows(8, 100), features=features),
            # hidden test labels, as GLUE ships them: -1 everywhere
            "test": datasets.Dataset.from_dict({**_rows(6, 200), "label": [-1] * 6}, features=features),
        }
    )
    folder = tmp_path / "glue_like"
    glue_like.save_to_disk(str(folder))

    ds = load_dataset(f"hf:{folder}", caps=SplitCaps(train=20), seed=0)
    assert ds.source == f"hf:{folder}" and ds.label_names == NAMES
    assert len(ds.validation) == 8 and set(ds.validation["text"]) == set(_rows(8, 100)["sentence"])
    # the unlabelled test split is replaced by 20% of train, stratified
    assert len(ds.test) == 8 and set(ds.test["text"]) <= set(_rows(40)["sentence"])
    assert len(ds.train) == 20 and ds.train["label"].value_counts()["count"].to_list() == [10, 10]
    row = ds.train.row(0, named=True)
    assert row["text"].endswith(NAMES[row["label"]])


def test_parquet_folder_through_the_datasets_builder_with_pairs(tmp_path):
    folder = tmp_path / "nli"
    folder.mkdir()
    for split, n, offset in (("train", 30, 0), ("test", 10, 50)):
        rows = _rows(n, offset)
        pl.DataFrame(
            {"premise": rows["sentence"], "hypothesis": [f"h{i}" for i in rows["idx"]], "label": rows["label"]}
        ).write_parquet(folder / f"{split}.parquet")
    ds = load_hf(str(folder), seed=2)
    assert ds.label_names == ["0", "1"]
    assert len(ds.test) == 10 and ds.test["text_pair"].str.starts_with("h").all()
    assert len(ds.train) + len(ds.validation) == 30 and len(ds.validation) == 4
    assert (tmp_path / "home" / "cache" / "hf_datasets").is_dir()  # the library cache stays in STARTPOINT_HOME


def test_hf_errors_name_the_dataset_and_the_columns(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    pl.DataFrame({"body": ["x"] * 12, "label": [0, 1] * 6}).write_parquet(folder / "train.parquet")
    with pytest.raises(DatasetError, match=r"no text column found among \['body', 'label'\]"):
        load_hf(str(folder))
    with pytest.raises(DatasetError, match=r"'.*missing_here'.*cannot load"):
        load_hf(str(tmp_path / "missing_here"))
