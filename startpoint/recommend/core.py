"""`recommend`: should the user start from something other than the pretrained model, and from which one?

Without running anything it answers from the warehouse (seconds); with ``run=True`` it carries out the
protocol of :mod:`startpoint.recommend.protocol` on the user's data, writes every run to the lake with origin
``user``, reloads the warehouse base tables, and decides from the runs it made.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Optional  # pydantic and Dagster config need real annotations

from pydantic import BaseModel, ConfigDict, Field

from startpoint.recommend.adaptive import check_finetunes
from startpoint.recommend.predict import (
    CandidatePrediction,
    RecommendError,
    load_evidence,
    predict_candidates,
    predict_target_effect,
)
from startpoint.recommend.protocol import (
    START_PROBABILITY,
    WORTH_A_TRY_PROBABILITY,
    confident,
)
from startpoint.recommend.target import UserTarget, load_target
from startpoint.settings import Settings, get_settings

SHOWN_CANDIDATES = 10


class RecommendOptions(BaseModel):
    """What a recommendation is asked with: declared once, for the CLI (flags are generated from these fields; those
    marked ``cli=False`` are the protocol's fixed recipe), the Dagster `recommend` job's config (which subclasses
    this model) and Python callers. ``check()`` gives the one-line errors the CLI prints."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="your labelled data: CSV, TSV, JSONL or Parquet")
    text_col: str = Field("text", description="text column")
    label_col: str = Field("label", description="label column")
    text_pair_col: Optional[str] = Field(None, description="second text column, for pair tasks")
    architecture: str = Field("all-MiniLM-L6-v2", description="which leaderboard to pick from")
    budget: int = Field(3, description="candidate models to finetune with --run (the pretrained model comes on top)")
    run: bool = Field(False, description="finetune the pretrained model and the top candidates on your data")
    seeds: int = Field(3, description="seeds per model with --run (with --finetunes: at most this many)")
    finetunes: Optional[int] = Field(
        None, description="with --run: spend at most this many finetunes, the baseline included, where the decision "
                          "is still open, and stop when it is settled (--budget caps the candidates)")
    # The small recipe of the protocol: a few hundred examples, short sequences, so --budget 3 fits in minutes.
    train_cap: int = Field(256, description="training examples per run with --run")
    eval_cap: int = Field(200, description="validation examples per run", json_schema_extra={"cli": False})
    test_cap: int = Field(500, description="test examples per run", json_schema_extra={"cli": False})
    epochs: int = Field(2, description="epochs per run", json_schema_extra={"cli": False})
    max_length: int = Field(64, description="tokens per example", json_schema_extra={"cli": False})
    batch_size: int = Field(16, description="examples per step", json_schema_extra={"cli": False})
    report: Optional[str] = Field(None, description="write the JSON report here")
    reload_warehouse: bool = Field(
        True, description="reload the warehouse after --run (the Dagster job does it in a separate step)",
        json_schema_extra={"cli": False},
    )

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds))

    def check(self) -> RecommendOptions:
        """Refuse values no run can use, naming the flag; returns self."""
        if self.budget < 1:
            raise RecommendError(f"--budget must be at least 1 candidate model, got {self.budget}")
        if self.seeds < 1:
            raise RecommendError(f"--seeds must be at least 1: at least one seed per model is needed, got {self.seeds}")
        if self.finetunes is not None:
            check_finetunes(self.finetunes)
        for name in ("train_cap", "eval_cap", "test_cap", "epochs", "max_length", "batch_size"):
            value = getattr(self, name)
            if value < 1:
                raise RecommendError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        return self


class ReportWriteError(RecommendError):
    """The decision was made but its report could not be written; `report` holds it, so nothing is lost."""

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


def check_report_path(report: str | Path) -> Path:
    """Refuse a --report path that cannot be written, before any work: a directory, a path under a file, a
    folder that does not allow writing. Nothing is created here (the report's folders are made when it is written).
    """
    path = Path(report).expanduser()
    if not path.name or str(report).endswith(("/", "\\")):
        raise RecommendError(f"--report {report}: names a folder; give a file path such as {path / 'report.json'}")
    path = path.absolute()
    if path.is_dir():
        raise RecommendError(f"--report {path}: is a directory; give a file path such as {path / 'report.json'}")
    if path.exists() and not path.is_file():
        raise RecommendError(f"--report {path}: not a regular file; give a file path for the JSON report")
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise RecommendError(f"--report {path}: {ancestor} is a file, not a folder, so nothing can be written under "
                             "it; choose another path")
    try:  # a real probe: permission bits do not tell root or a read-only filesystem apart
        import tempfile

        with tempfile.NamedTemporaryFile(dir=ancestor, prefix=".startpoint-probe-"):
            pass
    except OSError as exc:
        raise RecommendError(f"--report {path}: cannot write in {ancestor} ({exc.strerror or exc}); choose a "
                             "writable folder") from None
    if path.exists():
        try:
            with path.open("r+b"):
                pass
        except OSError as exc:
            raise RecommendError(f"--report {path}: the existing file cannot be overwritten ({exc.strerror or exc}); "
                                 "choose another path") from None
    return path


def write_report(path: Path, report: dict) -> None:
    """Write the JSON report whole or not at all (a temporary file in the same folder, then renamed over)."""
    import os
    import tempfile

    text = json.dumps(_finite(report), indent=2, default=str) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ReportWriteError(f"--report {path}: could not write the report ({exc.strerror or exc}); the decision "
                               "is printed above", report) from None


