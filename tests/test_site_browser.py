"""Open the built site in headless Debian Chromium over the DevTools protocol: pages load, tables are there,
links resolve, hostile model names stay text, the big tables sort and filter, the gain matrix renders as a
heatmap, no page overflows sideways at 1,400 px or on a 390 px phone, axis labels do not collide, and the console
shows no errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import duckdb

from startpoint.site import build_site

from product_fixture import HOSTILE_MODEL, build

# One model gets a long id (the Hub allows 96 characters per part): the tables must wrap or scroll it, not the page.
LONG_MODEL = "a-very-long-organisation-name/" + ("roberta-base-finetuned-on-a-long-list-of-tasks-" * 2).rstrip("-")
WIDTHS = (1400, 390)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian chromium (`apt-get install chromium`, done by .ci/run)"),
]


class Browser:
    """A minimal DevTools-protocol client: one page session, events collected while waiting for replies."""

    def __init__(self, profile: Path):
        from websockets.sync.client import connect

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={profile}",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        self._conn = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=20)
        self.ws = self._conn.__enter__()
        self.next_id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)

    def call(self, method: str, params: dict | None = None, session: bool = False, timeout: float = 30) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        deadline = time.monotonic() + 30
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not finish loading")
            self.events.append(json.loads(self.ws.recv(timeout=30)))

    def set_width(self, width: int) -> None:
        """Emulate a viewport `width` px wide (a phone below 600 px: mobile, touch-sized)."""
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600}, session=True)

    def eval(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        return result["result"].get("value")

    def errors(self) -> list[str]:
        found = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(json.dumps(params.get("exceptionDetails", {}))[:300])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(json.dumps(params.get("args", []))[:300])
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append(params["entry"].get("text", ""))
        return found

    def close(self) -> None:
        if hasattr(self, "_conn"):
            self._conn.__exit__(None, None, None)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    warehouse = build(root / "warehouse.duckdb")
    con = duckdb.connect(str(warehouse))
    for (table,) in con.execute("select table_name from information_schema.columns where column_name = 'model_id'"
                                ).fetchall():
        con.execute(f"update {table} set model_id = ? where model_id = 'org4/roberta-base-inter-4'", [LONG_MODEL])
    con.close()
    return build_site(warehouse, root / "site")


@pytest.fixture(scope="module")
def site(built) -> Path:
    return built.out_dir


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def test_pages_load_with_tables_and_no_console_errors(site: Path, browser: Browser):
    pages = [site / "index.html", *sorted((site / "arch").glob("*.html"))]
    pages += sorted((site / "model").rglob("*.html"))[:3] + sorted((site / "target").rglob("*.html"))[:3]
    for path in pages:
        browser.open(path.as_uri())
        assert browser.errors() == [], f"console errors on {path.name}"
        n_tables = browser.eval("document.querySelectorAll('table').length")
        assert n_tables >= 1, f"no table on {path.name}"
        assert browser.eval("document.querySelectorAll('table tbody tr').length") >= 1, path.name
        # the one script is the site's own file (sorting, filtering); no inline code
        assert browser.eval("[...document.scripts].map(s => s.src.split('/').pop() + ':' + s.text.length)") == \
            ["site.js:0"], path.name
    browser.open((site / "index.html").as_uri())
    rows = browser.eval("[...document.querySelectorAll('table.architectures tbody tr')].map(r => r.cells[0].innerText)")
    assert rows == ["all-MiniLM-L6-v2", "roberta-base"]


def test_links_resolve_and_hostile_names_stay_text(site: Path, browser: Browser):
    arch = site / "arch" / "roberta-base.html"  # a readable, guessable name
    browser.open(arch.as_uri())
    hrefs = browser.eval("[...document.querySelectorAll('table.ranking a:not(.hf)')].map(a => a.href)")
    # 6 ranked intermediates, the hostile one and the pretrained model's row (stay); the flagged model is not ranked
    assert len(hrefs) == 8
    for href in hrefs:
        assert Path(href.removeprefix("file://")).is_file(), href
    names = browser.eval("[...document.querySelectorAll('table.ranking a:not(.hf)')].map(a => a.textContent)")
    assert HOSTILE_MODEL in names
    # the Hugging Face link of each Hub model; none for the hostile id, which the Hub could not hold
    hub = browser.eval("""[...document.querySelectorAll('table.ranking tbody tr')].map(r => [
        r.querySelector('a:not(.hf)').textContent, (r.querySelector('a.hf') || {}).href || null])""")
    links = dict(hub)
    assert links[HOSTILE_MODEL] is None
    assert links["org0/roberta-base-inter-0"] == "https://huggingface.co/org0/roberta-base-inter-0"
    assert links["roberta-base (pretrained: stay)"] == "https://huggingface.co/FacebookAI/roberta-base"
    assert sum(v is not None for v in links.values()) == 7
    flagged = browser.eval("document.querySelector('table.flagged tbody tr').innerText")
    assert "off the target profile" in flagged
    assert browser.eval("document.querySelectorAll('svg.chart rect').length") > 7


def test_checker_sees_console_errors(tmp_path: Path, browser: Browser):
    """The error collector itself works: a page that throws and logs an error is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><title>x</title><script>console.error('boom'); null.f();</script>")
    browser.open(bad.as_uri())
    assert len(browser.errors()) >= 2


