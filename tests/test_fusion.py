"""Model merging (startpoint/zoo/fusion.py) on tiny real BertModels saved as safetensors folders."""

from __future__ import annotations

import json

import pytest
import torch

from startpoint.zoo.fusion import (
    FusionError,
    FusionRecipe,
    fuse_folders,
    load_encoder_state,
    rank_from_runs,
)

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *(f"w{i}" for i in range(115))]


def tiny_bert(dest, seed: int, *, hidden: int = 8, head: bool = False):
    """A random-init BertModel (or BertForSequenceClassification) saved with safetensors and a 120-token vocab."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=32)
    model = (BertForSequenceClassification if head else BertModel)(config)
    model.save_pretrained(str(dest), safe_serialization=True)
    (dest / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return dest


@pytest.fixture
def three(tmp_path):
    return [(f"local/m{i}", tiny_bert(tmp_path / f"m{i}", seed=i)) for i in range(3)]


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_average_is_the_weighted_mean_of_every_encoder_tensor(three, tmp_path):
    card = fuse_folders(three, tmp_path / "avg", method="average", architecture="tiny", model_id="local/avg",
                        weights=[1, 1, 2])
    assert card["weights"] == [0.25, 0.25, 0.5] and card["members"] == ["local/m0", "local/m1", "local/m2"]
    fused, members = _weights(tmp_path / "avg"), [_weights(f) for _, f in three]
    assert set(fused) == {k for k in members[0] if not k.startswith("pooler.")}  # the engine never reads the pooler
    for key, value in fused.items():
        expected = 0.25 * members[0][key] + 0.25 * members[1][key] + 0.5 * members[2][key]
        torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-7)
    # Not trivially one member: the average differs from each.
    assert all(not torch.equal(fused["encoder.layer.0.output.dense.weight"], m["encoder.layer.0.output.dense.weight"])
               for m in members)
    saved = json.loads((tmp_path / "avg" / "startpoint.json").read_text())
    assert saved["method"] == "average" and saved["role"] == "fused" and saved["architecture"] == "tiny"
    assert (tmp_path / "avg" / "vocab.txt").is_file() and (tmp_path / "avg" / "config.json").is_file()
    # The fused folder loads as a plain encoder through the project's safe loader.
    from startpoint.zoo import load_encoder

    load_encoder(tmp_path / "avg")


def test_uniform_average_by_default(three, tmp_path):
    fuse_folders(three[:2], tmp_path / "u", method="average", architecture="tiny", model_id="local/u")
    a, b, fused = _weights(three[0][1]), _weights(three[1][1]), _weights(tmp_path / "u")
    torch.testing.assert_close(fused["embeddings.word_embeddings.weight"],
                               (a["embeddings.word_embeddings.weight"] + b["embeddings.word_embeddings.weight"]) / 2)


def test_task_arithmetic_formula(three, tmp_path):
    base, members = three[0], three[1:]
    card = fuse_folders(members, tmp_path / "ta", method="task_arithmetic", architecture="tiny", model_id="local/ta",
                        base=base, scale=0.3)
    assert card["scale"] == 0.3 and card["base_model"] == "local/m0"
    b, m1, m2, fused = (_weights(f) for f in (base[1], members[0][1], members[1][1], tmp_path / "ta"))
    for key in fused:
        torch.testing.assert_close(fused[key], b[key] + 0.3 * ((m1[key] - b[key]) + (m2[key] - b[key])),
                                   rtol=1e-5, atol=1e-6)


def test_classification_heads_are_left_out_and_prefixes_stripped(tmp_path):
    plain = tiny_bert(tmp_path / "plain", seed=0)
    headed = tiny_bert(tmp_path / "headed", seed=1, head=True)
    state = load_encoder_state("local/headed", headed)
    assert not any(k.startswith(("classifier", "bert.")) for k in state.tensors)
    assert set(state.tensors) == set(load_encoder_state("local/plain", plain).tensors)
    fuse_folders([("local/plain", plain), ("local/headed", headed)], tmp_path / "f", method="average",
                 architecture="tiny", model_id="local/f")
    assert "classifier.weight" not in _weights(tmp_path / "f")


def test_a_member_without_pooler_weights_fuses_and_the_unused_pooler_is_left_out(tmp_path):
    """The rebuilt paraphrase-MiniLM-L3-v2 has no pooler; its finetuned intermediates do. The engine mean-pools,
    so the pooler is no part of the start point, and the two fuse."""
    from safetensors.torch import save_file

    with_pooler = tiny_bert(tmp_path / "with", seed=0)
    without = tiny_bert(tmp_path / "without", seed=1)
    save_file({k: v for k, v in _weights(without).items() if not k.startswith("pooler.")},
              str(without / "model.safetensors"))
    fuse_folders([("local/with", with_pooler), ("local/without", without)], tmp_path / "f", method="average",
                 architecture="tiny", model_id="local/f")
    fused = _weights(tmp_path / "f")
    assert fused and not any(k.startswith("pooler.") for k in fused)
    torch.testing.assert_close(fused["embeddings.word_embeddings.weight"],
                               (_weights(with_pooler)["embeddings.word_embeddings.weight"]
                                + _weights(without)["embeddings.word_embeddings.weight"]) / 2)


def test_mismatched_shapes_are_refused_naming_both_models_and_the_tensor(tmp_path):
    a = tiny_bert(tmp_path / "a", seed=0, hidden=8)
    b = tiny_bert(tmp_path / "b", seed=1, hidden=12)
    with pytest.raises(FusionError) as err:
        fuse_folders([("local/a", a), ("local/b", b)], tmp_path / "f", method="average", architecture="tiny",
                     model_id="local/f")
    msg = str(err.value)
    assert "'local/a'" in msg and "'local/b'" in msg and "embeddings." in msg and "shape" in msg
    assert "\n" not in msg
    assert not (tmp_path / "f").exists()


def test_pickle_only_folders_are_refused(tmp_path):
    from transformers import BertModel

    a = tiny_bert(tmp_path / "a", seed=0)
    pickled = tmp_path / "pickled"
    BertModel.from_pretrained(str(a)).save_pretrained(str(pickled), safe_serialization=False)
    (pickled / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    for name in ("model.safetensors", "model.safetensors.index.json"):
        (pickled / name).unlink(missing_ok=True)
    torch.save(BertModel.from_pretrained(str(a)).state_dict(), pickled / "pytorch_model.bin")
    with pytest.raises(FusionError, match=r"'local/pickled' cannot be fused: .*pickled"):
        fuse_folders([("local/a", a), ("local/pickled", pickled)], tmp_path / "f", method="average",
                     architecture="tiny", model_id="local/f")


def test_bad_weights_and_recipes_are_one_line_errors(three, tmp_path):
    with pytest.raises(FusionError, match="2 weights for 3 models"):
        fuse_folders(three, tmp_path / "f", method="average", architecture="t", model_id="m", weights=[1, 2])
    with pytest.raises(FusionError, match="needs the members' pretrained base"):
        fuse_folders(three, tmp_path / "f", method="task_arithmetic", architecture="t", model_id="m", scale=0.5)
    assert FusionRecipe.parse("top3-avg") == FusionRecipe("top3-avg", 3, "average")
    assert FusionRecipe.parse("top2-ta0.5") == FusionRecipe("top2-ta0.5", 2, "task_arithmetic", 0.5)
    for bad in ("top1-avg", "top2", "avg", "top2-ta0", "top2-ta-1"):
        with pytest.raises(FusionError):
            FusionRecipe.parse(bad)


def test_rank_from_runs_orders_by_mean_gain_over_shared_targets():
    rows = [
        {"model_id": "base", "dataset_id": "t1", "score": 50.0, "status": "ok"},
        {"model_id": "base", "dataset_id": "t1", "score": 52.0, "status": "ok"},
        {"model_id": "base", "dataset_id": "t2", "score": 70.0, "status": "ok"},
        {"model_id": "a", "dataset_id": "t1", "score": 55.0, "status": "ok"},  # +4
        {"model_id": "a", "dataset_id": "t2", "score": 68.0, "status": "ok"},  # -2 -> mean +1
        {"model_id": "b", "dataset_id": "t1", "score": 49.0, "status": "ok"},  # -2
        {"model_id": "b", "dataset_id": "t2", "score": None, "status": "failed"},
        {"model_id": "c", "dataset_id": "t3", "score": 90.0, "status": "ok"},  # no shared target
        {"model_id": "other", "dataset_id": "t1", "score": 99.0, "status": "ok"},  # not a candidate
    ]
    ranked = rank_from_runs(rows, "base", ["a", "b", "c", "base"])
    assert [(r.model_id, r.mean_gain, r.n_targets) for r in ranked] == [("a", 1.0, 2), ("base", 0.0, 2), ("b", -2.0, 1)]


def test_the_warehouse_ranking_reads_the_leaderboard_through_the_shared_reader(tmp_path):
    """Fusion members come in the leaderboard's rank order (ranked rows only, candidates only); the pretrained
    model gets gain 0 where the leaderboard has no row for it; no leaderboard means no warehouse ranking."""
    import duckdb

    from startpoint.zoo.fusion import _warehouse_ranking

    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table other as select 1 as x")
    con.close()
    assert _warehouse_ranking(db, "arch", "base", ["a", "base"]) == []
    con = duckdb.connect(str(db))
    con.execute("""create table leaderboard as select * from (values
        ('arch', 'a', 1.5, 4, 2), ('arch', 'b', 2.0, 4, 1), ('arch', 'c', 0.5, 4, null), ('other', 'a', 9.0, 4, 1))
        t(architecture, model_id, mean_gain, n_targets, rank)""")
    con.close()
    ranked = _warehouse_ranking(db, "arch", "base", ["a", "b", "c", "base"])
    assert [(r.model_id, r.mean_gain, r.n_targets) for r in ranked] == [("b", 2.0, 4), ("a", 1.5, 4), ("base", 0.0, 4)]
