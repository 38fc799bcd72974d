"""Recording runs (startpoint/engine/runs.py): one `record_run` for the grid and recommend --run, the seed loop of
`lake/finetune_runs`, failed rows scored with the target's metric."""

from __future__ import annotations

from startpoint import lake
from startpoint.engine import Recipe
from startpoint.engine.records import run_relpath
from startpoint.engine.runs import failed_result, record_run, run_seeds, target_metric

RECIPE = Recipe(train_cap=8, eval_cap=8, epochs=1)


def _rows(url: str) -> list[dict]:
    return lake.read(url, "finetune_runs").to_pylist() if lake.list_files(url, "finetune_runs") else []


def test_the_target_metric_of_a_run_that_could_not_be_made():
    assert target_metric("stsb") == "spearman"
    assert target_metric("sst2") == "accuracy"
    assert target_metric("user/my-data-0123") == "accuracy"
    assert failed_result("stsb", 1, "boom").metric == "spearman"
    assert failed_result("stsb", 1, "boom", metric="accuracy").metric == "accuracy"  # a loaded dataset's own


def test_record_run_writes_one_file_per_run_under_its_origin(tmp_path):
    url = str(tmp_path / "lake")
    path = record_run(url, "org/m", "arch", RECIPE, failed_result("t", 3, "no data"), origin="user")
    assert path.endswith(run_relpath("org/m", "t", RECIPE, 3, origin="user") + ".parquet")
    (row,) = _rows(url)
    assert (row["origin"], row["status"], row["seed"], row["error"], row["score"]) == ("user", "failed", 3, "no data",
                                                                                     None)


def test_a_refused_model_records_every_seed_failed_with_the_targets_metric_once(tmp_path):
    url, folder = str(tmp_path / "lake"), tmp_path / "not-a-model"
    folder.mkdir()
    warnings: list[str] = []
    runs = run_seeds(url, "org/m", folder, "arch", "stsb", RECIPE, [0, 1], log=lambda m: None, warn=warnings.append)
    assert runs.scores == {} and sorted(runs.failures) == [0, 1] and runs.skipped == []
    rows = _rows(url)
    assert {(r["seed"], r["status"], r["metric"]) for r in rows} == {(0, "failed", "spearman"), (1, "failed", "spearman")}
    assert all("is refused" in r["error"] for r in rows) and "is refused" in warnings[0]
    # Again: both seeds are in the lake, skipped, their errors read back; retry_failed runs them again.
    again = run_seeds(url, "org/m", folder, "arch", "stsb", RECIPE, [0, 1], log=lambda m: None, warn=lambda m: None)
    assert again.skipped == [0, 1] and sorted(again.failures) == [0, 1] and len(_rows(url)) == 2
    retried = run_seeds(url, "org/m", folder, "arch", "stsb", RECIPE, [1], retry_failed=True, log=lambda m: None,
                        warn=lambda m: None)
    assert retried.skipped == [] and list(retried.failures) == [1]


def test_a_dataset_that_does_not_load_fails_every_seed_without_training(tmp_path, base_dir):
    url = str(tmp_path / "lake")
    runs = run_seeds(url, "sentence-transformers/all-MiniLM-L6-v2", base_dir, "all-MiniLM-L6-v2", "no_such_dataset",
                     RECIPE, [0], log=lambda m: None, warn=lambda m: None)
    assert list(runs.failures) == [0] and "could not be loaded" in runs.failures[0]
    (row,) = _rows(url)
    assert (row["status"], row["metric"], row["train_seconds"]) == ("failed", "accuracy", None)
