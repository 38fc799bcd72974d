"""The `product` assets materialize from a warehouse and carry their plot and previews in metadata."""

from __future__ import annotations

import dagster as dg

from assets.product import leaderboard_site, model_cards
from pipelines.resources import HomeResource, WarehouseResource
from product_fixture import build


def test_site_and_model_card_assets_materialize_with_previews(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    build(home / "warehouse.duckdb")
    result = dg.materialize(
        [leaderboard_site, model_cards],
        resources={"warehouse": WarehouseResource(path=str(home / "warehouse.duckdb")), "home": HomeResource(path=str(home))},
    )
    assert result.success
    mats = {
        e.event_specific_data.materialization.asset_key.to_user_string(): e.event_specific_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    site = mats["leaderboard_site"]
    assert (home / "artifacts" / "site" / "index.html").is_file()
    assert site["pages"].value == 37
    assert "org0/roberta-base-inter-0" in site["preview"].value
    plot = site["plot"].value
    assert plot.count("```") == 4 and "█" in plot and "+6.44" in plot  # one bar block per architecture
    cards = mats["model_cards"]
    assert cards["cards"].value == 6
    assert "## Finetuning from" in cards["preview"].value
    assert any(tag.startswith("dagster/kind/") for tag in leaderboard_site.specs_by_key[dg.AssetKey("leaderboard_site")].tags)
    assert dg.AssetKey(["leaderboard"]) in {d.asset_key for d in leaderboard_site.specs_by_key[dg.AssetKey("leaderboard_site")].deps}