def _column(browser: Browser, table: str, col: int) -> list[str]:
    """The shown rows' cells of a column (a model cell: its own link, without the "HF" link)."""
    return browser.eval(f"[...document.querySelectorAll('table.{table} tbody tr')].filter(r => !r.hidden)"
                        f".map(r => r.cells[{col}]).map(c => (c.querySelector('a:not(.hf)') || c).textContent.trim())")


def _number(text: str) -> float:
    return float(text.split()[0].replace("<", "").replace(">", "").rstrip("%"))


def test_the_ranking_sorts_by_a_click_on_a_header_and_filters_by_model(site: Path, browser: Browser):
    browser.open((site / "arch" / "roberta-base.html").as_uri())
    ranks = [int(x) for x in _column(browser, "ranking", 0)]
    assert ranks == sorted(ranks)  # the page's own order without a click: rank
    headers = browser.eval("[...document.querySelectorAll('table.ranking th')].map(th => th.textContent)")
    gain = headers.index("gain, points [95% CI]")
    click = f"document.querySelectorAll('table.ranking th')[{gain}].querySelector('button.sort').click()"
    browser.eval(click)
    gains = [_number(x) for x in _column(browser, "ranking", gain)]
    assert gains == sorted(gains, reverse=True) and len(gains) == len(ranks)  # numbers: high first
    assert browser.eval(f"document.querySelectorAll('table.ranking th')[{gain}].getAttribute('aria-sort')") == \
        "descending"
    browser.eval(click)
    assert [_number(x) for x in _column(browser, "ranking", gain)] == sorted(gains)
    model = headers.index("model")
    browser.eval(f"document.querySelectorAll('table.ranking th')[{model}].querySelector('button.sort').click()")
    names = _column(browser, "ranking", model)
    assert names == sorted(names, key=str.lower)  # text: A to Z
    # filter: the rows whose model holds the text, whatever their case
    box = "document.querySelector('div.filter input')"
    browser.eval(f"(() => {{ const i = {box}; i.value = 'INTER-1'; i.dispatchEvent(new Event('input')); }})()")
    assert _column(browser, "ranking", model) == ["org1/roberta-base-inter-1"]
    assert "1 of 8 rows" in browser.eval("document.querySelector('div.filter').textContent")
    browser.eval(f"(() => {{ const i = {box}; i.value = '<script>'; i.dispatchEvent(new Event('input')); }})()")
    assert _column(browser, "ranking", model) == [HOSTILE_MODEL]
    browser.eval(f"(() => {{ const i = {box}; i.value = ''; i.dispatchEvent(new Event('input')); }})()")
    assert len(_column(browser, "ranking", model)) == 8
    assert browser.errors() == []


