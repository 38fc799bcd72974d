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
from pathlib import Path

import polars as pl

from startpoint.site.data import SiteData, read_site_data
from startpoint.site.html import num, percent, render, slug
from startpoint.site.svg import Bar, bar_chart, stacked_share

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


def _float(v) -> float | None:
    """A number from the warehouse that may be NULL (or NaN): None when missing."""
    return float(v) if num(v) else None


def _pretrained_avg(lb: pl.DataFrame) -> float | None:
    values = lb["pretrained_avg"].drop_nulls()
    return float(values[0]) if len(values) else None


def _true(value) -> bool:
    """A boolean from the warehouse that may be NULL (NULL is not true)."""
    return bool(value) if value is not None else False


def tie_mark(r: dict) -> str:
    """'≈1' for a row that cannot be told apart from #1 (rank 1 too when another row is tied with it)."""
    return "≈1" if _true(r.get("tied")) else ""


def model_label(r: dict) -> str:
    return f"{r['model_id']} (pretrained: stay)" if _true(r.get("is_pretrained")) else str(r["model_id"])


def ranking_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """The ranking columns of leaderboard rows (rank order) as a text table, for the CLI and the Dagster preview:
    rank, ≈1 when tied with #1, model (the pretrained row marked "stay"), gain over the pretrained model in points
    with its 95% interval (the mean over kept cells), win rate, P(better than #1). Cells are unescaped; each medium
    escapes the strings it prints."""
    from startpoint.tables import interval_text

    n = _float
    table = [[int(r["rank"]), tie_mark(r), model_label(r),
              interval_text(n(r["mean_gain"]), n(r["ci_low"]), n(r["ci_high"])),
              None if _true(r.get("is_pretrained")) else n(r["win_rate"]),
              "" if r["rank"] == 1 else percent(r.get("p_better_than_rank1"))]
             for r in rows]
    return ["rank", "tied", "model", "gain, points (95% CI)", "win rate", "P(better than #1)"], table


def tie_summary(n_tied: int, n_others: int) -> str:
    """One line on how crowded the top is, for the CLI and the previews."""
    return (f"{n_tied} of the {n_others} other ranked rows cannot be told apart from #1 on these targets (≈1: the "
            "95% interval of their paired difference in gain from #1 holds zero). The order follows the ranking "
            "score (winsorized, shrunk; not a gain); P(better than #1) comes from the paired comparison.")


def board_notes(rows: list[dict]) -> list[str]:
    """What a reader must know before reading the order of one architecture's ranked rows (rank order): whether the
    order carries evidence at all, and whether the best start is the pretrained model itself."""
    notes = []
    if rows and not _true(rows[0].get("order_has_evidence")):
        notes.append("The models cannot be told apart on these targets (no evidence that their gains differ): "
                     "the rows are ordered by their mean gain, every row is a tie, and the order carries no evidence.")
    if rows and _true(rows[0].get("best_is_pretrained")):
        notes.append("No candidate ranks above the pretrained model: start from the pretrained model (stay).")
    elif rows and _float(rows[0].get("mean_gain")) is not None and _float(rows[0]["mean_gain"]) <= 0:
        notes.append("Rank 1's gain is not above 0: starting from the pretrained model is expected to do as well.")
    return notes


@dataclass
class Reliability:
    value: float
    n_targets: int | None = None
    n_models: int | None = None
    clip: float | None = None
    top: dict | None = None  # the architecture's top_reliability row: what the sentence a user reads is about


def arch_reliability(data: SiteData, arch: str) -> Reliability | None:
    """The reliability of an architecture's ranking: ranking_reliability, else the leaderboard's column."""
    rel = data.reliability
    if rel is not None and len(rel):
        rows = rel.filter(pl.col("architecture") == arch).rows(named=True)
        if rows and _float(rows[0]["reliability"]) is not None:
            r = rows[0]
            return Reliability(float(r["reliability"]), None if r["n_targets"] is None else int(r["n_targets"]),
                               None if r["n_models"] is None else int(r["n_models"]), _float(r["clip"]),
                               data.top_reliability.get(arch))
    lb = data.leaderboard.filter(pl.col("architecture") == arch)
    values = [v for v in lb["reliability"].to_list() if _float(v) is not None] if "reliability" in lb.columns else []
    return Reliability(float(values[0])) if values else None


def reliability_text(rel: Reliability | None) -> str:
    """What a user reads about how far the order holds: the stability of the top (top_reliability, where the
    warehouse has it) first, then 'reliability 0.79: ...', the share of the spread of all models' mean gains that is
    signal rather than noise."""
    if rel is None:
        return "reliability n/a"
    over = f" over {rel.n_targets} targets" if rel.n_targets else ""
    if rel.value <= 0:
        text = (f"reliability {rel.value:.2f}: no difference between the models' mean gains{over} stands out from "
                "the noise")
    else:
        text = (f"reliability {rel.value:.2f}: {rel.value:.0%} of the spread of the models' mean gains{over} is "
                f"signal, {1 - rel.value:.0%} noise")
    if rel.top is None:
        return text
    from startpoint.warehouse.reliability import top_reliability_sentence

    return f"{top_reliability_sentence(rel.top)} All models: {text}."


