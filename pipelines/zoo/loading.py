"""Safe loading of encoder folders: safetensors only (unless told otherwise), never remote code.

`check_model_dir` is the one place that decides whether a local model folder may be loaded; the Hub layer
reuses it for downloaded snapshots.
"""

from __future__ import annotations

from pathlib import Path


class ModelDirError(ValueError):
    """A model folder that cannot (or must not) be loaded; the message names the folder and the fix."""


_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def check_model_dir(path: str | Path, *, allow_pickle: bool = False) -> None:
    """Raise ModelDirError unless `path` holds a config and loadable weights.

    Pickled `.bin` weights can run arbitrary code when loaded, so a folder that has only those is refused
    unless the caller passes `allow_pickle=True` on purpose.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ModelDirError(f"model folder {folder} does not exist")
    if not (folder / "config.json").is_file():
        raise ModelDirError(f"model folder {folder} has no config.json; it is not a transformers model folder")
    from pipelines.hub.policy import facts_from_dir, remote_code_reasons  # the catalog's rule, applied at load time

    try:
        remote_code = remote_code_reasons(facts_from_dir(folder, folder.name))
    except ValueError as exc:  # unreadable config.json
        raise ModelDirError(str(exc)) from None
    if remote_code:
        raise ModelDirError(
            f"model folder {folder} ships its own code ({'; '.join(remote_code)}); startpoint never runs a "
            "model's code: use a checkpoint of a standard architecture"
        )
    if any((folder / name).is_file() for name in _SAFE_WEIGHTS):
        return
    if any((folder / name).is_file() for name in _PICKLE_WEIGHTS):
        if allow_pickle:
            return
        raise ModelDirError(
            f"model folder {folder} has only pickled pytorch_model.bin weights, which can execute code when "
            "loaded; convert them to safetensors or pass allow_pickle=True if you trust the source"
        )
    raise ModelDirError(
        f"model folder {folder} has no weights (expected model.safetensors); the download or save was "
        "incomplete: delete the folder and create it again"
    )


def load_encoder(path: str | Path, *, allow_pickle: bool = False):
    """The bare encoder (AutoModel) of a checked folder, in float32, without remote code."""
    from transformers import AutoModel

    check_model_dir(path, allow_pickle=allow_pickle)
    return AutoModel.from_pretrained(
        str(path), trust_remote_code=False, use_safetensors=not allow_pickle or _has_safetensors(path)
    )


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)


def _has_safetensors(path: str | Path) -> bool:
    return any((Path(path) / name).is_file() for name in _SAFE_WEIGHTS)