def test_the_gain_matrix_is_a_sortable_heatmap_with_the_warehouse_gains(built, site: Path, browser: Browser,
                                                                       tmp_path_factory):
    warehouse = site.parent / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse), read_only=True)
    gains = {(m, d): g for m, d, g in con.execute(
        "select model_id, dataset_id, gain from gains where architecture = 'roberta-base' and gain is not null"
    ).fetchall()}
    targets = [d for (d,) in con.execute(
        "select dataset_id from target_effects where architecture = 'roberta-base' order by mean_gain desc"
    ).fetchall()]
    con.close()
    browser.open((site / built.paths.matrix("roberta-base")).as_uri())
    assert browser.errors() == []
    headers = browser.eval("[...document.querySelectorAll('table.matrix th')].map(th => th.textContent)")
    assert headers[:3] == ["rank", "model", "mean gain"] and headers[3:] == targets
    rows = browser.eval("""[...document.querySelectorAll('table.matrix tbody tr')].map(r =>
        [...r.cells].map(c => [c.textContent, getComputedStyle(c).backgroundColor]))""")
    models = {m for m, _ in gains}
    assert len(rows) == len(models)
    # each cell is coloured as the legend colours its step on the page's scale: green above 0, red below
    scale = float(browser.eval("document.querySelector('p.legend').dataset.scale"))
    steps = int(browser.eval("document.querySelector('p.legend').dataset.steps"))
    legend = browser.eval("[...document.querySelectorAll('p.legend span')].map(s => getComputedStyle(s).backgroundColor)")
    assert len(legend) == 2 * steps + 1 and len(set(legend)) == len(legend)
    seen = set()
    for row in rows:
        model = row[1][0].removesuffix(" (pretrained: stay)")
        for (text, colour), target in zip(row[3:], targets):
            g = gains.get((model, target))
            assert text == ("" if g is None else f"{g:+.1f}"), (model, target)
            if g is not None:
                step = round(max(-1.0, min(1.0, g / scale)) * steps)
                assert colour == legend[step + steps], (model, target, g, colour)
                seen.add(step)
    assert min(seen) < 0 < max(seen)  # the fixture's matrix uses both sides of the scale
    r, gr, _ = (int(v) for v in legend[-1].removeprefix("rgb(").rstrip(")").split(",")[:3])
    assert gr > r  # the top of the scale is green
    r, gr, _ = (int(v) for v in legend[0].removeprefix("rgb(").rstrip(")").split(",")[:3])
    assert r > gr  # the bottom red
    # sortable by a target column: the heatmap's rows follow that column's gains
    col = 3 + targets.index("cb")
    browser.eval(f"document.querySelectorAll('table.matrix th')[{col}].querySelector('button.sort').click()")
    values = [float(x) for x in _column(browser, "matrix", col) if x]
    assert values == sorted(values, reverse=True) and len(values) == len(models)
    assert browser.eval("document.querySelectorAll('p.legend span').length") == 9
    assert browser.errors() == []


def _pages(site: Path) -> list[Path]:
    pages = [site / "index.html", *sorted((site / "arch").glob("*.html")), *sorted((site / "matrix").glob("*.html"))]
    models = sorted((site / "model").rglob("*.html"))
    return pages + [p for p in models if "a-very-long" in p.name or "evil" in p.name] + models[:2] + \
        sorted((site / "target").rglob("*.html"))[:2]


@pytest.mark.parametrize("width", WIDTHS)
def test_no_page_overflows_sideways_and_axis_labels_do_not_collide(site: Path, browser: Browser, width: int):
    browser.set_width(width)
    try:
        for path in _pages(site):
            browser.open(path.as_uri())
            assert browser.eval("window.innerWidth") == width
            overflow = browser.eval("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, (path.name, width, overflow)
            # every chart fits the page; the tables scroll inside their own box when they must
            assert browser.eval("""[...document.querySelectorAll('svg.chart')].every(s =>
                s.getBoundingClientRect().right <= document.documentElement.clientWidth)"""), path.name
            assert browser.eval("""[...document.querySelectorAll('table')].every(t =>
                t.parentElement.classList.contains('scroll'))"""), path.name
            collisions = browser.eval("""[...document.querySelectorAll('svg.chart')].flatMap(svg => {
                const boxes = [...svg.querySelectorAll('text.axis')].map(t => t.getBoundingClientRect());
                const hits = [];
                for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
                    const a = boxes[i], b = boxes[j];
                    if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) hits.push([i, j]);
                }
                return hits;
            })""")
            assert collisions == [], (path.name, width)
            assert browser.errors() == [], (path.name, width)
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride", session=True)


def test_overflow_checker_sees_a_page_wider_than_the_window(tmp_path: Path, browser: Browser):
    """The overflow measure itself works: a page with a 2,000 px wide block overflows a 1,400 px window."""
    wide = tmp_path / "wide.html"
    wide.write_text("<!doctype html><meta name='viewport' content='width=device-width'><div style='width:2000px'>x</div>")
    browser.set_width(1400)
    try:
        browser.open(wide.as_uri())
        assert browser.eval("document.documentElement.scrollWidth - document.documentElement.clientWidth") > 0
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride", session=True)
