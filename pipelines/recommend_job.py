"""The `recommend` Dagster job: the same recommendation as the CLI, launched from the UI with run config.

Two steps: `recommend_target` (reads the warehouse, and with `run: true` finetunes and writes the lake; it
holds no warehouse lock while training) and `reload_user_runs` (in the `duckdb` pool, rebuilds the base tables
from the lake when runs were made).
"""

from pathlib import Path

import dagster as dg

from assets.resources import HomeResource, LakeResource, WarehouseResource
from startpoint.recommend.core import RecommendOptions
from startpoint.warehouse.load import POOL


class RecommendRunConfig(dg.Config, RecommendOptions):
    """Run config of the `recommend` job: the very fields of `startpoint recommend` (RecommendOptions)."""


@dg.op(out=dg.Out(dict), description="Predict (and with run: true, check by finetuning) the best base model.")
def recommend_target(
    context: dg.OpExecutionContext, config: RecommendRunConfig, lake: LakeResource, warehouse: WarehouseResource,
    home: HomeResource,
) -> dict:
    from startpoint.recommend import recommend
    from startpoint.settings import Settings
    from startpoint.tables import markdown_table, markdown_text

    settings = Settings(home=Path(home.path), lake_url=lake.url, published_results=None)
    if Path(warehouse.path) != settings.warehouse_path:
        raise dg.Failure(f"the warehouse resource ({warehouse.path}) is not $STARTPOINT_HOME/warehouse.duckdb "
                         f"({settings.warehouse_path}); point both at the same home")
    report_path = config.report or str(
        settings.artifacts_dir / "recommend" / f"{Path(config.data).stem}-{context.run_id[:8]}.json"
    )
    # The warehouse is reloaded by the next step, in the duckdb pool.
    options = RecommendOptions(**{**config.model_dump(), "report": report_path, "reload_warehouse": False})
    report = recommend(options, settings=settings, log=context.log.info)
    rows = [(c["rank"], markdown_text(c["model_id"]), round(c["expected_gain"], 2), round(c["low"], 2),
             round(c["high"], 2), round(c["p_beats_pretrained"], 2)) for c in report["candidates"]]
    context.add_output_metadata({
        "decision": dg.MetadataValue.text(report["decision"]["text"]),
        "candidates": dg.MetadataValue.md(
            markdown_table(["rank", "model", "expected gain", "low", "high", "P(beats pretrained)"], rows)),
        "report": dg.MetadataValue.path(report_path),
    })
    context.log.info(f"decision: {report['decision']['text']}")
    return report


@dg.op(pool=POOL, description="Rebuild the warehouse base tables from the lake after user runs.")
def reload_user_runs(context: dg.OpExecutionContext, report: dict, lake: LakeResource, warehouse: WarehouseResource) -> None:
    from startpoint.warehouse.load import load_tables

    if "protocol" not in report:
        context.log.info("no runs were made (run: false); the warehouse is unchanged")
        return
    counts = load_tables(lake.url, warehouse.path)
    context.log.info(f"warehouse reloaded: {counts}")


@dg.job(name="recommend", description="Which base model to start finetuning from, for a dataset you bring.")
def recommend_job() -> None:
    reload_user_runs(recommend_target())
