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


def _true(value) -> bool:
    """A boolean from the warehouse that may be NULL (NULL is not true)."""
    return False if value is None or pd.isna(value) else bool(value)


def percent(p) -> str:
    """A probability as a percentage; empty when missing or not a probability."""
    if p is None or pd.isna(p) or not 0.0 <= float(p) <= 1.0:
        return ""
    p = float(p)
    return "<1%" if p < 0.005 else ">99%" if p > 0.995 else f"{p:.0%}"


def ranking_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """The ranking columns of leaderboard rows (rank order) as a text table, for the CLI and the Dagster preview:
    rank, ≈1 when tied with #1, model, posterior gain and mean gain with intervals, win rate, P(better than #1).
    Cells are unescaped; each medium escapes the strings it prints."""
    from pipelines.tables import interval_text

    def n(v):  # NULL / NaN -> None
        return None if v is None or pd.isna(v) else float(v)

    posterior = any(n(r.get("posterior_gain")) is not None for r in rows)
    table = []
    for r in rows:
        cells = [int(r["rank"]), "≈1" if r["rank"] != 1 and _true(r.get("tied_with_rank1")) else "", r["model_id"]]
        if posterior:
            cells.append(interval_text(n(r["posterior_gain"]), n(r["posterior_low"]), n(r["posterior_high"])))
        cells += [interval_text(n(r["mean_gain"]), n(r["ci_low"]), n(r["ci_high"])), n(r["win_rate"])]
        if posterior:
            cells.append("" if r["rank"] == 1 else percent(r["p_better_than_rank1"]))
        table.append(cells)
    names = ["rank", "tied", "model", *(["posterior gain (95%)"] if posterior else []), "mean gain (95% CI)",
             "win rate", *(["P(better than #1)"] if posterior else [])]
    return names, table


def has_posterior(lb: pd.DataFrame) -> bool:
    """Whether the leaderboard carries the random-effects ranking (warehouses built before it do not)."""
    return "posterior_gain" in lb and bool(lb["posterior_gain"].notna().any())


@dataclass
class Reliability:
    value: float
    n_targets: int | None = None
    n_models: int | None = None
    clip: float | None = None


def arch_reliability(data: SiteData, arch: str) -> Reliability | None:
    """The reliability of an architecture's ranking: ranking_reliability, else the leaderboard's column."""
    rel = data.reliability
    if rel is not None and len(rel):
        row = rel[rel["architecture"] == arch]
        if len(row) and pd.notna(row["reliability"].iloc[0]):
            r = row.iloc[0]
            return Reliability(float(r.reliability), None if pd.isna(r.n_targets) else int(r.n_targets),
                               None if pd.isna(r.n_models) else int(r.n_models), _float(r["clip"]))
    lb = data.leaderboard[data.leaderboard["architecture"] == arch]
    values = lb["reliability"].dropna() if "reliability" in lb else pd.Series(dtype=float)
    return Reliability(float(values.iloc[0])) if len(values) else None


def reliability_text(rel: Reliability | None) -> str:
    """'reliability 0.79: ...', the share of the spread of models' mean gains that is signal rather than noise."""
    if rel is None:
        return "reliability n/a"
    over = f" over {rel.n_targets} targets" if rel.n_targets else ""
    if rel.value <= 0:
        return (f"reliability {rel.value:.2f}: no difference between the models' mean gains{over} stands out from "
                "the noise")
    return (f"reliability {rel.value:.2f}: {rel.value:.0%} of the spread of the models' mean gains{over} is signal, "
            f"{1 - rel.value:.0%} noise")


def tied_count(ranked: pd.DataFrame) -> int:
    """Ranked models other than #1 that cannot be told apart from #1."""
    if "tied_with_rank1" not in ranked:
        return 0
    return int(sum(_true(t) for t, r in zip(ranked["tied_with_rank1"], ranked["rank"]) if r != 1))


TIED_NOTE = (
    "Models marked ≈ #1 cannot be told apart from #1 on these targets: over the targets they share with #1, the "
    "95% interval of their mean difference from it holds zero. P(better than #1) is the chance, from that paired "
    "comparison, that the model's true gain is above #1's."
)
def posterior_note(rel: Reliability | None) -> str:
    clip = f" at {rel.clip:g} robust SDs" if rel is not None and rel.clip is not None else ""
    return (
        "The rank follows the posterior gain: a random-effects estimate of the model's gain over the pretrained "
        f"model (each target's gains clipped{clip}, the model's mean shrunk toward the architecture's mean as far as "
        "the reliability says), with its 95% interval. That interval includes the uncertainty of the "
        "architecture's mean gain, which all models share, so overlapping intervals do not make two models a tie; "
        "the paired comparison with #1 does. The mean gain is the plain mean over targets with its 95% interval."
    )


