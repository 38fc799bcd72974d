"""Build the static leaderboard site from the warehouse: index, one page per architecture, model and target, and a
model × target gain matrix per architecture.

Layout under the output folder (readable slugs, :mod:`startpoint.site.paths`): ``index.html``, ``arch/<a>.html``,
``matrix/<a>.html``, ``model/<a>/<org>--<name>.html``, ``target/<a>/<t>.html``, and ``site.js``. Pages are plain
HTML with inline CSS and SVG, so the folder can be opened from disk or served by any static host, offline;
``site.js`` (no dependencies, no network) only adds sorting and filtering to the big tables, which read the same
without it.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from startpoint.hub.architectures import pretrained_architecture
from startpoint.site.data import SiteData, read_site_data
from startpoint.site.html import num, render
from startpoint.site.paths import SitePaths, site_paths
from startpoint.site.svg import Bar, bar_chart, stacked_share
from startpoint.warehouse.leaderboard import (
    TIED_NOTE, Reliability, board_notes, model_label, ranking_note, reliability_text,
)

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
    paths: SitePaths | None = None  # where each page was written (relative to out_dir)


def _float(v) -> float | None:
    """A number from the warehouse that may be NULL (or NaN): None when missing."""
    return float(v) if num(v) else None


def _pretrained_avg(lb: pl.DataFrame) -> float | None:
    values = lb["pretrained_avg"].drop_nulls()
    return float(values[0]) if len(values) else None


def _true(value) -> bool:
    """A boolean from the warehouse that may be NULL (NULL is not true)."""
    return bool(value) if value is not None else False


def tied_count(ranked: pl.DataFrame) -> int:
    """Ranked rows other than #1 that cannot be told apart from #1 (the reader's `n_tied`)."""
    return int(ranked["n_tied"][0]) if len(ranked) else 0



SITE_JS = "site.js"
HUB = "https://huggingface.co/"
# A Hub repo id: [org/]name, each part of letters, digits and ._- (no leading or trailing ., -, no -- or ..).
_HUB_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_HUB_ID = re.compile(rf"{_HUB_PART}(?:/{_HUB_PART})?")
HEAT_STEPS = 4  # colour steps on each side of 0 in the gain matrix


def _of(frame: pl.DataFrame, arch: str) -> pl.DataFrame:
    return frame.filter(pl.col("architecture") == arch)


def _ranked(lb: pl.DataFrame) -> pl.DataFrame:
    return lb.filter(pl.col("rank").is_not_null()).sort("rank", maintain_order=True)


