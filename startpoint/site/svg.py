"""Layout of the inline SVG charts of the static site (no JavaScript, no external files): positions and labels
computed here, drawn by the `bar_chart` and `stacked_share` macros of templates/macros.html.j2, which escape
every label. Each chart has a viewBox and no fixed size, so it scales down with the page (phones) and never
overflows it."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    low: float | None = None  # interval whisker, same unit as value
    high: float | None = None
    href: str | None = None


def _fmt(v: float) -> str:
    return f"{v:+.2f}" if v else "0.00"


def bar_chart(bars: list[Bar], title: str, unit: str = "points", width: int = 760, row: int = 18) -> dict:
    """Horizontal bars around a zero line, with optional interval whiskers; positive bars green, negative red."""
    if not bars:
        return {"title": title, "bars": []}
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
    drawn = []
    for i, b in enumerate(bars):
        y = 6 + i * row
        x0, x1 = sorted((x(0), x(b.value)))
        whisker = None
        if b.low is not None and b.high is not None and math.isfinite(b.low) and math.isfinite(b.high):
            whisker = (f"{x(b.low):.1f}", f"{x(b.high):.1f}", f"{y + row / 2 - 1:.1f}")
        drawn.append({
            "label": b.label, "short": b.label if len(b.label) <= 40 else b.label[:39] + "…", "href": b.href,
            "text_y": f"{y + row * 0.65:.1f}", "x": f"{x0:.1f}", "y": y + 2, "w": f"{max(x1 - x0, 0.5):.1f}",
            "colour": "#2e7d32" if b.value >= 0 else "#c62828", "value": _fmt(b.value), "whisker": whisker,
        })
    return {
        "title": title, "unit": unit, "width": width, "height": height, "bars": drawn, "bar_h": row - 6,
        "zero": f"{x(0):.1f}", "zero_end": height - 26, "label_x": label_w - 2, "value_x": width - value_w,
        "axis_y": height - 12, "axis": _ticks(lo, hi, x, label_w + pad, label_w + pad + plot_w),
        "unit_x": label_w - 14,  # right-aligned left of the lowest tick, which starts at the plot's left edge
    }


def _ticks(lo: float, hi: float, x, left: float, right: float, min_gap: float = 44.0) -> list[tuple[str, str, str]]:
    """Axis labels (x, text, anchor) at the low end, 0 and the high end: the end labels anchored inward so they
    stay inside the plot, and a label dropped where it would touch the one before (0 at an end, a narrow range)."""
    out: list[tuple[str, str, str]] = []
    last = None
    for v in (lo, 0.0, hi):
        pos = x(v)
        anchor = "start" if pos - left < min_gap / 2 else "end" if right - pos < min_gap / 2 else "middle"
        if last is not None and pos - last < min_gap:
            continue
        out.append((f"{pos:.1f}", f"{v:+.1f}" if v else "0", anchor))
        last = pos
    return out


COMPONENT_COLOURS = {"base": "#1565c0", "target": "#ef6c00", "interaction": "#6a1b9a", "noise": "#757575"}


def stacked_share(parts: list[tuple[str, float]], title: str, width: int = 760) -> dict:
    """One horizontal bar split into shares (fractions summing to about 1), with a legend."""
    total = sum(max(v, 0.0) for _, v in parts if v is not None and math.isfinite(v))
    if total <= 0:
        return {"title": title, "parts": []}
    drawn = []
    x = 0.0
    for i, (name, v) in enumerate(parts):
        share = max(v, 0.0) / total if v is not None and math.isfinite(v) else 0.0
        w = share * width
        lx = i * (width / max(len(parts), 1))
        drawn.append({"name": name, "share": f"{share:.1%}", "x": f"{x:.1f}", "w": f"{w:.1f}",
                      "colour": COMPONENT_COLOURS.get(name, ["#00838f", "#9e9d24", "#ad1457"][i % 3]),
                      "legend_x": f"{lx:.1f}", "text_x": f"{lx + 16:.1f}"})
        x += w
    return {"title": title, "width": width, "parts": drawn}
