"""Model-card export: markdown sections and Hugging Face `model-index` YAML for the top models."""

from startpoint.modelcard.export import ExportSummary, ModelCard, export_model_cards

__all__ = ["ExportSummary", "ModelCard", "export_model_cards"]