def predicted_decision(preds: list[CandidatePrediction], pretrained_model: str, budget: int = 0) -> dict:
    """The decision from the warehouse alone. "start from X" only for a candidate that passes `confident`
    (the best expected gain among those); otherwise stay with the pretrained model, and when a budget allows
    trying, name the (at most `budget`) candidates most likely to beat it, with their probability."""
    sure = [p for p in preds if confident(p.p_beats_pretrained, p.low)]
    if sure:
        best = max(sure, key=lambda p: p.expected_gain)
        return {
            "action": "start_from", "model_id": best.model_id, "gain": best.expected_gain, "ci_low": best.low,
            "ci_high": best.high, "p_beats_pretrained": best.p_beats_pretrained, "predicted": True,
            "text": f"start from {best.model_id}: {best.expected_gain:+.2f} points expected (95% interval "
                    f"{best.low:+.2f}..{best.high:+.2f}) over the pretrained model; it beats it with probability "
                    f"{best.p_beats_pretrained:.0%} (prediction from the warehouse; --run checks it on your data)",
        }
    best = max(preds, key=lambda p: p.expected_gain)
    tries = sorted((p for p in preds if p.p_beats_pretrained > WORTH_A_TRY_PROBABILITY),
                   key=lambda p: (-p.p_beats_pretrained, p.rank))[:max(budget, 0)]
    text = (f"stay with the pretrained model: no ranked model beats it with probability {START_PROBABILITY:.0%} "
            f"or an interval above zero (best {best.model_id}: {best.expected_gain:+.2f} points expected, 95% "
            f"interval {best.low:+.2f}..{best.high:+.2f}, P = {best.p_beats_pretrained:.2f})")
    if tries:
        text += ("; worth a try: " + ", ".join(f"{p.model_id} (P = {p.p_beats_pretrained:.2f})" for p in tries)
                 + " (--run finetunes them on your data)")
    return {
        "action": "stay", "model_id": pretrained_model, "best_candidate": best.model_id, "gain": best.expected_gain,
        "ci_low": best.low, "ci_high": best.high, "p_beats_pretrained": best.p_beats_pretrained, "predicted": True,
        "worth_a_try": [{"model_id": p.model_id, "rank": p.rank, "expected_gain": p.expected_gain,
                         "p_beats_pretrained": p.p_beats_pretrained} for p in tries],
        "text": text,
    }


def recommend(options: RecommendOptions, settings: Settings | None = None, log: Callable[[str], None] = print,
              progress=None) -> dict:
    """Run the recommendation and return its report (also written to `options.report` when set); with `run`,
    `progress` (a startpoint.progress.RunProgress) follows the runs."""
    from startpoint.warehouse.load import connect

    settings = settings or get_settings()
    started = time.monotonic()
    options.check()
    report_path = check_report_path(options.report) if options.report else None
    target = load_target(options.data, options.text_col, options.label_col, options.text_pair_col)
    n_labels = target.stats["n_labels"]
    if options.run and options.train_cap < n_labels:
        raise RecommendError(
            f"--train-cap {options.train_cap} is below the {n_labels} classes of {target.path.name}: every class "
            f"needs at least one training example; pass --train-cap {n_labels} or more (several examples per class is better)"
        )
    log(f"target {target.dataset_id}: {target.stats['n_train']} train rows, {target.stats['n_labels']} labels, "
        f"majority share {target.stats['majority_share']:.2f}")
    con = connect(settings.warehouse_path, read_only=True)
    try:
        evidence = load_evidence(con, options.architecture)
    finally:
        con.close()
    target_pred = predict_target_effect(evidence, target.stats)
    preds = predict_candidates(evidence, target_pred)
    log(f"target sensitivity ({target_pred.method}): {target_pred.mean:+.2f} points mean gain over ranked models "
        f"(95% interval {target_pred.low:+.2f}..{target_pred.high:+.2f}; architecture mean "
        f"{evidence.mean_target_effect:+.2f})")
    report: dict = {
        "architecture": options.architecture,
        "pretrained_model": evidence.pretrained_model,
        "target": {"dataset_id": target.dataset_id, "file": str(target.path), **_jsonable(target.stats)},
        "target_effect": asdict(target_pred),
        "interaction_sd": evidence.interaction_sd,
        "calibration": evidence.calibration,
        "candidates": [asdict(p) for p in preds[:SHOWN_CANDIDATES]],
        "decision": predicted_decision(preds, evidence.pretrained_model, options.budget),
    }
    if options.run:
        from startpoint.recommend.runner import run_on_target

        report["protocol"] = run_on_target(options, settings, target, evidence, preds, log, progress)
        report["decision"] = report["protocol"]["decision"]
    report["seconds"] = round(time.monotonic() - started, 2)
    if report_path is not None:
        write_report(report_path, report)
    return report


def _finite(value):
    """Strict JSON: infinite or NaN numbers (no interval with one seed) become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _jsonable(stats: dict) -> dict:
    return {k: (None if v != v else v) if isinstance(v, float) else v for k, v in stats.items()}


__all__ = ["START_PROBABILITY", "RecommendOptions", "ReportWriteError", "UserTarget", "check_report_path", "confident",
           "predicted_decision", "recommend", "write_report"]
