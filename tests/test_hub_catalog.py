"""The Hub catalog against a recorded Hub (HTTP answered by a MockTransport inside huggingface_hub's client)."""

import json
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.hub_catalog import hub_models_lake
from assets.resources import HomeResource, LakeResource
from startpoint import lake as lake_files
from startpoint.hub.architectures import ARCHITECTURES
from startpoint.hub.catalog import build_catalog
from startpoint.hub.policy import SafetyPolicy, assess_dir
from startpoint.hub.replay import replay_hub
from startpoint.warehouse.load import load_tables

FIXTURES = Path(__file__).parent / "fixtures" / "hub"

REFUSED = {  # model id -> words its refusal reason must contain
    "imamnurby/RoBERTduino": "pickle-only",
    "imamnurby/RoBERTduino_uncased": "pickle-only",
    "BigSalmon/FormalRobertaLincoln": "remote code",
    "dennishe97/codebert-base-v3.2": "vocab_size 50266 != 50265",
    "Makabaka/roberta-base-EnglishLawAI_roberta_base_version4": "hidden_size 1024 != 768",
    "sasha/autotrain-roberta-base-imdb-1275248777": "exceeds the cap",
    "sasha/autotrain-roberta-base-imdb-1275248778": "no config.json",
    "sasha/autotrain-roberta-base-imdb-1275248779": "adapter weights only",
    "dmrau/bow-bert": "pickle-only",
    "dingkun/retrievalv2": "remote code",
    "enaserian/distilbert-base-uncased-finetuned": "model_type 'distilbert' != 'bert'",
    "Gxg/Op_Bert_MathQA": "only tf_model.h5",
}


@pytest.fixture
def recording(tmp_path):
    dest = tmp_path / "recording"
    shutil.copytree(FIXTURES, dest)
    return dest


def catalog(arch: str, recording: Path, tmp_path: Path, policy=SafetyPolicy(), previous=()):
    with replay_hub(recording):
        return build_catalog(ARCHITECTURES[arch], policy, previous=previous, cache_dir=tmp_path / "hub-cache")


def test_fixture_catalog_accepts_safe_models_and_says_why_others_are_refused(recording, tmp_path):
    rows = catalog("roberta-base", recording, tmp_path) + catalog("bert-base-uncased", recording, tmp_path)
    assert len(rows) >= 30 and {r["architecture"] for r in rows} == {"roberta-base", "bert-base-uncased"}
    refused = {r["model_id"]: r["refusal_reason"] for r in rows if r["status"] == "refused"}
    assert set(refused) == set(REFUSED)
    for model_id, words in REFUSED.items():
        assert words in refused[model_id], (model_id, refused[model_id])
    accepted = [r for r in rows if r["status"] == "accepted"]
    assert len(accepted) == 22
    assert all(r["has_safetensors"] and r["refusal_reason"] is None for r in accepted)
    squad = next(r for r in rows if r["model_id"] == "deepset/roberta-base-squad2")
    assert (squad["hidden_size"], squad["n_layers"], squad["vocab_size"]) == (768, 12, 50265)
    assert squad["license"] == "apache-2.0" and squad["library"] == "transformers" and squad["downloads"] is not None
    assert "base_model:FacebookAI/roberta-base" in json.loads(squad["tags"])


def test_pickle_weights_only_with_a_per_model_opt_in(recording, tmp_path):
    policy = SafetyPolicy(allow_pickle=frozenset({"imamnurby/RoBERTduino_uncased"}))
    rows = {r["model_id"]: r for r in catalog("roberta-base", recording, tmp_path, policy)}
    assert rows["imamnurby/RoBERTduino_uncased"]["status"] == "accepted"
    assert rows["imamnurby/RoBERTduino"]["status"] == "refused"  # the opt-in is per model


def test_models_that_leave_the_hub_are_marked_gone_not_dropped(recording, tmp_path):
    first = catalog("roberta-base", recording, tmp_path)
    entries = json.loads((recording / "models.json").read_text())
    (recording / "models.json").write_text(json.dumps([e for e in entries if e["id"] != "deepset/roberta-base-squad2"]))
    second = catalog("roberta-base", recording, tmp_path, previous=first)
    assert len(second) == len(first)
    gone = next(r for r in second if r["model_id"] == "deepset/roberta-base-squad2")
    assert gone["status"] == "gone" and "no longer listed" in gone["refusal_reason"]
    third = catalog("roberta-base", recording, tmp_path, previous=second)
    assert next(r for r in third if r["model_id"] == "deepset/roberta-base-squad2")["status"] == "gone"
    (recording / "models.json").write_text(json.dumps(entries))
    back = catalog("roberta-base", recording, tmp_path, previous=third)
    assert next(r for r in back if r["model_id"] == "deepset/roberta-base-squad2")["status"] == "accepted"