def tied_count(ranked: pl.DataFrame) -> int:
    """Ranked rows other than #1 that cannot be told apart from #1."""
    if "tied" not in ranked.columns:
        return 0
    return int(sum(_true(t) for t, r in zip(ranked["tied"], ranked["rank"]) if r != 1))


TIED_NOTE = (
    "Rows marked ≈ #1 cannot be told apart from #1 on these targets: over the targets they share with #1, the "
    "95% interval of their mean difference in gain from it holds zero. P(better than #1) is the chance, from that "
    "paired comparison, that the model's true gain is above #1's."
)


def ranking_note(rel: Reliability | None) -> str:
    clip = f" at {rel.clip:g} robust SDs" if rel is not None and rel.clip is not None else ""
    return (
        "The gain is the mean over the targets where the model's finetune did not collapse, in points over the "
        "pretrained model, with its 95% interval across those targets. The order follows a ranking score, not a "
        f"gain: each target's gains winsorized{clip} and the models' means shrunk toward the architecture's mean "
        "as far as the reliability says, which held-out evaluation found picks better starts than the plain mean "
        "(docs/ranking.md). So a row can show a higher gain than a row ranked above it. The pretrained model is a "
        "row of the ranking (stay, gain 0)."
    )


def _of(frame: pl.DataFrame, arch: str) -> pl.DataFrame:
    return frame.filter(pl.col("architecture") == arch)


def _ranked(lb: pl.DataFrame) -> pl.DataFrame:
    return lb.filter(pl.col("rank").is_not_null()).sort("rank", maintain_order=True)


def _page(template: str, title: str, depth: int, footer: str, **context) -> str:
    return render(template, title=title, root="../" * depth, footer=footer, arch_href=arch_href,
                  model_href=model_href, target_href=target_href, **context)


def index_page(data: SiteData, footer: str) -> str:
    rows = []
    for arch in data.architectures:
        lb = _of(data.leaderboard, arch)
        ranked = _ranked(lb)
        rel = arch_reliability(data, arch)
        rows.append({
            "arch": arch,
            "best": ranked.row(0, named=True) if len(ranked) else None,
            "reliability": rel.value if rel else None,
            "n_tied": str(tied_count(ranked)),
            "pretrained": _pretrained_avg(lb),
            "n_ranked": len(ranked),
            "n_flagged": int(lb["flagged"].sum()),
            "n_targets": _of(data.target_effects, arch)["dataset_id"].n_unique(),
        })
    return _page("index.html.j2", "Architectures", 0, footer, rows=rows)


def _variance(data: SiteData, arch: str) -> dict:
    """The variance decomposition of an architecture: shares (and variances) with intervals, as text cells."""
    var = _of(data.variance, arch)
    has_variance = var["variance"].drop_nulls().len() > 0
    has_sum_sq = not has_variance and var["sum_sq"].drop_nulls().len() > 0
    has_interval = var["share_low"].drop_nulls().len() > 0 or var["n_replicates"].drop_nulls().len() > 0
    rows = []
    for r in var.iter_rows(named=True):
        share = num(r["share"], 3)
        if share and r["share_low"] is not None and r["share_high"] is not None:
            share += f" [{num(r['share_low'], 3)}, {num(r['share_high'], 3)}]"
        elif share and has_interval:
            share += " [n/a]"  # the bootstrap could not estimate this one's interval
        extra = ""
        if has_variance:
            extra = num(r["variance"], 3)
            if extra and r["variance_low"] is not None and r["variance_high"] is not None:
                extra += f" [{num(r['variance_low'], 3)}, {num(r['variance_high'], 3)}]"
        elif has_sum_sq:
            extra = num(r["sum_sq"], 1)
        rows.append({"component": r["component"], "share": share, "extra": extra})
    used = ""
    if len(var) and var["n_models"][0] is not None and var["n_targets"][0] is not None:
        used = f" Estimated from {int(var['n_models'][0])} models × {int(var['n_targets'][0])} targets"
        reps = var["n_replicates"][0]
        used += f"; intervals from {int(reps)} bootstrap replicates." if reps is not None else "."
    if has_variance and bool((var["variance"] < 0).any()):
        used += " A variance estimated below 0 is shown as it came; its share counts as 0."
    return {
        "rows": rows, "used": used, "has_variance": has_variance, "has_sum_sq": has_sum_sq,
        "has_interval": has_interval,
        "chart": stacked_share(list(zip(var["component"], var["share"])), f"Variance decomposition of {arch}"),
    }


