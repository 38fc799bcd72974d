"""The finetuning recipe: every hyper-parameter of a run, hashed so a run's identity is stable.

Defaults are chosen for the embedded grid on 2 CPU cores: short sequences (the offline sets are short
texts), a capped train set and a large learning rate for a small encoder give a good score within seconds.
Every default-grid target beats its majority-class share with them (docs/engine.md has the figures).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Recipe:
    lr: float = 1e-4  # MiniLM-sized encoders tolerate (and need, for few steps) a larger lr than BERT-base
    epochs: int = 1  # one pass; with more, validation after each epoch drives early stopping
    batch_size: int = 16  # more updates per example; short texts keep the step cheap
    max_length: int = 64  # tokens; longer texts are truncated (the offline sets' median is 21-112 tokens)
    train_cap: int | None = 256  # at most this many training examples (None: all)
    warmup_ratio: float = 0.1  # linear warm-up over this share of the steps, then linear decay
    weight_decay: float = 0.01
    patience: int = 1  # stop after this many validation checks without improvement (0: never stop early)
    eval_cap: int | None = 200  # at most this many validation examples per check
    test_cap: int | None = 300  # at most this many test examples scored (stratified by the datasets layer)
    head_lr_multiplier: float = 10.0  # the fresh classification head learns faster than the pretrained body

    def __post_init__(self) -> None:
        problems = []
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.epochs < 1:
            problems.append(f"epochs must be ≥ 1, got {self.epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be ≥ 1, got {self.batch_size}")
        if self.max_length < 8:
            problems.append(f"max_length must be ≥ 8, got {self.max_length}")
        if self.train_cap is not None and self.train_cap < 2:
            problems.append(f"train_cap must be ≥ 2 or None, got {self.train_cap}")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if problems:
            raise ValueError("invalid recipe: " + "; ".join(problems))

    @property
    def split_caps(self):
        """The `SplitCaps` of the data a run with this recipe reads (train, validation and test caps)."""
        from startpoint.data import SplitCaps

        return SplitCaps(train=self.train_cap, validation=self.eval_cap, test=self.test_cap)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @property
    def recipe_hash(self) -> str:
        """First 12 hex digits of the SHA-256 of the sorted-key JSON: equal recipes, equal hash, across runs."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"recipe JSON has unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)
