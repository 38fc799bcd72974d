"""Frozen-encoder features (mean-pooled last hidden states), computed once per model x dataset x settings.

Both probes (linear head, LogME) read the same features, so the encoder runs once. The cache key hashes the
model's config and weight files (name, size, mtime), the dataset id, the split caps and the featurisation
settings; a changed model or setting gets new features, an unchanged one reuses them across runs.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

FEATURES_VERSION = 2  # bump when the featurisation code changes meaning (2: max_length is per text)


@dataclass(frozen=True)
class FeatureSettings:
    # Tokens read from the opening of each text (a pair gets twice as many): the encoder pass is the probe's
    # whole cost and grows with tokens. At 256 x 16, LogME ranks 12 zoo models like a 1,024 x 64 probe
    # (Spearman 0.86; benchmarks/probe_fidelity.py, docs/hub_and_probes.md).
    max_length: int = 16
    batch_size: int = 64
    pooling: str = "mean"


@dataclass
class Features:
    x: np.ndarray  # (n, hidden) features of the proxy dataset's train split
    y: np.ndarray  # (n,) label ids
    features_hash: str
    seconds: float  # the encoder pass when the features were computed, model load excluded (kept from the cache)
    cached: bool


def model_fingerprint(model_dir: Path) -> dict:
    files = {}
    for p in sorted(model_dir.iterdir()):
        if p.is_file() and (p.suffix in {".safetensors", ".bin"} or p.name == "config.json"):
            st = p.stat()
            files[p.name] = [st.st_size, st.st_mtime_ns]
    return files


def features_hash(model_id: str, model_dir: Path, dataset_id: str, caps: dict, settings: FeatureSettings) -> str:
    key = {
        "model_id": model_id,
        "model_files": model_fingerprint(model_dir),
        "dataset_id": dataset_id,
        "caps": caps,
        "settings": asdict(settings),
        "version": FEATURES_VERSION,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def load_for_features(model_dir: Path, device: str | None = None) -> tuple:
    """(tokenizer, encoder in eval mode, device) of a model folder, through the zoo's safe loaders."""
    from startpoint.engine.device import configure_threads, pick_device
    from startpoint.zoo import load_encoder, load_tokenizer

    configure_threads()
    device = pick_device(device)
    return load_tokenizer(model_dir), load_encoder(model_dir).to(device).eval(), device


def encode(model_dir: Path, frame: pl.DataFrame, settings: FeatureSettings, device: str | None = None) -> np.ndarray:
    """Mean-pooled features (n, hidden) of a frame with `text` and optional `text_pair` columns."""
    return encode_loaded(*load_for_features(model_dir, device), frame, settings)


def encode_loaded(tokenizer, model, device: str, frame: pl.DataFrame, settings: FeatureSettings) -> np.ndarray:
    """`encode` with the model already loaded: the encoder pass alone."""
    import torch

    texts = frame["text"].to_list()
    pairs = frame["text_pair"].to_list() if "text_pair" in frame.columns and frame["text_pair"].is_not_null().any() else None
    # Sorting by length keeps padding (and CPU time) low; rows are put back in order afterwards.
    order = np.argsort([len(t) for t in texts], kind="stable")
    max_length = settings.max_length * (2 if pairs else 1)
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), settings.batch_size):
            idx = order[start : start + settings.batch_size]
            batch = tokenizer(
                [texts[i] for i in idx],
                [pairs[i] for i in idx] if pairs else None,
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            ).to(device)
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out[idx] = pooled.float().cpu().numpy()
    return out


def load_or_compute(
    model_id: str, model_dir: Path, dataset, caps: dict, settings: FeatureSettings, cache_dir: Path
) -> Features:
    """Features of the dataset's train split for one model, from the cache when present.

    Only the train split is encoded: both probes score on it (LogME directly, the linear head by
    cross-validation), which keeps the encoder pass, the probe's main cost, as small as possible."""
    digest = features_hash(model_id, model_dir, dataset.dataset_id, caps, settings)
    path = Path(cache_dir) / "probe_features" / f"{digest}.npz"
    if path.is_file():
        with np.load(path) as z:
            return Features(z["x"], z["y"], digest, float(z["seconds"]), True)
    # The clock covers the encoder pass only: loading the model (and, once per process, importing torch and
    # transformers) is left out, as a finetune's train_seconds leaves it out, so the two compare by SQL.
    loaded = load_for_features(model_dir)
    start = time.perf_counter()
    x = encode_loaded(*loaded, dataset.train, settings)
    seconds = time.perf_counter() - start
    y = dataset.train["label"].to_numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, x=x, y=y, seconds=seconds)
    tmp.rename(path)
    return Features(x, y, digest, seconds, False)
