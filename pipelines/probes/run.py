"""Probe one model: check it is safe, featurise the proxy dataset once, score a linear head and LogME.

The proxy defaults to MNLI (by `datasets` id) when the Hub is reachable, and to an offline-suite set when
`HF_HUB_OFFLINE` / `HF_DATASETS_OFFLINE` is set. `seconds` in each row is the cost of probing the model from
scratch: the encoder pass (even when the features came from the cache) plus that method's own time.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.hub.architectures import ARCHITECTURES
from pipelines.hub.policy import SafetyPolicy, assess_dir
from pipelines.probes.features import FeatureSettings, Features, load_or_compute
from pipelines.probes.logme import logme

ONLINE_PROXY = "hf:nyu-mll/glue:mnli"
OFFLINE_PROXY = "tweets_sentiment"
METHODS = ("linear_probe", "logme")


class ModelRefusedError(ValueError):
    """The safe-loading policy refuses this model; the message says why and what would change that."""


@dataclass(frozen=True)
class ProbeCaps:
    """Rows per split of the proxy dataset: the probe must stay far cheaper than finetuning."""

    train: int = 1000
    test: int = 500


def offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes"} for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def default_proxy() -> str:
    return os.environ.get("STARTPOINT_PROBE_DATASET") or (OFFLINE_PROXY if offline() else ONLINE_PROXY)


def linear_probe(features: Features, seed: int = 0) -> float:
    """Test accuracy (percent) of a logistic-regression head trained on standardised frozen features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    head.fit(features.train_x, features.train_y)
    return float(np.mean(head.predict(features.test_x) == features.test_y) * 100)


def check_safe(model_id: str, architecture: str, model_dir: Path, policy: SafetyPolicy | None = None) -> None:
    arch = ARCHITECTURES.get(architecture)
    if arch is None:
        return  # an architecture the catalog does not describe: the loader's own checks still apply
    decision = assess_dir(model_dir, model_id, arch, policy)
    if not decision.accepted:
        raise ModelRefusedError(f"model {model_id!r} ({model_dir}) is refused: {decision.refusal_reason}")


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
    from pipelines.data import SplitCaps, load_dataset

    check_safe(model_id, architecture, Path(model_dir), policy)
    proxy = proxy or default_proxy()
    dataset = load_dataset(proxy, caps=SplitCaps(train=caps.train, validation=1, test=caps.test), seed=0)
    features = load_or_compute(model_id, Path(model_dir), dataset, asdict(caps), settings, cache_dir)
    rows = []
    for method in METHODS:
        start = time.perf_counter()
        score = linear_probe(features) if method == "linear_probe" else logme(features.train_x, features.train_y)
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
