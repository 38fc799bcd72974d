"""The Dagster UI a user works in, opened in headless Chromium over the DevTools protocol after a `make run`-style
build: distinct names in the lineage, the leaderboard's typed tables and numbers, the Plots tab, and `published`
launching from the UI without the "not materialized yet" warning.

The build, without training (a full `make run` trains for minutes): the grid's own steps run for real
(`lake/datasets` for its sets, the pretrained model's row, its probe), its runs and intermediate models are
written to the lake as the engine writes them (scores made up, as in tests/test_integrity.py), and the Hub catalog
of its architecture is replayed from tests/fixtures/hub. All of that runs on a throwaway instance, so the instance the UI
opens starts empty, as a fresh `DAGSTER_HOME` does; `startpoint register` then tells it what the lake holds, and
the `published` and `product` jobs run through `dagster job execute`, as a user launches them from a shell.

The UI is `dagster dev` started from `$DAGSTER_HOME` (so no warning about the repository's dagster.yaml), its run
queue paused (`max_concurrent_runs: 0`): the run the test launches from the UI stays queued and nothing else
runs. GraphQL is used only to find state (the queued run); every claim is checked on the rendered page.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml
from test_site_browser import CHROMIUM, Browser

from published_fixture import SHARED, make_folder

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HUB_RECORDING = Path(__file__).parent / "fixtures" / "hub"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian chromium (`apt-get install chromium`, done by .ci/run)"),
    pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/model-recycling"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_runs(lake_url: str, grid) -> int:
    """The grid's intermediate models and runs, written as `intermediate_models` and `lake/finetune_runs` write
    them (scores made up and reproducible: no training)."""
    from startpoint import lake
    from startpoint.engine.records import model_relpath, model_row, run_relpath, run_row
    from startpoint.engine.train import FinetuneResult
    from startpoint.zoo import PRETRAINED, architecture_of

    arch = architecture_of(grid.base_models[0])
    for base, source, model in grid.intermediates:
        row = model_row(model, arch, PRETRAINED[base].locate(), role="intermediate",
                        base_model=base, tags=[f"source:{source}"])
        lake.write(lake_url, "hub_models", model_relpath(model), [row])
    # A fused model's row as `fused_models` writes it (its recipe in the tag; no weights are merged here).
    fused = f"local/{arch}-fused-top2-avg-00000000"
    row = model_row(fused, arch, PRETRAINED[grid.base_models[0]].locate(), role="fused",
                    base_model=grid.base_models[0], tags=["fusion:top2-avg", "method:average"],
                    members=[m for _, _, m in grid.intermediates[:2]])
    lake.write(lake_url, "hub_models", model_relpath(fused), [row])
    n = 0
    for model, target in grid.pairs():
        recipe = grid.recipe_for(target)
        for seed in grid.seeds:
            score = 40.0 + zlib.crc32(f"{model}|{target}|{seed}".encode()) % 3000 / 100
            result = FinetuneResult(status="ok", dataset_id=target, metric="accuracy", seed=seed, score=score)
            lake.write(lake_url, "finetune_runs", run_relpath(model, target, recipe, seed),
                       [run_row(model, arch, recipe, result)])
            n += 1
    return n


def _build_lake(home: Path, root: Path) -> None:
    """The lake a `make run` leaves, without training (see the module docstring). Every step but the runs is the
    real asset or writer; they run on a throwaway instance."""
    from assets.datasets import datasets_lake
    from assets.hub_catalog import hub_models_lake
    from startpoint.engine.records import write_pretrained_row
    from assets.probes import probe_scores_lake
    from assets.resources import HomeResource, LakeResource
    from startpoint.data import OFFLINE_SUITE
    from startpoint.grid import DEFAULT_GRID, Grid
    from startpoint.keys import encode_key
    from startpoint.zoo import DEFAULT_BASE

    url = str(home / "lake")
    resources = {"lake": LakeResource(url=url), "home": HomeResource(path=str(home))}
    throwaway = dg.DagsterInstance.ephemeral()
    grid = Grid(name="ui", sources=DEFAULT_GRID.sources, targets=DEFAULT_GRID.targets, seeds=(0, 1))
    sets = [d for d in grid.datasets if d in OFFLINE_SUITE]
    assert dg.materialize([datasets_lake], instance=throwaway, resources=resources,
                          run_config={"ops": {"lake__datasets": {"config": {"dataset_ids": sets}}}}).success
    write_pretrained_row(url, DEFAULT_BASE)
    assert _write_runs(url, grid) > 0
    throwaway.add_dynamic_partitions("base_models", [encode_key(DEFAULT_BASE)])
    assert dg.materialize([probe_scores_lake], instance=throwaway, resources=resources,
                          partition_key=encode_key(DEFAULT_BASE),
                          run_config={"ops": {"lake__probe_scores": {"config": {"proxy_dataset": grid.probe_dataset}}}}
                          ).success
    # The catalog of the grid's architecture, replayed: the recording lists no finetunes of it, so the partition
    # is materialized with no rows (a roberta-base catalog would add Hub base ids the published rows lack).
    recording = root / "recording"
    shutil.copytree(HUB_RECORDING, recording)
    assert dg.materialize(
        [hub_models_lake], partition_key="all-MiniLM-L6-v2", instance=throwaway, resources=resources,
        run_config={"ops": {"lake__hub_models": {"config": {"recording": str(recording)}}}},
    ).success


def _run(args: list[str], env: dict, timeout: int = 900) -> str:
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done.stdout + done.stderr


class Dagster:
    """`dagster dev` in its own process group, started from $DAGSTER_HOME; stopped with the whole group."""

    def __init__(self, env: dict, dagster_home: Path, log: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.location = "pipelines.definitions"  # the code location's name under `-m pipelines.definitions`
        self.proc = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-m", "pipelines.definitions", "--working-directory", str(REPO),
             "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=dagster_home, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 300  # `dagster dev` re-parses the dbt project first (prepare_if_dev)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited: {log.read_text()[-2000:]}")
            try:
                if self.graphql("{ workspaceOrError { ... on Workspace { locationEntries { "
                                "locationOrLoadError { __typename } } } } }")["workspaceOrError"]["locationEntries"][0][
                                    "locationOrLoadError"]["__typename"] == "RepositoryLocation":
                    break
            except (OSError, KeyError, IndexError, TypeError):
                pass
            if time.monotonic() > deadline:
                self.close()
                raise TimeoutError(f"dagster dev did not load the code location: {log.read_text()[-2000:]}")
            time.sleep(1)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())["data"]

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def _text(browser: Browser) -> str:
    return browser.eval("document.body.innerText") or ""


def _wait_for(browser: Browser, predicate: str, timeout: float = 45) -> bool:
    """Poll a JS expression until it is truthy (the UI renders after its GraphQL queries return)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if browser.eval(predicate):
            return True
        time.sleep(0.5)
    return False