def test_policy_on_local_folders_agrees_with_the_zoo_loader(tmp_path):
    from startpoint.zoo import ModelDirError, check_model_dir, resolve

    minilm = resolve("sentence-transformers/all-MiniLM-L6-v2")
    assert assess_dir(minilm, "minilm", ARCHITECTURES["all-MiniLM-L6-v2"], SafetyPolicy()).accepted
    wrong = assess_dir(minilm, "minilm", ARCHITECTURES["bert-base-uncased"], SafetyPolicy())
    assert not wrong.accepted and "hidden_size 384 != 768" in wrong.refusal_reason

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(minilm / "config.json", pickled / "config.json")
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    decision = assess_dir(pickled, "someone/pickled", ARCHITECTURES["all-MiniLM-L6-v2"], SafetyPolicy())
    assert not decision.accepted and "pickle-only" in decision.refusal_reason
    with pytest.raises(ModelDirError, match="pickle"):
        check_model_dir(pickled)
    opted = SafetyPolicy(allow_pickle=frozenset({"someone/pickled"}))
    assert assess_dir(pickled, "someone/pickled", ARCHITECTURES["all-MiniLM-L6-v2"], opted).accepted

    remote = tmp_path / "remote"
    remote.mkdir()
    config = json.loads((minilm / "config.json").read_text()) | {"auto_map": {"AutoModel": "modeling_x.X"}}
    (remote / "config.json").write_text(json.dumps(config))
    (remote / "model.safetensors").symlink_to(minilm / "model.safetensors")
    decision = assess_dir(remote, "someone/remote", ARCHITECTURES["all-MiniLM-L6-v2"], SafetyPolicy())
    assert not decision.accepted and "auto_map" in decision.refusal_reason


def test_catalog_asset_writes_the_lake_and_shows_refusals(recording, tmp_path, monkeypatch):
    monkeypatch.delenv("STARTPOINT_HUB_RECORDING", raising=False)
    lake_url = str(tmp_path / "lake")
    result = dg.materialize(
        [hub_models_lake],
        partition_key="bert-base-uncased",
        resources={"lake": LakeResource(url=lake_url), "home": HomeResource(path=str(tmp_path / "home"))},
        run_config={"ops": {"lake__hub_models": {"config": {"recording": str(recording)}}}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    meta = result.asset_materializations_for_node("lake__hub_models")[0].metadata
    assert meta["n_accepted"].value == 8 and meta["n_refused"].value == 4
    assert "dingkun/retrievalv2" in meta["refused"].value and "remote code" in meta["refused"].value
    assert lake_files.list_files(lake_url, "hub_models") == [f"{lake_url}/hub_models/hub/bert-base-uncased.parquet"]
    warehouse = tmp_path / "warehouse.duckdb"
    load_tables(lake_url, warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        counts = dict(con.execute("select status, count(*) from hub_models group by status").fetchall())
    assert counts == {"accepted": 8, "refused": 4}


def test_offline_without_a_recording_says_what_to_do(monkeypatch):
    from huggingface_hub import constants

    from startpoint.hub.runtime import hub_access

    monkeypatch.delenv("STARTPOINT_HUB_RECORDING", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RuntimeError, match="STARTPOINT_HUB_RECORDING"):
        with hub_access():
            pass


def test_offline_keep_materializes_the_catalog_without_the_hub_and_changes_nothing_stored(recording, tmp_path,
                                                                                          monkeypatch):
    """`make run` is offline by design: `offline: keep` records the catalog as it stands (empty the first time), and
    a catalog fetched earlier is kept byte for byte, rows and ingestion times alike."""
    from huggingface_hub import constants

    monkeypatch.delenv("STARTPOINT_HUB_RECORDING", raising=False)
    lake_url = str(tmp_path / "lake")
    resources = {"lake": LakeResource(url=lake_url), "home": HomeResource(path=str(tmp_path / "home"))}

    def materialize(partition: str, config: dict):
        return dg.materialize([hub_models_lake], partition_key=partition, resources=resources,
                              run_config={"ops": {"lake__hub_models": {"config": config}}},
                              instance=dg.DagsterInstance.ephemeral())

    assert materialize("bert-base-uncased", {"recording": str(recording)}).success  # an earlier online catalog
    fetched = lake_files.read(lake_url, "hub_models", "hub/bert-base-uncased.parquet")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    for partition, rows in (("bert-base-uncased", 12), ("roberta-base", 0)):
        result = materialize(partition, {"offline": "keep"})
        meta = result.asset_materializations_for_node("lake__hub_models")[0].metadata
        assert meta["dagster/row_count"].value == rows
        assert meta["source"].value.startswith("offline: the Hub was not contacted")
    assert lake_files.read(lake_url, "hub_models", "hub/bert-base-uncased.parquet").equals(fetched)
    assert lake_files.read(lake_url, "hub_models", "hub/roberta-base.parquet").num_rows == 0
    with pytest.raises(Exception, match="STARTPOINT_HUB_RECORDING"):
        materialize("roberta-base", {})  # the default still refuses to pretend
