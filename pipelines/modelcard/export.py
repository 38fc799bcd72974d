"""Model-card export: for the top-ranked models of each architecture, a markdown section and the Hugging Face
`model-index` YAML of their finetuning results, written to files (nothing is sent anywhere).

The `model-index` lists, per target, the score obtained by finetuning from the model (mean over seeds), with
the startpoint leaderboard as source; the markdown adds the posterior gain that sets the rank (with its interval),
the reliability of the architecture's ranking, the plain mean gain over the pretrained model and its interval.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from pipelines.site.build import model_href
from pipelines.site.data import RANKING_COLUMNS, _columns, _select
from pipelines.site.html import slug
from pipelines.tables import markdown_text
from pipelines.warehouse.load import connect

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


def model_index(model_id: str, gains: pd.DataFrame, source_name: str, source_url: str) -> dict:
    """The `model-index` mapping for one model: one result per target, scores in percent."""
    results = []
    for g in gains.sort_values("dataset_id").itertuples():
        metric = g.metric if isinstance(g.metric, str) and g.metric else "accuracy"
        results.append(
            {
                "task": {"type": "text-classification", "name": "Text Classification"},
                "dataset": {"name": str(g.dataset_id), "type": str(g.dataset_id)},
                "metrics": [
                    {
                        "type": metric,
                        "value": round(float(g.score_mean), 2),
                        "name": f"{METRIC_NAMES.get(metric, metric)} after finetuning from this model"
                        + (f" (mean of {int(g.n_seeds)} seeds)" if pd.notna(g.n_seeds) and g.n_seeds > 1 else ""),
                    }
                ],
                "source": {"name": source_name, "url": source_url},
            }
        )
    return {"model-index": [{"name": model_id, "results": results}]}


def _f(value, spec: str) -> str:
    """Format a number that may be missing (NULL in the warehouse)."""
    return "n/a" if value is None or pd.isna(value) else format(value, spec)


def _visible(text) -> str:
    """Control and format characters (escape sequences, bidi overrides) as visible \\u.... escapes."""
    return "".join(ch if ch == " " or unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp")
                   else f"\\u{ord(ch):04x}" for ch in str(text))


def _code(text) -> str:
    """Untrusted text as a markdown code span: a fence longer than any backtick run inside, on one line, with
    control and bidi characters shown as escapes."""
    text = _visible(" ".join(str(text).split()))
    run = cur = 0
    for ch in text:
        cur = cur + 1 if ch == "`" else 0
        run = max(run, cur)
    fence = "`" * (run + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text) -> str:
    """Untrusted text as a markdown table cell: markup escaped (no raw HTML), pipes escaped, one line."""
    return markdown_text(_visible(text)).replace("|", "\\|")


def _comparison(row) -> str:
    """How the model stands against rank 1, from the leaderboard's paired comparison (empty without it)."""
    if "tied_with_rank1" not in row._fields or row.tied_with_rank1 is None or pd.isna(row.tied_with_rank1):
        return ""
    if int(row.rank) == 1:
        n = int(row.n_tied) if pd.notna(row.n_tied) else 0
        return (f" {n} other {'model' if n == 1 else 'models'} cannot be told apart from it on these targets."
                if n else "")
    p = row.p_better_than_rank1
    chance = f" (chance of being better than rank 1: {p:.0%})" if p is not None and pd.notna(p) and 0 <= p <= 1 else ""
    if bool(row.tied_with_rank1):
        return f" It cannot be told apart from rank 1 on these targets{chance}."
    return f" It is below rank 1 on these targets{chance}."


