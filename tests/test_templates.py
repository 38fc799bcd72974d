"""Hostile ids through every template of the site (templates/*.html.j2) and of the model cards
(templates/*.md.j2): the architecture, model, target, metric and flag reason of the fixture warehouse replaced
by markup, quotes, backticks, pipes, an ESC sequence and a bidi override. No page may gain an element or an
event-handler attribute, no card may carry raw markup outside its code spans or a raw control character."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import duckdb
import pytest
import yaml

from startpoint.modelcard import export_model_cards
from startpoint.modelcard.markdown import escape as md_escape
from startpoint.site import build_site
from startpoint.site.html import render

from product_fixture import build

EVIL = 'x"\'><script>alert(1)</script><img src=y onerror=alert(2)>`|#*_\x1b[2J\u202e'
ARCH, MODEL, TARGET, METRIC, REASON = (f"{role}-{EVIL}" for role in ("arch", "model", "target", "metric", "reason"))
SAFE_TAGS = {"html", "head", "meta", "title", "link", "style", "body", "header", "a", "main", "h1", "h2", "p", "b",
             "table", "thead", "tbody", "tr", "th", "td", "span", "svg", "line", "text", "rect", "footer", "div", "dl",
             "dt", "dd", "pre", "code", "script"}


@pytest.fixture()
def hostile(tmp_path):
    path = build(tmp_path / "warehouse.duckdb")
    con = duckdb.connect(str(path))
    tables = con.execute(
        "select table_name, list(column_name) from information_schema.columns group by table_name").fetchall()
    for table, columns in tables:
        if "architecture" in columns:
            con.execute(f"update {table} set architecture = ? where architecture = 'roberta-base'", [ARCH])
        if "dataset_id" in columns:
            con.execute(f"update {table} set dataset_id = ? where dataset_id = 'cb'", [TARGET])
        for column in ("model_id", "metric", "flag_reason"):
            if column in columns:
                value = {"model_id": MODEL, "metric": METRIC, "flag_reason": REASON}[column]
                where = "model_id = 'org1/roberta-base-inter-1'" if column == "model_id" else f"{column} is not null"
                con.execute(f"update {table} set {column} = ? where {where}", [value])
    con.close()
    return path


class _Elements(HTMLParser):
    """Tags, event-handler attributes, and scripts (their attributes and inline text) of a page."""

    def __init__(self):
        super().__init__()
        self.tags: set[str] = set()
        self.handlers: list[str] = []
        self.scripts: list[dict] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "script":
            self.scripts.append({**dict(attrs), "text": ""})
            self._in_script = True

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1]["text"] += data


def test_every_site_template_escapes_hostile_ids(tmp_path, hostile):
    site = build_site(hostile, tmp_path / "site").out_dir
    pages = {p.relative_to(site).parts[0]: p for p in sorted(site.rglob("*.html"))}
    assert {"index.html", "arch", "matrix", "model", "target"} <= set(pages)  # every template was rendered
    seen = {name: False for name in ("arch", "model", "target")}
    for path in site.rglob("*.html"):
        text = path.read_text()
        parser = _Elements()
        parser.feed(text)
        assert parser.tags <= SAFE_TAGS and not parser.handlers, (path, parser.tags - SAFE_TAGS, parser.handlers)
        # the one script is the site's own file, inline nothing: an id never becomes code
        root = "../" * (len(path.relative_to(site).parts) - 1)
        assert parser.scripts == [{"src": f"{root}site.js", "defer": None, "text": ""}], (path, parser.scripts)
        assert EVIL not in text and "\x1b" not in text or "&lt;script&gt;" in text, path
        for role, value in (("arch", ARCH), ("model", MODEL), ("target", TARGET)):
            seen[role] |= value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
                '"', "&quot;").replace("'", "&#x27;") in text
    assert all(seen.values()), seen


def test_html_finalize_escapes_values_and_keeps_macro_markup():
    page = render("target.html.j2", title=EVIL, root="../", footer=EVIL, arch=EVIL, metric=EVIL,
                  te={"mean_gain": 1.0, "max_gain": 2.0, "baseline_mean": None, "baseline_sd": None, "n_models": 3},
                  share_positive=0.5, position=1, n_targets=2, top=[{"model_id": EVIL, "score_mean": 1.0, "gain": -1.0}],
                  chart={"title": EVIL, "bars": []}, arch_href=lambda a: f"arch/{a}.html",
                  model_href=lambda a, m: f"m/{m}.html", target_href=lambda a, t: f"t/{t}.html",
                  hub_url=lambda a, m: f"https://huggingface.co/{m}")
    parser = _Elements()
    parser.feed(page)
    assert parser.tags <= SAFE_TAGS and not parser.handlers
    assert f'href="https://huggingface.co/{EVIL}"' not in page  # the link's text and target are escaped too
    assert "<td class='num neg'>-1.00</td>" in page and "<td class='num'></td>" in page  # macros' markup kept


def test_every_card_template_escapes_hostile_ids(tmp_path, hostile):
    summary = export_model_cards(hostile, tmp_path / "cards", top=10, site_url=f"https://example.org/{EVIL}")
    texts = {c.model_id: c.markdown_path.read_text() for c in summary.cards}
    texts["index"] = summary.index_path.read_text()
    assert MODEL in texts and any(TARGET[:6] in t for t in texts.values())
    for name, text in texts.items():
        body = text.split("---\n", 2)[-1]  # the YAML front matter holds the exact ids, quoted by yaml.safe_dump
        assert "\x1b" not in body and "\u202e" not in body, name
        outside = re.sub(r"(?<!`)(`+)(?!`).+?(?<!`)\1(?!`)", "", body)  # drop code spans (CommonMark)
        assert not re.search(r"(?<!\\)<(script|img)", outside), (name, outside)
        assert not re.search(r"\]\([^)]*[\s<>`]", outside), name  # the link target cannot be broken out of
    for card in summary.cards:  # the YAML keeps the exact id, written as ASCII (\u escapes for the rest)
        yaml_text = card.yaml_path.read_text()
        assert yaml_text.isascii(), card.model_id
        assert yaml.safe_load(yaml_text)["model-index"][0]["name"] == card.model_id
    card = texts[MODEL]
    row = next(line for line in card.splitlines() if line.startswith("| target-"))
    assert row.count(" | ") == 4 and "\\|" in row  # the hostile pipe stays inside its cell
    assert md_escape(EVIL).startswith("x\"'\\>\\<script\\>")
