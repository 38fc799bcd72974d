"""One id per pretrained model across the warehouse: the Hub catalog names roberta's base `FacebookAI/roberta-base`,
the published results `roberta-base`; both reach the warehouse as the published id (ArchitectureSpec.pretrained_id).

The real path: the recorded Hub catalog (tests/fixtures/hub) and a slice of the published roberta and bert results
in one lake, loaded and `dbt build`: every relationship test passes and each architecture has one pretrained row.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
from published_fixture import SHARED, make_folder

from assets.dbt import _dbt_executable
from startpoint import lake
from startpoint.hub.architectures import (
    ARCHITECTURES,
    pretrained_aliases,
    warehouse_model_id,
)
from startpoint.hub.catalog import build_catalog, mark_gone
from startpoint.hub.policy import SafetyPolicy
from startpoint.hub.replay import replay_hub
from startpoint.published.importer import import_folder
from startpoint.settings import SQL_DIR
from startpoint.warehouse.load import load_tables
from startpoint.zoo import PRETRAINED

FIXTURES = Path(__file__).parent / "fixtures" / "hub"
ARCHS = ("roberta-base", "bert-base-uncased")
RELATIONSHIPS = ["finetune_runs_dataset_id_in_datasets", "finetune_runs_model_id_in_hub_models",
                 "finetune_runs_architecture_model_id_in_hub_models", "probe_scores_model_id_in_hub_models",
                 "probe_scores_architecture_model_id_in_hub_models", "probe_scores_proxy_dataset_in_datasets",
                 "hub_models_base_model_in_hub_models"]


def test_every_id_of_a_pretrained_model_maps_to_its_one_warehouse_id():
    for spec in ARCHITECTURES.values():
        assert {warehouse_model_id(m) for m in spec.base_model_ids} == {spec.pretrained_id}
    assert warehouse_model_id("FacebookAI/roberta-base") == "roberta-base"
    assert warehouse_model_id("google-bert/bert-base-uncased") == "bert-base-uncased"
    assert warehouse_model_id("deepset/roberta-base-squad2") == "deepset/roberta-base-squad2"  # a finetune: as is
    assert pretrained_aliases() == {"FacebookAI/roberta-base": "roberta-base",
                                    "google-bert/bert-base-uncased": "bert-base-uncased"}
    # Local rows use the packaged models' ids: they are warehouse ids already.
    assert all(warehouse_model_id(m) == m for m in PRETRAINED)


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/model-recycling")
def test_the_warehouse_id_is_the_published_tables_own():
    """The published results (and the leaderboard built on them) keep their ids: row 0 of each table."""
    for arch in ARCHS:
        row0 = (SHARED / f"{arch}_table.csv").read_text().splitlines()[1].split(",")[1]
        assert ARCHITECTURES[arch].pretrained_id == row0


def test_catalog_rows_name_their_base_by_the_warehouse_id_and_gone_rows_are_mapped(tmp_path):
    recording = tmp_path / "recording"
    shutil.copytree(FIXTURES, recording)
    arch = ARCHITECTURES["roberta-base"]
    with replay_hub(recording):
        rows = build_catalog(arch, SafetyPolicy(), cache_dir=tmp_path / "hub-cache")
    assert rows and {r["base_model"] for r in rows} == {"roberta-base"}
    assert all(f"base_model:{arch.hub_id}" in json.loads(r["tags"]) for r in rows)  # the Hub id stays where it filters
    old = {**rows[0], "model_id": "someone/renamed", "base_model": arch.hub_id}  # a catalog row written before
    gone = mark_gone(rows, [old], dt.datetime(2026, 1, 1, tzinfo=dt.UTC))[-1]
    assert (gone["model_id"], gone["status"], gone["base_model"]) == ("someone/renamed", "gone", "roberta-base")


def _recording_listing_the_pretrained_model(dest: Path) -> Path:
    """The recorded Hub, plus roberta's pretrained model itself under its Hub id (the Hub lists it for its tag)."""
    shutil.copytree(FIXTURES, dest)
    entries = json.loads((dest / "models.json").read_text())
    squad = next(e for e in entries if e["id"] == "deepset/roberta-base-squad2")
    entries.append({**squad, "id": "FacebookAI/roberta-base", "author": "FacebookAI"})
    (dest / "models.json").write_text(json.dumps(entries))
    return dest


def _published_slice(dest: Path) -> Path:
    """Nine finetuned models of each table, and roberta's pretrained model once more under its Hub id."""
    folder = make_folder(dest, rows=10, archs=ARCHS)
    table = folder / "roberta-base_table.csv"
    lines = table.read_text().splitlines(keepends=True)
    cells = lines[2].split(",")
    lines.append(",".join(["99", "FacebookAI/roberta-base", *cells[2:]]))
    table.write_text("".join(lines))
    return folder


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/model-recycling")
def test_hub_catalog_and_published_import_share_one_pretrained_row_and_pass_dbt_build(tmp_path):
    home = tmp_path / "home"
    lake_url, warehouse = str(home / "lake"), home / "warehouse.duckdb"
    recording = _recording_listing_the_pretrained_model(tmp_path / "recording")
    with replay_hub(recording):
        for name in ARCHS:
            rows = build_catalog(ARCHITECTURES[name], SafetyPolicy(), cache_dir=tmp_path / "hub-cache")
            if name == "bert-base-uncased":  # a lake from before: its catalog names the base by the Hub id
                rows = [{**r, "base_model": ARCHITECTURES[name].hub_id} for r in rows]
            lake.write(lake_url, "hub_models", f"hub/{name}", rows)
    imported = import_folder(_published_slice(tmp_path / "results"), lake_url)
    duplicate = [r for r in imported.architectures["roberta-base"].rejected_rows if r["value"] == "FacebookAI/roberta-base"]
    assert len(duplicate) == 1 and "another id of 'roberta-base'" in duplicate[0]["reason"]
    load_tables(lake_url, warehouse)

    env = dict(os.environ, STARTPOINT_HOME=str(home), STARTPOINT_WAREHOUSE=str(warehouse))
    build = subprocess.run(
        [_dbt_executable(), "build", "--project-dir", str(SQL_DIR), "--profiles-dir", str(SQL_DIR),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"), "--no-use-colors"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert build.returncode == 0, "\n".join(line for line in build.stdout.splitlines() if "FAIL" in line or "ERROR" in line)
    for name in RELATIONSHIPS:
        assert f"PASS {name} " in build.stdout, name

    with duckdb.connect(str(warehouse), read_only=True) as con:
        def query(sql: str, *params) -> list[tuple]:
            return con.execute(sql, list(params)).fetchall()

        for name in ARCHS:
            spec = ARCHITECTURES[name]
            ids = list(spec.base_model_ids)
            assert query("select model_id, role, source from hub_models where architecture = ? and "
                         "(role = 'pretrained' or list_contains(?, model_id))", name, ids) == \
                [(spec.pretrained_id, "pretrained", "published")]
            hub = query("select distinct base_model from hub_models where architecture = ? and source = 'hub'", name)
            assert hub == [(spec.pretrained_id,)]
            # The ranking sees one baseline per architecture: the published seeds, under the warehouse id.
            assert query("select count(distinct model_id) from finetune_runs where architecture = ? and seed is not null",
                         name) == [(1,)]
            assert query("select count(*) from gains where architecture = ?", name)[0][0] > 0
        aliases = list(pretrained_aliases())
        assert query("select count(*) from hub_models where list_contains(?, model_id) or list_contains(?, base_model)",
                     aliases, aliases) == [(0,)]
