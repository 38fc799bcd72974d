"""Replay recorded Hub API responses through huggingface_hub's own HTTP client (an httpx MockTransport).

The Hub is not reachable everywhere (CI, air-gapped machines), so the catalog code can run against a recording
instead: every `HfApi` / `hf_hub_download` call goes through the real client and is answered from files.

Recording layout (``tests/fixtures/hub/`` is one):

- ``models.json``: the entries ``GET /api/models`` returns (Hub JSON: ``id``, ``tags``, ``siblings``,
  ``safetensors``, ``cardData``, ...). A query with ``filter=<tag>`` gets the entries whose ``tags`` hold every
  filter tag, served in pages of ``PAGE_SIZE`` with a ``Link: <...>; rel="next"`` header as the Hub does.
- ``repos/<org>--<name>/<file>``: repository files served by ``/<repo>/resolve/<revision>/<file>``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

PAGE_SIZE = 20


def _handler(root: Path):
    import httpx2

    def handle(request: httpx2.Request) -> httpx2.Response:
        path = unquote(request.url.path)
        if path == "/api/models":
            entries = json.loads((root / "models.json").read_text())
            wanted = request.url.params.get_list("filter")
            hits = [e for e in entries if all(f in (e.get("tags") or []) for f in wanted)]
            start = int(request.url.params.get("cursor", "0"))
            page = hits[start : start + PAGE_SIZE]
            headers = {"Content-Type": "application/json"}
            if start + PAGE_SIZE < len(hits):
                nxt = request.url.copy_set_param("cursor", str(start + PAGE_SIZE))
                headers["Link"] = f'<{nxt}>; rel="next"'
            return httpx2.Response(200, json=page, headers=headers)
        if "/resolve/" in path:
            repo, rest = path.lstrip("/").split("/resolve/", 1)
            revision, filename = rest.split("/", 1)
            file = root / "repos" / repo.replace("/", "--") / filename
            if not file.is_file():
                return httpx2.Response(
                    404, headers={"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"}
                )
            body = file.read_bytes()
            headers = {
                "ETag": f'"{hashlib.sha256(body).hexdigest()}"',
                "X-Repo-Commit": revision if len(revision) == 40 else hashlib.sha1(repo.encode()).hexdigest(),
                "Content-Length": str(len(body)),
            }
            return httpx2.Response(200, content=b"" if request.method == "HEAD" else body, headers=headers)
        return httpx2.Response(404, headers={"X-Error-Code": "RepoNotFound", "X-Error-Message": f"no {path}"})

    return handle


@contextlib.contextmanager
def replay_hub(recording: str | Path) -> Iterator[None]:
    """Answer every huggingface_hub request from `recording` until the block exits."""
    import httpx2
    from huggingface_hub.utils import _http

    root = Path(recording)
    if not (root / "models.json").is_file():
        raise FileNotFoundError(f"Hub recording {root} has no models.json (see startpoint/hub/replay.py for the layout)")
    previous = _http._GLOBAL_CLIENT_FACTORY
    _http.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(_handler(root)), follow_redirects=True))
    try:
        yield
    finally:
        _http.set_client_factory(previous)
