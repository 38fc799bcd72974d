"""Fetch an accepted Hub model's files for probing or finetuning: config, tokenizer and the allowed weights only.

Only the file patterns the policy allows are requested (safetensors; pickle weights only for opted-in models),
and the downloaded folder is checked again with the same policy before anything loads it.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.hub.architectures import ArchitectureSpec
from pipelines.hub.policy import SafetyPolicy, assess_dir

_ALWAYS = ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
           "vocab.json", "merges.txt", "sentencepiece.bpe.model", "spm.model"]  # fmt: skip


def fetch_model(
    model_id: str, arch: ArchitectureSpec, policy: SafetyPolicy, *, revision: str | None, cache_dir: str | Path
) -> Path:
    from huggingface_hub import snapshot_download

    patterns = [*_ALWAYS, "model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json"]
    if model_id in policy.allow_pickle:
        patterns += ["pytorch_model.bin", "pytorch_model-*-of-*.bin", "pytorch_model.bin.index.json"]
    folder = Path(snapshot_download(model_id, revision=revision, allow_patterns=patterns, cache_dir=str(cache_dir)))
    decision = assess_dir(folder, model_id, arch, policy)
    if not decision.accepted:
        raise ValueError(f"model {model_id!r} downloaded to {folder} is refused: {decision.refusal_reason}")
    return folder
