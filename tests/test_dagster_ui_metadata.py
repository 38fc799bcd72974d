"""What the Dagster UI shows, checked without a browser: the leaderboard's typed tables and numbers equal what
SQL on the warehouse gives, every dbt model's declared columns are the warehouse's (names, order, types), dbt's
artifacts stay out of the checkout, and `startpoint register` rebuilds an instance's history from the lake."""

from __future__ import annotations

import json

import dagster as dg
import duckdb
import pytest

from startpoint import lake

from published_fixture import SHARED, make_folder, materialize_published


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(home, result, entries of sql/target before) after the `published` assets on a small real folder."""
    if not SHARED.is_dir():
        pytest.skip("needs ../shared/model-recycling")
    from startpoint.settings import SQL_DIR

    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("ui-metadata")
    before = set((SQL_DIR / "target").iterdir()) if (SQL_DIR / "target").is_dir() else set()
    result = materialize_published(root / "home", make_folder(root / "results", rows=30), mp)
    assert result.success
    yield root / "home", result, before
    mp.undo()


def _leaderboard_metadata(result) -> dict:
    [mat] = [m for m in result.get_asset_materialization_events()
             if m.asset_key == dg.AssetKey("leaderboard")]
    return mat.materialization.metadata


def _gain(value, low, high) -> str:
    return f"{value:+.2f} [{low:+.2f}, {high:+.2f}]"


def test_leaderboard_tables_and_numbers_are_what_sql_gives(built):
    """Each architecture's table and numbers, rounded as shown, equal SQL on the warehouse rounded the same way;
    the interval reads beside its value, and the Plots tab gets one chart per value, not per interval end."""
    home, result, _ = built
    meta = _leaderboard_metadata(result)
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        archs = [a for (a,) in con.execute("select distinct architecture from leaderboard order by 1").fetchall()]
        assert len(archs) >= 2
        # each architecture's entries sit together, its table first
        assert [k.split("/")[0] for k in meta if "/" in k] == sorted(k.split("/")[0] for k in meta if "/" in k)
        for arch in archs:
            top = con.execute(
                """select rank, model_id, mean_gain, ci_low, ci_high, p_better_than_rank1 from leaderboard
                   where architecture = ? and rank <= 10 order by rank, mean_gain desc""", [arch]).fetchall()
            table = meta[f"{arch}/top_10"]
            assert isinstance(table, dg.TableMetadataValue)
            columns = {c.name: c.type for c in table.schema.columns}
            assert list(columns)[:6] == ["rank", "model_id", "gain_95ci", "mean_gain", "ci_low", "ci_high"]
            # the numbers stay sortable: numeric columns, rounded to 2 decimals
            assert [columns[c] for c in ("mean_gain", "ci_low", "ci_high", "p_better_than_rank1")] == ["float"] * 4
            shown = [(r.data["rank"], r.data["model_id"], r.data["gain_95ci"], r.data["mean_gain"],
                      r.data["ci_low"], r.data["ci_high"], r.data["p_better_than_rank1"]) for r in table.records]
            assert shown == [(rank, model, _gain(gain, low, high), round(gain, 2), round(low, 2), round(high, 2),
                              None if p is None else round(p, 2)) for rank, model, gain, low, high, p in top]
            assert all(a[0] <= b[0] for a, b in zip(shown, shown[1:]))
            assert not any("posterior" in c for c in columns)
            models, = con.execute("select count(rank) from leaderboard where architecture = ?", [arch]).fetchone()
            reliability, = con.execute("select reliability from ranking_reliability where architecture = ?",
                                       [arch]).fetchone()
            shares = {c: rest for c, *rest in con.execute(
                """select component, share, share_low, share_high from variance_decomposition
                   where architecture = ?""", [arch]).fetchall()}
            assert meta[f"{arch}/models"].value == models
            assert meta[f"{arch}/top_model"].value == top[0][1]
            assert meta[f"{arch}/top_score"].value == round(top[0][2], 2)
            assert meta[f"{arch}/top_score_95ci"].value == _gain(*top[0][2:5])
            assert meta[f"{arch}/reliability"].value == round(reliability, 2)
            for component in ("base", "target"):
                share, low, high = shares[component]
                assert meta[f"{arch}/share_{component}_pct"].value == round(100 * share, 1)
                # the interval where the decomposition could estimate it (share_low / share_high not null)
                interval = "" if low is None else f" [{round(100 * low, 1):.1f}%, {round(100 * high, 1):.1f}%]"
                assert meta[f"{arch}/share_{component}_95ci"].value == f"{round(100 * share, 1):.1f}%{interval}"
            assert shares["base"][1] <= shares["base"][0] <= shares["base"][2]
            # the interval ends are no separate numbers (no charts of their own)
            assert not any(k.startswith(f"{arch}/") and k.endswith(("_low", "_high")) for k in meta)
    finally:
        con.close()
    # The Plots tab charts numeric metadata only: every per-architecture value is a float or an int, each interval
    # a text entry beside it.
    numbers = {k: v for k, v in meta.items() if k.split("/")[-1] in ("models", "top_score", "reliability",
                                                                       "share_base_pct", "share_target_pct")}
    assert numbers and all(isinstance(v, (dg.FloatMetadataValue, dg.IntMetadataValue)) for v in numbers.values())
    assert all(isinstance(v, dg.TextMetadataValue) for k, v in meta.items() if k.endswith("_95ci"))


def test_declared_dbt_columns_are_the_warehouse_columns(built):
    """The Columns panel shows the yml's columns: each model declares exactly the columns it builds, with the
    warehouse's types, each described."""
    from assets.dbt import dbt_project

    home, _, _ = built
    manifest = json.loads(dbt_project.manifest_path.read_text())
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        for node in manifest["nodes"].values():
            if node["resource_type"] != "model":
                continue
            actual = con.execute(
                "select column_name, lower(data_type) from information_schema.columns where table_name = ? "
                "order by ordinal_position", [node["name"]]).fetchall()
            declared = [(c["name"], (c.get("data_type") or "").lower()) for c in node["columns"].values()]
            assert declared == actual, node["name"]
            assert all(c.get("description") for c in node["columns"].values()), node["name"]
    finally:
        con.close()


