"""LogME (You et al., 2021): the log marginal evidence of a Bayesian linear model on frozen features.

For each class c with one-hot targets y (n,), the model is y = F w + noise, w ~ N(0, 1/alpha I) and
noise ~ N(0, 1/beta). The evidence p(y | F, alpha, beta) is maximised over (alpha, beta) by the fixed-point
updates gamma = sum_i beta s_i / (alpha + beta s_i), alpha = gamma / |m|^2, beta = (n - gamma) / |F m - y|^2,
where s_i are the eigenvalues of F^T F and m = beta A^-1 F^T y is the posterior mean with A = alpha I + beta F^T F.
Everything is computed in the eigenbasis of F^T F (one SVD of F), so each iteration costs O(rank) per class.
The score is the maximised log evidence divided by n, averaged over classes: higher means the features make
the labels more linearly predictable, without training a head.
"""

from __future__ import annotations

import numpy as np

_ALPHA_LIMIT = 1e12  # alpha this far above beta * max(sigma) means the prior has crushed w to 0


def evidence_at_zero_weights(y2: float, n: int) -> float:
    """The limit alpha -> inf: y is pure noise with beta = n / |y|^2 (the log-det and prior terms cancel)."""
    beta = n / y2
    return float(n / 2 * np.log(beta) - n / 2 * np.log(2 * np.pi) - n / 2)


def evidence_terms(
    alpha: float, beta: float, sigma: np.ndarray, z: np.ndarray, y_outside: float, n: int, d: int
) -> tuple[float, float, float]:
    """(log evidence, |m|^2, |F m - y|^2) in the eigenbasis: sigma = squared singular values, z = U^T y."""
    denom = alpha + beta * sigma
    m2 = float(np.sum((beta * np.sqrt(sigma) * z / denom) ** 2))
    res2 = float(np.sum((alpha * z / denom) ** 2) + y_outside)
    logdet = float(np.sum(np.log(denom)) + (d - sigma.size) * np.log(alpha))
    evidence = (
        n / 2 * np.log(beta)
        + d / 2 * np.log(alpha)
        - n / 2 * np.log(2 * np.pi)
        - beta / 2 * res2
        - alpha / 2 * m2
        - logdet / 2
    )
    return float(evidence), m2, res2


def fixed_point(
    sigma: np.ndarray, z: np.ndarray, y_outside: float, n: int, d: int, tol: float = 1e-10, max_iter: int = 10_000
) -> tuple[float, float]:
    """Iterate the alpha/beta updates until both change by less than `tol` (relative)."""
    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        gamma = float(np.sum(beta * sigma / (alpha + beta * sigma)))
        _, m2, res2 = evidence_terms(alpha, beta, sigma, z, y_outside, n, d)
        if m2 <= 1e-300 or alpha > _ALPHA_LIMIT * beta * (sigma.max() if sigma.size else 1.0):
            return np.inf, beta  # the evidence prefers w = 0: the features carry nothing linear about y
        new_alpha = gamma / m2
        new_beta = (n - gamma) / max(res2, 1e-300)
        done = abs(new_alpha - alpha) <= tol * alpha and abs(new_beta - beta) <= tol * beta
        alpha, beta = new_alpha, new_beta
        if done:
            break
    return alpha, beta


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of integer class labels given features (n, d); float64 throughout."""
    f = np.asarray(features, dtype=np.float64)
    y_all = np.asarray(labels)
    if f.ndim != 2 or f.shape[0] != y_all.shape[0]:
        raise ValueError(f"LogME needs features (n, d) and n labels, got {f.shape} and {y_all.shape}")
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    keep = s > s.max() * 1e-12 if s.size else s.astype(bool)
    u, sigma = u[:, keep], s[keep] ** 2
    classes = np.unique(y_all)
    if classes.size < 2:
        raise ValueError("LogME needs at least two classes in the labels")
    scores = []
    for c in classes:
        y = (y_all == c).astype(np.float64)
        z = u.T @ y
        y_outside = max(float(y @ y - z @ z), 0.0)
        alpha, beta = fixed_point(sigma, z, y_outside, n, d)
        if np.isinf(alpha):
            scores.append(evidence_at_zero_weights(float(y @ y), n) / n)
        else:
            scores.append(evidence_terms(alpha, beta, sigma, z, y_outside, n, d)[0] / n)
    return float(np.mean(scores))
