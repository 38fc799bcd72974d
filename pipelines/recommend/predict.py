"""Predict, from the warehouse, how much each ranked base model should gain on a target nobody has run yet.

The warehouse's effect tables describe gains as base effect + target effect + interaction:

- the target effect (how sensitive a target is to the choice of base model) is predicted from target features
  by least squares; the feature set is chosen by leave-one-out error among the targets that have those
  features, and the intercept-only model (the architecture's mean target effect) competes too, so features
  that do not help are dropped rather than trusted;
- a candidate's expected gain = its base effect (the leaderboard's noise-aware robust score where present,
  else its mean gain over the known targets) + (predicted target effect - the mean target effect), with a 95% interval from three independent error sources: the base effect's interval,
  the target-effect prediction error (leave-one-out) and the per-cell interaction spread seen in `gains`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field

import duckdb
import numpy as np
import pandas as pd
from scipy import stats


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


@dataclass
class CandidatePrediction:
    rank: int
    model_id: str
    base_effect: float  # the point estimate used: the leaderboard's robust score, else its mean gain
    base_mean_gain: float
    base_ci_low: float
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
class Evidence:
    """What the warehouse knows about one architecture."""

    architecture: str
    pretrained_model: str
    targets: pd.DataFrame  # dataset_id, mean_gain, and the raw feature columns
    candidates: pd.DataFrame  # ranked, unflagged leaderboard rows
    interaction_sd: float
    mean_target_effect: float
    # Residuals of gain(model, target) around the additive model, df-corrected: their heavy tails (a few targets
    # gain 10-25 points where most gain 1-2) are what a normal interval would understate.
    interaction_residuals: np.ndarray = field(default_factory=lambda: np.empty(0))


def load_evidence(con: duckdb.DuckDBPyConnection, architecture: str) -> Evidence:
    known = [r[0] for r in con.execute("select distinct architecture from leaderboard order by 1").fetchall()]
    if architecture not in known:
        raise RecommendError(
            f"the warehouse has no leaderboard for architecture {architecture!r} (it has: {', '.join(known) or 'none'}); "
            "run the grid or import for it first (`make run`)"
        )
    # The leaderboard's noise-aware estimate of the base effect when it has one (robust_score: the shrunk trimmed
    # mean gain that orders the ranking); the plain mean gain otherwise.
    lb_columns = {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_name = 'leaderboard'").fetchall()}
    base_effect = "coalesce(robust_score, mean_gain)" if "robust_score" in lb_columns else "mean_gain"
    candidates = con.execute(
        f"""select rank, model_id, {base_effect} as base_effect, mean_gain, ci_low, ci_high, win_rate, n_targets,
                  probe_score
           from leaderboard where architecture = ? and rank is not null and not coalesce(flagged, false)
           order by rank""",
        [architecture],
    ).df()
    if candidates.empty:
        raise RecommendError(f"architecture {architecture!r} has no ranked (unflagged) base models in the leaderboard")
    pretrained = con.execute(
        "select model_id from hub_models where architecture = ? and role = 'pretrained' order by model_id limit 1",
        [architecture],
    ).fetchone()
    if pretrained is None:
        raise RecommendError(f"hub_models has no pretrained model (role 'pretrained') for architecture {architecture!r}")
    targets = con.execute(
        """select t.dataset_id, t.mean_gain, t.baseline_mean as pretrained_score, d.n_train, d.n_labels, d.majority_share
           from target_effects t left join datasets d using (dataset_id)
           where t.architecture = ? and t.mean_gain is not null order by t.dataset_id""",
        [architecture],
    ).df()
    if targets.empty:
        raise RecommendError(f"target_effects has no rows for architecture {architecture!r}")
    gains = con.execute(
        "select model_id, dataset_id, gain from gains where architecture = ? and gain is not null", [architecture]
    ).df()
    gains = gains[gains["model_id"].isin(set(candidates["model_id"]))]
    return Evidence(
        architecture=architecture,
        pretrained_model=pretrained[0],
        targets=targets,
        candidates=candidates,
        interaction_sd=interaction_sd(gains),
        mean_target_effect=float(targets["mean_gain"].mean()),
        interaction_residuals=interaction_residuals(gains),
    )


def interaction_residuals(gains: pd.DataFrame) -> np.ndarray:
    """gain - model mean - target mean + grand mean per cell, scaled by sqrt(cells / residual df)."""
    if gains.empty:
        return np.empty(0)
    grand = gains["gain"].mean()
    by_model = gains.groupby("model_id")["gain"].transform("mean")
    by_target = gains.groupby("dataset_id")["gain"].transform("mean")
    resid = (gains["gain"] - by_model - by_target + grand).to_numpy(float)
    df = len(gains) - gains["model_id"].nunique() - gains["dataset_id"].nunique() + 1
    return resid * math.sqrt(len(resid) / df) if df > 0 else np.empty(0)


def interaction_sd(gains: pd.DataFrame) -> float:
    """Spread of gain(model, target) around base effect + target effect (two-way additive residual)."""
    resid = interaction_residuals(gains)
    return float(math.sqrt(np.mean(resid**2))) if len(resid) else float("nan")


def feature_row(raw: dict) -> dict[str, float | None]:
    out = {}
    for name, fn in FEATURES.items():
        try:
            value = fn(raw)
        except (TypeError, ValueError):
            value = None
        out[name] = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    return out


def _design(rows: pd.DataFrame, features: tuple[str, ...]) -> np.ndarray:
    return np.column_stack([np.ones(len(rows))] + [rows[f].to_numpy(float) for f in features])


def _loo_mse(x: np.ndarray, y: np.ndarray) -> float:
    """Exact leave-one-out squared error of least squares via the hat matrix."""
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    hat = np.einsum("ij,jk,ik->i", x, np.linalg.pinv(x.T @ x), x)
    if np.any(hat >= 1 - 1e-9):
        return float("inf")
    return float(np.mean((resid / (1 - hat)) ** 2))


def predict_target_effect(evidence: Evidence, target_features: dict) -> TargetEffectPrediction:
    """Predict the target's mean gain from the features it has, or fall back to the architecture mean."""
    known = pd.DataFrame([feature_row(r) for r in evidence.targets.to_dict("records")])
    known["y"] = evidence.targets["mean_gain"].to_numpy(float)
    wanted = feature_row(target_features)
    available = [f for f in FEATURES if wanted[f] is not None]

    y_all = known["y"].to_numpy()
    n_all = len(y_all)
    mean_loo = float(np.var(y_all, ddof=1) * n_all / (n_all - 1)) if n_all > 1 else float("inf")
    best = None  # (relative loo error, features, rows, loo mse, mean loo mse on the same rows)
    for k in range(1, len(available) + 1):
        for combo in itertools.combinations(available, k):
            rows = known.dropna(subset=list(combo))
            if len(rows) - (k + 1) < MIN_RESIDUAL_DF or any(rows[f].nunique() < 2 for f in combo):
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
        sd = math.sqrt(mean_loo)
        t = stats.t.ppf(0.975, n_all - 1)
        mean = float(y_all.mean())
        return TargetEffectPrediction(
            mean=mean, sd=sd, low=mean - t * sd, high=mean + t * sd, method="architecture mean", features=[],
            coefficients={}, n_targets=n_all, loo_rmse=sd, mean_rmse=sd,
        )
    _, combo, rows, loo, base = best
    x = _design(rows, combo)
    beta, *_ = np.linalg.lstsq(x, rows["y"].to_numpy(), rcond=None)
    x0 = np.array([1.0] + [wanted[f] for f in combo])
    mean = float(x0 @ beta)
    sd = math.sqrt(loo)
    t = stats.t.ppf(0.975, len(rows) - len(combo) - 1)
    return TargetEffectPrediction(
        mean=mean, sd=sd, low=mean - t * sd, high=mean + t * sd, method="regression", features=list(combo),
        coefficients={"intercept": float(beta[0]), **{f: float(b) for f, b in zip(combo, beta[1:])}},
        n_targets=len(rows), loo_rmse=sd, mean_rmse=math.sqrt(base),
    )


