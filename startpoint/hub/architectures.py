"""Architectures the catalog knows: the Hub id of the pretrained model and the config a finetune must match.

A finetuned model can only stand in for its architecture's pretrained model if it has the same shape
(model type, width, depth, vocabulary); anything else is a different architecture and is refused.

A pretrained model has several ids (the Hub's current one, older ones from before an org move); the warehouse
records it under one, its `pretrained_id`, and :func:`warehouse_model_id` maps the others to it wherever a row
is written or loaded, so the Hub catalog's `base_model` and the published import's pretrained row meet.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArchitectureSpec:
    name: str  # the architecture key used across the warehouse (hub_models.architecture)
    hub_id: str  # the pretrained model on the Hub, used for the `base_model:` filter
    model_type: str
    hidden_size: int
    n_layers: int
    vocab_size: int
    aliases: tuple[str, ...] = ()  # older Hub ids of the same pretrained model (before org moves)
    # The pretrained model's id in the warehouse: the published data's and the leaderboard's (empty: hub_id).
    pretrained_id: str = ""

    def __post_init__(self) -> None:
        if not self.pretrained_id:
            object.__setattr__(self, "pretrained_id", self.hub_id)
        if self.pretrained_id not in self.base_model_ids:
            raise ValueError(f"architecture {self.name!r}: pretrained_id {self.pretrained_id!r} is neither its hub_id "
                             "nor one of its aliases")

    @property
    def base_model_ids(self) -> tuple[str, ...]:
        return (self.hub_id, *self.aliases)


ARCHITECTURES: dict[str, ArchitectureSpec] = {
    spec.name: spec
    for spec in (
        # The published results name these two by their pre-move ids, and so does the warehouse.
        ArchitectureSpec("roberta-base", "FacebookAI/roberta-base", "roberta", 768, 12, 50265, ("roberta-base",),
                         pretrained_id="roberta-base"),
        ArchitectureSpec("bert-base-uncased", "google-bert/bert-base-uncased", "bert", 768, 12, 30522,
                         ("bert-base-uncased",), pretrained_id="bert-base-uncased"),
        ArchitectureSpec(
            "all-MiniLM-L6-v2",
            "sentence-transformers/all-MiniLM-L6-v2",
            "bert",
            384,
            6,
            30522,
        ),
        # 3 layers, not 6: a finetune of one never stands in for the other (rebuilt from ONNX: startpoint/zoo).
        ArchitectureSpec(
            "paraphrase-MiniLM-L3-v2",
            "sentence-transformers/paraphrase-MiniLM-L3-v2",
            "bert",
            384,
            3,
            30522,
        ),
    )
}


def _pretrained_ids() -> dict[str, ArchitectureSpec]:
    """Every id of every pretrained model -> its architecture; one id naming two pretrained models is an error."""
    out: dict[str, ArchitectureSpec] = {}
    for spec in ARCHITECTURES.values():
        for model_id in spec.base_model_ids:
            other = out.setdefault(model_id, spec)
            if other is not spec:
                raise ValueError(f"{model_id!r} is a pretrained id of both {other.name!r} and {spec.name!r}")
    return out


_PRETRAINED_IDS = _pretrained_ids()


def pretrained_architecture(model_id: str) -> ArchitectureSpec | None:
    """The architecture whose pretrained model `model_id` names (by any of its ids), or None."""
    return _PRETRAINED_IDS.get(model_id)


def warehouse_model_id(model_id: str) -> str:
    """The id the warehouse records a model under: a pretrained model's `pretrained_id` for any of its ids, any
    other id unchanged. Every writer of a `base_model` or a pretrained model's id goes through it; keep the Hub id
    (`hub_id`) for downloads and the `base_model:` filter."""
    spec = _PRETRAINED_IDS.get(model_id)
    return spec.pretrained_id if spec else model_id


def pretrained_aliases() -> dict[str, str]:
    """Each id that the warehouse does not use -> the pretrained id it stands for (the load maps old lake rows)."""
    return {m: s.pretrained_id for m, s in _PRETRAINED_IDS.items() if m != s.pretrained_id}
