"""HTML rendering: the Jinja environment of the site's templates (templates/*.html.j2) and number formats (file
names for untrusted ids: :mod:`startpoint.site.paths`).

Every value a template prints is escaped: the environment autoescapes, and its `finalize` escapes each
interpolated value as :func:`html.escape` does (quotes included, so a value is safe in an attribute too) and
prints a missing value (None) as nothing. Only markup the templates themselves build (macros) passes as it is.
"""

from __future__ import annotations

import functools
import math
import numbers
from html import escape

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from startpoint.warehouse.leaderboard import percent, targets_label  # one format each, CLI and site alike


def num(v, digits: int = 2, signed: bool = False) -> str:
    """A number with `digits` decimals; empty when missing (None, NaN, infinite, not a number)."""
    if v is None or isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        return ""
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def integer(v) -> str:
    """A count; empty when missing."""
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else str(int(v))


def _escaped(value) -> Markup:
    """`finalize` of the environment: every interpolated value HTML-escaped; None prints nothing; markup made by
    the templates (macro output) kept."""
    if value is None:
        return Markup("")
    if hasattr(value, "__html__"):
        return Markup(value.__html__())
    return Markup(escape(str(value)))


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("startpoint.site", "templates"),
        autoescape=True,
        finalize=_escaped,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(num=num, signed=lambda v, digits=2: num(v, digits, signed=True), integer=integer, percent=percent,
                       targets=targets_label)
    return env


def render(template: str, **context) -> str:
    """One page of the site: `template` (a file in templates/) with `context`, every value escaped."""
    return environment().get_template(template).render(**context)
