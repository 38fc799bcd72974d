"""The pieces of `make cluster-test` that need no running service: the deployment config validates, the code
location picks the Celery executor by configuration, and docs/scale_out.md quotes the recorded runs
(benchmarks/results/cluster_test.json) verbatim. The cluster itself runs in `deploy/cluster_test.py`."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from startpoint.settings import REPO_ROOT

DOC = REPO_ROOT / "docs" / "scale_out.md"
DRIVER = REPO_ROOT / "deploy" / "cluster_test.py"


def _driver():
    spec = importlib.util.spec_from_file_location("cluster_test_driver", DRIVER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def driver():
    return _driver()


@pytest.fixture(scope="module")
def results(driver):
    return json.loads(driver.RESULTS.read_text())


def test_docs_quote_the_recorded_runs(driver, results):
    text = DOC.read_text(encoding="utf-8")
    block = driver.markdown(results)
    assert f"<!-- results: benchmarks/results/cluster_test.json -->\n{block}" in text, (
        "docs/scale_out.md's cluster table differs from benchmarks/results/cluster_test.json: paste "
        "deploy/cluster_test.py's markdown() of the results file")


def test_a_changed_figure_is_caught(driver, results):
    changed = json.loads(json.dumps(results))
    changed["runs"][0]["timings"]["total_s"] += 1
    assert driver.markdown(changed) not in DOC.read_text(encoding="utf-8")


def test_every_recorded_run_proves_what_the_docs_say(results):
    """Two or more passing runs: 8 partitions on both workers, a kill while the partition was part-written,
    the killed step taken over, and exactly one lake file per partition and seed."""
    assert len(results["runs"]) >= 2
    for run in results["runs"]:
        seeds = run["seeds"]
        assert run["partitions"] >= 8 and run["lake_files"] == run["partitions"] * len(seeds)
        assert sorted(run["targets_by_worker"]) == ["w1", "w2"] and all(run["targets_by_worker"].values())
        assert 0 < len(run["kill"]["seeds_in_lake_at_kill"]) < len(seeds)
        survivor = next(w for w in run["targets_by_worker"] if w != run["kill"]["worker"])
        assert run["kill"]["target"] in run["targets_by_worker"][survivor]  # the killed step, finished elsewhere
        assert run["kill"]["redelivered_after_s"] > 0


def test_the_worker_config_validates_and_acknowledges_late(monkeypatch):
    pytest.importorskip("dagster_celery", reason="the cluster extra: pip install -e '.[cluster]'")
    from dagster_celery.cli import get_validated_config

    monkeypatch.setenv("STARTPOINT_CELERY_BROKER", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("STARTPOINT_CELERY_BACKEND", "redis://127.0.0.1:1/1")
    config = get_validated_config(str(REPO_ROOT / "deploy" / "celery.yaml"))
    assert config["broker"] == "redis://127.0.0.1:1/0" and config["backend"] == "redis://127.0.0.1:1/1"
    source = config["config_source"]
    assert source["task_acks_late"] is True and source["worker_prefetch_multiplier"] == 1
    assert source["broker_transport_options"]["visibility_timeout"] > 0


def test_the_instance_config_is_postgres(monkeypatch, tmp_path):
    pytest.importorskip("dagster_postgres", reason="the cluster extra: pip install -e '.[cluster]'")
    import yaml

    config = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "STARTPOINT_PG_URL"}


def test_asset_backfills_run_on_the_configured_executor():
    """With STARTPOINT_EXECUTOR=celery the code location's asset jobs (what a backfill launches) use Celery;
    without it, Dagster's default."""
    pytest.importorskip("dagster_celery", reason="the cluster extra: pip install -e '.[cluster]'")
    code = ("from pipelines.definitions import defs; "
            "print(defs.resolve_implicit_global_asset_job_def().executor_def.name)")
    names = []
    for value in ("celery", None):
        env = {k: v for k, v in os.environ.items() if k != "STARTPOINT_EXECUTOR"}
        if value:
            env["STARTPOINT_EXECUTOR"] = value
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO_ROOT,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        names.append(out.stdout.strip().splitlines()[-1])
    assert names[0] == "celery" and names[1] != "celery"


def _section(text: str) -> str:
    start = text.index("## A cluster on one machine")
    return text[start:text.index("\n## ", start + 1)]


def test_every_other_figure_in_the_section_is_the_configuration(driver, results):
    """Outside the quoted table, the cluster section's numbers are the driver's and deploy/'s settings."""
    import re

    import yaml

    section = _section(DOC.read_text(encoding="utf-8")).replace(driver.markdown(results), "")
    prose = re.sub(r"`[^`]*`", "", section)  # code spans: commands, file names, addresses
    prose = re.sub(r"^\s*\d+\. ", "", prose, flags=re.M)  # numbered-list markers
    celery = yaml.safe_load((REPO_ROOT / "deploy" / "celery.yaml").read_text())["execution"]["config"]
    instance = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    allowed = {driver.N_PARTITIONS, len(driver.SEEDS), driver.N_PARTITIONS * len(driver.SEEDS), len(driver.WORKERS),
               driver.DEFAULT_TIMEOUT, celery["config_source"]["broker_transport_options"]["visibility_timeout"],
               instance["concurrency"]["runs"]["max_concurrent_runs"]}
    found = {float(n) for n in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]*\d)", prose)}
    assert found <= allowed, f"figures not from the configuration: {sorted(found - allowed)}"
