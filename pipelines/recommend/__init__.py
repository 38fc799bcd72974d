"""`startpoint recommend`: predict which base model to start finetuning from for a new target, and optionally
check it by finetuning the pretrained model and the top-ranked candidates on the user's data."""

from pipelines.recommend.core import RecommendOptions, predicted_decision, recommend
from pipelines.recommend.predict import RecommendError

__all__ = ["RecommendError", "RecommendOptions", "predicted_decision", "recommend"]
