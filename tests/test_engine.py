"""Engine: recipe identity, safe model folders, batching, and bad input recorded as failed runs."""

import json
import re
import shutil

import numpy as np
import polars as pl
import pytest

from startpoint.data import LabelledDataset
from startpoint.engine import Recipe, finetune
from startpoint.engine.batching import encode, length_grouped_batches
from startpoint.zoo import ModelDirError, check_model_dir

TINY = Recipe(train_cap=32, epochs=1, batch_size=16, max_length=16, eval_cap=16, test_cap=16, patience=0)
GOOD = ["great", "lovely", "excellent", "wonderful", "tasty", "superb"]
BAD = ["awful", "terrible", "bland", "horrible", "stale", "disgusting"]


def reviews(n: int, labels=(0, 1), seed: int = 0) -> pl.DataFrame:
    """Short reviews whose sentiment word decides the label (0 = negative, 1 = positive)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        word = rng.choice(BAD if label == 0 else GOOD)
        rows.append({"text": f"the soup was {word} and the bread {rng.choice(['too', 'also', 'quite'])} {word}",
                     "text_pair": None, "label": int(label)})
    return pl.DataFrame(rows, schema={"text": pl.String, "text_pair": pl.String, "label": pl.Int64})


def dataset(train, test, validation=None, names=("negative", "positive")) -> LabelledDataset:
    return LabelledDataset(dataset_id="toy_reviews", source="test", label_names=list(names), train=train,
                           validation=validation if validation is not None else test.head(0), test=test)


def test_recipe_hash_is_stable_and_sensitive():
    assert Recipe().recipe_hash == Recipe().recipe_hash
    assert Recipe(lr=2e-4).recipe_hash != Recipe().recipe_hash
    assert Recipe.from_json(Recipe(epochs=3).to_json()) == Recipe(epochs=3)
    with pytest.raises(ValueError, match="unknown field"):
        Recipe.from_json(json.dumps({"lr": 1e-4, "learning_rate": 1}))
    with pytest.raises(ValueError, match="lr must be > 0"):
        Recipe(lr=0)


def test_check_model_dir_refuses_pickle_and_missing_weights(tmp_path, base_dir):
    check_model_dir(base_dir)
    folder = tmp_path / "m"
    folder.mkdir()
    with pytest.raises(ModelDirError, match="no config.json"):
        check_model_dir(folder)
    shutil.copy(base_dir / "config.json", folder / "config.json")
    with pytest.raises(ModelDirError, match="no weights"):
        check_model_dir(folder)
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(ModelDirError, match="pickled"):
        check_model_dir(folder)
    shutil.copy(base_dir / "tokenizer.json", folder / "tokenizer.json")  # a folder needs its tokenizer too
    check_model_dir(folder, allow_pickle=True)  # an explicit opt-in is honoured


def test_length_grouped_batches_cover_every_example_once_with_little_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 120, size=1000)
    batches = length_grouped_batches(lengths, 32, np.random.default_rng(1))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    naive = sum(len(b) * lengths[b].max() for b in np.array_split(rng.permutation(1000), len(batches)))
    assert padded < 0.7 * naive


def test_tokenization_is_cached_on_disk(tmp_path, base_dir):
    from startpoint.zoo import load_tokenizer

    tok = load_tokenizer(base_dir)
    texts = ["a short one", "a somewhat longer sentence to tokenize"]
    first = encode(tok, texts, None, 16, cache_dir=tmp_path, dataset_id="toy")
    files = list((tmp_path / "tokens").glob("toy-*.pkl"))
    assert len(files) == 1
    second = encode(tok, texts, None, 16, cache_dir=tmp_path, dataset_id="toy")
    assert [x.tolist() for x in second.input_ids] == [x.tolist() for x in first.input_ids]
    encode(tok, texts, None, 8, cache_dir=tmp_path, dataset_id="toy")  # another max_length, another entry
    assert len(list((tmp_path / "tokens").glob("toy-*.pkl"))) == 2


def test_finetune_learns_a_toy_task_and_reports_speed(tmp_path, base_dir):
    ds = dataset(reviews(64), reviews(32, seed=1), validation=reviews(16, seed=2))
    recipe = Recipe(train_cap=64, epochs=2, batch_size=16, max_length=24, eval_cap=16, test_cap=32, lr=2e-4)
    logs = []
    result = finetune(base_dir, ds, recipe, seed=0, log=logs.append, cache_dir=tmp_path)
    assert result.status == "ok", result.error
    assert result.score >= 90.0  # the sentiment word alone decides the label
    assert result.device == "cpu" or result.device.startswith("cuda")
    assert result.examples_per_second > 0 and result.train_seconds > 0
    assert len(result.validation_scores) >= 1
    assert any("test accuracy" in m for m in logs)


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: dataset(reviews(0), reviews(8)), "train split is empty"),
        (lambda: dataset(reviews(16, labels=(1,)), reviews(8)), "single class"),
        (lambda: dataset(reviews(16), reviews(9, labels=(0, 1, 2)), names=("neg", "pos", "mixed")),
         r"test labels \['mixed'\] never occur"),
        (lambda: dataset(reviews(16).drop("label"), reviews(8)), "no 'label' column"),
    ],
    ids=["empty", "one-class", "unseen-test-label", "missing-label-column"],
)
def test_bad_datasets_fail_with_a_clear_error(base_dir, make, expected):
    result = finetune(base_dir, make(), TINY, seed=0, log=lambda m: None)
    assert result.status == "failed"
    assert result.score is None
    assert result.error and re.search(expected, result.error), result.error
    assert "toy_reviews" in result.error


def test_missing_weights_fail_naming_the_folder(tmp_path, base_dir):
    folder = tmp_path / "broken-model"
    shutil.copytree(base_dir, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    result = finetune(folder, dataset(reviews(16), reviews(8)), TINY, seed=0, log=lambda m: None)
    assert result.status == "failed" and result.score is None
    assert str(folder) in result.error and "no weights" in result.error


def test_nan_loss_is_a_failed_run(tmp_path, base_dir):
    """A checkpoint with a NaN weight makes the loss NaN at the first step: failed, never scored."""
    import torch

    from startpoint.zoo import load_encoder, load_tokenizer

    encoder = load_encoder(base_dir)
    with torch.no_grad():
        encoder.embeddings.LayerNorm.weight[0] = float("nan")
    folder = tmp_path / "nan-model"
    encoder.save_pretrained(str(folder))
    load_tokenizer(base_dir).save_pretrained(str(folder))
    result = finetune(folder, dataset(reviews(16), reviews(8)), TINY, seed=0, log=lambda m: None)
    assert result.status == "failed" and result.score is None
    assert "loss became nan" in result.error and "step 1" in result.error


def test_default_grid_pairs_every_model_with_every_target_except_its_own_source():
    from startpoint.grid import DEFAULT_GRID, Grid
    from startpoint.zoo import architecture_of

    bases = DEFAULT_GRID.base_models
    assert len(bases) == 2 and len({architecture_of(b) for b in bases}) == 2  # two local architectures
    assert len(DEFAULT_GRID.models) == len(bases) * (1 + len(DEFAULT_GRID.sources))
    assert len(DEFAULT_GRID.pairs()) == len(DEFAULT_GRID.models) * len(DEFAULT_GRID.targets)
    for base in bases:  # each base has its own intermediate models, named after its architecture
        own = DEFAULT_GRID.models_of(base)
        assert own[0] == base and all(m.startswith(f"local/{architecture_of(base)}-") for m in own[1:])
    grid = Grid(name="t", sources=("a", "b"), targets=("a", "c"), seeds=(0,))
    assert ("local/all-MiniLM-L6-v2-a", "a") not in grid.pairs()
    assert len(grid.pairs()) == 3 * 2 - 1
    two = Grid(name="t2", sources=("a", "b"), targets=("a", "c"), seeds=(0,), base_models=bases)
    assert ("local/paraphrase-MiniLM-L3-v2-a", "a") not in two.pairs() and len(two.pairs()) == 2 * (3 * 2 - 1)
    with pytest.raises(ValueError, match="distinct"):
        Grid(name="t3", sources=(), targets=(), seeds=(), base_models=(bases[0], bases[0]))


def test_a_model_folder_with_its_own_code_is_refused(tmp_path):
    """The load-time check applies the catalog's remote-code rule (startpoint.hub.policy)."""
    import json

    from startpoint.zoo.loading import ModelDirError, check_model_dir

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "auto_map": {"AutoModel": "x.Model"}}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelDirError, match="ships its own code"):
        check_model_dir(tmp_path)
