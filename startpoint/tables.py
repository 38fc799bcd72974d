"""One markdown-table renderer for every medium that prints tables (CLI, Dagster previews, model cards, docs
figures), and the escaping of untrusted text for markdown and for the terminal."""

from __future__ import annotations

import unicodedata


def cell(value: object) -> str:
    """A value as a markdown cell: floats to 2 decimals, pipes escaped, NULL empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value).replace("|", "\\|")


def markdown_table(columns: list[str], rows: list[tuple], align: str | None = None) -> str:
    """A pipe table, one line per row. `align`: one letter per column, 'l' (default) or 'r' (right-aligned, for
    numbers). Cells go through :func:`cell` (pipes escaped); escape other markup before (:func:`markdown_text`)."""
    align = align or "l" * len(columns)
    if len(align) != len(columns):
        raise ValueError(f"align {align!r} has {len(align)} letters for {len(columns)} columns")
    rule = "".join("---:|" if a == "r" else "---|" for a in align)
    head = "| " + " | ".join(columns) + " |\n|" + rule + "\n"
    return head + "".join(markdown_row(row) for row in rows)


def markdown_row(row: tuple) -> str:
    """One line of a :func:`markdown_table` (for a table printed row by row as the rows come)."""
    return "| " + " | ".join(cell(v) for v in row) + " |\n"


def visible_text(text: object) -> str:
    """Untrusted text made inert for a terminal or a document: control, format and separator characters (escape
    sequences, carriage returns, bidi overrides, zero-width characters) shown as \\x.. / \\u.... escapes; the
    plain space kept."""
    return "".join(
        ch if ch == " " or unicodedata.category(ch)[0] not in "CZ" else ch.encode("unicode_escape").decode("ascii")
        for ch in str(text)
    )


def markdown_text(text: object) -> str:
    """Untrusted text for a markdown cell: markup characters escaped (the table escapes pipes), no line breaks."""
    text = " ".join(str(text).split())
    for ch in "\\`*_[]<>#!~":
        text = text.replace(ch, "\\" + ch)
    return text


def interval_text(value, low, high, digits: int = 2, signed: bool = True) -> str:
    """'+1.21 (+0.68..+1.74)'; empty when the value is missing, the bare value when the interval is."""
    if value is None:
        return ""
    f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    return f.format(value) + (f" ({f.format(low)}..{f.format(high)})" if low is not None and high is not None else "")
