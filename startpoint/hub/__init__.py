"""The Hub catalog: which finetuned models exist per architecture, and whether they are safe to load."""