def _error_draws(evidence: Evidence, target: TargetEffectPrediction) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo draws of the target-effect error (t, from the leave-one-out sd) plus the interaction error
    (resampled residuals when there are enough cells, else a t with the residual df), and standard normals
    for the base-effect error. Fixed seed: the same warehouse gives the same intervals."""
    rng = np.random.default_rng(0)
    df_target = max(target.n_targets - 1 - len(target.features), 1)
    shared = target.sd * rng.standard_t(df_target, MC_DRAWS)
    resid = evidence.interaction_residuals
    if len(resid) >= MIN_EMPIRICAL_CELLS:
        shared += rng.choice(resid, MC_DRAWS)
    elif math.isfinite(evidence.interaction_sd):
        shared += evidence.interaction_sd * rng.standard_t(max(len(resid) // 2, 2), MC_DRAWS)
    return shared, rng.standard_normal(MC_DRAWS)


def predict_candidates(evidence: Evidence, target: TargetEffectPrediction, top: int | None = None) -> list[CandidatePrediction]:
    """Expected gain of each ranked candidate on the new target, best rank first."""
    offset = target.mean - evidence.mean_target_effect
    shared, normal = _error_draws(evidence, target)
    out = []
    rows = evidence.candidates if top is None else evidence.candidates.head(top)
    for r in rows.itertuples(index=False):
        base_se = (r.ci_high - r.ci_low) / (2 * Z95) if pd.notna(r.ci_low) and pd.notna(r.ci_high) else 0.0
        expected = float(r.base_effect) + offset
        draws = expected + shared + base_se * normal
        low, high = (float(q) for q in np.quantile(draws, [0.025, 0.975]))
        sd = float(draws.std())
        out.append(
            CandidatePrediction(
                rank=int(r.rank), model_id=str(r.model_id), base_effect=float(r.base_effect),
                base_mean_gain=float(r.mean_gain),
                base_ci_low=_num(r.ci_low), base_ci_high=_num(r.ci_high), win_rate=_num(r.win_rate),
                n_targets=None if pd.isna(r.n_targets) else int(r.n_targets), probe_score=_num(r.probe_score),
                expected_gain=expected, sd=sd, low=low, high=high, p_beats_pretrained=float((draws > 0).mean()),
            )
        )
    return out


def _num(v) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def as_dict(obj) -> dict:
    return asdict(obj)
