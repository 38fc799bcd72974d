"""Finetune on the user's target with the engine, record every run in the lake (origin `user`), reload the
warehouse base tables. torch and transformers load here only, never when `recommend` just predicts."""

from __future__ import annotations

import json
from collections.abc import Callable

from startpoint import lake
from startpoint.recommend.predict import (
    CandidatePrediction,
    Evidence,
    RecommendError,
    predict_candidates,
    predict_target_effect,
)
from startpoint.recommend.protocol import ProtocolResult, run_protocol
from startpoint.recommend.target import UserTarget, load_target
from startpoint.schema import datasets_path
from startpoint.settings import Settings


def run_on_target(options, settings: Settings, target: UserTarget, evidence: Evidence,
                  preds: list[CandidatePrediction], log: Callable[[str], None], progress=None) -> dict:
    """`progress` (a startpoint.progress.RunProgress, optional) hears of every run's start and end."""
    from startpoint.data import SplitCaps
    from startpoint.engine import Recipe, finetune
    from startpoint.engine.parallel import SeedWorkers
    from startpoint.engine.runs import failed_result, record_run
    from startpoint.warehouse.load import load_tables
    from startpoint.zoo import resolve

    try:
        resolve(evidence.pretrained_model)
    except Exception as exc:
        raise RecommendError(
            f"--run needs the pretrained model {evidence.pretrained_model!r} of {evidence.architecture} locally: {exc}"
        ) from None
    recipe = Recipe(train_cap=options.train_cap, eval_cap=options.eval_cap, epochs=options.epochs,
                    max_length=options.max_length, batch_size=options.batch_size)
    capped = load_target(
        options.data, options.text_col, options.label_col, options.text_pair_col,
        caps=SplitCaps(train=options.train_cap, validation=options.eval_cap, test=options.test_cap),
    )
    ds = capped.dataset
    log(f"protocol on {ds.dataset_id}: {len(ds.train)} train / {len(ds.test)} test rows, recipe {recipe.recipe_hash}, "
        f"seeds {options.seed_list}, budget {options.budget} candidate(s)"
        + ("" if options.finetunes is None else f", at most {options.finetunes} finetunes where the decision is open"))
    written: list[str] = []

    def record(model_id: str, result, in_worker: bool = False) -> tuple[float | None, str | None]:
        written.append(record_run(settings.lake_url, model_id, evidence.architecture, recipe, result,
                                  dataset_id=target.dataset_id, origin="user"))
        if progress is not None and in_worker:
            progress.finish(result.status == "ok", result.examples_per_second, name=f"{model_id} seed {result.seed}",
                            seconds=result.train_seconds or 0.0)
        elif progress is not None:
            progress.finish(result.status == "ok", result.examples_per_second)
        return (result.score if result.status == "ok" else None), result.error

    def finetune_here(folder, seed: int):
        return finetune(folder, ds, recipe, seed, log=lambda m: None, cache_dir=settings.cache_dir,
                        on_examples=progress.examples if progress is not None else None)

    def train_one(model_id: str, seed: int) -> tuple[float | None, str | None]:
        if progress is not None:
            progress.start(f"{model_id} seed {seed}")
        try:
            folder = resolve(model_id)
        except Exception as exc:
            return record(model_id, failed_result(target.dataset_id, seed, str(exc), metric=ds.metric))
        return record(model_id, finetune_here(folder, seed))

    def on_baseline(pretrained_score: float) -> list[CandidatePrediction]:
        updated = predict_target_effect(evidence, {**target.stats, "pretrained_score": pretrained_score})
        log(f"baseline mean {pretrained_score:.2f}; target sensitivity now {updated.mean:+.2f} points "
            f"({updated.method}{': ' + ', '.join(updated.features) if updated.features else ''})")
        return predict_candidates(evidence, updated)

    def train_many(jobs: list[tuple[str, int]]) -> list[tuple[float | None, str | None]]:
        """One batch of the adaptive protocol, (model, seed) jobs of several models: side by side in the workers
        where they fill a round, the rest here."""
        folders = {}
        for model_id, _ in jobs:
            try:
                folders[model_id] = resolve(model_id)
            except Exception:
                pass
        runnable = [(i, job) for i, job in enumerate(jobs) if job[0] in folders]
        out: list = [None] * len(jobs)
        for i, (model_id, seed) in enumerate(jobs):
            if model_id not in folders:
                out[i] = train_one(model_id, seed)  # recorded as failed, with the reason

        def here(k: int):
            model_id, seed = runnable[k][1]
            if progress is not None:
                progress.start(f"{model_id} seed {seed}")
            return finetune_here(folders[model_id], seed)

        workers.run_jobs([(folders[m], seed) for _, (m, seed) in runnable], ds, recipe, settings.cache_dir, here,
                         lambda k, result, in_worker: out.__setitem__(
                             runnable[k][0], record(runnable[k][1][0], result, in_worker)))
        return out

    def train_seeds(model_id: str, seeds: list[int]) -> list[tuple[float | None, str | None]]:
        """Every seed of one model (the fixed protocol): one batch of jobs."""
        return train_many([(model_id, seed) for seed in seeds])

    workers = SeedWorkers()
    try:
        if options.finetunes is not None:  # adaptive: seeds where the decision is still open, batches of a round
            from startpoint.recommend.adaptive import run_adaptive

            if workers.workers > 1:
                log(f"batches of {workers.workers} finetunes side by side in single-threaded worker processes")
            result = run_adaptive(evidence, preds, train_many, options.finetunes, options.budget, options.seeds,
                                  batch=workers.workers, log=log, resolve=resolve, on_baseline=on_baseline)
        else:
            parallel = bool(workers.split(options.seed_list)[0])
            if parallel:
                log(f"seeds in {workers.workers} single-threaded worker processes (whole rounds), the rest in this "
                    "process")
            result = run_protocol(evidence, preds, train_one, options.seed_list, options.budget, log=log,
                                  resolve=resolve, on_baseline=on_baseline,
                                  train_seeds=train_seeds if parallel else None)
    finally:
        workers.close()
    lake.write(settings.lake_url, "datasets", datasets_path("user", target.dataset_id), [target.stats])
    if options.reload_warehouse:
        counts = load_tables(settings.lake_url, settings.warehouse_path)  # a staging copy, swapped in whole
        log(f"warehouse reloaded: {counts.get('finetune_runs')} finetune runs; {len(written)} written by this protocol"
            + "".join(f"; quarantined {q.path} ({q.reason})" for q in counts.quarantined))
    out = result.as_dict()
    out["decision"] = result.decision
    out["recipe"] = json.loads(recipe.to_json())
    out["seeds"] = options.seed_list
    out["budget"] = options.budget
    out["finetunes_budget"] = options.finetunes
    out["lake_files"] = written
    out["run_split_sizes"] = {"train": len(ds.train), "validation": len(ds.validation), "test": len(ds.test)}
    return out


__all__ = ["run_on_target"]
