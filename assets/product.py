"""What people read: the static leaderboard site and the model-card export, built from the warehouse.

Both sit downstream of the dbt `leaderboard` model (group `product`). Their metadata carries a ranked-bars plot
of each architecture's top models (markdown) and previews, so the UI shows the result without opening files.
"""

# No `from __future__ import annotations` here: Dagster inspects the `context` annotation at definition time.
from pathlib import Path

import dagster as dg
from pydantic import Field

from assets.resources import HomeResource, WarehouseResource
from startpoint.tables import markdown_table, markdown_text
from startpoint.warehouse.load import POOL

# dbt models the site reads (their asset keys are the model names).
SITE_INPUTS = [dg.AssetKey([name]) for name in ("leaderboard", "gains", "target_effects", "variance_decomposition")]
BAR_WIDTH = 30  # characters of the longest bar in the markdown plot
PLOT_TOP = 10


def ranked_bars_markdown(warehouse_path: str, top: int = PLOT_TOP) -> str:
    """A text bar chart of the top rows' gain (points, 95% interval) in rank order per architecture, readable in the
    UI; the pretrained model's row is marked "stay"."""
    from startpoint.warehouse.leaderboard import read_leaderboard
    from startpoint.warehouse.load import connect

    con = connect(warehouse_path, read_only=True)
    try:
        board = read_leaderboard(con, top=top)
    finally:
        con.close()
    rows = [(r["architecture"], r["rank"], f"{r['model_id']} (stay)" if r["is_pretrained"] else r["model_id"],
             r["mean_gain"], r["ci_low"], r["ci_high"]) for r in board.iter_rows(named=True)]
    if not rows:
        return "_no ranked models_"
    scale = max(abs(r[3]) for r in rows if r[3] is not None) or 1.0
    blocks: dict[str, list[str]] = {}
    for architecture, rank, model_id, gain, low, high in rows:
        gain = gain or 0.0
        bar = ("-" if gain < 0 else " ") + "█" * max(1, round(abs(gain) / scale * BAR_WIDTH))
        blocks.setdefault(architecture, []).append(
            f"{rank:>3} {str(model_id)[:40]:<40} {bar} {gain:+.2f} [{_signed(low)}, {_signed(high)}]"
        )
    return "\n\n".join(
        f"**{arch}** (gain over the pretrained model, points, 95% interval, in rank order)\n\n```\n" + "\n".join(lines) + "\n```"
        for arch, lines in blocks.items()
    )


def _signed(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.2f}"


def _best_table(best: dict[str, dict]) -> str:
    rows = [
        (arch, markdown_text(b["model_id"] + (" (pretrained: stay)" if b.get("is_pretrained") else "")),
         f"{b['mean_gain']:+.2f} [{_signed(b.get('ci_low'))}, {_signed(b.get('ci_high'))}]", b["pretrained_avg"])
        for arch, b in best.items()
    ]
    return markdown_table(["architecture", "rank 1", "gain, points [95%]", "pretrained average"], rows)


@dg.asset(
    group_name="product",
    deps=SITE_INPUTS,
    pool=POOL,
    kinds={"html"},
    description="Static leaderboard site (index, architectures, models, targets; inline SVG, works offline).",
)
def leaderboard_site(context: dg.AssetExecutionContext, warehouse: WarehouseResource, home: HomeResource) -> dg.MaterializeResult:
    from startpoint.site import build_site

    out = Path(home.path) / "artifacts" / "site"
    summary = build_site(warehouse.path, out, progress=context.log.info)
    context.log.info(f"site: {summary.pages} pages in {summary.out_dir}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(summary.out_dir / "index.html")),
            "pages": summary.pages,
            "architectures": len(summary.architectures),
            "preview": dg.MetadataValue.md(_best_table(summary.best)),
            "plot": dg.MetadataValue.md(ranked_bars_markdown(warehouse.path)),
        }
    )


class ModelCardsConfig(dg.Config):
    site_url: str = Field(
        "",
        description="Public http(s) base URL the site is published at, for the cards' links and the model-index "
                    "source; empty: $STARTPOINT_SITE_URL, and without it the cards carry no site link.",
    )
    top: int = Field(3, ge=1, description="Cards per architecture (its top-ranked candidates).")


@dg.asset(
    group_name="product",
    deps=[dg.AssetKey(["leaderboard"]), dg.AssetKey(["gains"])],
    pool=POOL,
    kinds={"markdown", "yaml"},
    description="Model-card sections and Hugging Face model-index YAML for the top models of each architecture.",
)
def model_cards(context: dg.AssetExecutionContext, config: ModelCardsConfig, warehouse: WarehouseResource,
                home: HomeResource) -> dg.MaterializeResult:
    from startpoint.modelcard import export_model_cards
    from startpoint.modelcard.export import default_site_url

    summary = export_model_cards(warehouse.path, Path(home.path) / "artifacts" / "model_cards", top=config.top,
                                 site_url=config.site_url or default_site_url())
    for card in summary.cards:
        context.log.info(f"{card.architecture} #{card.rank} {card.model_id}: {card.n_results} results")
    first = summary.cards[0].markdown_path.read_text(encoding="utf-8").split("---\n", 2)[-1] if summary.cards else ""
    return dg.MaterializeResult(
        metadata={
            "cards": len(summary.cards),
            "index": dg.MetadataValue.path(str(summary.index_path)),
            "preview": dg.MetadataValue.md(first[:4000] or "_no ranked models_"),
            "plot": dg.MetadataValue.md(ranked_bars_markdown(warehouse.path, top=3)),
        }
    )
