"""One markdown-table renderer for every medium that prints tables (CLI, Dagster previews, docs figures)."""

from __future__ import annotations


def cell(value: object) -> str:
    """A value as a markdown cell: floats to 2 decimals, pipes escaped, NULL empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value).replace("|", "\\|")


def markdown_table(columns: list[str], rows: list[tuple]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(cell(v) for v in row) + " |\n" for row in rows)


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