def _size(folder) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_dbt_artifacts_stay_out_of_the_checkout_and_do_not_grow(built):
    """Each Dagster dbt run writes to $STARTPOINT_HOME/dbt, reused run after run: a second run leaves the folder
    the size of one run's artifacts, and sql/target gains nothing."""
    from assets.dbt import dbt_resource
    from assets.resources import WarehouseResource
    from assets.sql_models import sql_models
    from startpoint.settings import SQL_DIR

    home, _, before = built
    assert (home / "dbt" / "run_results.json").is_file()
    first = _size(home / "dbt")
    again = dg.materialize([sql_models], instance=dg.DagsterInstance.ephemeral(), resources={
        "dbt": dbt_resource(), "warehouse": WarehouseResource(path=str(home / "warehouse.duckdb"))})
    assert again.success
    second = _size(home / "dbt")
    assert second <= first * 1.1, (first, second)
    after = set((SQL_DIR / "target").iterdir()) if (SQL_DIR / "target").is_dir() else set()
    assert not {p for p in after - before if p.name.startswith("sql_models-")}


def test_register_rebuilds_partitions_and_history_from_the_lake(tmp_path):
    from pipelines.register import CATALOG_RECORDED, register
    from startpoint.hub.architectures import ARCHITECTURES
    from startpoint.keys import encode_key, source_key

    url = str(tmp_path / "lake")
    lake.write(url, "datasets", "local/fine_foods", [{"dataset_id": "fine_foods"}])
    lake.write(url, "hub_models", "hub/roberta-base", [])  # a catalog that listed nothing still happened
    lake.write(url, "hub_models", "local/m", [{"model_id": "local/m", "architecture": "a", "role": "intermediate",
                                                "base_model": "org/base", "source": "local",
                                                "tags": json.dumps(["source:fine_foods"])}])
    for seed, score in ((0, 70.0), (1, 72.0)):
        lake.write(url, "finetune_runs", f"local/m/t/h-seed{seed}", [
            {"run_id": f"r{seed}", "model_id": "local/m", "architecture": "a", "dataset_id": "t", "seed": seed,
             "score": score, "status": "ok", "origin": "local"}])
    lake.write(url, "probe_scores", "local/m", [{"model_id": "local/m", "architecture": "a", "method": "logme",
                                                  "proxy_dataset": "t", "origin": "local", "score": 1.0}])
    instance = dg.DagsterInstance.ephemeral()
    reported = register(instance, url, log=lambda m: None)
    # roberta-base's catalog is registered; the three never listed are recorded as they stand (empty, no Hub).
    assert reported == {"lake/datasets": 1, "lake/hub_models": 1, "lake/intermediate_models": 1,
                        "lake/finetune_runs": 1, "lake/probe_scores": 1, CATALOG_RECORDED: len(ARCHITECTURES) - 1}
    assert set(instance.get_dynamic_partitions("sources")) == {source_key("org/base", "fine_foods")}
    assert set(instance.get_dynamic_partitions("targets")) == {"t"}
    key = dg.MultiPartitionKey({"model": encode_key("local/m"), "target": "t"})
    event = instance.get_latest_materialization_event(dg.AssetKey(["lake", "finetune_runs"]))
    assert event.dagster_event.partition == str(key)
    meta = event.asset_materialization.metadata
    assert meta["registered_from_lake"].value is True and meta["mean_score"].value == 71.0
    assert meta["seeds"].value == "0, 1"
    # Nothing upstream of `published` is left unmaterialized (the UI would warn when it is launched).
    assert instance.get_materialized_partitions(dg.AssetKey(["lake", "hub_models"])) == set(ARCHITECTURES)
    recorded = instance.get_latest_materialization_event(dg.AssetKey(["lake", "hub_models"]))
    assert recorded.asset_materialization.metadata["source"].value.startswith("not listed: the Hub was not contacted")
    assert len(lake.list_files(url, "hub_models", "hub")) == len(ARCHITECTURES)
    # A second run finds nothing new.
    assert sum(register(instance, url, log=lambda m: None).values()) == 0
