"""The finetuning engine: a recipe, a fast CPU/GPU training loop, and its result."""

from startpoint.engine.recipe import Recipe
from startpoint.engine.train import (
    FinetuneError,
    FinetuneResult,
    finetune,
    save_encoder,
)

__all__ = ["FinetuneError", "FinetuneResult", "Recipe", "finetune", "save_encoder"]
