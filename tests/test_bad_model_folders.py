"""Hostile model folders (issue 20, "Model folders"): a config that would build a 100,000-layer model, a tokenizer
that emits ids past the embedding matrix, a config.json of random bytes or a JSON list, and an escape sequence as
the architecture in startpoint.json. Each is refused by `check_model_dir` (or the zoo listing) with one line that
names the file and the fix, before transformers builds or allocates anything."""

from __future__ import annotations

import json
import os
import re
import tracemalloc

import numpy as np
import pytest

from startpoint.keys import encode_key
from startpoint.zoo import ModelDirError, check_model_dir
from startpoint.zoo.loading import load_encoder

from model_folder_fixture import copy_model

ARCH = "all-MiniLM-L6-v2"


def edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


# --- each case: edits a copy of MiniLM, returns (file named, pattern of the one line) ---------------------------


def layers_100000(folder):
    edit_config(folder, num_hidden_layers=100_000)
    return "config.json", r"num_hidden_layers is 100000, beyond any real model \(at most 256\).*restore the model's own"


def layers_disagree(folder):
    edit_config(folder, num_hidden_layers=12)
    return "config.json", r"num_hidden_layers is 12 but model\.safetensors holds 6 layers \(0-5\).*restore"


def hidden_disagrees(folder):
    edit_config(folder, hidden_size=768)
    return "config.json", r"hidden_size is 768 but model\.safetensors has embeddings\.word_embeddings\.weight of shape \[30522, 384\]"


def vocab_disagrees(folder):
    edit_config(folder, vocab_size=80_000)
    return "config.json", r"vocab_size is 80000 but model\.safetensors has embeddings\.word_embeddings\.weight of shape \[30522, 384\]"


def intermediate_disagrees(folder):
    edit_config(folder, intermediate_size=65_536)
    return "config.json", r"intermediate_size is 65536 but .*intermediate\.dense\.weight of shape \[1536, 384\]"


def heads_do_not_divide(folder):
    edit_config(folder, num_attention_heads=7)
    return "config.json", r"hidden_size 384 is not a multiple of num_attention_heads 7"


def layers_as_text(folder):
    edit_config(folder, num_hidden_layers="6")
    return "config.json", r"num_hidden_layers is '6', not a positive whole number"


def vocab_huge(folder):
    edit_config(folder, vocab_size=10**12)
    return "config.json", r"vocab_size is 1000000000000, beyond any real model"


