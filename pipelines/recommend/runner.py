"""Finetune on the user's target with the engine, record every run in the lake (origin `user`), reload the
warehouse base tables. torch and transformers load here only, never when `recommend` just predicts."""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Callable

import numpy as np
from scipy import stats

from pipelines import lake
from pipelines.partitions import encode_key
from pipelines.recommend.predict import (
    CandidatePrediction,
    Evidence,
    RecommendError,
    predict_candidates,
    predict_target_effect,
)
from pipelines.recommend.core import START_PROBABILITY, confident
from pipelines.recommend.protocol import ProtocolResult, run_protocol, welch_interval
from pipelines.recommend.target import UserTarget, load_target
from pipelines.settings import Settings


def _versions() -> str:
    import torch
    import transformers

    return json.dumps({"torch": torch.__version__, "transformers": transformers.__version__,
                       "python": platform.python_version()})


def run_relpath(dataset_id: str, model_id: str, recipe_hash: str, seed: int) -> str:
    return f"user/{encode_key(dataset_id)}/{encode_key(model_id)}/{recipe_hash}-seed{seed}"


def p_beats(a: list[float], b: list[float]) -> float | None:
    """P(mean(a) > mean(b)) from the seeds: the Welch t distribution of the difference (the same variances and df
    as `welch_interval`, a side with one seed borrowing the other's spread). None with one seed per side."""
    a_arr, b_arr = np.asarray(a, float), np.asarray(b, float)
    var_a = a_arr.var(ddof=1) if len(a_arr) > 1 else None
    var_b = b_arr.var(ddof=1) if len(b_arr) > 1 else None
    if var_a is None and var_b is None:
        return None
    var_a = var_b if var_a is None else var_a
    var_b = var_a if var_b is None else var_b
    va, vb = var_a / len(a_arr), var_b / len(b_arr)
    diff = float(a_arr.mean() - b_arr.mean())
    if va + vb == 0:
        return 1.0 if diff > 0 else 0.0
    df = (va + vb) ** 2 / ((va**2 / max(len(a_arr) - 1, 1)) + (vb**2 / max(len(b_arr) - 1, 1)))
    return float(stats.t.cdf(diff / math.sqrt(va + vb), df))


def measured_decision(result: ProtocolResult, pretrained_model: str) -> dict:
    """The decision from the runs made on the user's data, by the rule of the predicted decision
    (`pipelines.recommend.core.confident`): "start from X" only when X's measured gain over the pretrained model
    has P >= START_PROBABILITY or its 95% Welch interval lies above zero; otherwise stay."""
    measured = []
    for runs in result.candidates:
        if not runs.scores:
            continue
        gain, low, high = welch_interval(runs.scores, result.pretrained.scores)
        measured.append({"model_id": runs.model_id, "rank": runs.rank, "gain": gain, "ci_low": low, "ci_high": high,
                         "p_beats_pretrained": p_beats(runs.scores, result.pretrained.scores)})
    if not measured:
        return {"action": "stay", "model_id": pretrained_model, "predicted": False,
                "text": "stay with the pretrained model: no candidate could be finetuned on this target"}
    sure = [m for m in measured if confident(m["p_beats_pretrained"], m["ci_low"])]
    if sure:
        best = max(sure, key=lambda m: m["gain"])
        return {"action": "start_from", **best, "predicted": False,
                "text": f"start from {best['model_id']}: {best['gain']:+.2f} points (95% CI {best['ci_low']:+.2f}.."
                        f"{best['ci_high']:+.2f}) over the pretrained model on your data; it beats it with "
                        f"probability {best['p_beats_pretrained']:.0%}"}
    best = max(measured, key=lambda m: m["gain"])
    p = best["p_beats_pretrained"]
    p_text = "no probability with one seed per side" if p is None else f"P = {p:.2f}"
    return {"action": "stay", **best, "best_candidate": best["model_id"], "model_id": pretrained_model,
            "predicted": False,
            "text": f"stay with the pretrained model: the best candidate, {best['model_id']}, gained "
                    f"{best['gain']:+.2f} points (95% CI {best['ci_low']:+.2f}..{best['ci_high']:+.2f}, {p_text}); "
                    f"switching needs probability {START_PROBABILITY:.0%} or an interval above zero"}


def run_on_target(options, settings: Settings, target: UserTarget, evidence: Evidence,
                  preds: list[CandidatePrediction], log: Callable[[str], None]) -> dict:
    from pipelines.data import SplitCaps
    from pipelines.engine import Recipe, finetune
    from pipelines.warehouse.load import load_tables
    from pipelines.zoo import resolve

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
        f"seeds {options.seeds}, budget {options.budget} candidate(s)")
    versions = _versions()
    written: list[str] = []

    def train_one(model_id: str, seed: int) -> tuple[float | None, str | None]:
        try:
            folder = resolve(model_id)
        except Exception as exc:
            result_status, score, error, extra = "failed", None, str(exc), {}
        else:
            result = finetune(folder, ds, recipe, seed, log=lambda m: None, cache_dir=settings.cache_dir)
            result_status, score, error = result.status, result.score, result.error
            extra = {"device": result.device, "train_seconds": result.train_seconds,
                     "examples_per_second": result.examples_per_second}
        row = {
            "run_id": f"user|{target.dataset_id}|{model_id}|{recipe.recipe_hash}|{seed}",
            "model_id": model_id, "architecture": evidence.architecture, "dataset_id": target.dataset_id,
            "seed": seed, "score": score, "metric": ds.metric, "origin": "user", "recipe": recipe.to_json(),
            "recipe_hash": recipe.recipe_hash, "status": result_status, "error": error,
            "library_versions": versions, **extra,
        }
        written.append(lake.write(settings.lake_url, "finetune_runs",
                                  run_relpath(target.dataset_id, model_id, recipe.recipe_hash, seed), [row]))
        return score, error

    def on_baseline(pretrained_score: float) -> list[CandidatePrediction]:
        updated = predict_target_effect(evidence, {**target.stats, "pretrained_score": pretrained_score})
        log(f"baseline mean {pretrained_score:.2f}; target sensitivity now {updated.mean:+.2f} points "
            f"({updated.method}{': ' + ', '.join(updated.features) if updated.features else ''})")
        return predict_candidates(evidence, updated)

    result = run_protocol(evidence, preds, train_one, options.seeds, options.budget, log=log, resolve=resolve,
                          on_baseline=on_baseline)
    lake.write(settings.lake_url, "datasets", f"user/{encode_key(target.dataset_id)}", [target.stats])
    if options.reload_warehouse:
        counts = load_tables(settings.lake_url, settings.warehouse_path)
        log(f"warehouse reloaded: {counts.get('finetune_runs')} finetune runs; {len(written)} written by this protocol")
    out = result.as_dict()
    out["decision"] = measured_decision(result, evidence.pretrained_model)
    out["recipe"] = json.loads(recipe.to_json())
    out["seeds"] = list(options.seeds)
    out["budget"] = options.budget
    out["lake_files"] = written
    out["run_split_sizes"] = {"train": len(ds.train), "validation": len(ds.validation), "test": len(ds.test)}
    return out


__all__ = ["measured_decision", "p_beats", "run_on_target", "run_relpath"]
