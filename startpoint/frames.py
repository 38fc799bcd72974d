"""DuckDB query results as polars frames, through Arrow: the one exchange between the warehouse and the data
frames of the recommender, the site, the model cards and the CLI."""

from __future__ import annotations

import duckdb
import polars as pl


def frame(result: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """A query's result as a polars frame (Arrow, no copy per value). DECIMAL columns (SQL literals such as 1.0)
    become floats and a float NaN becomes null, so a missing value reads the same whatever the SQL computed."""
    return result.pl().with_columns(pl.col(pl.Decimal).cast(pl.Float64)).with_columns(
        pl.col(pl.Float32, pl.Float64).fill_nan(None))