def markdown_section(row, gains: pd.DataFrame, n_ranked: int, source_url: str) -> str:
    posterior = ""
    if "posterior_gain" in row._fields and row.posterior_gain is not None and pd.notna(row.posterior_gain):
        reliability = getattr(row, "reliability", None)
        posterior = (
            f"Its posterior gain, which sets the rank, is **{_f(row.posterior_gain, '+.2f')} points** (95% interval "
            f"{_f(row.posterior_low, '+.2f')} to {_f(row.posterior_high, '+.2f')}); the reliability of the "
            f"{_code(row.architecture)} ranking is {_f(reliability, '.2f')}."
            + _comparison(row) + " "
        )
    lines = [
        f"## Finetuning from {_code(row.model_id)} ({_code(row.architecture)})",
        "",
        f"Rank **{int(row.rank)}** of {n_ranked} ranked {_code(row.architecture)} models as a starting point for "
        f"finetuning in the [startpoint leaderboard]({source_url}). {posterior}Over {_f(row.n_targets, '.0f')} "
        f"targets, finetuning from this model gains {_f(row.mean_gain, '+.2f')} points on average (95% interval "
        f"{_f(row.ci_low, '+.2f')} to {_f(row.ci_high, '+.2f')}) over the pretrained model; it beats the pretrained "
        f"model on {_f(row.win_rate, '.0%')} of the targets; average score {_f(row.avg_score, '.2f')} against "
        f"{_f(row.pretrained_avg, '.2f')}.",
        "",
        "| target | metric | score | pretrained | gain |",
        "|---|---|---|---|---|",
    ]
    for g in gains.sort_values("gain", ascending=False).itertuples():
        lines.append(
            f"| {_cell(g.dataset_id)} | {_cell(g.metric) if isinstance(g.metric, str) else ''} | "
            f"{_f(g.score_mean, '.2f')} | {_f(g.baseline_mean, '.2f')} | {_f(g.gain, '+.2f')} |"
        )
    return "\n".join(lines) + "\n"


def export_model_cards(warehouse_path: str | Path, out_dir: str | Path, top: int = 3, site_url: str | None = None) -> ExportSummary:
    if top < 1:
        raise ValueError(f"--top must be at least 1, got {top}")
    out_dir = Path(out_dir)
    site_url = site_url or (Path(warehouse_path).resolve().parent / "artifacts" / "site").as_uri()
    con = connect(warehouse_path, read_only=True)
    try:
        ranking = _select(_columns(con, "leaderboard"), RANKING_COLUMNS)
        leaders = con.execute(
            f"""select architecture, rank, model_id, avg_score, pretrained_avg, mean_gain, ci_low, ci_high, win_rate,
                       n_targets, count(*) over (partition by architecture) as n_ranked,
                       count(*) filter (where tied_with_rank1 and rank > 1) over (partition by architecture) as n_tied,
                       {ranking}
                from (select * from leaderboard where rank is not null and not coalesce(flagged, false))
                order by architecture, rank"""
        ).df()
        leaders = leaders.groupby("architecture").head(top)
        gains = con.execute(
            """select g.architecture, g.model_id, g.dataset_id, g.n_seeds, g.score_mean, g.baseline_mean, g.gain,
                      d.metric
               from gains g left join datasets d using (dataset_id)
               semi join leaderboard l on l.architecture = g.architecture and l.model_id = g.model_id
                                        and l.rank is not null
               where g.gain is not null""",
        ).df()
    finally:
        con.close()
    summary = ExportSummary(out_dir=out_dir)
    index = ["# startpoint model cards", ""]
    for row in leaders.itertuples():
        g = gains[(gains["architecture"] == row.architecture) & (gains["model_id"] == row.model_id)]
        url = model_url(site_url, row.architecture, row.model_id)
        meta = model_index(row.model_id, g, f"startpoint leaderboard ({row.architecture})", url)
        folder = out_dir / slug(row.architecture)
        folder.mkdir(parents=True, exist_ok=True)
        stem = slug(row.model_id)
        yaml_text = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
        section = markdown_section(row, g, int(row.n_ranked), url)
        md_path, yaml_path = folder / f"{stem}.md", folder / f"{stem}.model-index.yaml"
        md_path.write_text(f"---\n{yaml_text}---\n\n{section}", encoding="utf-8")
        yaml_path.write_text(yaml_text, encoding="utf-8")
        summary.cards.append(ModelCard(row.architecture, row.model_id, int(row.rank), md_path, yaml_path, len(g)))
        index.append(f"- {_code(row.architecture)} #{int(row.rank)}: {_code(row.model_id)} → {folder.name}/{md_path.name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    summary.index_path = out_dir / "index.md"
    summary.index_path.write_text("\n".join(index) + "\n", encoding="utf-8")
    return summary