def _click_button(browser: Browser, label: str) -> bool:
    return bool(browser.eval(
        f"(() => {{ const b = [...document.querySelectorAll('button')].find(b => b.innerText.trim() === {label!r});"
        " if (!b || b.disabled) return false; b.click(); return true; })()"
    ))


def _queued(ui: Dagster) -> int:
    return len(ui.graphql('{ runsOrError(filter: {pipelineName: "published", statuses: [QUEUED]}) '
                          "{ ... on Runs { results { runId } } } }")["runsOrError"]["results"])


def _materialize_published(browser: Browser, ui: Dagster) -> str:
    """Click the `published` job's "Materialize all"; returns the page text once the UI either asks "Are you
    sure?" or has queued the run."""
    before = _queued(ui)
    browser.open(f"{ui.url}/locations/{ui.location}/jobs/published")
    assert _wait_for(browser, "[...document.querySelectorAll('button')].some(b => b.innerText.trim() === "
                              "'Materialize all' && !b.disabled)"), _text(browser)[:2000]
    assert _click_button(browser, "Materialize all")
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        if "Are you sure?" in _text(browser) or _queued(ui) > before:
            break
        time.sleep(0.5)
    return _text(browser)


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """(dagster dev, browser, home, page text of the launch before `startpoint register`)."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("dagster-ui")
    home, dagster_home = root / "home", root / "dagster"
    dagster_home.mkdir()
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    config.setdefault("concurrency", {}).setdefault("runs", {})["max_concurrent_runs"] = 0  # queue paused
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    folder = make_folder(root / "results", rows=30)
    mp.setenv("STARTPOINT_HOME", str(home))
    mp.delenv("STARTPOINT_LAKE", raising=False)
    _build_lake(home, root)
    env = {**os.environ, "STARTPOINT_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
           "STARTPOINT_PUBLISHED_RESULTS": str(folder), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("STARTPOINT_LAKE", None)
    dagster = Dagster(env, dagster_home, root / "dagster-dev.log")
    browser = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        before = _materialize_published(browser, dagster)
        _click_button(browser, "Cancel")
        registered = _run([str(BIN / "startpoint"), "register"], env)
        _run([str(BIN / "dagster"), "job", "execute", "-m", "pipelines.definitions", "-j", "published"], env)
        _run([str(BIN / "dagster"), "job", "execute", "-m", "pipelines.definitions", "-j", "product"], env)
        yield {"dagster": dagster, "browser": browser, "home": home, "before": before, "registered": registered}
    finally:
        browser.close()
        dagster.close()
        mp.undo()


def test_dagster_dev_starts_without_the_dagster_yaml_warning(ui):
    log = ui["dagster"].log.read_text()
    assert "Serving dagster-webserver" in log
    assert "will not be used to configure Dagster" not in log


NODE_LABELS = "[...document.querySelectorAll('[class*=\"AssetNode_assetName\"]')].map(e => e.innerText.trim())"


def test_lineage_names_lake_and_warehouse_apart(ui):
    """Each base table's lineage: the lake asset and the warehouse table it loads into read differently."""
    browser, url = ui["browser"], ui["dagster"].url
    for table in ("finetune_runs", "hub_models", "datasets", "probe_scores"):
        browser.open(f"{url}/assets/{table}_table?view=lineage&lineageScope=upstream&lineageDepth=1")
        assert _wait_for(browser, f"{NODE_LABELS}.includes({table!r})"), _text(browser)[:2000]
        labels = browser.eval(NODE_LABELS)
        # the node labels are middle-truncated past 18 characters ("finetune_ru…_table")
        assert any(label.endswith("_table") and label.startswith(table[:8]) for label in labels), labels
        assert len(labels) == len(set(labels)), labels
        assert labels.count(table) == 1, labels


