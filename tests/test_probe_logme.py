"""LogME against a plain computation: explicit matrices (inverse, determinant) and the textbook updates."""

import numpy as np
import pytest

from startpoint.probes.logme import logme


def reference_evidence(f: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.inv(a) @ f.T @ y
    _, logdet = np.linalg.slogdet(a)
    return (
        n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
        - beta / 2 * np.sum((f @ m - y) ** 2) - alpha / 2 * m @ m - logdet / 2
    )


def reference_optimum(f: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """MacKay's updates with the explicit inverse, run to convergence."""
    n, d = f.shape
    eig = np.linalg.eigvalsh(f.T @ f)
    alpha, beta = 1.0, 1.0
    for _ in range(100_000):
        a = alpha * np.eye(d) + beta * f.T @ f
        m = beta * np.linalg.inv(a) @ f.T @ y
        gamma = np.sum(beta * eig / (alpha + beta * eig))
        new = gamma / (m @ m), (n - gamma) / np.sum((f @ m - y) ** 2)
        if abs(new[0] - alpha) < 1e-12 * alpha and abs(new[1] - beta) < 1e-12 * beta:
            return new
        alpha, beta = new
    raise AssertionError("reference fixed point did not converge")


def reference_logme(f: np.ndarray, labels: np.ndarray) -> float:
    scores = []
    for c in np.unique(labels):
        y = (labels == c).astype(float)
        alpha, beta = reference_optimum(f, y)
        ev = reference_evidence(f, y, alpha, beta)
        # The fixed point is a maximum: nudging alpha or beta never raises the evidence.
        for da, db in [(1.02, 1), (1 / 1.02, 1), (1, 1.02), (1, 1 / 1.02)]:
            assert reference_evidence(f, y, alpha * da, beta * db) <= ev + 1e-9
        scores.append(ev / len(y))
    return float(np.mean(scores))


@pytest.mark.parametrize("n,d,k", [(80, 12, 3), (30, 45, 2)])  # more samples than dims, and fewer
def test_logme_matches_explicit_reference(n, d, k):
    rng = np.random.default_rng(7)
    f = rng.normal(size=(n, d))
    labels = np.argmax(2 * f[:, :k] + rng.normal(size=(n, k)), axis=1)
    assert logme(f, labels) == pytest.approx(reference_logme(f, labels), abs=1e-6)


def test_logme_prefers_informative_features():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=200)
    informative = np.eye(3)[labels] * 2 + rng.normal(size=(200, 3))
    noise = rng.normal(size=(200, 3))
    assert logme(np.hstack([informative, noise]), labels) > logme(np.hstack([noise, rng.normal(size=(200, 3))]), labels)


def test_logme_uninformative_features_reach_the_zero_weight_limit():
    """Labels unrelated to the features: evidence peaks as alpha -> inf, where it has a closed form."""
    rng = np.random.default_rng(7)
    f, labels = rng.normal(size=(30, 45)), rng.integers(0, 2, size=30)
    score = logme(f, labels)
    assert np.isfinite(score)
    limit = np.mean([(lambda y2: 0.5 * np.log(30 / y2) - 0.5 * np.log(2 * np.pi) - 0.5)(np.sum(labels == c)) for c in (0, 1)])
    assert score >= limit - 1e-9


def test_logme_rejects_single_class():
    with pytest.raises(ValueError, match="two classes"):
        logme(np.ones((5, 2)), np.zeros(5))
