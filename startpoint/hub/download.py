"""Fetch an accepted Hub model's files for probing or finetuning: config, tokenizer and the allowed weights only.

Only the file patterns the policy allows are requested (safetensors; pickle weights only for opted-in models),
and the downloaded folder is checked again with the same policy before anything loads it.
"""

from __future__ import annotations

from pathlib import Path

from startpoint.hub.architectures import ArchitectureSpec
from startpoint.hub.policy import SafetyPolicy, assess_dir

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


def install_for_engine(
    model_id: str, arch: ArchitectureSpec, policy: SafetyPolicy, *, revision: str | None, cache_dir: Path, models_dir: Path
) -> Path:
    """Make a Hub model loadable by the engine: `$STARTPOINT_HOME/models/<key>` with a model card naming its
    architecture (files are links into the Hub cache, so nothing is copied)."""
    import json

    from startpoint.keys import encode_key

    dest = Path(models_dir) / encode_key(model_id)
    if (dest / "startpoint.json").is_file():
        return dest
    source = fetch_model(model_id, arch, policy, revision=revision, cache_dir=cache_dir)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for f in source.iterdir():
        link = tmp / f.name
        if not link.exists():
            link.symlink_to(f.resolve())
    card = {"architecture": arch.name, "base_model": arch.hub_id, "source": "hub", "revision": revision}
    (tmp / "startpoint.json").write_text(json.dumps(card, indent=2))
    tmp.rename(dest)
    return dest
