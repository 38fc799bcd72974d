"""Open the built site in headless Debian Chromium over the DevTools protocol: pages load, tables are there,
links resolve, hostile model names stay text, and the console shows no errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from startpoint.site import build_site

from product_fixture import HOSTILE_MODEL, build

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
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    build_site(build(root / "warehouse.duckdb"), root / "site")
    return root / "site"


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
        assert browser.eval("document.querySelectorAll('script').length") == 0, "the site must not run scripts"
    browser.open((site / "index.html").as_uri())
    rows = browser.eval("[...document.querySelectorAll('table.architectures tbody tr')].map(r => r.cells[0].innerText)")
    assert rows == ["all-MiniLM-L6-v2", "roberta-base"]


def test_links_resolve_and_hostile_names_stay_text(site: Path, browser: Browser):
    arch = next((site / "arch").glob("roberta-base-*.html"))
    browser.open(arch.as_uri())
    hrefs = browser.eval("[...document.querySelectorAll('table.ranking a')].map(a => a.href)")
    # 6 ranked intermediates, the hostile one and the pretrained model's row (stay); the flagged model is not ranked
    assert len(hrefs) == 8
    for href in hrefs:
        assert Path(href.removeprefix("file://")).is_file(), href
    names = browser.eval("[...document.querySelectorAll('table.ranking a')].map(a => a.textContent)")
    assert HOSTILE_MODEL in names
    assert browser.eval("document.querySelectorAll('script').length") == 0
    flagged = browser.eval("document.querySelector('table.flagged tbody tr').innerText")
    assert "off the target profile" in flagged
    assert browser.eval("document.querySelectorAll('svg.chart rect').length") > 7


def test_checker_sees_console_errors(tmp_path: Path, browser: Browser):
    """The error collector itself works: a page that throws and logs an error is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><title>x</title><script>console.error('boom'); null.f();</script>")
    browser.open(bad.as_uri())
    assert len(browser.errors()) >= 2
