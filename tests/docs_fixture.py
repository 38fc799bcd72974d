"""The block of a docs page that a benchmark's figures fill (between `<!-- name -->` and `<!-- /name -->`), for the
tests that check the docs quote a results file."""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def docs_block(doc: str, name: str, joined: bool = True) -> str:
    """The block `name` of docs/`doc`; `joined`: its whitespace runs made single spaces, so a sentence wrapped across
    lines still matches."""
    text = (DOCS / doc).read_text()
    block = text[text.index(f"<!-- {name} -->"):text.index(f"<!-- /{name} -->")]
    return " ".join(block.split()) if joined else block
