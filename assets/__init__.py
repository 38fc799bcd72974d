"""Dagster asset modules, one per domain; `pipelines.definitions` loads every module in this package."""
