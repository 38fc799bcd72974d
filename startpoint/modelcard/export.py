"""Model-card export: for the top-ranked models of each architecture, a markdown section and the Hugging Face
`model-index` YAML of their finetuning results, written to files (nothing is sent anywhere).

The `model-index` lists, per target, the score obtained by finetuning from the model (mean over seeds), with
the startpoint leaderboard as source; the markdown adds the posterior gain that sets the rank (with its interval),
the reliability of the architecture's ranking, the plain mean gain over the pretrained model and its interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import yaml

from startpoint.frames import frame
from startpoint.modelcard.markdown import Md, cell, number, render
from startpoint.modelcard.markdown import code as _code  # noqa: F401  (the code-span rule, tested on its own)
from startpoint.site.build import model_href
from startpoint.site.data import RANKING_COLUMNS, _columns, _select
from startpoint.site.html import slug
from startpoint.tables import markdown_table
from startpoint.warehouse.load import connect

METRIC_NAMES = {"accuracy": "Accuracy", "spearman": "Spearman correlation (x100)"}


@dataclass
class ModelCard:
    architecture: str
    model_id: str
    rank: int
    markdown_path: Path
    yaml_path: Path
    n_results: int


@dataclass
class ExportSummary:
    out_dir: Path
    cards: list[ModelCard] = field(default_factory=list)
    index_path: Path | None = None


def model_url(site_url: str, architecture: str, model_id: str) -> str:
    return f"{site_url.rstrip('/')}/{model_href(architecture, model_id)}"


def _missing(value) -> bool:
    return number(value, "f") == "n/a"


def model_index(model_id: str, gains: pl.DataFrame, source_name: str, source_url: str) -> dict:
    """The `model-index` mapping for one model: one result per target, scores in percent."""
    results = []
    for g in gains.sort("dataset_id", maintain_order=True).iter_rows(named=True):
        metric = g["metric"] if isinstance(g["metric"], str) and g["metric"] else "accuracy"
        seeds = g["n_seeds"]
        results.append(
            {
                "task": {"type": "text-classification", "name": "Text Classification"},
                "dataset": {"name": str(g["dataset_id"]), "type": str(g["dataset_id"])},
                "metrics": [
                    {
                        "type": metric,
                        "value": round(float(g["score_mean"]), 2),
                        "name": f"{METRIC_NAMES.get(metric, metric)} after finetuning from this model"
                        + (f" (mean of {int(seeds)} seeds)" if not _missing(seeds) and seeds > 1 else ""),
                    }
                ],
                "source": {"name": source_name, "url": source_url},
            }
        )
    return {"model-index": [{"name": model_id, "results": results}]}


def _comparison(row: dict) -> str:
    """How the model stands against rank 1, from the leaderboard's paired comparison ('' without it)."""
    if row.get("tied_with_rank1") is None:
        return ""
    if int(row["rank"]) == 1:
        return "leader"
    return "tied" if bool(row["tied_with_rank1"]) else "below"


def _gains_table(gains: pl.DataFrame) -> Md:
    rows = [
        (cell(g["dataset_id"]), cell(g["metric"]) if isinstance(g["metric"], str) else "",
         number(g["score_mean"], ".2f"), number(g["baseline_mean"], ".2f"), number(g["gain"], "+.2f"))
        for g in gains.sort("gain", descending=True, maintain_order=True, nulls_last=True).iter_rows(named=True)
    ]
    return Md(markdown_table(["target", "metric", "score", "pretrained", "gain"], rows))


def _context(row: dict, gains: pl.DataFrame, n_ranked: int, source_url: str) -> dict:
    p = row.get("p_better_than_rank1")
    n_tied = row.get("n_tied")
    return {
        "row": {**row, "posterior_gain": row.get("posterior_gain"), "posterior_low": row.get("posterior_low"),
                "posterior_high": row.get("posterior_high"), "reliability": row.get("reliability")},
        "n_ranked": n_ranked, "source_url": source_url, "posterior": not _missing(row.get("posterior_gain")),
        "comparison": _comparison(row), "n_tied": 0 if _missing(n_tied) else int(n_tied),
        "chance": p if not _missing(p) and 0 <= p <= 1 else None, "table": _gains_table(gains),
    }


