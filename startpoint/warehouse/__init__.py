"""The DuckDB results warehouse: base table schemas and the loader that builds them from the lake."""
