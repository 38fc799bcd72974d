"""Hub ids as Dagster partition keys: `org/name` becomes `org--name`.

Hub ids contain `/`, which partition keys should not (nor `,` `|` `[` `]`).
"""

from __future__ import annotations

import re

_FORBIDDEN = re.compile(r"[,|\[\]]")


def encode_key(model_or_dataset_id: str) -> str:
    if "--" in model_or_dataset_id:
        raise ValueError(f"id {model_or_dataset_id!r} contains '--', which is reserved for encoding '/'")
    if _FORBIDDEN.search(model_or_dataset_id):
        raise ValueError(f"id {model_or_dataset_id!r} contains one of , | [ ] which partition keys cannot hold")
    return model_or_dataset_id.replace("/", "--")


def decode_key(key: str) -> str:
    return key.replace("--", "/")


# An `intermediate_models` partition is one (base model, source) pair: `org--base@source`.
SOURCE_KEY_SEPARATOR = "@"


def source_key(base_model: str, source: str) -> str:
    """The `sources` partition key of the intermediate model made from `base_model` on `source`."""
    for part in (base_model, source):
        if SOURCE_KEY_SEPARATOR in part:
            raise ValueError(f"id {part!r} contains {SOURCE_KEY_SEPARATOR!r}, which separates base and source in keys")
    return f"{encode_key(base_model)}{SOURCE_KEY_SEPARATOR}{encode_key(source)}"


def parse_source_key(key: str, default_base: str) -> tuple[str, str]:
    """(base model, source) of a `sources` key; a key with the source alone (older instances) means `default_base`."""
    if SOURCE_KEY_SEPARATOR not in key:
        return default_base, decode_key(key)
    base, source = key.split(SOURCE_KEY_SEPARATOR, 1)
    if not base or not source or SOURCE_KEY_SEPARATOR in source:
        raise ValueError(f"sources partition key {key!r} is not <base model>{SOURCE_KEY_SEPARATOR}<source>")
    return decode_key(base), decode_key(source)
