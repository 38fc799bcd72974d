"""`recommend --run`'s seeds in single-threaded worker processes (`startpoint.engine.parallel.SeedWorkers`): whole
rounds go to the workers, the rest run in this process, and the workers' scores equal this process's within seed
noise (same recipe and seeds; only the thread count differs)."""

from __future__ import annotations

import os

import polars as pl
import pytest

from startpoint.data import LabelledDataset
from startpoint.engine import Recipe, finetune
from startpoint.engine.parallel import SeedWorkers


def test_whole_rounds_go_to_the_workers_and_the_rest_stays_here():
    two = SeedWorkers(workers=2)
    if two.workers == 1:
        pytest.skip("CUDA: one worker drives the GPU")
    assert two.split([0, 1, 2]) == ([0, 1], [2])
    assert two.split([0, 1, 2, 3]) == ([0, 1, 2, 3], [])
    assert two.split([0]) == ([], [0])
    assert SeedWorkers(workers=1).split([0, 1, 2]) == ([], [0, 1, 2])


def _tiny() -> LabelledDataset:
    words = {0: ["great", "lovely", "superb"], 1: ["awful", "dull", "poor"]}
    rows = [{"text": f"{words[i % 2][i % 3]} film {i}", "label": i % 2} for i in range(96)]
    frame = pl.DataFrame(rows)
    return LabelledDataset(dataset_id="tiny", source="test", label_names=["pos", "neg"], train=frame[:64],
                           validation=frame[:0], test=frame[64:])


@pytest.mark.slow
def test_worker_seeds_score_like_this_process(tmp_path):
    from startpoint.zoo import DEFAULT_BASE, resolve

    folder, ds = resolve(DEFAULT_BASE), _tiny()
    recipe = Recipe(train_cap=64, test_cap=32, max_length=16)
    workers = SeedWorkers(workers=2)
    if workers.workers == 1:
        pytest.skip("CUDA: one worker drives the GPU")
    here_pids, results = [], {}

    def here(seed):
        here_pids.append(os.getpid())
        return finetune(folder, ds, recipe, seed, log=lambda m: None, cache_dir=tmp_path)

    try:
        workers.run_jobs([(folder, seed) for seed in (0, 1, 2)], ds, recipe, tmp_path, here,
                         lambda seed, result, in_worker: results.__setitem__(seed, (result, in_worker)))
    finally:
        workers.close()
    assert sorted(results) == [0, 1, 2] and here_pids == [os.getpid()]  # seed 2 alone, in this process
    assert [results[seed][1] for seed in (0, 1, 2)] == [True, True, False]
    for seed in (0, 1):
        result = results[seed][0]
        assert result.status == "ok", result.error
        alone = finetune(folder, ds, recipe, seed, log=lambda m: None, cache_dir=tmp_path)
        assert abs(result.score - alone.score) <= 2.0