def index_page(data: SiteData, footer: str) -> str:
    rows = []
    for arch in data.architectures:
        lb = data.leaderboard[data.leaderboard["architecture"] == arch]
        ranked = lb[lb["rank"].notna()].sort_values("rank")
        best = ranked.iloc[0] if len(ranked) else None
        rel = arch_reliability(data, arch)
        n_targets = data.target_effects[data.target_effects["architecture"] == arch]["dataset_id"].nunique()
        rows.append(
            [
                f"<td>{link(arch_href(arch), arch)}</td>",
                f"<td>{link(model_href(arch, best.model_id), best.model_id)}</td>" if best is not None else td(),
                gain_cell(best.posterior_gain, best.posterior_low, best.posterior_high) if best is not None else td(),
                gain_cell(best.mean_gain, best.ci_low, best.ci_high) if best is not None else td(),
                td(num(rel.value) if rel else "", True),
                td(str(tied_count(ranked)) if has_posterior(ranked) else "", True),
                td(num(best.avg_score) if best is not None else "", True),
                td(num(_pretrained_avg(lb)), True),
                td(str(len(ranked)), True),
                td(str(int(lb["flagged"].sum())), True),
                td(str(n_targets), True),
            ]
        )
    body = (
        "<p>Per architecture, base models ranked as starting points for finetuning by their gain over the "
        "pretrained model (points), from finetuning results in the startpoint warehouse. The rank follows the "
        "posterior gain (a random-effects estimate, 95% interval); the mean gain is the plain mean over targets "
        "(95% interval). Reliability is the share of the spread of the models' mean gains that is signal; "
        "“tied with #1” counts the other models that cannot be told apart from #1 on these targets.</p>"
        + table(
            ["architecture", "rank 1", "posterior gain [95%]", "mean gain [95% CI]", "reliability", "tied with #1",
             "rank-1 average", "pretrained average", "ranked models", "flagged", "targets"],
            rows,
            "architectures",
        )
    )
    return page("Architectures", body, 0, footer)


def _variance_section(data: SiteData, arch: str) -> str:
    var = data.variance[data.variance["architecture"] == arch]
    parts = [(r.component, r.share) for r in var.itertuples()]
    has_variance = bool(var["variance"].notna().any())
    has_sum_sq = not has_variance and bool(var["sum_sq"].notna().any())
    rows = []
    for r in var.itertuples():
        share = num(r.share, 3)
        if share and pd.notna(r.share_low) and pd.notna(r.share_high):
            share += f" [{num(r.share_low, 3)}, {num(r.share_high, 3)}]"
        cells = [td(r.component), td(share, True)]
        if has_variance:
            variance = num(r.variance, 3)
            if variance and pd.notna(r.variance_low) and pd.notna(r.variance_high):
                variance += f" [{num(r.variance_low, 3)}, {num(r.variance_high, 3)}]"
            cells.append(td(variance, True))
        elif has_sum_sq:
            cells.append(td(num(r.sum_sq, 1), True))
        rows.append(cells)
    has_interval = bool(var["share_low"].notna().any())
    headers = ["component", "share [95%]" if has_interval else "share",
               *(["variance [95%] (points²)"] if has_variance else []),
               *(["sum of squares"] if has_sum_sq else [])]
    used = ""
    if len(var) and pd.notna(var["n_models"].iloc[0]) and pd.notna(var["n_targets"].iloc[0]):
        used = f" Estimated from {int(var['n_models'].iloc[0])} models × {int(var['n_targets'].iloc[0])} targets"
        reps = var["n_replicates"].iloc[0]
        used += f"; intervals from {int(reps)} bootstrap replicates." if pd.notna(reps) else "."
    if has_variance and bool((var["variance"] < 0).any()):
        used += " A variance estimated below 0 is shown as it came; its share counts as 0."
    return (
        "<h2>Variance decomposition</h2><p>How much of the variation in the gains comes from the choice "
        f"of base model, the target, their interaction, and seed noise.{_esc(used)}</p>"
        + stacked_share(parts, f"Variance decomposition of {arch}")
        + table(headers, rows, "variance")
    )


