"""Model-card export: for the top-ranked candidates of each architecture, a markdown section and the Hugging Face
`model-index` YAML of their finetuning results, written to files (nothing is sent anywhere).

The `model-index` lists, per target with a known Hub dataset (:mod:`startpoint.published.hub_datasets`), the
score obtained by finetuning from the model (mean over seeds); targets without one stay in the markdown table but
not in the YAML, since a result needs a Hub dataset id and none is invented. The markdown gives the gain a user
reads: the mean gain over the pretrained model across the model's kept cells, with its 95% interval; the ranking
score that orders the list is never shown as a gain. The pretrained model is a row of the ranking ("stay") but
gets no card; a card whose model is not expected to beat it says so.

Links: the site's public base URL (`site_url`, the `--site-url` option or ``STARTPOINT_SITE_URL``), or none at
all: a card never links to a local path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import polars as pl
import yaml

from startpoint.frames import frame
from startpoint.modelcard.markdown import Md, cell, number, render
from startpoint.modelcard.markdown import code as _code  # noqa: F401  (the code-span rule, tested on its own)
from startpoint.published.hub_datasets import hub_dataset
from startpoint.site.paths import SitePaths, site_paths
from startpoint.tables import markdown_table, visible_text
from startpoint.warehouse.leaderboard import read_leaderboard
from startpoint.warehouse.load import connect
from startpoint.warehouse.reliability import read_top_reliability, top_reliability_sentence

SITE_URL_ENV = "STARTPOINT_SITE_URL"
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")
# model-index metric ids (hf.co/metrics) and how each is named on the card; scores are in percent
METRIC_TYPES = {"accuracy": "accuracy", "spearman": "spearmanr"}
METRIC_NAMES = {"accuracy": "Accuracy", "spearman": "Spearman correlation (x100)"}
BELOW_PRETRAINED_NOTE = Md(" (starting from the pretrained model is expected to do as well or better)")


@dataclass
class ModelCard:
    architecture: str
    model_id: str
    rank: int
    markdown_path: Path
    yaml_path: Path
    n_results: int  # results in the model-index (targets with a Hub dataset)
    n_targets: int = 0  # targets in the markdown table
    below_pretrained: bool = False


@dataclass
class ExportSummary:
    out_dir: Path
    cards: list[ModelCard] = field(default_factory=list)
    index_path: Path | None = None
    site_url: str | None = None


def default_site_url() -> str | None:
    """``STARTPOINT_SITE_URL``: where the site is published, or None (no site links)."""
    return os.environ.get(SITE_URL_ENV) or None


def public_site_url(site_url: str | None) -> str | None:
    """The site's public base URL, checked: an http(s) address with a host, or None (blank too) for no link.
    A local path or a file:// URI is refused; in the path, characters that would break a link or end it early
    (spaces, brackets, `?`, `#`, control characters) are percent-encoded."""
    if site_url is None or not str(site_url).strip():
        return None
    text = str(site_url).strip()
    scheme, sep, rest = text.partition("://")
    host, slash, path = rest.partition("/")
    if not sep or scheme.lower() not in ("http", "https") or not _HOST.fullmatch(host):
        raise ValueError(f"--site-url must be the public http(s) address the site is published at, got {text!r} "
                         f"(leave it out for cards without a site link)")
    path = quote(visible_text(path), safe="/%-._~!$&'*+,;=:@")
    return f"{scheme.lower()}://{host}{slash}{path}".rstrip("/")


def model_url(site_url: str, paths: SitePaths, architecture: str, model_id: str) -> str:
    """The model's page on the published site (the site's own file layout, :mod:`startpoint.site.paths`)."""
    return f"{site_url.rstrip('/')}/{paths.model(architecture, model_id)}"


def _missing(value) -> bool:
    return number(value, "f") == "n/a"


def model_index(model_id: str, gains: pl.DataFrame, source_name: str, source_url: str | None) -> dict:
    """The `model-index` mapping for one model: one result per target with a known Hub dataset (scores in percent);
    `source` only with a public URL (the schema wants a url wherever a source name is given)."""
    results = []
    for g in gains.sort("dataset_id", maintain_order=True).iter_rows(named=True):
        hub = hub_dataset(g["dataset_id"])
        if hub is None:
            continue
        metric = g["metric"] if isinstance(g["metric"], str) and g["metric"] else "accuracy"
        seeds = g["n_seeds"]
        dataset = {"type": hub.type, "name": str(g["dataset_id"])}
        if hub.config:
            dataset["config"] = hub.config
        result = {
            "task": {"type": "text-classification", "name": "Text Classification"},
            "dataset": dataset,
            "metrics": [
                {
                    "type": METRIC_TYPES.get(metric, metric),
                    "value": round(float(g["score_mean"]), 2),
                    "name": f"{METRIC_NAMES.get(metric, metric)} after finetuning from this model"
                    + (f" (mean of {int(seeds)} seeds)" if not _missing(seeds) and seeds > 1 else ""),
                }
            ],
        }
        if source_url:
            result["source"] = {"name": source_name, "url": source_url}
        results.append(result)
    return {"model-index": [{"name": model_id, "results": results}]}


def _gains_table(gains: pl.DataFrame) -> Md:
    rows = [
        (cell(g["dataset_id"]), cell(g["metric"]) if isinstance(g["metric"], str) else "",
         number(g["score_mean"], ".2f"), number(g["baseline_mean"], ".2f"), number(g["gain"], "+.2f"))
        for g in gains.sort("gain", descending=True, maintain_order=True, nulls_last=True).iter_rows(named=True)
    ]
    return Md(markdown_table(["target", "metric", "score", "pretrained", "gain"], rows))


def _standing(row: dict) -> dict:
    """Where the model stands: against rank 1, against the pretrained model, and whether the order means anything."""
    rank = int(row["rank"])
    tied = row.get("tied")
    if tied is None:
        tied = row.get("tied_with_rank1")
    evidence = row.get("order_has_evidence")
    if tied is None:
        comparison = ""
    elif rank == 1:
        comparison = "leader"
    else:
        comparison = "tied" if tied else "below"
    gain = row.get("mean_gain")
    pretrained_rank = row.get("pretrained_rank")
    gain_not_positive = not _missing(gain) and gain <= 0
    ranked_below = not _missing(pretrained_rank) and rank > pretrained_rank
    p = row.get("p_better_than_rank1")
    n_tied = row.get("n_tied")
    return {
        "comparison": comparison,
        "evidence": evidence is not False,  # unknown (older warehouses): say nothing about it
        "n_tied": 0 if _missing(n_tied) else int(n_tied),
        "chance": p if not _missing(p) and 0 <= p <= 1 else None,
        "below_pretrained": gain_not_positive or ranked_below,
        "gain_not_positive": gain_not_positive,
        "ranked_below": ranked_below,
        "interval": not _missing(row.get("ci_low")) and not _missing(row.get("ci_high")),
        "reliability": row.get("reliability") if not _missing(row.get("reliability")) else None,
        "top_sentence": top_reliability_sentence(row["top_reliability"]) if row.get("top_reliability") else None,
    }


def _context(row: dict, gains: pl.DataFrame, n_ranked: int, source_url: str | None) -> dict:
    return {"row": row, "n_ranked": n_ranked, "source_url": source_url, "table": _gains_table(gains),
            "pretrained_id": row.get("pretrained_id"), "pretrained_rank": row.get("pretrained_rank"),
            **_standing(row)}


def markdown_section(row: dict, gains: pl.DataFrame, n_ranked: int, source_url: str | None = None) -> str:
    """The ranking section of a model card (templates/section.md.j2): `row` a leaderboard row, `gains` its
    per-target gains (dataset_id, metric, score_mean, baseline_mean, gain); `source_url` the model's page on the
    published site, or None for no link."""
    return render("section.md.j2", **_context(row, gains, n_ranked, source_url))


def _leaders(board: pl.DataFrame) -> pl.DataFrame:
    """Ranked, unflagged candidates of the leaderboard (read_leaderboard) with the counts a card states: the
    pretrained row left out (it is no candidate to card), `n_tied` the other candidates tied with #1."""
    ranked = board.filter(pl.col("rank").is_not_null() & ~pl.col("flagged"))
    return ranked.with_columns(
        (pl.col("tied").fill_null(False) & (pl.col("rank") > 1) & ~pl.col("is_pretrained"))
        .sum().over("architecture").alias("n_tied"),
        pl.len().over("architecture").alias("n_ranked"),
    ).filter(~pl.col("is_pretrained")).sort(["architecture", "rank"], maintain_order=True)