def arch_page(data: SiteData, arch: str, footer: str) -> str:
    lb = _of(data.leaderboard, arch)
    ranked = _ranked(lb)
    bars = [
        Bar(model_label(r), r["mean_gain"], r["ci_low"], r["ci_high"], "../" + model_href(arch, r["model_id"]))
        for r in ranked.head(RANKED_BARS).iter_rows(named=True)
        if _float(r["mean_gain"]) is not None
    ]
    rows = list(ranked.iter_rows(named=True))
    rel = arch_reliability(data, arch)
    title = f"Gain of the top {len(bars)} rows of {arch}, in rank order (points, 95% interval)"
    return _page(
        "arch.html.j2", f"{arch} leaderboard", 1, footer, arch=arch, pretrained=_pretrained_avg(lb),
        chart=bar_chart(bars, title), reliability=reliability_text(rel), notes=board_notes(rows),
        has_evidence=bool(rows) and _true(rows[0].get("order_has_evidence")),
        n_tied=tied_count(ranked), n_others=max(len(ranked) - 1, 0), tied_note=TIED_NOTE,
        ranking_note=ranking_note(rel), ranked=rows, flagged=list(lb.filter(pl.col("flagged")).iter_rows(named=True)),
        variance=_variance(data, arch), targets=list(_of(data.target_effects, arch).iter_rows(named=True)),
        proxy=list(_of(data.proxy, arch).iter_rows(named=True)),
    )


def model_page(data: SiteData, arch: str, row: dict, gains: pl.DataFrame, footer: str) -> str:
    gains = gains.sort("gain", descending=True, maintain_order=True, nulls_last=True)
    rows = list(gains.iter_rows(named=True))
    bars = [
        Bar(g["dataset_id"], g["gain"],
            g["gain"] - 1.96 * g["gain_se"] if _float(g["gain_se"]) is not None else None,
            g["gain"] + 1.96 * g["gain_se"] if _float(g["gain_se"]) is not None else None,
            "../../" + target_href(arch, g["dataset_id"]))
        for g in rows
    ]
    return _page(
        "model.html.j2", row["model_id"], 2, footer, arch=arch, row=row, gains=rows,
        reliability=reliability_text(arch_reliability(data, arch)),
        chart=bar_chart(bars, f"Gain of {row['model_id']} per target (points, ±1.96 se)"),
    )


def target_page(data: SiteData, arch: str, te_row: dict, gains: pl.DataFrame, ranked_ids: set[str], footer: str) -> str:
    gains = gains.filter(pl.col("model_id").is_in(list(ranked_ids))).sort("gain", descending=True, maintain_order=True, nulls_last=True)
    top = list(gains.head(TARGET_TOP).iter_rows(named=True))
    bars = [Bar(g["model_id"], g["gain"], None, None, "../../" + model_href(arch, g["model_id"])) for g in top]
    te_all = _of(data.target_effects, arch).sort("mean_gain", descending=True, maintain_order=True, nulls_last=True)
    meta = data.datasets.filter(pl.col("dataset_id") == te_row["dataset_id"])
    return _page(
        "target.html.j2", f"{te_row['dataset_id']} ({arch})", 2, footer, arch=arch, te=te_row, top=top,
        metric=meta["metric"][0] if len(meta) else "",
        position=te_all["dataset_id"].to_list().index(te_row["dataset_id"]) + 1, n_targets=len(te_all),
        share_positive=float((gains["gain"] > 0).mean()) if len(gains) else float("nan"),
        chart=bar_chart(bars, f"Gain on {te_row['dataset_id']} of the best {len(bars)} ranked models"),
    )


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
        gains_by_arch = {k[0]: g for k, g in data.gains.group_by("architecture", maintain_order=True)}
        for arch in data.architectures:
            _write(stage, arch_href(arch), arch_page(data, arch, footer))
            pages += 1
            lb = _of(data.leaderboard, arch)
            ranked = _ranked(lb)
            if len(ranked):
                top = ranked.row(0, named=True)
                rel = arch_reliability(data, arch)
                best[arch] = {"model_id": top["model_id"], "is_pretrained": _true(top.get("is_pretrained")),
                              "mean_gain": float(top["mean_gain"]), "ci_low": _float(top["ci_low"]),
                              "ci_high": _float(top["ci_high"]), "pretrained_avg": _pretrained_avg(lb),
                              "reliability": rel.value if rel else None, "n_tied_with_rank1": tied_count(ranked)}
            arch_gains = gains_by_arch.get(arch, data.gains.clear())
            by_model = {k[0]: g for k, g in arch_gains.group_by("model_id", maintain_order=True)}
            for i, row in enumerate(lb.iter_rows(named=True), 1):
                _write(stage, model_href(arch, row["model_id"]),
                       model_page(data, arch, row, by_model.get(row["model_id"], arch_gains.clear()), footer))
                if i % 500 == 0:
                    say(f"{arch}: {i}/{len(lb)} model pages")
            n_models += len(lb)
            by_target = {k[0]: g for k, g in arch_gains.group_by("dataset_id", maintain_order=True)}
            ranked_ids = set(ranked["model_id"])
            te = _of(data.target_effects, arch)
            for r in te.iter_rows(named=True):
                _write(stage, target_href(arch, r["dataset_id"]),
                       target_page(data, arch, r, by_target.get(r["dataset_id"], arch_gains.clear()), ranked_ids, footer))
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
