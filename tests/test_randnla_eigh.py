"""Randomized eigendecomposition with adaptive rank, against numpy.linalg.eigh."""

import numpy as np
import pytest
import scipy.linalg as sla

from opu_hal import OPU
from opu_hal.randnla import EighResult, GaussianSketch, OPUSketch, randomized_eigh


def _symmetric(n, eigenvalues, seed):
    V = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))[0]
    return (V * eigenvalues) @ V.T


def _check_against_eigh(A, result, top, tol):
    w, V = np.linalg.eigh(A)
    order = np.argsort(-np.abs(w))
    w, V = w[order], V[:, order]
    k = result.eigenvalues.size
    assert result.U.shape == (A.shape[0], k)
    np.testing.assert_allclose(result.U.T @ result.U, np.eye(k), atol=1e-10)
    assert np.all(np.diff(np.abs(result.eigenvalues)) <= 1e-12)  # by decreasing magnitude
    # the leading eigenpairs: values to 1e-6 relative, eigenspaces to small principal angles
    np.testing.assert_allclose(result.eigenvalues[:top], w[:top], rtol=1e-6)
    assert np.max(sla.subspace_angles(result.U[:, :top], V[:, :top])) < 1e-3
    # the rank meets the tolerance: ||A - Q Q^T A||_F <= tol ||A||_F (posterior estimate, 1.5x slack for
    # its sampling error with 10 vectors), and the approximation is within sqrt(2) of that
    approx = (result.U * result.eigenvalues) @ result.U.T
    err = np.linalg.norm(A - approx) / np.linalg.norm(A)
    assert result.error_estimate <= tol
    assert err <= np.sqrt(2) * 1.5 * tol
    # ... and the rank is not much beyond the optimal rank for that tolerance (one block of 10 over)
    tails = np.sqrt(np.cumsum((w**2)[::-1])[::-1]) / np.linalg.norm(w)
    optimal = int(np.argmax(tails <= tol / 1.5))
    assert k <= optimal + 20
    return err


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adaptive_eigh_of_a_psd_matrix_matches_numpy(seed):
    n = 200
    lam = 0.7 ** np.arange(n)
    A = _symmetric(n, lam, seed)
    result = randomized_eigh(A, tol=1e-3, seed=seed)
    assert isinstance(result, EighResult)
    _check_against_eigh(A, result, top=8, tol=1e-3)
    assert np.all(result.eigenvalues > -1e-12)
    assert result.matvecs > 0 and result.usage.frames == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_adaptive_eigh_of_an_indefinite_matrix_matches_numpy(seed):
    n = 150
    j = np.arange(n)
    lam = np.where(j % 2 == 0, 1.0, -1.0) * 0.8**j  # alternating signs, decaying magnitudes
    A = _symmetric(n, lam, seed + 10)
    result = randomized_eigh(A, tol=1e-2, seed=seed)
    _check_against_eigh(A, result, top=6, tol=1e-2)
    assert np.any(result.eigenvalues < 0) and np.any(result.eigenvalues > 0)


def test_matvecs_count_the_range_and_the_rayleigh_ritz_products():
    A = _symmetric(120, 0.5 ** np.arange(120), 3)
    result = randomized_eigh(A, GaussianSketch(120, 8, 1), tol=1e-4, power_iters=0, posterior=5)
    k = result.eigenvalues.size
    # posterior 5 + sketches (k columns) + A Q (k columns)
    assert result.matvecs == 5 + 2 * k


def test_an_opu_sketch_gives_the_range():
    A = _symmetric(64, 0.6 ** np.arange(64), 4)
    with OPU("emu://?fidelity=ideal", n_components=60, seed=2, progress=False) as opu:
        result = randomized_eigh(A, OPUSketch(opu, 64, 10), tol=1e-3)
    assert result.usage.frames > 0
    _check_against_eigh(A, result, top=5, tol=1e-3)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="A: expected a symmetric matrix"):
        randomized_eigh(np.triu(np.ones((5, 5))), tol=0.1)
    with pytest.raises(ValueError, match="tol"):
        randomized_eigh(np.eye(5), tol=2.0)
    with pytest.raises(ValueError, match="A: expected a square matrix"):
        randomized_eigh(np.ones((4, 5)), tol=0.1)
