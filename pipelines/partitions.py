"""Partition definitions and the encoding of Hub ids into partition keys.

Hub ids contain `/`, which partition keys should not (nor `,` `|` `[` `]`): `org/name` becomes `org--name`.
"""

from __future__ import annotations

import re

import dagster as dg

_FORBIDDEN = re.compile(r"[,|\[\]]")


def encode_key(model_or_dataset_id: str) -> str:
    if "--" in model_or_dataset_id:
        raise ValueError(f"id {model_or_dataset_id!r} contains '--', which is reserved for encoding '/'")
    if _FORBIDDEN.search(model_or_dataset_id):
        raise ValueError(f"id {model_or_dataset_id!r} contains one of , | [ ] which partition keys cannot hold")
    return model_or_dataset_id.replace("/", "--")


def decode_key(key: str) -> str:
    return key.replace("--", "/")


# Dynamic dimensions: new base models and targets are added at run time (sensors, the embedded default).
base_models_partitions = dg.DynamicPartitionsDefinition(name="base_models")
targets_partitions = dg.DynamicPartitionsDefinition(name="targets")
sources_partitions = dg.DynamicPartitionsDefinition(name="sources")
finetune_partitions = dg.MultiPartitionsDefinition({"model": base_models_partitions, "target": targets_partitions})