def markdown_section(row: dict, gains: pl.DataFrame, n_ranked: int, source_url: str) -> str:
    """The ranking section of a model card (templates/section.md.j2): `row` a leaderboard row, `gains` its
    per-target gains (dataset_id, metric, score_mean, baseline_mean, gain)."""
    return render("section.md.j2", **_context(row, gains, n_ranked, source_url))


def export_model_cards(warehouse_path: str | Path, out_dir: str | Path, top: int = 3, site_url: str | None = None) -> ExportSummary:
    if top < 1:
        raise ValueError(f"--top must be at least 1, got {top}")
    out_dir = Path(out_dir)
    site_url = site_url or (Path(warehouse_path).resolve().parent / "artifacts" / "site").as_uri()
    con = connect(warehouse_path, read_only=True)
    try:
        ranking = _select(_columns(con, "leaderboard"), RANKING_COLUMNS)
        leaders = frame(con.execute(
            f"""select architecture, rank, model_id, avg_score, pretrained_avg, mean_gain, ci_low, ci_high, win_rate,
                       n_targets, count(*) over (partition by architecture) as n_ranked,
                       count(*) filter (where tied_with_rank1 and rank > 1) over (partition by architecture) as n_tied,
                       {ranking}
                from (select * from leaderboard where rank is not null and not coalesce(flagged, false))
                order by architecture, rank"""
        ))
        leaders = leaders.group_by("architecture", maintain_order=True).head(top)
        gains = frame(con.execute(
            """select g.architecture, g.model_id, g.dataset_id, g.n_seeds, g.score_mean, g.baseline_mean, g.gain,
                      d.metric
               from gains g left join datasets d using (dataset_id)
               semi join leaderboard l on l.architecture = g.architecture and l.model_id = g.model_id
                                        and l.rank is not null
               where g.gain is not null""",
        ))
    finally:
        con.close()
    summary = ExportSummary(out_dir=out_dir)
    listed = []
    for row in leaders.iter_rows(named=True):
        arch, model_id = row["architecture"], row["model_id"]
        g = gains.filter((pl.col("architecture") == arch) & (pl.col("model_id") == model_id))
        url = model_url(site_url, arch, model_id)
        meta = model_index(model_id, g, f"startpoint leaderboard ({arch})", url)
        folder = out_dir / slug(arch)
        folder.mkdir(parents=True, exist_ok=True)
        stem = slug(model_id)
        # ASCII only: non-ASCII (bidi overrides included) is written as \u escapes, which YAML reads back exactly.
        yaml_text = yaml.safe_dump(meta, sort_keys=False, allow_unicode=False)
        md_path, yaml_path = folder / f"{stem}.md", folder / f"{stem}.model-index.yaml"
        md_path.write_text(render("card.md.j2", front_matter=Md(yaml_text),
                                  **_context(row, g, int(row["n_ranked"]), url)), encoding="utf-8")
        yaml_path.write_text(yaml_text, encoding="utf-8")
        summary.cards.append(ModelCard(arch, model_id, int(row["rank"]), md_path, yaml_path, len(g)))
        # the file's path is made of slugs ([A-Za-z0-9._-]): printed as it is
        listed.append({"architecture": arch, "model_id": model_id, "rank": int(row["rank"]),
                       "file": Md(f"{folder.name}/{md_path.name}")})
    out_dir.mkdir(parents=True, exist_ok=True)
    summary.index_path = out_dir / "index.md"
    summary.index_path.write_text(render("index.md.j2", cards=listed), encoding="utf-8")
    return summary
