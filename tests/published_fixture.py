"""Small folders in the published (model-recycling) format, cut from the real shared data, and a helper that
materializes the `published` job's assets into a temporary home."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import dagster as dg

SHARED = Path(__file__).resolve().parents[2] / "shared" / "model-recycling"


def _head(path: Path, rows: int) -> str:
    lines = path.read_text().splitlines(keepends=True)
    return "".join(lines[: rows + 1])


def make_folder(dest: Path, rows: int = 40, archs: tuple[str, ...] = ("roberta-base", "t5-base")) -> Path:
    """Header, the pretrained row and the next `rows - 1` model rows of each architecture, all its seeds,
    and the matching catalog rows."""
    dest.mkdir(parents=True, exist_ok=True)
    models: set[str] = set()
    for arch in archs:
        table = _head(SHARED / f"{arch}_table.csv", rows)
        (dest / f"{arch}_table.csv").write_text(table)
        models |= {r["model_name"] for r in csv.DictReader(io.StringIO(table))}
        pretrain = f"models_results_{arch.replace('-', '_')}_pretrain.csv"
        shutil.copy(SHARED / pretrain, dest / pretrain)
    catalog = (SHARED / "models_tested.csv").read_text().splitlines(keepends=True)
    keep = [catalog[0]] + [
        line for line in catalog[1:]
        if line.split(",", 2)[0] in models and line.split(",", 2)[1] in archs
    ]
    (dest / "models_tested.csv").write_text("".join(keep))
    return dest


def materialize_published(home: Path, folder: Path | None, monkeypatch) -> dg.ExecuteInJobResult:
    """Run the `published` job's assets (import, warehouse load, every dbt model) into `home`."""
    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    if folder is None:
        monkeypatch.setenv("STARTPOINT_PUBLISHED_RESULTS", "")
    else:
        monkeypatch.setenv("STARTPOINT_PUBLISHED_RESULTS", str(folder))
    from assets.dbt import dbt_resource
    from assets.published import published_results
    from assets.resources import LakeResource, WarehouseResource
    from assets.sql_models import sql_models
    from assets.warehouse import warehouse_tables

    return dg.materialize(
        [published_results, warehouse_tables, sql_models],
        resources={
            "lake": LakeResource(url=str(home / "lake")),
            "warehouse": WarehouseResource(path=str(home / "warehouse.duckdb")),
            "dbt": dbt_resource(),
        },
        instance=dg.DagsterInstance.ephemeral(),
    )


def pretrain_name(arch: str) -> str:
    return f"models_results_{arch.replace('-', '_').replace('/', '_')}_pretrain.csv"


def edit_table(folder: Path, arch: str, edit) -> None:
    """Rewrite `<arch>_table.csv` as `edit(frame)`; cells are read and written as text, so untouched cells keep
    their exact digits."""
    import pandas as pd

    path = folder / f"{arch}_table.csv"
    frame = pd.read_csv(path, index_col=0, dtype=str, keep_default_na=False)
    edit(frame).to_csv(path)


def edit_pretrain(folder: Path, arch: str, edit) -> None:
    """Rewrite the architecture's tab-separated pretrain file as `edit(frame)`, cells as text."""
    import pandas as pd

    path = folder / pretrain_name(arch)
    frame = pd.read_csv(path, sep="\t", index_col=0, dtype=str, keep_default_na=False)
    edit(frame).to_csv(path, sep="\t")
