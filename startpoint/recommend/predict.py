"""Predict, from the warehouse, how much each ranked base model should gain on a target nobody has run yet.

The warehouse's effect tables describe gains as base effect + target effect + interaction:

- the target effect (how sensitive a target is to the choice of base model) is predicted from target features
  by least squares; the feature set is chosen by leave-one-out error among the targets that have those
  features, and the intercept-only model (the architecture's mean target effect) competes too, so features
  that do not help are dropped rather than trusted;
- a candidate's expected gain = its base effect (the leaderboard's `mean_gain`: the plain mean of its gains over
  its kept cells, i.e. cells that did not collapse, in points, with `ci_low..ci_high` as its interval) +
  (predicted target effect - the mean target effect), with a 95% interval from three independent error sources:
  the base effect's interval, the target-effect prediction error (leave-one-out) and the per-cell interaction
  residuals seen in `gains`. Target effects and residuals come from kept cells only (`gains.collapsed` not true),
  so every number is on the raw scale a user reads; the leaderboard's `ranking_score` (what orders the list) is
  never used as a gain.

Calibration (split-conformal, from the evidence itself, per target): `build_evidence` leaves each known target out
in turn, predicts it from the others exactly as a user's target is predicted, and scales the sensitivity interval
so that 95% of those held-out sensitivities would have been covered. The candidates' spread is scaled per TARGET,
not per cell: for each held-out known target, the scale that would have covered PER_TARGET_FLOOR (85%) of its
candidates' gains; the scale used is the largest of those (TARGET_LEVEL = 1: every known target would have had at
least 85% of its candidates covered). A target's errors are not exchangeable with another's (its shared
target-effect error and its own residual variance hit all its candidates at once; a few targets have residual
sds 5-10 times the typical one), and nothing a user's file tells predicts a new target's variance on the published
targets, so the interval is as wide as the widest known target needs. Pooling the cells instead (a 95% scale over
all cells) gives 95% overall but 0.3 on the high-variance targets; `benchmarks/recommend_calibration.py` measures
both, nested.

Evidence is read in two steps: `read_frames` reads the warehouse tables, `build_evidence` (pure) turns the
frames into `Evidence`; the calibration benchmark feeds `build_evidence` frames rebuilt by the production SQL.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field, replace

import duckdb
import numpy as np
import polars as pl

from startpoint.frames import frame


class RecommendError(ValueError):
    """A recommendation that cannot be made; the message says what is missing and how to get it."""


# Target features the sensitivity regression may use, and how each is transformed.
FEATURES = {
    "log10_n_train": lambda f: math.log10(f["n_train"]) if f.get("n_train") else None,
    "n_labels": lambda f: float(f["n_labels"]) if f.get("n_labels") else None,
    "majority_share": lambda f: f.get("majority_share"),
    "pretrained_score": lambda f: f.get("pretrained_score"),
}
MIN_RESIDUAL_DF = 4  # targets beyond the number of fitted coefficients before a regression is considered
Z95 = 1.959963984540054
MC_DRAWS = 20000  # Monte Carlo draws for candidate intervals
MIN_EMPIRICAL_CELLS = 50  # below this many (model, target) cells, interaction errors are drawn from a t
COVERAGE = 0.95  # nominal coverage of every interval
# The conformal 95% quantile of n scores is the (0.95 (n + 1))-th smallest, a finite order statistic from n = 19 on;
# with fewer known targets no scaling is claimed (scale 1, `calibrated` False).
MIN_CALIBRATION_TARGETS = 19
CALIBRATION_DRAWS = 4000  # Monte Carlo draws per held-out target when calibrating the candidates' spread
TOP_BAND = 10  # the candidates shown (and tried first) get their own conformal scale: ranks 1-10, then the rest
PER_TARGET_FLOOR = 0.85  # share of a target's candidates its scale must cover
# Conformal level over the known targets' per-target scales; 1.0 is the largest (every known target). Chosen by the
# nested held-out comparison in docs/recommend.md: the pooled per-cell rule (the old one) and per-target levels 0.8,
# 0.9 and 0.95 leave more targets below the floor.
TARGET_LEVEL = 1.0
USER_FEATURES = ("n_train", "n_labels", "majority_share")  # what a user's file tells before anything is run


@dataclass
class TargetEffectPrediction:
    mean: float  # predicted mean gain over candidates on this target (points)
    sd: float  # prediction error sd for a new target
    low: float
    high: float
    method: str  # "regression" or "architecture mean"
    features: list[str]
    coefficients: dict[str, float]
    n_targets: int
    loo_rmse: float
    mean_rmse: float  # leave-one-out error of the architecture mean on the same targets, for comparison
    scale: float = 1.0  # conformal scale applied to the sd and the interval (Evidence.sensitivity_scale)


@dataclass
class CandidatePrediction:
    rank: int
    model_id: str
    base_effect: float  # the point estimate used: the leaderboard's mean_gain (kept cells, points)
    base_mean_gain: float
    base_ci_low: float  # 95% interval of the base effect (the mean gain's t-interval across targets)
    base_ci_high: float
    win_rate: float | None
    n_targets: int | None
    probe_score: float | None
    expected_gain: float
    sd: float
    low: float
    high: float
    p_beats_pretrained: float


@dataclass
class EvidenceFrames:
    """The warehouse rows the evidence is built from, for one architecture."""

    architecture: str
    pretrained_model: str
    candidates: pl.DataFrame  # ranked, unflagged leaderboard rows other than the pretrained model, by rank
    targets: pl.DataFrame  # dataset_id, mean_gain (over the candidates' kept cells), pretrained_score + features
    gains: pl.DataFrame  # model_id, dataset_id, gain of the candidates' kept cells (not collapsed)


@dataclass
class Evidence:
    """What the warehouse knows about one architecture."""

    architecture: str
    pretrained_model: str
    targets: pl.DataFrame  # dataset_id, mean_gain, and the raw feature columns
    candidates: pl.DataFrame  # ranked, unflagged candidates + base_effect, base_low, base_high, base_se
    interaction_sd: float
    mean_target_effect: float
    # Residuals of gain(model, target) around the additive model, df-corrected: their heavy tails (a few targets
    # gain 10-25 points where most gain 1-2) are what a normal interval would understate.
    interaction_residuals: np.ndarray = field(default_factory=lambda: np.empty(0))
    # Split-conformal scales from leave-one-target-out predictions of the known targets (1.0 when uncalibrated); the
    # candidate scales are per-target ones (see `_calibrated`).
    sensitivity_scale: float = 1.0
    candidate_scale: float = 1.0  # ranks below TOP_BAND
    top_candidate_scale: float = 1.0  # the first TOP_BAND candidates
    calibrated: bool = False
    calibration: dict = field(default_factory=dict)


TABLES = ("leaderboard", "target_effects", "gains")


def read_frames(con: duckdb.DuckDBPyConnection, architecture: str,
                relations: dict[str, str] | None = None) -> EvidenceFrames:
    """Read what `build_evidence` needs. `relations` maps leaderboard/target_effects/gains to other tables with
    the same columns (the calibration benchmark's rebuilt temp tables); hub_models and datasets are read as is."""
    rel = {t: t for t in TABLES} | (relations or {})
    known = [r[0] for r in con.execute(
        f"select distinct architecture from {rel['leaderboard']} order by 1").fetchall()]
    if architecture not in known:
        raise RecommendError(
            f"the warehouse has no leaderboard for architecture {architecture!r} (it has: {', '.join(known) or 'none'}); "
            "run the grid or import for it first (`make run`)"
        )
    lb_columns = _columns(con, rel["leaderboard"])
    not_pretrained = "and not coalesce(is_pretrained, false)" if "is_pretrained" in lb_columns else ""
    candidates = frame(con.execute(
        f"""select * from {rel['leaderboard']}
           where architecture = ? and rank is not null and not coalesce(flagged, false) {not_pretrained}
           order by rank, mean_gain desc""",
        [architecture],
    ))
    pretrained = con.execute(
        "select model_id from hub_models where architecture = ? and role = 'pretrained' order by model_id limit 1",
        [architecture],
    ).fetchone()
    if pretrained is None:
        raise RecommendError(f"hub_models has no pretrained model (role 'pretrained') for architecture {architecture!r}")
    # an older leaderboard without is_pretrained: the pretrained model is never a candidate
    candidates = candidates.filter(pl.col("model_id") != pretrained[0])
    if candidates.is_empty():
        raise RecommendError(f"architecture {architecture!r} has no ranked (unflagged) base models in the leaderboard")
    # kept cells only: a collapsed cell (gains.collapsed) is not a gain the model gives
    kept = "and not coalesce(collapsed, false)" if "collapsed" in _columns(con, rel["gains"]) else ""
    gains = frame(con.execute(
        f"""select model_id, dataset_id, gain from {rel['gains']}
           where architecture = ? and gain is not null {kept} order by model_id, dataset_id""",
        [architecture],
    ))
    gains = gains.filter(pl.col("model_id").is_in(candidates["model_id"].to_list()))
    targets = frame(con.execute(
        f"""select t.dataset_id, t.mean_gain, t.baseline_mean as pretrained_score, d.n_train, d.n_labels,
                  d.majority_share
           from {rel['target_effects']} t left join datasets d using (dataset_id)
           where t.architecture = ? and t.mean_gain is not null order by t.dataset_id""",
        [architecture],
    ))
    if targets.is_empty():
        raise RecommendError(f"target_effects has no rows for architecture {architecture!r}")
    # the target effect on the same scale as the base effects: the mean over the candidates' kept cells
    kept_means = gains.group_by("dataset_id").agg(kept_mean=pl.col("gain").mean())
    targets = targets.join(kept_means, on="dataset_id", how="left").with_columns(
        mean_gain=pl.coalesce("kept_mean", "mean_gain")).drop("kept_mean")
    return EvidenceFrames(architecture=architecture, pretrained_model=pretrained[0], candidates=candidates,
                          targets=targets, gains=gains)


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> set[str]:
    return {r[0] for r in con.execute(f"select * from {relation} limit 0").description}


def base_effects(candidates: pl.DataFrame) -> pl.DataFrame:
    """The base effect of each candidate and its 95% interval, on the raw scale: the leaderboard's mean_gain (the
    mean over the model's kept cells) with its t-interval ci_low..ci_high. Never the ranking_score (or an older
    warehouse's posterior_gain / robust_score): those order the list and are not gains."""
    col = pl.col
    c = candidates.with_columns(base_effect=col("mean_gain"), base_low=col("ci_low"), base_high=col("ci_high"))
    c = c.with_columns(pl.col("base_effect", "base_low", "base_high").cast(pl.Float64))
    return c.with_columns(base_se=((col("base_high") - col("base_low")) / (2 * Z95)).fill_nan(None).fill_null(0.0))


def build_evidence(frames: EvidenceFrames, calibrate: bool = True) -> Evidence:
    """Evidence from the frames alone (pure): base effects, interaction residuals, and the conformal scales."""
    gains = frames.gains
    resid = interaction_residuals(gains)
    targets = frames.targets
    evidence = Evidence(
        architecture=frames.architecture,
        pretrained_model=frames.pretrained_model,
        targets=targets,
        candidates=base_effects(frames.candidates),
        interaction_sd=_rms(resid),
        mean_target_effect=float(targets["mean_gain"].mean()),
        interaction_residuals=resid,
    )
    if calibrate and len(targets) >= MIN_CALIBRATION_TARGETS:
        evidence = _calibrated(evidence, gains)
    return evidence


def load_evidence(con: duckdb.DuckDBPyConnection, architecture: str) -> Evidence:
    return build_evidence(read_frames(con, architecture))


def interaction_residuals(gains: pl.DataFrame) -> np.ndarray:
    """gain - model mean - target mean + grand mean per cell, scaled by sqrt(cells / residual df)."""
    if gains.is_empty():
        return np.empty(0)
    gain = pl.col("gain")
    resid = gains.select(
        gain - gain.mean().over("model_id") - gain.mean().over("dataset_id") + gain.mean()
    ).to_series().to_numpy().astype(float)
    df = len(gains) - gains["model_id"].n_unique() - gains["dataset_id"].n_unique() + 1
    return resid * math.sqrt(len(resid) / df) if df > 0 else np.empty(0)


def _rms(resid: np.ndarray) -> float:
    return float(math.sqrt(np.mean(resid**2))) if len(resid) else float("nan")


def interaction_sd(gains: pl.DataFrame) -> float:
    """Spread of gain(model, target) around base effect + target effect (two-way additive residual)."""
    return _rms(interaction_residuals(gains))


def feature_row(raw: dict) -> dict[str, float | None]:
    out = {}
    for name, fn in FEATURES.items():
        try:
            value = fn(raw)
        except (TypeError, ValueError):
            value = None
        out[name] = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    return out


def _design(rows: pl.DataFrame, features: tuple[str, ...]) -> np.ndarray:
    return np.column_stack([np.ones(len(rows))] + [rows[f].to_numpy().astype(float) for f in features])


def _loo_mse(x: np.ndarray, y: np.ndarray) -> float:
    """Exact leave-one-out squared error of least squares via the hat matrix."""
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    hat = np.einsum("ij,jk,ik->i", x, np.linalg.pinv(x.T @ x), x)
    if np.any(hat >= 1 - 1e-9):
        return float("inf")
    return float(np.mean((resid / (1 - hat)) ** 2))


def predict_target_effect(evidence: Evidence, target_features: dict) -> TargetEffectPrediction:
    """Predict the target's mean gain from the features it has, or fall back to the architecture mean. The sd and
    the interval are scaled by the evidence's conformal `sensitivity_scale`."""
    from scipy import stats  # here, not at import: scipy.stats costs every Dagster process 1.7 s to load

    c = evidence.sensitivity_scale
    known = pl.DataFrame([feature_row(r) for r in evidence.targets.iter_rows(named=True)],
                         schema=dict.fromkeys(FEATURES, pl.Float64), orient="row").with_columns(
        y=evidence.targets["mean_gain"].cast(pl.Float64))
    wanted = feature_row(target_features)
    available = [f for f in FEATURES if wanted[f] is not None]

    y_all = known["y"].to_numpy()
    n_all = len(y_all)
    mean_loo = float(np.var(y_all, ddof=1) * n_all / (n_all - 1)) if n_all > 1 else float("inf")
    best = None  # (relative loo error, features, rows, loo mse, mean loo mse on the same rows)
    for k in range(1, len(available) + 1):
        for combo in itertools.combinations(available, k):
            rows = known.drop_nulls(subset=list(combo))
            if len(rows) - (k + 1) < MIN_RESIDUAL_DF or any(rows[f].n_unique() < 2 for f in combo):
                continue
            y = rows["y"].to_numpy()
            loo = _loo_mse(_design(rows, combo), y)
            base = float(np.var(y, ddof=1) * len(y) / (len(y) - 1))
            if loo < base and (best is None or loo / base < best[0]):
                best = (loo / base, combo, rows, loo, base)

    if best is None:
        if n_all < 2:
            raise RecommendError(
                f"architecture {evidence.architecture!r} has {n_all} target(s) in target_effects; at least 2 are "
                "needed to say anything about a new target's sensitivity"
            )
        raw = math.sqrt(mean_loo)
        sd = c * raw
        t = stats.t.ppf(0.975, n_all - 1)
        mean = float(y_all.mean())
        return TargetEffectPrediction(
            mean=mean, sd=sd, low=mean - t * sd, high=mean + t * sd, method="architecture mean", features=[],
            coefficients={}, n_targets=n_all, loo_rmse=raw, mean_rmse=raw, scale=c,
        )
    _, combo, rows, loo, base = best
    x = _design(rows, combo)
    beta, *_ = np.linalg.lstsq(x, rows["y"].to_numpy(), rcond=None)
    x0 = np.array([1.0] + [wanted[f] for f in combo])
    mean = float(x0 @ beta)
    sd = c * math.sqrt(loo)
    t = stats.t.ppf(0.975, len(rows) - len(combo) - 1)
    return TargetEffectPrediction(
        mean=mean, sd=sd, low=mean - t * sd, high=mean + t * sd, method="regression", features=list(combo),
        coefficients={"intercept": float(beta[0]), **{f: float(b) for f, b in zip(combo, beta[1:])}},
        n_targets=len(rows), loo_rmse=math.sqrt(loo), mean_rmse=math.sqrt(base), scale=c,
    )


def _shared_draws(target: TargetEffectPrediction, resid: np.ndarray, interaction_sd: float,
                  rng: np.random.Generator, n: int) -> np.ndarray:
    """Draws of the error shared by every candidate on one target: the target-effect error (t with the
    prediction's sd, df from its fit) plus the interaction error (resampled residuals when there are enough cells,
    else a t with the residual df)."""
    df_target = max(target.n_targets - 1 - len(target.features), 1)
    shared = target.sd * rng.standard_t(df_target, n)
    if len(resid) >= MIN_EMPIRICAL_CELLS:
        shared += rng.choice(resid, n)
    elif math.isfinite(interaction_sd):
        shared += interaction_sd * rng.standard_t(max(len(resid) // 2, 2), n)
    return shared


def _error_draws(evidence: Evidence, target: TargetEffectPrediction) -> tuple[np.ndarray, np.ndarray]:
    """The shared draws and standard normals for the base-effect error. Fixed seed: the same warehouse gives the
    same intervals."""
    rng = np.random.default_rng(0)
    shared = _shared_draws(target, evidence.interaction_residuals, evidence.interaction_sd, rng, MC_DRAWS)
    return shared, rng.standard_normal(MC_DRAWS)


def predict_candidates(evidence: Evidence, target: TargetEffectPrediction, top: int | None = None) -> list[CandidatePrediction]:
    """Expected gain of each ranked candidate on the new target, best rank first. The spread of the draws around
    the expected gain is scaled by the evidence's conformal scale for its rank band (`top_candidate_scale` for the
    first TOP_BAND candidates, `candidate_scale` after)."""
    offset = target.mean - evidence.mean_target_effect
    shared, normal = _error_draws(evidence, target)
    out = []
    rows = evidence.candidates if top is None else evidence.candidates.head(top)
    for i, r in enumerate(rows.iter_rows(named=True)):
        expected = float(r["base_effect"]) + offset
        scale = evidence.top_candidate_scale if i < TOP_BAND else evidence.candidate_scale
        draws = expected + scale * (shared + r["base_se"] * normal)
        low, high = (float(q) for q in np.quantile(draws, [0.025, 0.975]))
        sd = float(draws.std())
        out.append(
            CandidatePrediction(
                rank=int(r["rank"]), model_id=str(r["model_id"]), base_effect=float(r["base_effect"]),
                base_mean_gain=float(r["mean_gain"]),
                base_ci_low=_num(r["base_low"]), base_ci_high=_num(r["base_high"]), win_rate=_num(r["win_rate"]),
                n_targets=None if _num(r["n_targets"]) is None else int(r["n_targets"]),
                probe_score=_num(r["probe_score"]),
                expected_gain=expected, sd=sd, low=low, high=high, p_beats_pretrained=float((draws > 0).mean()),
            )
        )
    return out


def conformal_scale(scores: np.ndarray, coverage: float = COVERAGE) -> float:
    """The scale s such that a new score <= s with probability `coverage`, from n exchangeable scores: the
    (coverage * (n + 1))-th smallest, interpolated between order statistics (its expected coverage is
    `coverage`), capped at the largest score."""
    scores = np.sort(np.asarray(scores, float))
    n = len(scores)
    pos = min(max(coverage * (n + 1), 1.0), float(n)) - 1.0  # 0-based position
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    return float(scores[lo] + (pos - lo) * (scores[hi] - scores[lo]))


def _user_features(row: dict) -> dict:
    return {k: row.get(k) for k in USER_FEATURES}


def _calibrated(evidence: Evidence, gains: pl.DataFrame) -> Evidence:
    """Split-conformal scales from leave-one-target-out predictions of the known targets.

    Each known target in turn is predicted from the others as a user's target is (features: what a file tells,
    USER_FEATURES). Sensitivity: score = |measured mean gain - predicted| / the interval's half-width; the
    scale is the conformal 95% quantile over targets. Candidates: for every ranked candidate measured on the
    held-out target, score = |gain - expected| / the distance from the expected gain to the interval end on that
    side (the same draws as `predict_candidates`, with the sensitivity scale applied and the held-out target's
    residual cells left out of the pool). Per target and rank band (the first TOP_BAND candidates, the rest), the
    scale that covers PER_TARGET_FLOOR of its candidates is that target's score; the band's scale is the conformal
    TARGET_LEVEL quantile of the targets' scores (1.0: the largest), so that every known target would have had at
    least PER_TARGET_FLOOR of its candidates covered. The old pooled rule (the 95% quantile of all cells' scores) is
    kept in `calibration` for comparison. Base effects are the leaderboard's, computed with the held-out target in
    (a small optimism the benchmark measures: it is nested)."""
    targets = evidence.targets
    resid = evidence.interaction_residuals
    cell_target = np.array(gains["dataset_id"].to_list(), dtype=object) if len(resid) else np.empty(0, dtype=object)
    gain_of: dict[str, dict[str, float]] = {}  # dataset_id -> model_id -> gain
    for dataset_id, model_id, gain in gains.select("dataset_id", "model_id", "gain").iter_rows():
        gain_of.setdefault(dataset_id, {})[model_id] = gain
    cands = evidence.candidates
    base = cands["base_effect"].to_numpy().astype(float)
    base_se = cands["base_se"].to_numpy().astype(float)
    model_ids = cands["model_id"].to_list()

    inner = []  # (dataset_id, prediction from the others, mean target effect of the others)
    sens_scores = []
    for i, row in enumerate(targets.iter_rows(named=True)):
        rest = pl.concat([targets.head(i), targets.slice(i + 1)])
        ev_rest = replace(evidence, targets=rest, mean_target_effect=float(rest["mean_gain"].mean()))
        pred = predict_target_effect(ev_rest, _user_features(row))
        half = pred.high - pred.mean
        sens_scores.append(abs(row["mean_gain"] - pred.mean) / half if half > 0 else math.inf)
        inner.append((row["dataset_id"], pred, ev_rest.mean_target_effect))
    s_scale = conformal_scale(np.array(sens_scores))
    if not math.isfinite(s_scale) or s_scale <= 0:
        return evidence

    rng = np.random.default_rng(1)
    normal = rng.standard_normal(CALIBRATION_DRAWS)
    position = np.arange(len(cands))
    cand_scores, cand_top = [], []
    for dataset_id, pred, mean_rest in inner:
        measured = gain_of.get(dataset_id)
        if measured is None:
            continue
        y = np.array([measured.get(m, math.nan) for m in model_ids], dtype=float)
        keep = ~np.isnan(y)
        if not keep.any():
            continue
        scaled = replace(pred, sd=pred.sd * s_scale)
        pool = resid[cell_target != dataset_id] if len(resid) else resid
        shared = _shared_draws(scaled, pool, evidence.interaction_sd, rng, CALIBRATION_DRAWS)
        spread = shared[None, :] + base_se[keep, None] * normal[None, :]
        q_low, q_high = np.quantile(spread, [0.025, 0.975], axis=1)
        err = y[keep] - (base[keep] + pred.mean - mean_rest)
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(err >= 0, err / q_high, err / q_low)
        cand_scores.append(np.where(np.isfinite(score), score, math.inf))
        cand_top.append(position[keep] < TOP_BAND)
    bands = candidate_scales(cand_scores, cand_top)
    return replace(evidence, sensitivity_scale=s_scale, top_candidate_scale=bands["top"]["scale"],
                   candidate_scale=bands["rest"]["scale"], calibrated=True,
                   calibration={"sensitivity_scale": s_scale, "top_candidate_scale": bands["top"]["scale"],
                                "candidate_scale": bands["rest"]["scale"], "n_targets": len(targets),
                                "rule": f"per target: {PER_TARGET_FLOOR:.0%} of each known target's candidates, "
                                        f"conformal level {TARGET_LEVEL} over targets",
                                "n_top_cells": bands["top"]["cells"], "n_rest_cells": bands["rest"]["cells"],
                                "per_target_scores": {k: v["per_target"] for k, v in bands.items()},
                                "pooled_scales": {k: v["pooled"] for k, v in bands.items()}})


def per_target_score(scores: np.ndarray, floor: float = PER_TARGET_FLOOR) -> float:
    """The smallest scale that covers `floor` of one target's candidates (|score| <= scale): the ceil(floor n)-th
    smallest |score|."""
    a = np.sort(np.abs(np.asarray(scores, float)))
    return float(a[max(math.ceil(floor * len(a) - 1e-9), 1) - 1]) if len(a) else math.nan


def candidate_scales(cand_scores: list[np.ndarray], cand_top: list[np.ndarray],
                     target_level: float = TARGET_LEVEL, floor: float = PER_TARGET_FLOOR) -> dict[str, dict]:
    """Per rank band: the per-target scales of the known targets, the band's scale (their conformal
    `target_level` quantile; 1.0 where there are none), and the pooled per-cell 95% scale for comparison."""
    out = {}
    for band, pick in (("top", True), ("rest", False)):
        per_target = [per_target_score(sc[t == pick], floor) for sc, t in zip(cand_scores, cand_top)
                      if (t == pick).any()]
        per_target = [v for v in per_target if not math.isnan(v)]
        cells = np.concatenate([np.abs(sc[t == pick]) for sc, t in zip(cand_scores, cand_top)]) \
            if cand_scores else np.empty(0)
        scale = conformal_scale(np.array(per_target), target_level) if per_target else math.nan
        pooled = float(np.quantile(cells, COVERAGE)) if len(cells) else math.nan
        out[band] = {"scale": scale if math.isfinite(scale) and scale > 0 else 1.0,
                     "pooled": pooled if math.isfinite(pooled) and pooled > 0 else 1.0,
                     "per_target": per_target, "cells": int(len(cells))}
    return out


def _num(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def as_dict(obj) -> dict:
    return asdict(obj)
