"""Tokenization cached on disk, length-grouped batches and dynamic padding: the engine's CPU speed.

Padding every batch to a fixed 128 tokens wastes most of the compute on short texts; grouping examples of
similar length and padding each batch only to its longest member removes that waste.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Encoded:
    """Token ids (and segment ids, for tokenizers that use them) of one split, unpadded."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray] | None

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))

    def subset(self, indices: Sequence[int]) -> Encoded:
        tt = [self.token_type_ids[i] for i in indices] if self.token_type_ids is not None else None
        return Encoded([self.input_ids[i] for i in indices], tt)


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the tokenizer's full definition, so a saved copy of the same tokenizer shares the cache."""
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # Truncation and padding settings change with every call; they are not part of the tokenizer's identity.
        definition = json.loads(backend.to_str())
        definition.pop("truncation", None)
        definition.pop("padding", None)
        h.update(json.dumps(definition, sort_keys=True).encode())
    else:
        h.update(repr(sorted(tokenizer.get_vocab().items())).encode())
    return h.hexdigest()[:16]


def _texts_fingerprint(texts: Sequence[str], pairs: Sequence[str] | None) -> str:
    h = hashlib.sha256()
    for i, text in enumerate(texts):
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
        if pairs is not None:
            h.update(str(pairs[i]).encode("utf-8", "surrogatepass"))
        h.update(b"\x01")
    return h.hexdigest()[:16]


def encode(
    tokenizer,
    texts: Sequence[str],
    pairs: Sequence[str] | None,
    max_length: int,
    *,
    cache_dir: Path | None = None,
    dataset_id: str = "",
) -> Encoded:
    """Tokenize without padding; reuse `<cache_dir>/tokens/<key>.pkl` when this exact input was seen before."""
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(
            "|".join(
                [dataset_id, tokenizer_fingerprint(tokenizer), str(max_length), _texts_fingerprint(texts, pairs)]
            ).encode()
        ).hexdigest()[:24]
        safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in dataset_id) or "data"
        path = Path(cache_dir) / "tokens" / f"{safe_id}-{key}.pkl"
        if path.is_file():
            try:
                with path.open("rb") as fh:
                    return pickle.load(fh)
            except (EOFError, pickle.UnpicklingError):
                path.unlink(missing_ok=True)  # a damaged cache file is rebuilt, never trusted
    out = tokenizer(
        list(texts),
        list(pairs) if pairs is not None else None,
        truncation=True,
        max_length=max_length,
        padding=False,
    )
    ids = [np.asarray(x, dtype=np.int32) for x in out["input_ids"]]
    tt = [np.asarray(x, dtype=np.int8) for x in out["token_type_ids"]] if "token_type_ids" in out else None
    encoded = Encoded(ids, tt)
    if path is not None:
        # Written under a temporary name and renamed, so concurrent runs never read half a file.
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        with tmp.open("wb") as fh:
            pickle.dump(encoded, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    return encoded


def length_grouped_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, group_batches: int = 50
) -> list[np.ndarray]:
    """Shuffled batches of similar-length examples.

    Examples are shuffled, cut into groups of `group_batches` batches, sorted by length inside each group
    and cut into batches; the batch order is shuffled again. Randomness stays, padding almost disappears.
    """
    order = rng.permutation(len(lengths))
    batches: list[np.ndarray] = []
    group = batch_size * group_batches
    for start in range(0, len(order), group):
        chunk = order[start : start + group]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Batches for evaluation: longest first, so memory peaks early and padding is minimal."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(encoded: Encoded, indices: np.ndarray, pad_id: int, device) -> dict:
    """Pad one batch to its own longest example; tensors on `device`."""
    import torch

    width = max(len(encoded.input_ids[i]) for i in indices)
    ids = np.full((len(indices), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(indices), width), dtype=np.int64)
    tt = np.zeros((len(indices), width), dtype=np.int64) if encoded.token_type_ids is not None else None
    for row, i in enumerate(indices):
        n = len(encoded.input_ids[i])
        ids[row, :n] = encoded.input_ids[i]
        mask[row, :n] = 1
        if tt is not None:
            tt[row, :n] = encoded.token_type_ids[i]
    batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    if tt is not None:
        batch["token_type_ids"] = torch.from_numpy(tt)
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def iterate(encoded: Encoded, batches: list[np.ndarray], pad_id: int, device) -> Iterator[tuple[np.ndarray, dict]]:
    for indices in batches:
        yield indices, collate(encoded, indices, pad_id, device)
