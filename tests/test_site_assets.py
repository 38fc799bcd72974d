"""The `product` assets materialize from a warehouse and carry their plot and previews in metadata."""

from __future__ import annotations

import dagster as dg

from assets.product import leaderboard_site, model_cards
from assets.resources import HomeResource, WarehouseResource

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
    # index, 2 architectures and their gain matrices, 9 rows each (the pretrained model's too), 18 targets
    assert site["pages"].value == 41
    assert "org0/roberta-base-inter-0" in site["preview"].value
    plot = site["plot"].value
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        top = con.execute("select mean_gain, ci_low from leaderboard where rank = 1 order by mean_gain "
                          "desc limit 1").fetchone()
    assert plot.count("```") == 4 and "█" in plot  # one bar block per architecture
    assert f"{top[0]:+.2f} [{top[1]:+.2f}," in plot  # the bar shows the gain and its interval, in rank order
    assert "posterior" not in plot
    cards = mats["model_cards"]
    assert cards["cards"].value == 6
    assert "## Finetuning from" in cards["preview"].value
    assert any(tag.startswith("dagster/kind/") for tag in leaderboard_site.specs_by_key[dg.AssetKey("leaderboard_site")].tags)
    assert dg.AssetKey(["leaderboard"]) in {d.asset_key for d in leaderboard_site.specs_by_key[dg.AssetKey("leaderboard_site")].deps}


def test_previews_show_the_gain_the_ranking_and_variance_shares(tmp_path):
    import duckdb

    from assets.previews import preview_metadata

    path = build(tmp_path / "warehouse.duckdb")
    warehouse = WarehouseResource(path=str(path))
    preview = preview_metadata("leaderboard", warehouse)["preview"].value
    con = duckdb.connect(str(path), read_only=True)
    rows = con.execute(
        """select architecture, rank, model_id, mean_gain, ci_low, ci_high, reliability, tied
           from leaderboard where rank is not null order by architecture, rank"""
    ).fetchall()
    con.close()
    assert "| rank | tied | model | gain, points (95% CI) | win rate | P(better than #1) |" in preview
    assert "posterior" not in preview
    for arch, rank, model_id, mean, low, high, rel, tied in rows:
        assert f"**{arch}** (reliability {rel:.2f}: " in preview
        assert f"{mean:+.2f} ({low:+.2f}..{high:+.2f})" in preview
        if tied:
            assert f"| {rank} | ≈1 |" in preview
    assert "cannot be told apart from \\#1 on these targets" in preview  # markdown-escaped
    assert "<script>" not in preview and "evil/\\<script\\>" in preview  # markdown-escaped untrusted id
    shares = preview_metadata("variance_decomposition", warehouse)["preview"].value
    assert "| roberta-base | base | 0.300 (0.180..0.450) |" in shares
    con = duckdb.connect(str(path))  # the decomposition before its rewrite: sum_sq and fraction
    con.execute("drop table variance_decomposition")
    con.execute("create table variance_decomposition(architecture varchar, component varchar, sum_sq double, fraction double)")
    con.execute("insert into variance_decomposition values ('roberta-base', 'base', 300.0, 0.3)")
    con.close()
    assert "| roberta-base | base | 0.300 |" in preview_metadata("variance_decomposition", warehouse)["preview"].value
