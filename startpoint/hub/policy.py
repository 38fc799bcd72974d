"""Safe-loading policy: decide from a model's files, config and tags whether we may load it at all.

Hub models are untrusted input. The same rules apply to a Hub listing (before any download) and to a local
folder (before loading), so a model the catalog refuses is also refused at load time:

- remote code is never run: a `custom_code` tag, an `auto_map` in config.json or Python files in the repo refuse it;
- weights must be safetensors; pickle checkpoints (`pytorch_model.bin`, `.pt`, `.ckpt`) only for model ids the
  user lists in `allow_pickle` (pickle can execute code on load);
- the config must match the architecture (model type, hidden size, layers, vocabulary);
- the weights we would download must fit under a size cap.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from startpoint.hub.architectures import ArchitectureSpec

DEFAULT_MAX_DOWNLOAD_BYTES = 2 * 1024**3

# Full-model weight files at the repo root (shards included); optimizer/scheduler pickles are not weights.
_SAFETENSORS_WEIGHTS = re.compile(r"^(model|pytorch_model)(-\d{5}-of-\d{5})?\.safetensors$")
_PICKLE_WEIGHTS = re.compile(r"^(pytorch_model|model)(-\d{5}-of-\d{5})?\.(bin|pt|pth|ckpt)$")
_OTHER_WEIGHTS = re.compile(r"^(tf_model\.h5|flax_model\.msgpack|model\.onnx|onnx/.*)$")
_ADAPTER = re.compile(r"^adapter_model\.(safetensors|bin)$")
_CONFIG_FIELDS = (("model_type", "model_type"), ("hidden_size", "hidden_size"), ("num_hidden_layers", "n_layers"),
                  ("vocab_size", "vocab_size"))


@dataclass(frozen=True)
class SafetyPolicy:
    allow_pickle: frozenset[str] = frozenset()  # model ids whose pickle weights the user accepted
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES

    @classmethod
    def from_env(cls) -> SafetyPolicy:
        """`STARTPOINT_ALLOW_PICKLE` (comma-separated model ids), `STARTPOINT_MAX_DOWNLOAD_MB`."""
        allow = frozenset(m.strip() for m in os.environ.get("STARTPOINT_ALLOW_PICKLE", "").split(",") if m.strip())
        cap_mb = os.environ.get("STARTPOINT_MAX_DOWNLOAD_MB")
        cap = int(float(cap_mb) * 1024**2) if cap_mb else DEFAULT_MAX_DOWNLOAD_BYTES
        return cls(allow_pickle=allow, max_download_bytes=cap)


@dataclass(frozen=True)
class ModelFacts:
    """What the policy looks at; built from a Hub listing or from a local folder."""

    model_id: str
    files: tuple[str, ...]
    config: dict | None
    tags: tuple[str, ...] = ()
    download_bytes: int | None = None  # bytes of the weights we would fetch; None when unknown


@dataclass(frozen=True)
class Decision:
    accepted: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)
    weights: str | None = None  # 'safetensors' | 'pickle' (opt-in) | None

    @property
    def status(self) -> str:
        return "accepted" if self.accepted else "refused"

    @property
    def refusal_reason(self) -> str | None:
        return "; ".join(self.reasons) if self.reasons else None


def weight_files(files: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {"safetensors": [], "pickle": [], "other": [], "adapter": [], "code": []}
    for name in files:
        if _SAFETENSORS_WEIGHTS.match(name):
            kinds["safetensors"].append(name)
        elif _PICKLE_WEIGHTS.match(name):
            kinds["pickle"].append(name)
        elif _ADAPTER.match(name):
            kinds["adapter"].append(name)
        elif _OTHER_WEIGHTS.match(name):
            kinds["other"].append(name)
        if name.endswith(".py"):
            kinds["code"].append(name)
    return kinds


def remote_code_reasons(facts: ModelFacts) -> list[str]:
    found = []
    if "custom_code" in facts.tags:
        found.append("tag custom_code")
    if isinstance(facts.config, dict) and facts.config.get("auto_map"):
        found.append("auto_map in config.json")
    code = weight_files(facts.files)["code"]
    if code:
        found.append("Python files " + ", ".join(sorted(code)[:3]))
    return found


def config_mismatches(config: dict, arch: ArchitectureSpec) -> list[str]:
    out = []
    for key, attr in _CONFIG_FIELDS:
        want, got = getattr(arch, attr), config.get(key)
        if got != want:
            out.append(f"{key} {got!r} != {want!r}")
    return out


def assess(facts: ModelFacts, arch: ArchitectureSpec, policy: SafetyPolicy) -> Decision:
    """Accept or refuse, with every reason that applies (each says what would make the model acceptable)."""
    reasons: list[str] = []
    remote = remote_code_reasons(facts)
    if remote:
        reasons.append(f"remote code ({'; '.join(remote)}): trust_remote_code is never enabled")
    kinds = weight_files(facts.files)
    weights = None
    if kinds["safetensors"]:
        weights = "safetensors"
    elif kinds["pickle"]:
        if facts.model_id in policy.allow_pickle:
            weights = "pickle"
        else:
            reasons.append(
                f"pickle-only weights ({', '.join(kinds['pickle'])}): add {facts.model_id!r} to allow_pickle to opt in"
            )
    elif kinds["adapter"]:
        reasons.append("adapter weights only (no full model weights)")
    elif kinds["other"]:
        reasons.append(f"no PyTorch weights, only {', '.join(kinds['other'])}")
    else:
        reasons.append("no model weights in the repository")
    if facts.config is None:
        reasons.append("no config.json: cannot check the architecture")
    else:
        mismatches = config_mismatches(facts.config, arch)
        if mismatches:
            reasons.append(f"architecture mismatch with {arch.name} ({', '.join(mismatches)})")
    if facts.download_bytes is not None and facts.download_bytes > policy.max_download_bytes:
        reasons.append(
            f"download {facts.download_bytes / 1024**3:.2f} GiB exceeds the cap {policy.max_download_bytes / 1024**3:.2f} GiB"
        )
    return Decision(accepted=not reasons, reasons=tuple(reasons), weights=weights if not reasons else None)


def facts_from_dir(path: str | Path, model_id: str) -> ModelFacts:
    """The same facts for a model folder on disk, so load-time checks agree with the catalog."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"model {model_id!r}: folder {root} does not exist")
    files = tuple(sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()))
    config = None
    if (root / "config.json").is_file():
        try:
            config = json.loads((root / "config.json").read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:  # a binary file, or text that is not JSON
            raise ValueError(f"model {model_id!r}: {root / 'config.json'} is not valid JSON ({exc})") from None
        if not isinstance(config, dict):
            raise ValueError(f"model {model_id!r}: {root / 'config.json'} is not a JSON object of settings")
    kinds = weight_files(files)
    chosen = kinds["safetensors"] or kinds["pickle"]
    size = sum((root / f).stat().st_size for f in chosen) if chosen else None
    return ModelFacts(model_id=model_id, files=files, config=config, tags=(), download_bytes=size)


def assess_dir(path: str | Path, model_id: str, arch: ArchitectureSpec, policy: SafetyPolicy | None = None) -> Decision:
    return assess(facts_from_dir(path, model_id), arch, policy or SafetyPolicy.from_env())
