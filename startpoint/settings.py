"""Configuration from environment variables, shared by the Python code and the dbt project.

Every path the project writes to hangs off ``STARTPOINT_HOME``:

- ``$STARTPOINT_HOME/warehouse.duckdb``: the DuckDB results warehouse (one writer at a time);
- ``$STARTPOINT_LAKE`` (default ``$STARTPOINT_HOME/lake``): the Parquet results lake, any fsspec URL;
- ``$STARTPOINT_HOME/models``: intermediate models made by the engine;
- ``$STARTPOINT_HOME/cache``: tokenization and feature caches.

The dbt profile (``sql/profiles.yml``) takes the warehouse from the ``warehouse`` var (Dagster's dbt build passes
its staging copy), else from ``STARTPOINT_WAREHOUSE``, which :func:`export_env` sets for dbt subprocesses from the
same values, so dbt and Python can never disagree about which file is the warehouse. Nothing sets it in this
process's environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = REPO_ROOT / "sql"
DEFAULT_PUBLISHED = REPO_ROOT.parent / "shared" / "model-recycling"


@dataclass(frozen=True)
class Settings:
    home: Path
    lake_url: str
    published_results: Path | None

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"


def get_settings(home: str | Path | None = None) -> Settings:
    """Read the environment now (not at import) so tests can point each run at a temp folder. `home`: this home
    instead of STARTPOINT_HOME (a resource configured with its own path), resolved the same way."""
    home = Path(home if home is not None else os.environ.get("STARTPOINT_HOME", ".startpoint")).expanduser().resolve()
    lake = os.environ.get("STARTPOINT_LAKE") or str(home / "lake")
    published_env = os.environ.get("STARTPOINT_PUBLISHED_RESULTS")
    if published_env is not None:
        published = Path(published_env).expanduser().resolve() if published_env.strip() else None
    else:
        published = DEFAULT_PUBLISHED if DEFAULT_PUBLISHED.is_dir() else None
    return Settings(home=home, lake_url=lake, published_results=published)


def export_env(settings: Settings | None = None) -> dict[str, str]:
    """Environment for subprocesses (dbt): the same warehouse path Python uses."""
    settings = settings or get_settings()
    env = dict(os.environ)
    env["STARTPOINT_HOME"] = str(settings.home)
    env["STARTPOINT_WAREHOUSE"] = str(settings.warehouse_path)
    return env


COMPACT_FILES_ENV = "STARTPOINT_COMPACT_FILES"
DEFAULT_COMPACT_FILES = 1000


def compact_files_threshold() -> int:
    """Per-unit lake files of one (table, origin) at which the `lake_compaction` sensor compacts it (and the default
    of `startpoint compact --min-files`): ``STARTPOINT_COMPACT_FILES``, default 1000."""
    text = os.environ.get(COMPACT_FILES_ENV, "").strip()
    if not text:
        return DEFAULT_COMPACT_FILES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise ValueError(f"{COMPACT_FILES_ENV}={text!r}: give a whole number of files, at least 2 "
                         f"(unset it for the default {DEFAULT_COMPACT_FILES})")
    return value