def _grow(folder, n: int, name: str):
    """The tokenizer file `name` with `n` entries, ids 0..n-1 (the MiniLM ones first)."""
    if name == "vocab.txt":
        lines = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
        lines += [f"extra{i}" for i in range(n - len(lines))]
        (folder / "vocab.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        vocab = data["model"]["vocab"]
        for i in range(n - len(vocab)):
            vocab[f"extra{i}"] = len(vocab)
        (folder / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")


def tokenizer_json_80k(folder):
    _grow(folder, 80_000, "tokenizer.json")
    return "tokenizer.json", (r"can emit token ids up to 79999 but the embedding matrix "
                              r"embeddings\.word_embeddings\.weight in model\.safetensors has 30522 rows.*IndexError")


def vocab_txt_80k(folder):
    (folder / "tokenizer.json").unlink()
    _grow(folder, 80_000, "vocab.txt")
    return "vocab.txt", r"can emit token ids up to 79999 but the embedding matrix .* has 30522 rows"


def added_token_past_embeddings(folder):
    data = json.loads((folder / "tokenizer_config.json").read_text())
    data["added_tokens_decoder"] = {"40000": {"content": "<extra>", "special": True}}
    (folder / "tokenizer_config.json").write_text(json.dumps(data))
    return "tokenizer_config.json", r"can emit token ids up to 40000 but .* has 30522 rows"


def config_random_bytes(folder):
    (folder / "config.json").write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    return "config.json", r"is not a text file \(byte 0x[0-9a-f]{2} at offset \d+ is not UTF-8\).*restore the model's own"


def config_json_list(folder):
    (folder / "config.json").write_text(json.dumps([{"model_type": "bert"}]))
    return "config.json", r"holds a JSON list, not an object of settings.*restore the model's own config\.json"


def config_json_string(folder):
    (folder / "config.json").write_text('"bert"')
    return "config.json", r"holds a JSON string"


def config_not_json(folder):
    (folder / "config.json").write_text("{model_type: bert\x1b[2J")
    return "config.json", r"is not valid JSON"


def card_escape_architecture(folder):
    (folder / "startpoint.json").write_text(json.dumps({"architecture": "\x1b[2J\x1b[31mbert", "base_model": "x"}))
    return "startpoint.json", r"architecture '\\x1b\[2J\\x1b\[31mbert' holds a control.*\(shown escaped\)"


def card_invisible_base_model(folder):
    (folder / "startpoint.json").write_text(json.dumps({"architecture": ARCH, "base_model": "bert\u200b"}))
    return "startpoint.json", r"base_model 'bert\\u200b' holds a control, invisible"


CONFIG_SHAPES = [layers_100000, layers_disagree, hidden_disagrees, vocab_disagrees, intermediate_disagrees,
                 heads_do_not_divide, layers_as_text, vocab_huge]  # fmt: skip
TOKENIZERS = [tokenizer_json_80k, vocab_txt_80k, added_token_past_embeddings]
CONFIG_FILES = [config_random_bytes, config_json_list, config_json_string, config_not_json]
CARDS = [card_escape_architecture, card_invisible_base_model]
ALL = CONFIG_SHAPES + TOKENIZERS + CONFIG_FILES + CARDS
IDS = lambda f: f.__name__  # noqa: E731


def one_clear_line(message: str, file: str, pattern: str) -> None:
    assert file in message and re.search(pattern, message), message
    assert "\n" not in message and message.isprintable(), repr(message)  # one line, nothing raw


@pytest.fixture
def never_built(monkeypatch):
    """transformers' builders, replaced so that reaching one fails the test: the check must refuse first."""
    import transformers

    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("transformers was asked to build the model: the folder check let it through")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", refuse)
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", refuse)
    return calls


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_check_model_dir_refuses_in_one_line_naming_the_file(base_dir, tmp_path, make):
    folder = copy_model(base_dir, tmp_path / "bad-model")
    file, pattern = make(folder)
    with pytest.raises(ModelDirError) as info:
        check_model_dir(folder)
    one_clear_line(str(info.value), str(folder / file), pattern)


@pytest.mark.parametrize("make", [layers_100000, vocab_huge, tokenizer_json_80k, config_random_bytes,
                                  config_json_list, card_escape_architecture], ids=IDS)  # fmt: skip
def test_load_encoder_refuses_before_anything_is_built(base_dir, tmp_path, make, never_built):
    folder = copy_model(base_dir, tmp_path / "bad-model")
    file, pattern = make(folder)
    tracemalloc.start()
    try:
        with pytest.raises(ModelDirError) as info:
            load_encoder(folder)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    one_clear_line(str(info.value), file, pattern)
    assert never_built == []  # transformers never saw the folder
    assert peak < 64 * 1024**2, f"the check itself allocated {peak / 1024**2:.0f} MB"


def test_a_tiny_safetensors_model_with_a_huge_config(tmp_path, base_dir, never_built):
    """A hand-made 2-layer model whose config claims 100,000 layers, and then 3: both refused from the header."""
    from safetensors.torch import save_file
    import torch

    folder = tmp_path / "tiny"
    folder.mkdir()
    hidden, vocab = 8, 200
    tensors = {"embeddings.word_embeddings.weight": torch.zeros(vocab, hidden)}
    for i in range(2):
        tensors[f"encoder.layer.{i}.intermediate.dense.weight"] = torch.zeros(16, hidden)
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "vocab.txt").write_text("\n".join(f"t{i}" for i in range(vocab)) + "\n")
    config = {"model_type": "bert", "hidden_size": hidden, "num_attention_heads": 2, "intermediate_size": 16,
              "vocab_size": vocab, "num_hidden_layers": 100_000}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelDirError) as info:
        load_encoder(folder)
    one_clear_line(str(info.value), str(folder / "config.json"), "num_hidden_layers is 100000, beyond any real model")
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    with pytest.raises(ModelDirError) as info:
        check_model_dir(folder)
    one_clear_line(str(info.value), "config.json", r"num_hidden_layers is 3 but model\.safetensors holds 2 layers")
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 2}))
    check_model_dir(folder)  # the same folder with an honest config passes
    (folder / "vocab.txt").write_text("\n".join(f"t{i}" for i in range(vocab + 1)) + "\n")
    with pytest.raises(ModelDirError) as info:
        check_model_dir(folder)
    one_clear_line(str(info.value), "vocab.txt", "can emit token ids up to 200 but the embedding matrix")
    assert never_built == []


