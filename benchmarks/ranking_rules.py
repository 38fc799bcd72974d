"""The ordering rules the held-out benchmark compares, on a models x targets matrix of gains (numpy, no SQL).

Every rule scores the rows of a pool (the models that pass the integrity flags) from their kept cells (cells that
did not collapse; NaN elsewhere) and also scores the pretrained model, a row whose gain is 0 on every target, with
the per-target statistics of the pool (the zero row never moves a center, scale or mean). `product` is the rule
the SQL models ship (`winsorized_gains`, `ranking_reliability`, `base_model_effects`), where the zero row scores
exactly 0; tests/test_one_scale.py checks that it orders the warehouse's models exactly as the leaderboard does.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import yaml
from scipy import stats

MAD_SD = 1.4826  # MAD -> SD of a normal sample
MIN_SCALE = 0.1  # points: the smallest robust SD a target gets (winsorized_gains)
Z_CLIP = 5.0  # the z-clipped mean's bound, in robust SDs
HUBER_K = 1.345  # the Huber M-estimate's tuning constant (95% efficiency under normal errors)
DBT_PROJECT = Path(__file__).resolve().parent.parent / "sql" / "dbt_project.yml"


def dbt_var(name: str):
    """A var the SQL models ship (sql/dbt_project.yml), so a rule recomputed here uses the product's value."""
    return yaml.safe_load(DBT_PROJECT.read_text())["vars"][name]


