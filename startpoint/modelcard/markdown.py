"""The Jinja environment of the model cards' markdown templates (templates/*.md.j2).

HTML autoescape does not fit markdown, so the environment escapes for markdown instead: its `finalize` passes
every interpolated value through :func:`escape` (control and bidi characters shown as escapes, markup characters
and `&` backslash-escaped, one line), unless the value is :class:`Md`, markdown built on purpose (a code span from
the `code` filter, a number formatted by the `f` filter, a table from :func:`startpoint.tables.markdown_table`).
"""

from __future__ import annotations

import functools
import math
import numbers

from jinja2 import Environment, PackageLoader, StrictUndefined

from startpoint.tables import markdown_text, visible_text


class Md(str):
    """Markdown that is safe as it is: printed without escaping."""


def escape(value) -> Md:
    """Untrusted text as inert markdown text: visible control characters, escaped markup, one line."""
    if isinstance(value, Md):
        return value
    # `&` too: on the Hub a card's markdown may hold HTML, where `&lt;` would turn into markup
    return Md("" if value is None else markdown_text(visible_text(value)).replace("&", "\\&"))


def cell(value) -> Md:
    """Untrusted text for a table cell (:func:`startpoint.tables.markdown_table` escapes the pipes)."""
    return escape(value)


def code(text) -> Md:
    """Untrusted text as a markdown code span: a fence longer than any backtick run inside, on one line, with
    control and bidi characters shown as escapes."""
    text = visible_text(" ".join(str(text).split()))
    run = cur = 0
    for ch in text:
        cur = cur + 1 if ch == "`" else 0
        run = max(run, cur)
    fence = "`" * (run + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return Md(f"{fence}{pad}{text}{pad}{fence}")


def number(value, spec: str) -> Md:
    """A number that may be missing (NULL in the warehouse) formatted with `spec`; 'n/a' when missing."""
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        return Md("n/a")
    return Md(format(value, spec))


def url(value) -> Md:
    """A link target: characters that would end or break a markdown link (spaces, parentheses, angle brackets,
    backticks, backslashes) percent-encoded."""
    from urllib.parse import quote

    return Md(quote(visible_text(value), safe=":/?#[]@!$&'*+,;=%-._~"))


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("startpoint.modelcard", "templates"),
        autoescape=False,  # markdown, not HTML: `finalize` escapes instead
        finalize=escape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(code=code, f=number, url=url)
    return env


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)
