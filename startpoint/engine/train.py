"""`finetune`: train a fresh head plus the encoder on one dataset, score it on the test split.

Bad input (empty split, one class, unseen test labels, missing column) and a loss that turns NaN come back as a
result with status 'failed' and an error naming the thing, never as a score. So does a model folder that
`startpoint.zoo.loading` refuses (no tokenizer, a tiny vocabulary, missing, truncated or fake safetensors, weights
that do not fit the config, a load error) or whose tokenizer emits ids the encoder has no embedding for.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from startpoint.engine import batching
from startpoint.engine.device import (
    autocast,
    autocast_dtype,
    configure_threads,
    pick_device,
)
from startpoint.engine.recipe import Recipe
from startpoint.zoo.loading import ModelDirError, check_model_dir

_log = logging.getLogger(__name__)
PROGRESS_EVERY_SECONDS = 10.0


class FinetuneError(ValueError):
    """A run that cannot produce a valid score; the message says what and what to do."""


@dataclass
class FinetuneResult:
    status: str  # ok | failed
    dataset_id: str
    metric: str
    seed: int
    score: float | None = None  # percent, on the test split
    error: str | None = None
    device: str | None = None
    train_seconds: float | None = None
    examples_per_second: float | None = None
    n_train: int = 0
    n_test: int = 0
    epochs_run: int = 0
    validation_scores: list[float] = field(default_factory=list)
    train_tokens: int = 0  # non-padding tokens seen in training (for FLOP estimates)

    def as_dict(self) -> dict:
        return asdict(self)


def _column(frame: pl.DataFrame, name: str, split: str, dataset_id: str) -> pl.Series:
    if name not in frame.columns:
        raise FinetuneError(
            f"{dataset_id}: the {split} split has no {name!r} column (columns: {list(frame.columns)}); "
            "the datasets layer must provide text, text_pair and label"
        )
    return frame[name]


def _missing(values: pl.Series) -> pl.Series:
    """Null cells, and NaN ones in a float column."""
    return values.is_null() | values.is_nan() if values.dtype.is_float() else values.is_null()


def _texts(frame: pl.DataFrame, split: str, dataset_id: str) -> tuple[list[str], list[str] | None]:
    text = _column(frame, "text", split, dataset_id)
    bad = _missing(text) if text.dtype == pl.String else pl.Series([not isinstance(t, str) for t in text.to_list()])
    if bad.any():
        row = int(bad.arg_true()[0])
        raise FinetuneError(f"{dataset_id}: {split} row {row} has no text ({text[row]!r})")
    pairs = frame["text_pair"] if "text_pair" in frame.columns else None
    if pairs is not None and pairs.is_null().all():
        pairs = None
    if pairs is not None:
        pairs = pairs.cast(pl.String).fill_null("").to_list()
    return text.to_list(), pairs


def _check_labels(dataset, metric: str) -> int:
    """Number of model outputs; raises FinetuneError for label sets no classifier can learn or be scored on."""
    did = dataset.dataset_id
    splits = {"train": dataset.train, "test": dataset.test}
    for split, frame in splits.items():
        if frame is None or len(frame) == 0:
            raise FinetuneError(f"{did}: the {split} split is empty; check the dataset's source and caps")
        labels = _column(frame, "label", split, did)
        if _missing(labels).any():
            row = int(_missing(labels).arg_true()[0])
            raise FinetuneError(f"{did}: {split} row {row} has no label")
    if metric == "spearman":
        return 1
    if metric != "accuracy":
        raise FinetuneError(f"{did}: metric {metric!r} is not supported (accuracy for classes, spearman for scores)")
    train_labels = set(dataset.train["label"].cast(pl.Int64).to_list())
    if len(train_labels) < 2:
        raise FinetuneError(
            f"{did}: the train split has a single class ({sorted(train_labels)}); a classifier needs at least two"
        )
    unseen = sorted(set(dataset.test["label"].cast(pl.Int64).to_list()) - train_labels)
    if unseen:
        names = getattr(dataset, "label_names", None) or []
        shown = [names[i] if 0 <= i < len(names) else i for i in unseen]
        raise FinetuneError(f"{did}: test labels {shown} never occur in the train split; re-split the data")
    n = max(len(getattr(dataset, "label_names", None) or []), max(train_labels | set(dataset.test["label"].cast(pl.Int64).to_list())) + 1)
    if min(train_labels) < 0:
        raise FinetuneError(f"{did}: labels must be integers ≥ 0, found {min(train_labels)}")
    return int(n)


def _score(metric: str, outputs: np.ndarray, labels: np.ndarray) -> float:
    if metric == "spearman":
        from scipy.stats import spearmanr

        rho = spearmanr(outputs.reshape(-1), labels).statistic
        return float(rho * 100) if np.isfinite(rho) else 0.0
    return float((outputs.argmax(-1) == labels).mean() * 100)


# Evaluation batch sizes. On CPU a batch padded to its longest member wastes compute on the others, and large
# batches gain nothing there (benchmarks/finetune_phases.py measures 32 against 128). A GPU wants big batches.
EVAL_BATCH = {"cpu": 32, "cuda": 128}


def _predict(model, encoded, pad_id, device, dtype, batch_size: int | None = None) -> np.ndarray:
    import torch

    batch_size = batch_size or EVAL_BATCH.get(str(device).split(":")[0], 128)
    model.eval()
    out = np.zeros((len(encoded), model.head.out_features), dtype=np.float32)
    with torch.inference_mode(), autocast(device, dtype):
        for idx, batch in batching.iterate(encoded, batching.sorted_batches(encoded.lengths, batch_size), pad_id, device):
            out[idx] = model(**batch).float().cpu().numpy()
    return out


def _optimizer(model, recipe: Recipe):
    import torch

    decay, no_decay, head = [], [], []
    for name, p in model.named_parameters():
        if name.startswith("head."):
            head.append(p)
        elif p.ndim < 2:  # biases and LayerNorm weights are not decayed
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "weight_decay": recipe.weight_decay, "lr": recipe.lr},
        {"params": no_decay, "weight_decay": 0.0, "lr": recipe.lr},
        {"params": head, "weight_decay": 0.0, "lr": recipe.lr * recipe.head_lr_multiplier},
    ]
    # The fused kernel updates each parameter in one pass (CPU and CUDA); the embedding matrix is half of
    # MiniLM's weights, so the optimizer step is a large share of a short-sequence training step.
    try:
        return torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8, fused=True)
    except (RuntimeError, TypeError):  # a device or torch build without the fused kernel
        return torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8, foreach=True)


def _schedule(optimizer, total_steps: int, warmup_ratio: float):
    import torch

    warmup = max(1, int(total_steps * warmup_ratio)) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _cap(frame: pl.DataFrame, cap: int | None) -> pl.DataFrame:
    # The same subset for every seed (seeds vary initialisation and order, not the data): `cap` rows drawn
    # without replacement by RandomState(0), kept in frame order (the rows every recorded score was trained on).
    if cap is None or len(frame) <= cap:
        return frame
    return frame[np.sort(np.random.RandomState(0).choice(len(frame), cap, replace=False))]


def _seed_everything(seed: int) -> np.random.Generator:
    import random

    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def save_encoder(model, tokenizer, dest: Path, card: dict) -> None:
    """Write encoder weights (safetensors) + tokenizer + card to `dest` atomically (temp folder, then rename)."""
    import json

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Unfinished saves live in `.partial/`, where nothing that lists the models folder looks.
    tmp = dest.parent / ".partial" / f"{dest.name}.{uuid.uuid4().hex}"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    (tmp / "startpoint.json").write_text(json.dumps(card, indent=2, sort_keys=True))
    check_model_dir(tmp)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)


def finetune(
    model_dir: str | Path,
    dataset,
    recipe: Recipe | None = None,
    seed: int = 0,
    device: str | None = None,
    log: Callable[[str], None] | None = None,
    *,
    cache_dir: Path | None = None,
    save_to: Path | None = None,
    model_card: dict | None = None,
    allow_pickle: bool = False,
    on_examples: Callable[[int], None] | None = None,
) -> FinetuneResult:
    """Finetune the encoder in `model_dir` on `dataset` (a LabelledDataset) and score it on its test split.

    `save_to`: also save the finetuned encoder and tokenizer there (how intermediate models are made).
    `on_examples(n)`: called after each training step with its batch size (a progress display's live rate).
    """
    recipe = recipe or Recipe()
    log = log or _log.info
    metric = getattr(dataset, "metric", "accuracy") or "accuracy"
    result = FinetuneResult(status="failed", dataset_id=dataset.dataset_id, metric=metric, seed=seed)
    try:
        _train(_Run(Path(model_dir), dataset, recipe, seed, log, cache_dir, device, save_to, model_card, allow_pickle,
                    on_examples), result)
        result.status = "ok"
    except (FinetuneError, ModelDirError) as exc:
        result.status, result.score, result.error = "failed", None, str(exc)
        log(f"run failed: {exc}")
    return result


def _check_token_ids(model_dir, encoder, encoded) -> None:
    """A tokenizer that emits ids past the encoder's embedding table belongs to another model: refuse it here
    rather than crash inside the first forward pass."""
    rows = encoder.get_input_embeddings().num_embeddings
    top = max((int(x.max()) for enc in encoded if enc is not None for x in enc.input_ids if len(x)), default=-1)
    if top >= rows:
        raise ModelDirError(
            f"model folder {model_dir}: the tokenizer produces token id {top} but the encoder's embedding table has "
            f"{rows} rows; the tokenizer files belong to another model: save the model's own tokenizer next to it"
        )


@dataclass
class _Prepared:
    """Everything a run trains and scores with, built once by :func:`_prepare`."""

    model: Any
    tokenizer: Any
    device: str
    dtype: Any
    pad_id: int
    n_out: int
    train_enc: Any
    train_y: Any
    test_enc: Any
    val_enc: Any
    val_y: np.ndarray | None
    rng: np.random.Generator


@dataclass
class _Run:
    """The options of one run, passed whole instead of one argument each."""

    model_dir: Path
    dataset: Any
    recipe: Recipe
    seed: int
    log: Callable[[str], None]
    cache_dir: Path | None = None
    device: str | None = None
    save_to: Path | None = None
    model_card: dict | None = None
    allow_pickle: bool = False
    on_examples: Callable[[int], None] | None = None


def _train(run: _Run, result: FinetuneResult) -> None:
    """Prepare, train, score on the test split, and save when asked."""
    prep = _prepare(run, result)
    seen, train_seconds = _train_epochs(run, prep, result)
    result.train_seconds = round(train_seconds, 3)
    result.examples_per_second = round(seen / train_seconds, 2) if train_seconds > 0 else None
    test_y = run.dataset.test["label"].to_numpy()
    result.score = _score(result.metric, _predict(prep.model, prep.test_enc, prep.pad_id, prep.device, prep.dtype), test_y)
    run.log(f"{run.dataset.dataset_id}: test {result.metric} {result.score:.2f} after {train_seconds:.1f} s "
            f"({result.examples_per_second} examples/s)")
    if run.save_to is not None:
        save_encoder(prep.model, prep.tokenizer, Path(run.save_to), {**(run.model_card or {}), "test_score": result.score})


def _prepare(run: _Run, result: FinetuneResult) -> _Prepared:
    """Check the labels and the model folder, tokenize the capped splits, load the encoder under a new head."""
    import torch

    from startpoint.engine.model import EncoderClassifier
    from startpoint.zoo.loading import load_encoder, load_tokenizer

    dataset, recipe, did = run.dataset, run.recipe, run.dataset.dataset_id
    n_out = _check_labels(dataset, result.metric)
    check_model_dir(run.model_dir, allow_pickle=run.allow_pickle)
    device = pick_device(run.device)
    result.device = device
    if device == "cpu":
        configure_threads()

    train = _cap(dataset.train, recipe.train_cap)
    validation = dataset.validation if dataset.validation is not None and len(dataset.validation) else None
    if validation is not None:
        validation = _cap(validation, recipe.eval_cap)
    tokenizer = load_tokenizer(run.model_dir)

    def enc(frame, split):
        texts, pairs = _texts(frame, split, did)
        return batching.encode(tokenizer, texts, pairs, recipe.max_length, cache_dir=run.cache_dir,
                               dataset_id=f"{did}.{split}")

    train_enc, test_enc = enc(train, "train"), enc(dataset.test, "test")
    val_enc = enc(validation, "validation") if validation is not None else None
    label_dtype = torch.float32 if n_out == 1 else torch.long
    result.n_train, result.n_test = len(train), len(dataset.test)
    rng = _seed_everything(run.seed)
    encoder = load_encoder(run.model_dir, allow_pickle=run.allow_pickle)
    _check_token_ids(run.model_dir, encoder, [train_enc, test_enc, val_enc])
    return _Prepared(
        model=EncoderClassifier(encoder, n_out).to(device), tokenizer=tokenizer, device=device,
        dtype=autocast_dtype(device), pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
        n_out=n_out, train_enc=train_enc, train_y=torch.tensor(train["label"].to_numpy(), dtype=label_dtype),
        test_enc=test_enc, val_enc=val_enc, val_y=validation["label"].to_numpy() if validation is not None else None,
        rng=rng,
    )


def _train_epochs(run: _Run, prep: _Prepared, result: FinetuneResult) -> tuple[int, float]:
    """The training loop: length-grouped batches, a validation check per epoch where it can pay, early stopping,
    the best epoch's weights restored. Returns (examples seen, training seconds)."""
    import torch

    recipe, did, log = run.recipe, run.dataset.dataset_id, run.log
    model, device, dtype, n_out = prep.model, prep.device, prep.dtype, prep.n_out
    optimizer = _optimizer(model, recipe)
    total_steps = math.ceil(len(prep.train_y) / recipe.batch_size) * recipe.epochs
    scheduler = _schedule(optimizer, total_steps, recipe.warmup_ratio)
    loss_fn = torch.nn.MSELoss() if n_out == 1 else torch.nn.CrossEntropyLoss()
    lengths = prep.train_enc.lengths

    best_score, best_state, since_best = -math.inf, None, 0
    seen, step, train_seconds = 0, 0, 0.0
    last_report = time.perf_counter()
    log(f"finetuning on {did}: {len(prep.train_y)} train examples, {total_steps} steps, device {device}, "
        f"autocast {dtype or 'off'}, recipe {recipe.recipe_hash}")
    bad_step = torch.tensor(-1, device=device)
    bad_loss = torch.tensor(0.0, device=device)
    for epoch in range(recipe.epochs):
        model.train()
        started = time.perf_counter()
        for idx, batch in batching.iterate(
            prep.train_enc, batching.length_grouped_batches(lengths, recipe.batch_size, prep.rng), prep.pad_id, device
        ):
            with autocast(device, dtype):
                logits = model(**batch)
            y = prep.train_y[idx].to(device)
            loss = loss_fn(logits.float().squeeze(-1) if n_out == 1 else logits.float(), y)
            # The first non-finite loss is noted on the device and read once per epoch: a per-step check would
            # make the host wait for the accelerator at every step.
            bad = ~torch.isfinite(loss.detach()) & (bad_step < 0)
            bad_step = torch.where(bad, step + 1, bad_step)
            bad_loss = torch.where(bad, loss.detach(), bad_loss)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            seen += len(idx)
            result.train_tokens += int(lengths[idx].sum())
            if run.on_examples is not None:
                run.on_examples(len(idx))
            now = time.perf_counter()
            if now - last_report >= PROGRESS_EVERY_SECONDS:
                elapsed = train_seconds + now - started
                rate = seen / elapsed
                left = (total_steps - step) * recipe.batch_size / rate
                log(f"{did} epoch {epoch + 1}/{recipe.epochs} step {step}/{total_steps}: loss {loss.item():.3f}, "
                    f"{rate:.0f} examples/s, ~{left:.0f} s left")
                last_report = now
        if int(bad_step) > 0:
            raise FinetuneError(
                f"{did}: the training loss became {float(bad_loss)} at step {int(bad_step)} (epoch {epoch + 1}); "
                f"lower the learning rate (now {recipe.lr}) or check the labels"
            )
        train_seconds += time.perf_counter() - started
        result.epochs_run = epoch + 1
        last = epoch + 1 == recipe.epochs
        if prep.val_enc is None or (last and best_state is None and not result.validation_scores):
            continue  # a validation check only pays when an earlier epoch's weights could be restored
        val_score = _score(result.metric, _predict(model, prep.val_enc, prep.pad_id, device, dtype), prep.val_y)
        result.validation_scores.append(round(val_score, 3))
        log(f"{did} epoch {epoch + 1}: validation {result.metric} {val_score:.2f}")
        if val_score > best_score:
            best_score, since_best = val_score, 0
            if epoch + 1 < recipe.epochs:
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                best_state = None  # the current weights are the best
        else:
            since_best += 1
            if recipe.patience and since_best >= recipe.patience:
                log(f"{did}: early stop after epoch {epoch + 1} (no validation gain for {since_best} check(s))")
                break
    if best_state is not None and result.validation_scores and result.validation_scores[-1] < best_score:
        model.load_state_dict(best_state)
    return seen, train_seconds
