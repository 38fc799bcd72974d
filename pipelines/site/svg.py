"""Inline SVG charts for the static site: no JavaScript, no external files, every label escaped."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    low: float | None = None  # interval whisker, same unit as value
    high: float | None = None
    href: str | None = None


def _fmt(v: float) -> str:
    return f"{v:+.2f}" if v else "0.00"


def bar_chart(bars: list[Bar], title: str, unit: str = "points", width: int = 760, row: int = 18) -> str:
    """Horizontal bars around a zero line, with optional interval whiskers; positive bars green, negative red."""
    if not bars:
        return f'<p class="empty">No data for “{escape(title)}”.</p>'
    label_w, value_w, pad = 260, 70, 8
    plot_w = width - label_w - value_w - 2 * pad
    values = [b.value for b in bars] + [v for b in bars for v in (b.low, b.high) if v is not None]
    values = [v for v in values if v is not None and math.isfinite(v)]
    lo, hi = min(0.0, *values), max(0.0, *values)
    if hi - lo < 1e-9:
        hi = lo + 1.0
    scale = plot_w / (hi - lo)

    def x(v: float) -> float:
        return label_w + pad + (v - lo) * scale

    height = row * len(bars) + 34
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
        f'<line x1="{x(0):.1f}" y1="4" x2="{x(0):.1f}" y2="{height - 26}" stroke="#555" stroke-width="1"/>',
    ]
    for i, b in enumerate(bars):
        y = 6 + i * row
        x0, x1 = sorted((x(0), x(b.value)))
        colour = "#2e7d32" if b.value >= 0 else "#c62828"
        label = escape(b.label if len(b.label) <= 40 else b.label[:39] + "…")
        text = f'<text x="{label_w - 2}" y="{y + row * 0.65:.1f}" text-anchor="end">{label}</text>'
        if b.href:
            text = f'<a href="{escape(b.href)}">{text}</a>'
        parts.append(text)
        parts.append(
            f'<rect x="{x0:.1f}" y="{y + 2}" width="{max(x1 - x0, 0.5):.1f}" height="{row - 6}" fill="{colour}">'
            f"<title>{escape(b.label)}: {_fmt(b.value)} {escape(unit)}</title></rect>"
        )
        if b.low is not None and b.high is not None and math.isfinite(b.low) and math.isfinite(b.high):
            ym = y + row / 2 - 1
            parts.append(
                f'<line x1="{x(b.low):.1f}" y1="{ym:.1f}" x2="{x(b.high):.1f}" y2="{ym:.1f}" stroke="#111" stroke-width="1"/>'
            )
        parts.append(f'<text x="{width - value_w}" y="{y + row * 0.65:.1f}">{_fmt(b.value)}</text>')
    axis_y = height - 12
    for v in (lo, 0.0, hi):
        parts.append(f'<text x="{x(v):.1f}" y="{axis_y}" text-anchor="middle" class="axis">{v:.1f}</text>')
    parts.append(f'<text x="{label_w - 2}" y="{axis_y}" text-anchor="end" class="axis">{escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


COMPONENT_COLOURS = {"base": "#1565c0", "target": "#ef6c00", "interaction": "#6a1b9a", "noise": "#757575"}


def stacked_share(parts: list[tuple[str, float]], title: str, width: int = 760) -> str:
    """One horizontal bar split into shares (fractions summing to about 1), with a legend."""
    total = sum(max(v, 0.0) for _, v in parts if v is not None and math.isfinite(v))
    if total <= 0:
        return f'<p class="empty">No data for “{escape(title)}”.</p>'
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="70" '
        f'viewBox="0 0 {width} 70"><title>{escape(title)}</title>'
    ]
    x = 0.0
    for i, (name, v) in enumerate(parts):
        share = max(v, 0.0) / total if v is not None and math.isfinite(v) else 0.0
        w = share * width
        colour = COMPONENT_COLOURS.get(name, ["#00838f", "#9e9d24", "#ad1457"][i % 3])
        out.append(
            f'<rect x="{x:.1f}" y="4" width="{w:.1f}" height="28" fill="{colour}"><title>{escape(name)}: '
            f"{share:.1%}</title></rect>"
        )
        lx = i * (width / max(len(parts), 1))
        out.append(f'<rect x="{lx:.1f}" y="44" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{lx + 16:.1f}" y="55">{escape(name)} {share:.1%}</text>')
        x += w
    out.append("</svg>")
    return "".join(out)
