"""Architectures the catalog knows: the Hub id of the pretrained model and the config a finetune must match.

A finetuned model can only stand in for its architecture's pretrained model if it has the same shape
(model type, width, depth, vocabulary); anything else is a different architecture and is refused.
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

    @property
    def base_model_ids(self) -> tuple[str, ...]:
        return (self.hub_id, *self.aliases)


ARCHITECTURES: dict[str, ArchitectureSpec] = {
    spec.name: spec
    for spec in (
        ArchitectureSpec("roberta-base", "FacebookAI/roberta-base", "roberta", 768, 12, 50265, ("roberta-base",)),
        ArchitectureSpec(
            "bert-base-uncased", "google-bert/bert-base-uncased", "bert", 768, 12, 30522, ("bert-base-uncased",)
        ),
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


def get_architecture(name: str) -> ArchitectureSpec:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(
            f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)} (add it in startpoint/hub/architectures.py)"
        ) from None
