"""Model folders are checked completely: no tokenizer, a tiny vocabulary, truncated or fake safetensors and
shards that are not safetensors are refused naming the file, and become `failed` runs (engine, asset, probe,
recommend --run), never an exception and never a score."""

from __future__ import annotations

import json
import re

import dagster as dg
import numpy as np
import polars as pl
import pytest

from assets.resources import HomeResource, LakeResource
from startpoint import lake
from startpoint.data import LabelledDataset
from startpoint.engine import Recipe, finetune
from startpoint.keys import encode_key
from startpoint.zoo import DEFAULT_BASE, ModelDirError, check_model_dir

from model_folder_fixture import copy_model

TINY = Recipe(train_cap=32, epochs=1, batch_size=16, max_length=16, eval_cap=16, test_cap=16, patience=0)
ARCH = "all-MiniLM-L6-v2"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _prefix(base, extra: int) -> bytes:
    """The first bytes of the real weights: the whole header plus `extra` bytes of tensor data."""
    with open(base / "model.safetensors", "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        f.seek(0)
        return f.read(8 + n + extra)


def _replace(path, data: bytes):
    path.unlink(missing_ok=True)
    path.write_bytes(data)


def no_tokenizer(folder, base):
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink()
    return str(folder), "no tokenizer files"


def five_token_vocab(folder, base):
    (folder / "tokenizer.json").unlink()
    (folder / "vocab.txt").write_text("\n".join(SPECIAL) + "\n")
    return "vocab.txt", "5-token vocabulary.*vocab_size is 30522"


def five_token_tokenizer_json(folder, base):
    data = json.loads((folder / "tokenizer.json").read_text())
    data["model"]["vocab"] = {t: i for i, t in enumerate(SPECIAL)}
    (folder / "tokenizer.json").write_text(json.dumps(data))
    return "tokenizer.json", "5-token vocabulary"


def truncated_weights(folder, base):
    _replace(folder / "model.safetensors", _prefix(base, 1000))
    return "model.safetensors", "is truncated: its tensors need"


def truncated_header(folder, base):
    _replace(folder / "model.safetensors", _prefix(base, 0)[:500])
    return "model.safetensors", "is truncated: its header"


def fake_weights(folder, base):
    _replace(folder / "model.safetensors", b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n")
    return "model.safetensors", "not a safetensors file"


def empty_weights(folder, base):
    _replace(folder / "model.safetensors", b"")
    return "model.safetensors", "not a safetensors file"


def index_to_bin(folder, base):
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    weight_map = {"embeddings.word_embeddings.weight": "pytorch_model.bin"}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return "pytorch_model.bin", "not a safetensors file"


def index_truncated_shard(folder, base):
    (folder / "model.safetensors").unlink()
    shard = "model-00001-of-00001.safetensors"
    (folder / shard).write_bytes(_prefix(base, 4096))
    header = json.loads(_prefix(base, 0)[8:])
    weight_map = {name: shard for name in header if name != "__metadata__"}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return shard, "is truncated"


def index_missing_shard(folder, base):
    (folder / "model.safetensors").unlink()
    weight_map = {"embeddings.word_embeddings.weight": "model-00001-of-00002.safetensors"}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return "model-00001-of-00002.safetensors", "missing"


def wrong_tensors(folder, base):
    """A valid safetensors file whose tensors are not this model's: transformers would start from random weights."""
    from safetensors.numpy import save_file

    (folder / "model.safetensors").unlink()
    save_file({"something.else": np.zeros((4, 4), dtype=np.float32)}, str(folder / "model.safetensors"))
    return str(folder), "weights do not fit config.json"


REFUSED_BY_CHECK = [no_tokenizer, five_token_vocab, five_token_tokenizer_json, truncated_weights, truncated_header,
                    fake_weights, empty_weights, index_to_bin, index_truncated_shard, index_missing_shard]  # fmt: skip
REFUSED_AT_LOAD = [wrong_tensors]
IDS = lambda f: f.__name__  # noqa: E731


def broken(base, tmp_path, make, name="broken-model"):
    folder = copy_model(base, tmp_path / name)
    file, reason = make(folder, base)
    return folder, file, reason


def reviews(n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    good, bad = ["great", "lovely", "tasty"], ["awful", "bland", "stale"]
    return pl.DataFrame([{"text": f"the soup was {rng.choice(good if i % 2 else bad)} tonight", "text_pair": None,
                          "label": i % 2} for i in range(n)], schema={"text": pl.String, "text_pair": pl.String, "label": pl.Int64})


def toy_dataset() -> LabelledDataset:
    return LabelledDataset(dataset_id="toy_reviews", source="test", label_names=["negative", "positive"],
                           train=reviews(32), validation=reviews(0), test=reviews(16, seed=1))


def test_the_packaged_model_and_an_engine_save_pass(base_dir, tmp_path):
    check_model_dir(base_dir)
    check_model_dir(copy_model(base_dir, tmp_path / "copy"))


@pytest.mark.parametrize("make", REFUSED_BY_CHECK, ids=IDS)
def test_check_model_dir_refuses_naming_the_file(base_dir, tmp_path, make):
    folder, file, reason = broken(base_dir, tmp_path, make)
    with pytest.raises(ModelDirError) as info:
        check_model_dir(folder)
    assert file in str(info.value) and re.search(reason, str(info.value)), str(info.value)


@pytest.mark.parametrize("make", REFUSED_BY_CHECK + REFUSED_AT_LOAD, ids=IDS)
def test_finetune_records_a_failed_run_naming_the_file(base_dir, tmp_path, make):
    folder, file, reason = broken(base_dir, tmp_path, make)
    result = finetune(folder, toy_dataset(), TINY, seed=0, log=lambda m: None, cache_dir=tmp_path / "cache")
    assert result.status == "failed" and result.score is None
    assert file in result.error and re.search(reason, result.error), result.error


def _sentencepiece_model(n_pieces: int) -> bytes:
    """A sentencepiece ModelProto in protobuf wire format: repeated field 1 (pieces), then a trainer_spec (field 2)."""
    import struct

    def length_delimited(field: int, payload: bytes) -> bytes:
        assert len(payload) < 128
        return bytes([field << 3 | 2, len(payload)]) + payload

    pieces = b"".join(
        length_delimited(1, length_delimited(1, f"tok{i}".encode()) + bytes([2 << 3 | 5]) + struct.pack("<f", -i))
        for i in range(n_pieces)
    )
    return pieces + length_delimited(2, bytes([3 << 3 | 0]) + bytes([n_pieces & 0x7F | 0x80, n_pieces >> 7]))


def test_a_sentencepiece_vocabulary_is_counted(tmp_path):
    from startpoint.zoo.loading import check_tokenizer_files, vocabulary_size

    (tmp_path / "spiece.model").write_bytes(_sentencepiece_model(300))
    assert vocabulary_size(tmp_path / "spiece.model") == 300
    check_tokenizer_files(tmp_path, {"vocab_size": 320})
    with pytest.raises(ModelDirError, match="300-token vocabulary but config.json's vocab_size is 32000"):
        check_tokenizer_files(tmp_path, {"vocab_size": 32000})
    (tmp_path / "spiece.model").write_bytes(_sentencepiece_model(300)[:-3])
    with pytest.raises(ModelDirError, match="spiece.model cannot be read"):
        vocabulary_size(tmp_path / "spiece.model")


# --- the finetune_runs asset: every seed becomes a failed row in the lake, the partition succeeds -------------


@pytest.mark.parametrize("make", [no_tokenizer, five_token_vocab, truncated_weights, fake_weights, index_to_bin,
                                  index_truncated_shard, wrong_tensors], ids=IDS)  # fmt: skip
def test_the_finetune_asset_writes_failed_rows_for_a_broken_model(base_dir, tmp_path, monkeypatch, make):
    from assets.finetune import finetune_runs

    home = tmp_path / "home"
    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    model_id = "local/broken-model"
    folder, file, reason = broken(base_dir, home / "models", make, name=encode_key(model_id))
    (folder / "startpoint.json").write_text(json.dumps({"architecture": ARCH, "base_model": DEFAULT_BASE}))
    target = tmp_path / "reviews.csv"
    reviews(60).select("text", pl.col("label").replace_strict({0: "negative", 1: "positive"})).write_csv(target)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("base_models", [encode_key(model_id)])
    instance.add_dynamic_partitions("targets", [encode_key(str(target))])
    key = dg.MultiPartitionKey({"model": encode_key(model_id), "target": encode_key(str(target))})
    lake_url = str(home / "lake")
    result = dg.materialize(
        [finetune_runs], partition_key=key, instance=instance,
        resources={"lake": LakeResource(url=lake_url), "home": HomeResource(path=str(home))},
        run_config={"ops": {"lake__finetune_runs": {"config": {"seeds": [0, 1], "recipe": TINY.to_json()}}}},
    )
    assert result.success
    meta = result.asset_materializations_for_node("lake__finetune_runs")[0].metadata
    assert meta["scores"].value == {} and set(meta["failed"].value) == {"0", "1"}
    rows = lake.read(lake_url, "finetune_runs").to_pylist()
    assert sorted(r["seed"] for r in rows) == [0, 1]
    for row in rows:
        assert row["status"] == "failed" and row["score"] is None and row["model_id"] == model_id
        assert file in row["error"] and re.search(reason, row["error"]), row["error"]


# --- probes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [no_tokenizer, five_token_vocab, truncated_weights, index_to_bin], ids=IDS)
def test_the_probe_refuses_a_broken_folder_before_loading(base_dir, tmp_path, make):
    from startpoint.probes.run import ModelRefusedError, probe_model

    folder, file, reason = broken(base_dir, tmp_path, make)
    if make is index_to_bin:
        reason = "pickle-only"  # the catalog's policy sees only the .bin as weights and refuses first
    with pytest.raises(ModelRefusedError) as info:
        probe_model("local/broken-model", ARCH, folder, cache_dir=tmp_path / "cache", proxy="tweets_sentiment")
    assert file in str(info.value) and re.search(reason, str(info.value)), str(info.value)


# --- recommend --run: a broken candidate is reported, the decision is still made -------------------------------


def _fixture_predictions(tmp_path):
    """Evidence and candidate predictions from the product fixture's warehouse (no training)."""
    import duckdb

    from startpoint.recommend.predict import (
        load_evidence,
        predict_candidates,
        predict_target_effect,
    )

    from product_fixture import build

    con = duckdb.connect(str(build(tmp_path / "warehouse.duckdb")), read_only=True)
    try:
        evidence = load_evidence(con, ARCH)
    finally:
        con.close()
    return evidence, predict_candidates(evidence, predict_target_effect(evidence, {}))


def test_recommend_run_reports_a_broken_candidate_and_still_decides(base_dir, tmp_path):
    from startpoint.recommend.protocol import run_protocol

    evidence, preds = _fixture_predictions(tmp_path)
    bad, good = preds[0].model_id, preds[1].model_id
    folders = {evidence.pretrained_model: base_dir, good: base_dir,
               bad: broken(base_dir, tmp_path, truncated_weights)[0]}
    ds = toy_dataset()

    def train_one(model_id, seed):  # what runner.train_one does: the real model check and engine
        result = finetune(folders[model_id], ds, TINY, seed, log=lambda m: None, cache_dir=tmp_path / "cache")
        return result.score, result.error

    logs: list[str] = []
    result = run_protocol(evidence, preds, train_one, seeds=[0], budget=1, log=logs.append)
    assert [s["model_id"] for s in result.skipped] == [bad]
    assert "model.safetensors is truncated" in result.skipped[0]["reason"]
    assert any(bad in m and "truncated" in m for m in logs)
    assert [c.model_id for c in result.candidates] == [good]  # the broken one did not use the budget
    assert result.decision["action"] in {"stay", "start_from"} and result.decision["text"]


def test_recommend_protocol_survives_a_train_one_that_raises(tmp_path):
    from startpoint.recommend.protocol import run_protocol

    evidence, preds = _fixture_predictions(tmp_path)

    def train_one(model_id, seed):
        if model_id == preds[0].model_id:
            raise RuntimeError("index out of range in self")
        return 80.0 + seed + (1.0 if model_id != evidence.pretrained_model else 0.0), None

    result = run_protocol(evidence, preds, train_one, seeds=[0, 1], budget=1, log=lambda m: None)
    assert result.skipped[0]["model_id"] == preds[0].model_id
    assert "RuntimeError: index out of range" in result.skipped[0]["reason"]
    assert [c.model_id for c in result.candidates] == [preds[1].model_id]
    assert result.decision["text"]