def test_a_tokenizer_smaller_than_the_embeddings_passes(base_dir, tmp_path):
    """Fewer tokenizer ids than embedding rows is normal (padded embeddings): only ids past the matrix are refused."""
    folder = copy_model(base_dir, tmp_path / "ok-model")
    lines = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
    (folder / "vocab.txt").write_text("\n".join(lines[:30_000]) + "\n", encoding="utf-8")
    check_model_dir(folder)


@pytest.mark.parametrize("make", [layers_100000, tokenizer_json_80k, config_json_list], ids=IDS)
def test_finetune_records_a_failed_run_naming_the_file(base_dir, tmp_path, make):
    from test_model_folders import TINY, toy_dataset

    from startpoint.engine import finetune

    folder = copy_model(base_dir, tmp_path / "bad-model")
    file, pattern = make(folder)
    result = finetune(folder, toy_dataset(), TINY, seed=0, log=lambda m: None, cache_dir=tmp_path / "cache")
    assert result.status == "failed" and result.score is None
    one_clear_line(result.error, file, pattern)


@pytest.mark.parametrize("make", [config_random_bytes, config_json_list, layers_100000], ids=IDS)
def test_the_probe_refuses_naming_the_file_for_any_architecture(base_dir, tmp_path, make):
    """The probe asks the catalog's policy first (which reads config.json too), then the loader's check; an
    architecture the catalog does not describe (where a 100,000-layer config got through before) meets only the
    loader's check."""
    from startpoint.probes.run import check_safe

    folder = copy_model(base_dir, tmp_path / "bad-model")
    file, _ = make(folder)
    with pytest.raises(ValueError) as info:
        check_safe("local/bad-model", "an-architecture-the-catalog-lacks", folder)
    message = str(info.value)
    assert str(folder / file) in message and "\n" not in message, message


def test_an_escape_sequence_architecture_is_never_listed(base_dir, tmp_path, monkeypatch):
    from startpoint.probes.candidates import scan_zoo
    from startpoint.zoo import architecture_of

    models = tmp_path / "models"
    monkeypatch.setenv("STARTPOINT_HOME", str(tmp_path))
    good, bad = "local/good-model", "local/bad-model"
    for model_id, arch in ((good, ARCH), (bad, "\x1b]0;owned\x07\x1b[31mbert")):
        folder = copy_model(base_dir, models / encode_key(model_id))
        (folder / "startpoint.json").write_text(json.dumps({"architecture": arch, "base_model": "x"}))
    found, skipped = scan_zoo(models)
    ids = [c.model_id for c in found]
    assert good in ids and bad not in ids
    assert all(c.architecture.isprintable() for c in found)
    (reason,) = [s.reason for s in skipped if s.folder.endswith(encode_key(bad))]
    one_clear_line(reason, os.path.join(encode_key(bad), "startpoint.json"), r"architecture '\\x1b\]0;owned\\x07")
    with pytest.raises(ModelDirError, match="holds a control"):
        architecture_of(bad, models)


@pytest.mark.parametrize("make", [config_random_bytes, config_json_list], ids=IDS)
def test_the_catalog_policy_names_a_broken_config(base_dir, tmp_path, make):
    """A known architecture: the catalog's policy (also used on Hub downloads) reads config.json first."""
    from startpoint.probes.run import check_safe

    folder = copy_model(base_dir, tmp_path / "bad-model")
    file, _ = make(folder)
    with pytest.raises(ValueError) as info:
        check_safe("local/bad-model", ARCH, folder)
    assert str(folder / file) in str(info.value) and "\n" not in str(info.value), str(info.value)
