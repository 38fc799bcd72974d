"""Probe one model: check it is safe, featurise the proxy dataset once, score a linear head and LogME.

The proxy defaults to MNLI (by `datasets` id) when the Hub is reachable, and to an offline-suite set when
`HF_HUB_OFFLINE` / `HF_DATASETS_OFFLINE` is set. `seconds` in each row is the cost of probing the model from
scratch: the encoder pass (even when the features came from the cache) plus that method's own time. Like a
finetune's `train_seconds` it leaves out model loading and library imports (benchmarks/probe_cost.py times the
whole call against the whole finetune).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from startpoint.hub.architectures import ARCHITECTURES
from startpoint.hub.policy import SafetyPolicy, assess_dir
from startpoint.probes.features import Features, FeatureSettings, load_or_compute
from startpoint.probes.logme import logme

ONLINE_PROXY = "hf:nyu-mll/glue:mnli"
# Offline proxy: a general sentiment set that is not one of the engine's default-grid targets (probing a target
# itself would leak the answer into the proxy validation).
OFFLINE_PROXY = "fine_foods"
METHODS = ("linear_probe", "logme")


class ModelRefusedError(ValueError):
    """The safe-loading policy refuses this model; the message says why and what would change that."""


@dataclass(frozen=True)
class ProbeCaps:
    """Rows of the proxy dataset's train split that get encoded: the probe must stay far cheaper than finetuning."""

    train: int = 256


def offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes"} for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def default_proxy() -> str:
    return os.environ.get("STARTPOINT_PROBE_DATASET") or (OFFLINE_PROXY if offline() else ONLINE_PROXY)


def linear_probe(features: Features, seed: int = 0, folds: int = 3) -> float:
    """Cross-validated accuracy (percent) of a logistic-regression head on standardised frozen features.

    Stratified k-fold on the encoded split: every example is scored once by a head that did not see it, and
    no second split has to go through the encoder."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    smallest = int(np.unique(features.y, return_counts=True)[1].min()) if features.y.size else 0
    folds = min(folds, smallest)
    if folds < 2:
        raise ValueError(f"linear probe needs at least 2 examples of every label, the smallest class has {smallest}")
    head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(head, features.x, features.y, cv=splits, scoring="accuracy")) * 100)


@functools.lru_cache(maxsize=4)
def proxy_dataset(proxy: str, train_cap: int):
    """The proxy's capped train split, split once per process: a selection job probes many models on the same
    rows (read-only here), and re-splitting costs a tenth of a probe."""
    from startpoint.data import SplitCaps, load_dataset

    return load_dataset(proxy, caps=SplitCaps(train=train_cap, validation=1, test=1), seed=0)


def check_safe(model_id: str, architecture: str, model_dir: Path, policy: SafetyPolicy | None = None) -> None:
    """ModelRefusedError unless the catalog's policy accepts the folder and the zoo's loader check passes it
    (weights, shards and tokenizer complete; startpoint/zoo/loading.py), before anything is loaded."""
    from startpoint.zoo.loading import ModelDirError, check_model_dir

    arch = ARCHITECTURES.get(architecture)
    if arch is not None:  # an architecture the catalog does not describe: the loader's own checks still apply
        decision = assess_dir(model_dir, model_id, arch, policy)
        if not decision.accepted:
            raise ModelRefusedError(f"model {model_id!r} ({model_dir}) is refused: {decision.refusal_reason}")
    allow_pickle = policy is not None and model_id in policy.allow_pickle
    try:
        check_model_dir(model_dir, allow_pickle=allow_pickle)
    except ModelDirError as exc:
        raise ModelRefusedError(f"model {model_id!r} ({model_dir}) is refused: {exc}") from None


def probe_model(
    model_id: str,
    architecture: str,
    model_dir: Path,
    *,
    cache_dir: Path,
    proxy: str | None = None,
    caps: ProbeCaps = ProbeCaps(),
    settings: FeatureSettings = FeatureSettings(),
    policy: SafetyPolicy | None = None,
) -> list[dict[str, Any]]:
    """`probe_scores` rows (one per method) for a model folder."""
    check_safe(model_id, architecture, Path(model_dir), policy)
    proxy = proxy or default_proxy()
    dataset = proxy_dataset(proxy, caps.train)
    features = load_or_compute(model_id, Path(model_dir), dataset, asdict(caps), settings, cache_dir)
    import sklearn.linear_model  # noqa: F401  (its first import, ~1 s, is process start-up, not probe cost)
    import sklearn.model_selection  # noqa: F401
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    rows = []
    for method in METHODS:
        start = time.perf_counter()
        # Small matrices: one BLAS thread is faster than several, and far faster on a busy machine.
        with threadpool_limits(limits=1, user_api="blas"):
            score = linear_probe(features) if method == "linear_probe" else logme(features.x, features.y)
        rows.append(
            {
                "model_id": model_id,
                "architecture": architecture,
                "proxy_dataset": proxy,
                "method": method,
                "score": score,
                "seconds": features.seconds + time.perf_counter() - start,
                "features_hash": features.features_hash,
                "origin": "local",
            }
        )
    return rows
