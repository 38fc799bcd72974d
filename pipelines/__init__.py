"""startpoint: rank intermediate models as starting points for finetuning (Dagster + DuckDB)."""