def column_nanmedian(x: np.ndarray) -> np.ndarray:
    """np.nanmedian(x, axis=0) (NaN for an all-NaN column) by one sort, without numpy's masked-array path for
    small arrays: the budgeted replay calls it thousands of times."""
    if x.shape[0] == 0:
        return np.full(x.shape[1], np.nan)
    s = np.sort(x, axis=0)  # NaN last
    n = (~np.isnan(x)).sum(axis=0)
    cols = np.arange(x.shape[1])
    lo, hi = s[np.maximum((n - 1) // 2, 0), cols], s[np.maximum(n // 2, 0), cols]
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, np.where(n % 2 == 1, lo, (lo + hi) / 2), np.nan)


def _center_scale(gains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    center = column_nanmedian(gains)
    scale = np.maximum(MAD_SD * column_nanmedian(np.abs(gains - center)), MIN_SCALE)
    return center, scale


def _with_zero_row(gains: np.ndarray) -> np.ndarray:
    """The pool's rows and the pretrained model's (gain 0 wherever the pool has a cell on that target)."""
    zero = np.where(np.isnan(gains).all(axis=0), np.nan, 0.0)
    return np.vstack([gains, zero])


def mean_rule(gains: np.ndarray) -> np.ndarray:
    """Plain mean of the kept cells."""
    return np.nanmean(_with_zero_row(gains), axis=1)


def median_rule(gains: np.ndarray) -> np.ndarray:
    return np.nanmedian(_with_zero_row(gains), axis=1)


def zclip_rule(gains: np.ndarray) -> np.ndarray:
    """Mean of per-target z-scores (median / robust SD of the pool), clipped at +-Z_CLIP."""
    center, scale = _center_scale(gains)
    return np.nanmean(np.clip((_with_zero_row(gains) - center) / scale, -Z_CLIP, Z_CLIP), axis=1)


def _huber(x: np.ndarray, scale: float) -> float:
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return math.nan
    mu = float(np.median(x))
    for _ in range(50):
        r = np.abs(x - mu) / scale
        w = np.minimum(1.0, HUBER_K / np.maximum(r, 1e-12))
        new = float(np.sum(w * x) / np.sum(w))
        if abs(new - mu) < 1e-9:
            break
        mu = new
    return mu


def huber_rule(gains: np.ndarray) -> np.ndarray:
    """Huber M-estimate of each row's location of gain - target median, with one pooled robust scale."""
    center, _ = _center_scale(gains)
    resid = _with_zero_row(gains) - center
    scale = max(MAD_SD * float(np.nanmedian(np.abs(resid[:-1] - np.nanmedian(resid[:-1])))), MIN_SCALE)
    return np.array([_huber(row, scale) for row in resid]) + float(np.nanmean(center))


def twoway_precision_rule(gains: np.ndarray) -> np.ndarray:
    """Two-way additive model with a residual variance per target: each row's effect is the precision-weighted
    (1 / the target's residual variance) mean of its gain - target mean."""
    tmean = np.nanmean(gains, axis=0)
    resid = gains - tmean
    e = resid - np.nanmean(resid, axis=1, keepdims=True)
    var_t = np.maximum(np.nanvar(e, axis=0, ddof=1), 1e-6)
    full = _with_zero_row(gains) - tmean
    w = np.where(np.isnan(full), 0.0, 1.0 / var_t)
    return np.nansum(np.nan_to_num(full) * w, axis=1) / np.sum(w, axis=1) + float(np.nanmean(tmean))


def f_p_value(f: float, df1: float, df2: float) -> float:
    """Upper tail of F(df1, df2) by Paulson's normal approximation (what ranking_reliability computes in SQL)."""
    if not np.isfinite(f) or df1 < 1 or df2 < 1:
        return math.nan
    if f <= 0:
        return 1.0
    z = (((1 - 2 / (9 * df2)) * f ** (1 / 3) - (1 - 2 / (9 * df1)))
         / math.sqrt(2 / (9 * df1) + f ** (2 / 3) * 2 / (9 * df2)))
    return float(1 - stats.norm.cdf(z))


def product_rule(gains: np.ndarray, clip: float) -> tuple[np.ndarray, bool]:
    """The shipped ranking score of each row (the pretrained zero row last, scored 0) and whether the order has
    evidence. Winsorize each target at center +- clip * scale, take the two-way random-effects posterior of the
    target-centered gains; without evidence (var_base <= 0 or F test p >= 0.05) the order is the raw mean."""
    center, scale = _center_scale(gains)
    lo, hi = center - clip * scale, center + clip * scale
    w = np.clip(gains, lo, hi)
    tmean = np.nanmean(w, axis=0)
    y = w - tmean
    n = np.sum(~np.isnan(y), axis=1)
    ok = n > 0
    effect = np.nanmean(y[ok], axis=1)
    cells, models, targets = int(n.sum()), int(ok.sum()), int(np.sum(~np.isnan(tmean)))
    df2 = cells - models - targets + 1
    var_res = float(np.nansum((y[ok] - effect[:, None]) ** 2) / df2) if df2 > 0 else math.nan
    var_eff = float(np.var(effect, ddof=1)) if models > 1 else math.nan
    mean_inv_n = float(np.mean(1.0 / n[ok]))
    var_base = var_eff - var_res * mean_inv_n
    f = var_eff / (var_res * mean_inv_n) if var_res > 0 else math.nan
    evidence = bool(var_base > 0 and f_p_value(f, models - 1, df2) < 0.05)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        row_effects = np.nanmean(y, axis=1)  # NaN for a row without kept cells
    shrink = var_base / (var_base + var_res / n) if var_base > 0 else np.zeros(len(n))
    # the pretrained model's gains are 0 exactly: its score is 0, nothing winsorized or shrunk
    score = np.append(float(np.nanmean(tmean)) + shrink * row_effects, 0.0)
    if not evidence:
        score = mean_rule(gains)
    return score, evidence


def order(score: np.ndarray, mean_gain: np.ndarray) -> np.ndarray:
    """Row positions best first: by score, then by the raw mean gain (both rounded to 1e-9, as the SQL ranks, so
    that equal scores summed in another order still tie); never by name or position."""
    return np.lexsort((-np.round(np.nan_to_num(mean_gain, nan=-np.inf), 9),
                       -np.round(np.nan_to_num(score, nan=-np.inf), 9)))


RULES = {  # simplest first: the benchmark ships the first rule that is not worse than any other
    "mean": mean_rule,
    "median": median_rule,
    "huber": huber_rule,
    "zclip": zclip_rule,
    "twoway_precision": twoway_precision_rule,
}
PRODUCT_CLIPS = (1.0, 1.5, 2.0, 3.0)