class Pages:
    """Renders the pages of one build: the data, the file layout and the footer every page shares."""

    def __init__(self, data: SiteData, paths: SitePaths, footer: str):
        self.data, self.paths, self.footer = data, paths, footer
        catalog = data.catalog if data.catalog is not None else pl.DataFrame()
        self._catalog = {(r["architecture"], r["model_id"]): r for r in catalog.iter_rows(named=True)}

    def render(self, template: str, title: str, depth: int, **context) -> str:
        p = self.paths
        return render(template, title=title, root="../" * depth, footer=self.footer, arch_href=p.arch,
                      model_href=p.model, target_href=p.target, matrix_href=p.matrix, hub_url=self.hub_url,
                      **context)

    def reliability(self, arch: str) -> Reliability | None:
        return self.data.reliability.get(arch)

    # -- Hugging Face ----------------------------------------------------------------------------------------------

    def hub_id(self, arch: str, model_id: str) -> str | None:
        """The model's Hub repo id, or None for a model with no Hub page: a local or fused model, or an id the Hub
        could not hold. A pretrained model links to its current Hub id; a model the warehouse's hub_models does not
        list counts as a Hub model only in the org/name form."""
        row = self._catalog.get((arch, model_id))
        if row is not None and (row["source"] == "local" or row["role"] == "fused"):
            return None
        spec = pretrained_architecture(model_id)
        if spec is not None:
            return spec.hub_id
        text = str(model_id)
        if not _HUB_ID.fullmatch(text) or "--" in text or ".." in text or (row is None and "/" not in text):
            return None
        return text

    def hub_url(self, arch: str, model_id: str) -> str | None:
        hub = self.hub_id(arch, model_id)
        return HUB + hub if hub else None  # the id is [A-Za-z0-9._-/] only: nothing to encode

    def usage(self, arch: str, model_id: str) -> dict:
        """The "how to use" block of a model page: the id for `from_pretrained`, and what the catalog
        (hub_models) knows: license, size, downloads, last change, the safe-loading verdict. A field the catalog
        lacks says so instead of guessing."""
        row = self._catalog.get((arch, model_id))
        hub = self.hub_id(arch, model_id)
        from_hub = row is not None and row["source"] == "hub"  # a row of the Hub catalog (jobs hub_catalog)
        missing = "not declared on the Hub" if from_hub else "not in the catalog"

        def shown(value, fmt) -> str:
            return missing if value is None or (isinstance(value, float) and not math.isfinite(value)) else fmt(value)

        if row is None:
            kind = "not in the catalog"
        elif row["role"] == "fused":
            kind = "a fused model (merged by startpoint; weights on this machine, not on the Hub)"
        elif row["source"] == "local":
            kind = "a local model (finetuned by startpoint; weights on this machine, not on the Hub)"
        else:
            kind = {"hub": "Hub catalog", "published": "published results' catalog"}.get(row["source"],
                                                                                      str(row["source"]))
        no_hub = kind if row is not None and (row["role"] == "fused" or row["source"] == "local") else \
            "its id is not a Hugging Face repo id"
        if not from_hub:
            verdict = "not checked: not in the Hub catalog (the hub_catalog job checks a model's files)"
        elif row["status"] == "accepted":
            verdict = ("accepted by startpoint's loading policy: "
                       + ("safetensors weights" if _true(row["has_safetensors"]) else "weights allowed by opt-in")
                       + ", no remote code, within the download cap")
        elif row["status"] == "refused":
            verdict = f"refused: {row['refusal_reason'] or 'no reason recorded'}"
        else:
            verdict = f"{row['status'] or 'unknown'} (no verdict for its current files)"
        size = shown(row["n_params"] if row else None, lambda n: f"{n / 1e6:.1f}M parameters")
        if row is not None and row["download_bytes"] is not None:
            size += f", {row['download_bytes'] / 1e6:.0f} MB of weights"
        return {
            "hub_id": hub, "kind": kind, "no_hub": no_hub, "verdict": verdict,
            "license": shown(row["license"] if row else None, str),
            "size": size,
            "downloads": shown(row["downloads"] if row else None, lambda n: f"{int(n):,}"),
            "last_modified": shown(row["last_modified"] if row else None,
                                   lambda t: t.strftime("%Y-%m-%d") if hasattr(t, "strftime") else str(t)[:10]),
        }

    # -- pages -----------------------------------------------------------------------------------------------------

    def index(self) -> str:
        data, rows = self.data, []
        for arch in data.architectures:
            lb = _of(data.leaderboard, arch)
            ranked = _ranked(lb)
            rel = self.reliability(arch)
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
        return self.render("index.html.j2", "Architectures", 0, rows=rows)

    def arch(self, arch: str) -> str:
        data = self.data
        lb = _of(data.leaderboard, arch)
        ranked = _ranked(lb)
        bars = [
            Bar(model_label(r), r["mean_gain"], r["ci_low"], r["ci_high"], "../" + self.paths.model(arch, r["model_id"]))
            for r in ranked.head(RANKED_BARS).iter_rows(named=True)
            if _float(r["mean_gain"]) is not None
        ]
        rows = list(ranked.iter_rows(named=True))
        rel = self.reliability(arch)
        title = f"Gain of the top {len(bars)} rows of {arch}, in rank order (points, 95% interval)"
        return self.render(
            "arch.html.j2", f"{arch} leaderboard", 1, arch=arch, pretrained=_pretrained_avg(lb),
            chart=bar_chart(bars, title), reliability=reliability_text(rel), notes=board_notes(rows),
            has_evidence=bool(rows) and _true(rows[0].get("order_has_evidence")),
            n_tied=tied_count(ranked), n_others=max(len(ranked) - 1, 0), tied_note=TIED_NOTE,
            ranking_note=ranking_note(rel), ranked=rows,
            flagged=list(lb.filter(pl.col("flagged")).iter_rows(named=True)),
            variance=_variance(data, arch), targets=list(_of(data.target_effects, arch).iter_rows(named=True)),
            proxy=list(_of(data.proxy, arch).iter_rows(named=True)),
        )

    def model(self, arch: str, row: dict, gains: pl.DataFrame) -> str:
        gains = gains.sort("gain", descending=True, maintain_order=True, nulls_last=True)
        rows = list(gains.iter_rows(named=True))
        bars = [
            Bar(g["dataset_id"], g["gain"],
                g["gain"] - 1.96 * g["gain_se"] if _float(g["gain_se"]) is not None else None,
                g["gain"] + 1.96 * g["gain_se"] if _float(g["gain_se"]) is not None else None,
                "../../" + self.paths.target(arch, g["dataset_id"]))
            for g in rows
        ]
        return self.render(
            "model.html.j2", row["model_id"], 2, arch=arch, row=row, gains=rows,
            reliability=reliability_text(self.reliability(arch)), usage=self.usage(arch, row["model_id"]),
            chart=bar_chart(bars, f"Gain of {row['model_id']} per target (points, ±1.96 se)"),
        )

    def target(self, arch: str, te_row: dict, gains: pl.DataFrame, ranked_ids: set[str]) -> str:
        data = self.data
        gains = gains.filter(pl.col("model_id").is_in(list(ranked_ids))).sort(
            "gain", descending=True, maintain_order=True, nulls_last=True)
        top = list(gains.head(TARGET_TOP).iter_rows(named=True))
        bars = [Bar(g["model_id"], g["gain"], None, None, "../../" + self.paths.model(arch, g["model_id"]))
                for g in top]
        te_all = _of(data.target_effects, arch).sort("mean_gain", descending=True, maintain_order=True,
                                                     nulls_last=True)
        meta = data.datasets.filter(pl.col("dataset_id") == te_row["dataset_id"])
        return self.render(
            "target.html.j2", f"{te_row['dataset_id']} ({arch})", 2, arch=arch, te=te_row, top=top,
            metric=meta["metric"][0] if len(meta) else "",
            position=te_all["dataset_id"].to_list().index(te_row["dataset_id"]) + 1, n_targets=len(te_all),
            share_positive=float((gains["gain"] > 0).mean()) if len(gains) else float("nan"),
            chart=bar_chart(bars, f"Gain on {te_row['dataset_id']} of the best {len(bars)} ranked models"),
        )

    def matrix(self, arch: str, gains: pl.DataFrame) -> str:
        """The model × target gain matrix of an architecture: a row per leaderboard row with gains (rank order,
        unranked rows last), a column per target (most sensitive first, as on the architecture page), each cell
        the gain in points coloured on a diverging scale that saturates at the 95th percentile of |gain| over the
        kept cells."""
        lb = _of(self.data.leaderboard, arch)
        te = _of(self.data.target_effects, arch)
        present = set(gains["dataset_id"].to_list())
        targets = [t for t in te["dataset_id"].to_list() if t in present]
        targets += sorted(present - set(targets))
        cells: dict[tuple[str, str], dict] = {(g["model_id"], g["dataset_id"]): g for g in gains.iter_rows(named=True)}
        # the scale from the kept cells (unflagged models, runs that did not collapse), so one flagged model with
        # shifted columns cannot wash out every other cell; its own cells saturate
        flagged = set(lb.filter(pl.col("flagged"))["model_id"].to_list())
        kept = gains.filter(~pl.col("model_id").is_in(list(flagged)) & ~pl.col("collapsed").fill_null(False))
        values = (kept if len(kept) else gains)["gain"].drop_nulls()
        scale = max(float(values.abs().quantile(0.95, "linear")), 0.5) if len(values) else 1.0
        with_gains = set(gains["model_id"].to_list())
        rows = []
        for r in lb.iter_rows(named=True):
            if r["model_id"] not in with_gains:
                continue
            line = []
            for t in targets:
                g = cells.get((r["model_id"], t))
                if g is None or _float(g["gain"]) is None:
                    line.append(None)
                    continue
                step = round(max(-1.0, min(1.0, g["gain"] / scale)) * HEAT_STEPS)
                line.append({"text": num(g["gain"], 1, signed=True), "cls": f"h{step:+d}".replace("+", "p").replace("-", "m"),
                             "collapsed": _true(g.get("collapsed"))})
            rows.append({"row": r, "cells": line})
        legend = [{"cls": f"h{s:+d}".replace("+", "p").replace("-", "m"),
                   "text": num(s * scale / HEAT_STEPS, 1, signed=True)} for s in range(-HEAT_STEPS, HEAT_STEPS + 1)]
        return self.render("matrix.html.j2", f"{arch}: gain per model and target", 1, arch=arch, targets=targets,
                           rows=rows, scale=scale, legend=legend, steps=HEAT_STEPS,
                           n_collapsed=int(gains["collapsed"].fill_null(False).sum()))


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
    paths = site_paths(data.leaderboard, data.target_effects)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".site-", dir=out_dir.parent))
    footer = f"Built {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC from the startpoint warehouse."
    pages_of = Pages(data, paths, footer)
    say = progress or (lambda _msg: None)
    pages = 0
    try:
        _write(stage, MARKER, "written by `startpoint site`; the next build replaces this folder\n")
        _write(stage, SITE_JS, render("site.js.j2"))  # a template only to ship as package data: no values in it
        _write(stage, "index.html", pages_of.index())
        pages += 1
        n_models = n_targets = 0
        best: dict[str, dict] = {}
        gains_by_arch = {k[0]: g for k, g in data.gains.group_by("architecture", maintain_order=True)}
        for arch in data.architectures:
            arch_gains = gains_by_arch.get(arch, data.gains.clear())
            _write(stage, paths.arch(arch), pages_of.arch(arch))
            _write(stage, paths.matrix(arch), pages_of.matrix(arch, arch_gains))
            pages += 2
            lb = _of(data.leaderboard, arch)
            ranked = _ranked(lb)
            if len(ranked):
                top = ranked.row(0, named=True)
                rel = pages_of.reliability(arch)
                best[arch] = {"model_id": top["model_id"], "is_pretrained": _true(top.get("is_pretrained")),
                              "mean_gain": float(top["mean_gain"]), "ci_low": _float(top["ci_low"]),
                              "ci_high": _float(top["ci_high"]), "pretrained_avg": _pretrained_avg(lb),
                              "reliability": rel.value if rel else None, "n_tied_with_rank1": tied_count(ranked)}
            by_model = {k[0]: g for k, g in arch_gains.group_by("model_id", maintain_order=True)}
            for i, row in enumerate(lb.iter_rows(named=True), 1):
                _write(stage, paths.model(arch, row["model_id"]),
                       pages_of.model(arch, row, by_model.get(row["model_id"], arch_gains.clear())))
                if i % 500 == 0:
                    say(f"{arch}: {i}/{len(lb)} model pages")
            n_models += len(lb)
            by_target = {k[0]: g for k, g in arch_gains.group_by("dataset_id", maintain_order=True)}
            ranked_ids = set(ranked["model_id"])
            te = _of(data.target_effects, arch)
            for r in te.iter_rows(named=True):
                _write(stage, paths.target(arch, r["dataset_id"]),
                       pages_of.target(arch, r, by_target.get(r["dataset_id"], arch_gains.clear()), ranked_ids))
            n_targets += len(te)
            pages += len(lb) + len(te)
            say(f"{arch}: {len(lb)} model pages, {len(te)} target pages, a gain matrix")
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
                       targets=n_targets, best=best, paths=paths)