def _metadata_value(text: str, key: str) -> str:
    """The value the metadata table shows for `key` (rows read: key, timestamp, value)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[lines.index(key) + 2]


def test_leaderboard_metadata_shows_each_architectures_table_and_numbers(ui):
    browser, url, home = ui["browser"], ui["dagster"].url, ui["home"]
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        expected = con.execute(
            """select l.architecture, count(l.rank), arg_min(l.model_id, l.rank),
                      min(l.mean_gain) filter (where l.rank = 1), min(l.ci_low) filter (where l.rank = 1),
                      min(l.ci_high) filter (where l.rank = 1), any_value(r.reliability)
               from leaderboard l join ranking_reliability r using (architecture) group by 1 order by 1"""
        ).fetchall()
        shares: dict[str, dict] = {}
        for arch, component, share in con.execute(
                "select architecture, component, share from variance_decomposition").fetchall():
            shares.setdefault(arch, {})[component] = share
    finally:
        con.close()
    assert len(expected) >= 2
    browser.open(f"{url}/assets/leaderboard")
    assert _wait_for(browser, "document.body.innerText.includes('/top_score')"), _text(browser)[:3000]
    text = _text(browser)
    # One typed table per architecture: the gain with its 95% interval read as one column, then sortable numbers.
    assert text.count("gain_95ci\tmean_gain\tci_low\tci_high") == len(expected), text[:3000]
    for arch, models, top_model, top_score, low, high, reliability in expected:
        assert f"{arch}/top_10" in text and top_model in text, arch
        # The numbers are the warehouse's (the dbt models), as SQL gives them, rounded as shown.
        assert int(_metadata_value(text, f"{arch}/models")) == models
        assert float(_metadata_value(text, f"{arch}/top_score")) == round(top_score, 2)
        assert _metadata_value(text, f"{arch}/top_score_95ci") == f"{top_score:+.2f} [{low:+.2f}, {high:+.2f}]"
        # the rank-1 row of the table reads the same
        assert f"{top_score:+.2f} [{low:+.2f}, {high:+.2f}]" in text
        assert float(_metadata_value(text, f"{arch}/reliability")) == round(reliability, 2)
        for component in ("base", "target"):  # shown where the decomposition could estimate it
            share = shares.get(arch, {}).get(component)
            assert (f"{arch}/share_{component}_pct" in text) == (share is not None), (arch, component)
            if share is not None:
                assert float(_metadata_value(text, f"{arch}/share_{component}_pct")) == round(100 * share, 1)


def test_plots_tab_charts_the_numbers_over_materializations(ui):
    """One chart per value (the intervals are text entries), an architecture's charts side by side."""
    browser, url = ui["browser"], ui["dagster"].url
    browser.open(f"{url}/assets/leaderboard")
    assert _wait_for(browser, "[...document.querySelectorAll('button')].some(b => b.innerText.trim() === 'Plots')")
    assert _click_button(browser, "Plots")
    assert _wait_for(browser, "document.querySelectorAll('canvas').length >= 5", timeout=60), _text(browser)[:3000]
    text = _text(browser)
    names = ["models", "reliability", "share_base_pct", "share_target_pct", "top_score"]
    positions = [text.index(f"roberta-base/{name}") for name in names]
    assert positions == sorted(positions), positions
    assert "roberta-base/top_score_low" not in text and "roberta-base/top_score_95ci" not in text


def test_published_launches_from_the_ui_without_the_not_materialized_warning(ui):
    # Before `startpoint register` the fresh instance knew nothing, and the UI warned (so the check can fail).
    assert "Are you sure?" in ui["before"] and "have not been materialized yet" in ui["before"]
    assert "registered" in ui["registered"]
    browser, dagster = ui["browser"], ui["dagster"]
    text = _materialize_published(browser, dagster)
    assert "Are you sure?" not in text and "have not been materialized yet" not in text, text[:2000]
    assert _queued(dagster) == 1  # the click launched the run (held in the paused queue)