def arch_page(data: SiteData, arch: str, footer: str) -> str:
    lb = data.leaderboard[data.leaderboard["architecture"] == arch]
    ranked = lb[lb["rank"].notna()].sort_values("rank")
    flagged = lb[lb["flagged"]]
    up = "../"
    posterior = has_posterior(ranked)
    if posterior:
        bars = [
            Bar(r.model_id, r.posterior_gain, r.posterior_low, r.posterior_high, up + model_href(arch, r.model_id))
            for r in ranked.head(RANKED_BARS).itertuples()
            if pd.notna(r.posterior_gain)
        ]
    else:
        bars = [
            Bar(r.model_id, r.mean_gain, r.ci_low, r.ci_high, up + model_href(arch, r.model_id))
            for r in ranked.head(RANKED_BARS).itertuples()
            if pd.notna(r.mean_gain)
        ]
    rank_rows, row_classes = [], []
    for r in ranked.itertuples():
        tied = posterior and r.rank != 1 and _true(r.tied_with_rank1)
        rank_rows.append([
            td(str(int(r.rank)), True),
            f"<td>{link(up + model_href(arch, r.model_id), r.model_id)}</td>",
            *([gain_cell(r.posterior_gain, r.posterior_low, r.posterior_high)] if posterior else []),
            gain_cell(r.mean_gain, r.ci_low, r.ci_high),
            td(num(r.win_rate), True),
            *([td("—" if r.rank == 1 else percent(r.p_better_than_rank1), True),
               td("#1" if r.rank == 1 else "≈ #1" if tied else "")] if posterior else []),
            td(num(r.avg_score), True),
            td(num(r.probe_score), True),
            td("" if pd.isna(r.n_targets) else str(int(r.n_targets)), True),
            td("" if pd.isna(r.n_collapsed) else str(int(r.n_collapsed)), True),
        ])
        row_classes.append("tied" if tied or (posterior and r.rank == 1) else "")
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
    proxy = data.proxy[data.proxy["architecture"] == arch]
    proxy_rows = [
        [td(r.method), td(str(r.n_models), True), td(num(r.spearman, 3), True), td(num(r.pearson, 3), True)]
        for r in proxy.itertuples()
    ]
    rel = arch_reliability(data, arch)
    n_tied = tied_count(ranked)
    if posterior:
        ranking_head = f"<h2>Ranking · {_esc(reliability_text(rel))}</h2>"
        ranking_notes = (
            f"<p class='tie'><b>{n_tied} of the {max(len(ranked) - 1, 0)} other ranked models cannot be told apart "
            "from #1 on these targets</b> (marked ≈ #1); their order among themselves and against #1 is not "
            "established by these results.</p>"
            f"<p class='note'>{_esc(TIED_NOTE)}</p><p class='note'>{_esc(posterior_note(rel))}</p>"
        )
        chart_title = f"Posterior gain of the top {len(bars)} base models of {arch} (95% interval)"
    else:
        ranking_head, ranking_notes = "<h2>Ranking</h2>", ""
        chart_title = f"Mean gain of the top {len(bars)} base models of {arch}"
    headers = ["rank", "model", *(["posterior gain [95%]"] if posterior else []), "mean gain [95% CI]", "win rate",
               *(["P(better than #1)", "tied with #1"] if posterior else []), "average", "probe score", "targets",
               "collapsed targets"]
    body = (
        f"<p>Pretrained average: <b>{num(_pretrained_avg(lb))}</b>. Gain = finetuned score minus the pretrained "
        "model's score on the same target, in points.</p>"
        f"<h2>Top {len(bars)} by rank</h2>"
        + bar_chart(bars, chart_title)
        + ranking_head
        + ranking_notes
        + table(headers, rank_rows, "ranking", row_classes)
        + "<h2>Flagged models (kept out of the ranking)</h2>"
        + (table(["model", "average", "mean gain [95% CI]", "reason"], flag_rows, "flagged") if flag_rows
           else "<p>None.</p>")
        + _variance_section(data, arch)
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
    ranking = ""
    if pd.notna(row.rank) and pd.notna(row.posterior_gain):
        if row.rank == 1:
            versus = "rank 1"
        elif _true(row.tied_with_rank1):
            versus = (f"<b>cannot be told apart from #1</b> on these targets (P(better than #1) "
                      f"{percent(row.p_better_than_rank1) or 'n/a'})")
        else:
            versus = f"below #1 on these targets (P(better than #1) {percent(row.p_better_than_rank1) or 'n/a'})"
        ranking = (
            f"<p>Posterior gain {num(row.posterior_gain, signed=True)} [{num(row.posterior_low, signed=True)}, "
            f"{num(row.posterior_high, signed=True)}] (sets the rank) · {versus} · "
            f"{_esc(reliability_text(arch_reliability(data, arch)))}</p>"
        )
    collapsed = (
        f"<p class='note'>Collapsed runs on {int(row.n_collapsed)} of {int(row.n_targets)} targets: they count in "
        "the mean gain; the posterior gain clips each target's gains.</p>"
        if pd.notna(row.n_collapsed) and row.n_collapsed > 0 and pd.notna(row.n_targets) else ""
    )
    flag = (
        f"<p class='neg'><b>Flagged:</b> {_esc(row.flag_reason if isinstance(row.flag_reason, str) else 'flagged')}; "
        "kept out of the ranking.</p>"
        if row.flagged else ""
    )
    body = (
        f"<p>Architecture {link(up + arch_href(arch), arch)} · {rank} · average {num(row.avg_score)} · "
        f"mean gain {num(row.mean_gain, signed=True)} [{num(row.ci_low, signed=True)}, {num(row.ci_high, signed=True)}]"
        f" · win rate {num(row.win_rate)} · probe score {num(row.probe_score) or 'n/a'}</p>{ranking}{collapsed}{flag}"
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


def _float(v) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


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
                rel = arch_reliability(data, arch)
                best[arch] = {"model_id": top.model_id, "mean_gain": float(top.mean_gain),
                              "pretrained_avg": _pretrained_avg(lb),
                              "posterior_gain": _float(top.posterior_gain), "posterior_low": _float(top.posterior_low),
                              "posterior_high": _float(top.posterior_high),
                              "reliability": rel.value if rel else None, "n_tied_with_rank1": tied_count(ranked)}
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
