"""A grid stage's finetunes in parallel single-threaded worker processes (`pipelines.workers`): the worker count
and threads come from the cores (or `STARTPOINT_WORKERS`), each run is tagged with its worker's pid (so the kill -9
recovery knows who held what), and the scores equal those of the previous design (one process, every core)
within seed noise: the same recipe, the same seeds, only the thread count differs."""

from __future__ import annotations

import os

import dagster as dg
import pytest

from pipelines.recovery import PID_TAG
from startpoint import lake
from startpoint.engine.device import THREADS_ENV, WORKERS_ENV, configure_threads, cpu_threads, grid_workers
from startpoint.grid import MINILM_L3, Grid
from startpoint.zoo import DEFAULT_BASE

GRID = Grid(name="workers", sources=(), targets=("tweets_sentiment",), seeds=(0,),
            base_models=(DEFAULT_BASE, MINILM_L3), probe_dataset="tweets_sentiment", fusion_recipes=())


def test_the_worker_plan_comes_from_the_cores_or_the_environment(monkeypatch):
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    workers, threads = grid_workers()
    assert (workers, threads) == (cpu_threads(), 1) or (workers == 1 and threads == cpu_threads())  # CPU / CUDA
    monkeypatch.setenv(WORKERS_ENV, "1")
    assert grid_workers() == (1, cpu_threads())  # the previous design: one process, every core
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert grid_workers() == (3, max(1, cpu_threads() // 3))
    monkeypatch.setenv(WORKERS_ENV, "zero")
    with pytest.raises(ValueError, match="STARTPOINT_WORKERS='zero'"):
        grid_workers()
    monkeypatch.setenv(THREADS_ENV, "1")
    assert configure_threads() == 1


def _run(home, monkeypatch, workers: int) -> tuple[dict, list[dg.DagsterRun], dict[str, float]]:
    from pipelines.launch import run_grid

    monkeypatch.setenv("STARTPOINT_HOME", str(home))
    monkeypatch.delenv("STARTPOINT_LAKE", raising=False)
    monkeypatch.setenv(WORKERS_ENV, str(workers))
    lines: list[str] = []
    with dg.instance_for_test() as instance:
        counts = run_grid(GRID, instance, log=lines.append)
        runs = list(instance.get_runs())
    rows = lake.read(str(home / "lake"), "finetune_runs").to_pylist()
    return counts, runs, {r["model_id"]: r["score"] for r in rows if r["status"] == "ok"}, lines


def test_parallel_workers_finish_the_grid_with_the_scores_of_one_process(tmp_path, monkeypatch):
    counts, runs, scores, lines = _run(tmp_path / "parallel", monkeypatch, workers=2)
    assert counts == {"ok": 4, "failed": 0}, lines
    assert any("2 worker processes of" in line for line in lines), lines
    finetunes = [r for r in runs if r.job_name == "grid_finetune_runs"]
    assert len(finetunes) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in finetunes)
    # Each finetune ran in a worker process (its pid, not this one's), and so did the probes beside them; the
    # datasets step in this process.
    in_workers = {"grid_finetune_runs", "grid_probe_scores"}
    assert {r.job_name for r in runs} >= in_workers
    assert all(r.tags[PID_TAG] != str(os.getpid()) for r in runs if r.job_name in in_workers)
    assert all(r.tags[PID_TAG] == str(os.getpid()) for r in runs if r.job_name not in in_workers)

    one_counts, _, one_scores, _ = _run(tmp_path / "one", monkeypatch, workers=1)
    assert one_counts == counts and set(one_scores) == set(scores) == {DEFAULT_BASE, MINILM_L3}
    # Same recipe and seed; one thread instead of every core changes only the order of float sums.
    for model, score in scores.items():
        assert abs(score - one_scores[model]) <= 2.0, (model, score, one_scores[model])


def test_the_workers_fit_in_the_memory_available(tmp_path, monkeypatch):
    from startpoint.engine import device

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       25165824 kB\nMemAvailable:    5242880 kB\n")  # 5 GiB available
    monkeypatch.setattr(device, "MEMINFO", str(meminfo))
    assert device._workers_memory_fits() == 2  # 2 GiB each
    meminfo.write_text("MemAvailable:    1048576 kB\n")
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    assert device._workers_memory_fits() == 1 and grid_workers()[0] == 1  # little memory: one worker
