"""Import of published finetuning results in the model-recycling format."""
