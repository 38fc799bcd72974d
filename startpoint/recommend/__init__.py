"""`startpoint recommend`: predict which base model to start finetuning from for a new target, and optionally
check it by finetuning the pretrained model and the top-ranked candidates on the user's data."""

from startpoint.recommend.core import RecommendOptions, predicted_decision, recommend
from startpoint.recommend.predict import RecommendError

__all__ = ["RecommendError", "RecommendOptions", "predicted_decision", "recommend"]
