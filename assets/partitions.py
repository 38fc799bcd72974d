"""Partition definitions (ids are encoded into keys by startpoint.keys)."""

from __future__ import annotations

import dagster as dg

# Dynamic dimensions: new base models and targets are added at run time (sensors, the embedded default).
base_models_partitions = dg.DynamicPartitionsDefinition(name="base_models")
targets_partitions = dg.DynamicPartitionsDefinition(name="targets")
sources_partitions = dg.DynamicPartitionsDefinition(name="sources")  # keys: source_key(base, source)
finetune_partitions = dg.MultiPartitionsDefinition({"model": base_models_partitions, "target": targets_partitions})