def export_model_cards(warehouse_path: str | Path, out_dir: str | Path, top: int = 3,
                       site_url: str | None = None) -> ExportSummary:
    """Cards for the `top` ranked candidates of each architecture into `out_dir`. `site_url`: the public base URL
    of the published site (links and the model-index `source`); None for cards without a site link."""
    if top < 1:
        raise ValueError(f"--top must be at least 1, got {top}")
    out_dir = Path(out_dir)
    site_url = public_site_url(site_url)
    con = connect(warehouse_path, read_only=True)
    try:
        board = read_leaderboard(con)
        leaders = _leaders(board).group_by("architecture", maintain_order=True).head(top)
        tops = read_top_reliability(con)
        gains = frame(con.execute(
            """select g.architecture, g.model_id, g.dataset_id, g.n_seeds, g.score_mean, g.baseline_mean, g.gain,
                      d.metric
               from gains g left join datasets d using (dataset_id)
               where g.gain is not null""",
        ))
    finally:
        con.close()
    paths = site_paths(board)
    summary = ExportSummary(out_dir=out_dir, site_url=site_url)
    listed = []
    for row in leaders.iter_rows(named=True):
        arch, model_id = row["architecture"], row["model_id"]
        row["top_reliability"] = tops.get(arch)
        g = gains.filter((pl.col("architecture") == arch) & (pl.col("model_id") == model_id))
        link = model_url(site_url, paths, arch, model_id) if site_url else None
        meta = model_index(model_id, g, f"startpoint leaderboard ({arch})", link)
        folder = out_dir / paths.arch_slug(arch)
        folder.mkdir(parents=True, exist_ok=True)
        stem = paths.model_slug(arch, model_id)
        # ASCII only: non-ASCII (bidi overrides included) is written as \u escapes, which YAML reads back exactly.
        yaml_text = yaml.safe_dump(meta, sort_keys=False, allow_unicode=False)
        md_path, yaml_path = folder / f"{stem}.md", folder / f"{stem}.model-index.yaml"
        context = _context(row, g, int(row["n_ranked"]), link)
        md_path.write_text(render("card.md.j2", front_matter=Md(yaml_text), **context), encoding="utf-8")
        yaml_path.write_text(yaml_text, encoding="utf-8")
        summary.cards.append(ModelCard(arch, model_id, int(row["rank"]), md_path, yaml_path,
                                       len(meta["model-index"][0]["results"]), len(g), context["below_pretrained"]))
        # the file's path is made of slugs ([A-Za-z0-9._-]): printed as it is
        listed.append({"architecture": arch, "model_id": model_id, "rank": int(row["rank"]),
                       "file": Md(f"{folder.name}/{md_path.name}"),
                       "note": BELOW_PRETRAINED_NOTE if context["below_pretrained"] else ""})
    out_dir.mkdir(parents=True, exist_ok=True)
    summary.index_path = out_dir / "index.md"
    summary.index_path.write_text(render("index.md.j2", cards=listed), encoding="utf-8")
    return summary
