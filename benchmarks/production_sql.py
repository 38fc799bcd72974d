"""The production SQL of the dbt models, compiled, so a benchmark can rerun it on restricted temp tables.

`compiled_sql(model)` compiles one model against the warehouse in $STARTPOINT_HOME; `retarget` points the
compiled relations at temp tables. `ModelChain` compiles a model and every model it depends on (read from the
dbt manifest, so a model added upstream is picked up without touching the benchmark) and rebuilds the chain as
temp tables from restricted copies of the source tables: the warehouse tables exactly as `dbt run` builds them,
but from fewer rows.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import duckdb

from assets.dbt import run_dbt
from startpoint.settings import SQL_DIR

PROJECT = "startpoint"


def compiled_sql(model: str) -> str:
    """The production SQL of a dbt model, compiled against this warehouse."""
    run_dbt("compile", "--full-refresh", "--select", model, capture_output=True)
    return (SQL_DIR / "target" / "compiled" / PROJECT / "models" / f"{model}.sql").read_text()


def retarget(sql: str, replacements: dict[str, str]) -> str:
    """Point the compiled SQL's relations (`"db"."main"."gains"`) at restricted temp tables."""
    for name, temp in replacements.items():
        sql = re.sub(rf'"[^"]+"\."main"\."{name}"', temp, sql)
    return sql


class ModelChain:
    """The compiled SQL of `targets` and of every dbt model upstream of them, in dependency order."""

    def __init__(self, targets: tuple[str, ...], dbt_vars: dict | None = None):
        self.targets = targets
        var_args = ["--vars", json.dumps(dbt_vars)] if dbt_vars else []
        # A private target path: other processes compiling in the same checkout do not overwrite these files.
        with tempfile.TemporaryDirectory(prefix="startpoint-compile-") as tmp:
            # --full-refresh: an incremental model (finetune_cells) compiles to its whole-table form, not to the
            # rows past what the warehouse's own copy holds (the chain rebuilds every model from its sources).
            run_dbt("compile", "--full-refresh", "--select", " ".join(f"+{t}" for t in targets), "--target-path", tmp,
                    *var_args, capture_output=True)
            manifest = json.loads((Path(tmp) / "manifest.json").read_text())
            nodes = {n["name"]: n for n in manifest["nodes"].values()
                     if n["resource_type"] == "model" and n["package_name"] == PROJECT}
            self.order = _topological(targets, nodes)
            self.sql = {name: (Path(tmp) / "compiled" / PROJECT / "models" / f"{name}.sql").read_text()
                        for name in self.order}
        self.sources = sorted({manifest["sources"][s]["name"] for name in self.order
                               for s in nodes[name]["depends_on"]["nodes"] if s.startswith("source.")})

    def build(self, con: duckdb.DuckDBPyConnection, restricted_sources: dict[str, str], prefix: str = "chain_") -> dict[str, str]:
        """Create every model of the chain as a temp table `<prefix><model>`, reading the given restricted
        source tables instead of the warehouse's (other sources are read as they are). Returns model -> temp table."""
        names = {**restricted_sources}
        for model in self.order:
            temp = f"{prefix}{model}"
            con.execute(f"create or replace temp table {temp} as {retarget(self.sql[model], names)}")
            names[model] = temp
        return {m: names[m] for m in self.order}


def published_architectures(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Architectures the warehouse holds published results for (what the benchmarks evaluate)."""
    return [r[0] for r in con.execute(
        "select distinct architecture from hub_models where source = 'published' and role = 'pretrained' "
        "and architecture in (select architecture from gains) order by 1").fetchall()]


def _topological(targets: tuple[str, ...], nodes: dict[str, dict]) -> list[str]:
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for dep in nodes[name]["depends_on"]["nodes"]:
            if dep.startswith("model."):
                visit(dep.split(".")[-1])
        order.append(name)

    for t in targets:
        visit(t)
    return order


__all__ = ["ModelChain", "compiled_sql", "published_architectures", "retarget"]
