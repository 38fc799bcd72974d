"""Build the static leaderboard site from the warehouse: index, one page per architecture, model and target.

Layout under the output folder: ``index.html``, ``arch/<a>.html``, ``model/<a>/<m>.html``,
``target/<a>/<t>.html``. Pages are plain HTML with inline CSS and SVG, so the folder can be opened from disk
or served by any static host, offline.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import pandas as pd

from pipelines.site.data import SiteData, read_site_data
from pipelines.site.html import gain_cell, link, num, page, slug, table, td
from pipelines.site.svg import Bar, bar_chart, stacked_share

MARKER = ".startpoint-site"  # marks a folder this module wrote, so a rebuild may replace it
RANKED_BARS = 25  # models shown in the ranked-bars chart of an architecture page
TARGET_TOP = 25  # models listed on a target page


@dataclass
class SiteSummary:
    out_dir: Path
    pages: int
    architectures: list[str]
    models: int
    targets: int
    best: dict[str, dict] = field(default_factory=dict)  # per architecture: best model, gain, pretrained avg


def arch_href(arch: str) -> str:
    return f"arch/{slug(arch)}.html"


def model_href(arch: str, model_id: str) -> str:
    return f"model/{slug(arch)}/{slug(model_id)}.html"


def target_href(arch: str, dataset_id: str) -> str:
    return f"target/{slug(arch)}/{slug(dataset_id)}.html"


def _pretrained_avg(lb: pd.DataFrame) -> float | None:
    values = lb["pretrained_avg"].dropna()
    return float(values.iloc[0]) if len(values) else None


def index_page(data: SiteData, footer: str) -> str:
    rows = []
    for arch in data.architectures:
        lb = data.leaderboard[data.leaderboard["architecture"] == arch]
        ranked = lb[lb["rank"].notna()].sort_values("rank")
        best = ranked.iloc[0] if len(ranked) else None
        n_targets = data.target_effects[data.target_effects["architecture"] == arch]["dataset_id"].nunique()
        rows.append(
            [
                f"<td>{link(arch_href(arch), arch)}</td>",
                f"<td>{link(model_href(arch, best.model_id), best.model_id)}</td>" if best is not None else td(),
                gain_cell(best.mean_gain, best.ci_low, best.ci_high) if best is not None else td(),
                td(num(best.avg_score) if best is not None else "", True),
                td(num(_pretrained_avg(lb)), True),
                td(str(len(ranked)), True),
                td(str(int(lb["flagged"].sum())), True),
                td(str(n_targets), True),
            ]
        )
    body = (
        "<p>Per architecture, base models ranked as starting points for finetuning by their gain over the "
        "pretrained model (points, 95% interval), from finetuning results in the startpoint warehouse.</p>"
        + table(
            ["architecture", "best model", "gain", "best average", "pretrained average", "ranked models", "flagged",
             "targets"],
            rows,
            "architectures",
        )
    )
    return page("Architectures", body, 0, footer)


def arch_page(data: SiteData, arch: str, footer: str) -> str:
    lb = data.leaderboard[data.leaderboard["architecture"] == arch]
    ranked = lb[lb["rank"].notna()].sort_values("rank")
    flagged = lb[lb["flagged"]]
    up = "../"
    bars = [
        Bar(r.model_id, r.mean_gain, r.ci_low, r.ci_high, up + model_href(arch, r.model_id))
        for r in ranked.head(RANKED_BARS).itertuples()
        if pd.notna(r.mean_gain)
    ]
    has_robust = ranked["robust_score"].notna().any()
    rank_rows = [
        [
            td(str(int(r.rank)), True),
            f"<td>{link(up + model_href(arch, r.model_id), r.model_id)}</td>",
            td(num(r.avg_score), True),
            gain_cell(r.mean_gain, r.ci_low, r.ci_high),
            *([td(num(r.robust_score, signed=True), True)] if has_robust else []),
            td(num(r.win_rate), True),
            td(num(r.probe_score), True),
            td("" if pd.isna(r.n_targets) else str(int(r.n_targets)), True),
            td(r.flag_reason if r.flagged and isinstance(r.flag_reason, str) else ""),
        ]
        for r in ranked.itertuples()
    ]
    flag_rows = [
        [
            f"<td>{link(up + model_href(arch, r.model_id), r.model_id)}</td>",
            td(num(r.avg_score), True),
            gain_cell(r.mean_gain, r.ci_low, r.ci_high),
            td(r.flag_reason if isinstance(r.flag_reason, str) else "flagged"),
        ]
        for r in flagged.itertuples()
    ]
    te = data.target_effects[data.target_effects["architecture"] == arch]
    target_rows = [
        [
            f"<td>{link(up + target_href(arch, r.dataset_id), r.dataset_id)}</td>",
            gain_cell(r.mean_gain),
            gain_cell(r.max_gain),
            td(num(r.baseline_mean), True),
            td(num(r.baseline_sd), True),
            td("" if pd.isna(r.n_models) else str(int(r.n_models)), True),
        ]
        for r in te.itertuples()
    ]
    var = data.variance[data.variance["architecture"] == arch]
    var_parts = [(r.component, r.fraction) for r in var.itertuples()]
    var_rows = [[td(r.component), td(num(r.sum_sq, 1), True), td(num(r.fraction, 3), True)] for r in var.itertuples()]
    proxy = data.proxy[data.proxy["architecture"] == arch]
    proxy_rows = [
        [td(r.method), td(str(r.n_models), True), td(num(r.spearman, 3), True), td(num(r.pearson, 3), True)]
        for r in proxy.itertuples()
    ]
    robust_note = (
        "<p class='note'>The rank follows the robust score: the trimmed mean gain shrunk toward zero by how "
        "reliable a mean over that many noisy targets is (see docs/ranking.md), so a higher mean gain can rank "
        "lower.</p>"
    )
    body = (
        f"<p>Pretrained average: <b>{num(_pretrained_avg(lb))}</b>. Gain = mean over targets of the finetuned score "
        "minus the pretrained model's score on the same target, in points, with its 95% interval.</p>"
        f"<h2>Top {len(bars)} by rank</h2>"
        + bar_chart(bars, f"Mean gain of the top {len(bars)} base models of {arch}")
        + "<h2>Ranking</h2>"
        + (robust_note if has_robust else "")
        + table(["rank", "model", "average", "gain [95% CI]", *(["robust score"] if has_robust else []), "win rate",
                 "probe score", "targets", "flags"], rank_rows, "ranking")
        + "<h2>Flagged models (kept out of the ranking)</h2>"
        + (table(["model", "average", "gain", "reason"], flag_rows, "flagged") if flag_rows else "<p>None.</p>")
        + "<h2>Variance decomposition</h2><p>How much of the variation in finetuned scores comes from the choice "
        "of base model, the target, their interaction, and seed noise.</p>"
        + stacked_share(var_parts, f"Variance decomposition of {arch}")
        + table(["component", "sum of squares", "fraction"], var_rows, "variance")
        + "<h2>Targets by sensitivity</h2>"
        + table(["target", "mean gain", "max gain", "pretrained score", "pretrained sd", "models"], target_rows, "targets")
        + ("<h2>Proxy validation</h2>" + table(["method", "models", "Spearman", "Pearson"], proxy_rows, "proxy")
           if proxy_rows else "")
    )
    return page(f"{arch} leaderboard", body, 1, footer)


def model_page(data: SiteData, arch: str, row, gains: pd.DataFrame, footer: str) -> str:
    up = "../../"
    gains = gains.sort_values("gain", ascending=False)
    bars = [
        Bar(
            g.dataset_id, g.gain,
            g.gain - 1.96 * g.gain_se if pd.notna(g.gain_se) else None,
            g.gain + 1.96 * g.gain_se if pd.notna(g.gain_se) else None,
            up + target_href(arch, g.dataset_id),
        )
        for g in gains.itertuples()
    ]
    rows = [
        [
            f"<td>{link(up + target_href(arch, g.dataset_id), g.dataset_id)}</td>",
            td(num(g.score_mean), True),
            td(num(g.baseline_mean), True),
            gain_cell(g.gain),
            td(num(g.gain_se), True),
            td("" if pd.isna(g.n_seeds) else str(int(g.n_seeds)), True),
        ]
        for g in gains.itertuples()
    ]
    rank = "not ranked" if pd.isna(row.rank) else f"rank {int(row.rank)}"
    flag = (
        f"<p class='neg'><b>Flagged:</b> {_esc(row.flag_reason if isinstance(row.flag_reason, str) else 'flagged')}; "
        "kept out of the ranking.</p>"
        if row.flagged else ""
    )
    body = (
        f"<p>Architecture {link(up + arch_href(arch), arch)} · {rank} · average {num(row.avg_score)} · "
        f"mean gain {num(row.mean_gain, signed=True)} [{num(row.ci_low, signed=True)}, {num(row.ci_high, signed=True)}]"
        f" · win rate {num(row.win_rate)} · probe score {num(row.probe_score) or 'n/a'}</p>{flag}"
        "<h2>Gain per target</h2>"
        + bar_chart(bars, f"Gain of {row.model_id} per target (points, ±1.96 se)")
        + table(["target", "score", "pretrained score", "gain", "gain se", "seeds"], rows, "gains")
    )
    return page(row.model_id, body, 2, footer)


def target_page(data: SiteData, arch: str, te_row, gains: pd.DataFrame, ranked_ids: set[str], footer: str) -> str:
    up = "../../"
    gains = gains[gains["model_id"].isin(ranked_ids)].sort_values("gain", ascending=False)
    top = gains.head(TARGET_TOP)
    bars = [Bar(g.model_id, g.gain, None, None, up + model_href(arch, g.model_id)) for g in top.itertuples()]
    rows = [
        [
            f"<td>{link(up + model_href(arch, g.model_id), g.model_id)}</td>",
            td(num(g.score_mean), True),
            gain_cell(g.gain),
        ]
        for g in top.itertuples()
    ]
    te_all = data.target_effects[data.target_effects["architecture"] == arch].sort_values("mean_gain", ascending=False)
    position = list(te_all["dataset_id"]).index(te_row.dataset_id) + 1
    meta = data.datasets[data.datasets["dataset_id"] == te_row.dataset_id]
    metric = meta["metric"].iloc[0] if len(meta) else ""
    share_pos = float((gains["gain"] > 0).mean()) if len(gains) else float("nan")
    body = (
        f"<p>Architecture {link(up + arch_href(arch), arch)} · metric {_esc(metric or 'n/a')}</p>"
        "<h2>Sensitivity</h2>"
        + table(
            ["mean gain over models", "max gain", "pretrained score", "pretrained sd", "models",
             "share of models that gain", "sensitivity rank"],
            [[gain_cell(te_row.mean_gain), gain_cell(te_row.max_gain), td(num(te_row.baseline_mean), True),
              td(num(te_row.baseline_sd), True),
              td("" if pd.isna(te_row.n_models) else str(int(te_row.n_models)), True),
              td(num(share_pos), True), td(f"{position} of {len(te_all)}", True)]],
            "sensitivity",
        )
        + "<h2>Best base models on this target</h2>"
        + bar_chart(bars, f"Gain on {te_row.dataset_id} of the best {len(bars)} ranked models")
        + table(["model", "score", "gain"], rows, "target-models")
    )
    return page(f"{te_row.dataset_id} ({arch})", body, 2, footer)


def _esc(text) -> str:
    return escape(str(text))


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def build_site(
    warehouse_path: str | Path, out_dir: str | Path, progress: Callable[[str], None] | None = None
) -> SiteSummary:
    """Write the whole site to a temporary folder, then swap it into `out_dir` (readers never see half a site)."""
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and not (out_dir / MARKER).exists() and any(out_dir.iterdir()):
        raise FileExistsError(
            f"{out_dir} exists, is not empty and is not a startpoint site; choose an empty or new folder"
        )
    data = read_site_data(warehouse_path)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".site-", dir=out_dir.parent))
    footer = f"Built {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC from the startpoint warehouse."
    say = progress or (lambda _msg: None)
    pages = 0
    try:
        _write(stage, MARKER, "written by `startpoint site`; the next build replaces this folder\n")
        _write(stage, "index.html", index_page(data, footer))
        pages += 1
        n_models = n_targets = 0
        best: dict[str, dict] = {}
        gains_by_arch = dict(tuple(data.gains.groupby("architecture")))
        for arch in data.architectures:
            _write(stage, arch_href(arch), arch_page(data, arch, footer))
            pages += 1
            lb = data.leaderboard[data.leaderboard["architecture"] == arch]
            ranked = lb[lb["rank"].notna()].sort_values("rank")
            if len(ranked):
                top = ranked.iloc[0]
                best[arch] = {"model_id": top.model_id, "mean_gain": float(top.mean_gain),
                              "pretrained_avg": _pretrained_avg(lb)}
            arch_gains = gains_by_arch.get(arch, data.gains.iloc[0:0])
            by_model = dict(tuple(arch_gains.groupby("model_id")))
            for i, row in enumerate(lb.itertuples(), 1):
                _write(stage, model_href(arch, row.model_id),
                       model_page(data, arch, row, by_model.get(row.model_id, arch_gains.iloc[0:0]), footer))
                if i % 500 == 0:
                    say(f"{arch}: {i}/{len(lb)} model pages")
            n_models += len(lb)
            by_target = dict(tuple(arch_gains.groupby("dataset_id")))
            ranked_ids = set(ranked["model_id"])
            te = data.target_effects[data.target_effects["architecture"] == arch]
            for r in te.itertuples():
                _write(stage, target_href(arch, r.dataset_id),
                       target_page(data, arch, r, by_target.get(r.dataset_id, arch_gains.iloc[0:0]), ranked_ids, footer))
            n_targets += len(te)
            pages += len(lb) + len(te)
            say(f"{arch}: {len(lb)} model pages, {len(te)} target pages")
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            out_dir.rename(old)
        stage.rename(out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return SiteSummary(out_dir=out_dir, pages=pages, architectures=data.architectures, models=n_models,
                       targets=n_targets, best=best)
