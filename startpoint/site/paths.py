"""Readable, stable file names for the site's pages: ``arch/roberta-base.html``,
``model/roberta-base/textattack--roberta-base-MNLI.html``, ``target/roberta-base/rte.html``,
``matrix/roberta-base.html``, so a URL can be guessed from an id and linked from elsewhere.

Ids are untrusted: a slug keeps ``[A-Za-z0-9._-]`` of the id, turns the Hub's ``/`` into ``--`` and anything else
into ``-``, never starts with a dot and is at most 150 characters. Two ids of one folder whose slugs would meet
(compared without case, so a case-insensitive disk cannot merge them either) are told apart by a suffix from a
hash of the id, on the ids that need it only: the id whose slug is its exact spelling keeps it, so adding a
colliding model never renames a page whose name could be guessed. The same inputs give the same names on every
build, and the model cards link to the pages through the same :class:`SitePaths`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping

MAX_SLUG = 150  # a Hub id is at most 96 + 1 + 96 characters: nearly every one keeps its full name
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def base_slug(text: str) -> str:
    """The readable slug of an id, before any collision suffix."""
    readable = _UNSAFE.sub("-", str(text).replace("/", "--")).lstrip(".-")[:MAX_SLUG].rstrip(".-")
    return readable or "x"


def _exact(text: str) -> bool:
    """True when the slug spells the id exactly (only `/` turned into `--`)."""
    return base_slug(text) == str(text).replace("/", "--")


def assign_slugs(ids: Iterable[str]) -> dict[str, str]:
    """A slug per distinct id, unique within the set without regard to case: the readable slug, plus
    ``-<hash>`` only on ids whose readable slug another id of the set already holds."""
    taken: set[str] = set()
    out: dict[str, str] = {}
    # exact spellings first, then by id: the result depends on the set only, not on the order given
    for text in sorted({str(i) for i in ids}, key=lambda t: (not _exact(t), t)):
        slug = base_slug(text)
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()
        n = 8
        while slug.lower() in taken:
            slug = f"{base_slug(text)[:MAX_SLUG - n - 1]}-{digest[:n]}"
            n += 2
        taken.add(slug.lower())
        out[text] = slug
    return out


class SitePaths:
    """Where each page of the site lives, relative to the site's root; built from the ids the site has pages for."""

    def __init__(self, architectures: Iterable[str], models: Mapping[str, Iterable[str]],
                 targets: Mapping[str, Iterable[str]] | None = None):
        self._arch = assign_slugs(architectures)
        self._models = {a: assign_slugs(models.get(a, ())) for a in self._arch}
        self._targets = {a: assign_slugs((targets or {}).get(a, ())) for a in self._arch}

    def arch_slug(self, arch: str) -> str:
        return self._arch[arch]

    def model_slug(self, arch: str, model_id: str) -> str:
        return self._models[arch][model_id]

    def arch(self, arch: str) -> str:
        return f"arch/{self._arch[arch]}.html"

    def matrix(self, arch: str) -> str:
        return f"matrix/{self._arch[arch]}.html"

    def model(self, arch: str, model_id: str) -> str:
        return f"model/{self._arch[arch]}/{self._models[arch][model_id]}.html"

    def target(self, arch: str, dataset_id: str) -> str:
        return f"target/{self._arch[arch]}/{self._targets[arch][dataset_id]}.html"


def site_paths(leaderboard, target_effects=None) -> SitePaths:
    """The layout of a site over a leaderboard frame (read_leaderboard: a page per row) and, optionally, the
    target_effects frame (a page per target): the site and the model cards' links both build it this way."""
    archs = sorted(leaderboard["architecture"].drop_nulls().unique().to_list())
    def ids(frame, column):
        return {a: frame.filter(frame["architecture"] == a)[column].to_list() for a in archs}
    return SitePaths(archs, ids(leaderboard, "model_id"),
                     ids(target_effects, "dataset_id") if target_effects is not None else None)
