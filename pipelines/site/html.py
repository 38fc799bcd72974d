"""HTML building blocks: page shell, tables, number formats, and safe file names for untrusted ids."""

from __future__ import annotations

import hashlib
import math
import re
from html import escape

CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
header{background:#263238;color:#fff;padding:10px 24px}header a{color:#fff;text-decoration:none;font-weight:600}
main{padding:12px 24px 40px;max-width:1200px}
table{border-collapse:collapse;margin:8px 0 20px;background:#fff}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eceff1}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.flagged td{color:#8d6e63}tr.tied td{background:#f1f8e9}p.tie{margin:4px 0}.pos{color:#2e7d32}.neg{color:#c62828}
svg.chart{font:11px system-ui,sans-serif;background:#fff;border:1px solid #ddd;margin:6px 0 16px}
svg .axis{fill:#555}.note{color:#555;font-size:13px}footer{color:#777;font-size:12px;padding:0 24px 20px}
"""


def slug(text: str) -> str:
    """A file name for an untrusted id: readable part plus a hash, so distinct ids never collide."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60] or "x"
    return f"{readable}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"


def num(v, digits: int = 2, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    try:
        if v != v:  # pandas NA / NaN
            return ""
    except TypeError:
        return ""
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def gain_cell(gain, low=None, high=None) -> str:
    text = num(gain, signed=True)
    if not text:
        return "<td class='num'></td>"
    interval = f" <span class='note'>[{num(low, signed=True)}, {num(high, signed=True)}]</span>" if num(low) and num(high) else ""
    cls = "pos" if gain > 0 else "neg" if gain < 0 else ""
    return f"<td class='num {cls}'>{text}{interval}</td>"


def link(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def table(headers: list[str], rows: list[list[str]], css_class: str = "", row_classes: list[str] | None = None) -> str:
    """`rows` hold ready HTML cells (`<td>…</td>`); headers are escaped here."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for i, cells in enumerate(rows):
        rc = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{rc}>{''.join(cells)}</tr>")
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def td(text: str = "", numeric: bool = False) -> str:
    """A cell with escaped text."""
    return f"<td class='num'>{escape(text)}</td>" if numeric else f"<td>{escape(text)}</td>"


def page(title: str, body: str, depth: int, footer: str) -> str:
    root = "../" * depth
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)} · startpoint</title><link rel='icon' href='data:,'><style>{CSS}</style></head>"
        f"<body><header><a href='{root}index.html'>startpoint</a> · which model to start finetuning from</header>"
        f"<main><h1>{escape(title)}</h1>{body}</main><footer>{escape(footer)}</footer></body></html>\n"
    )
