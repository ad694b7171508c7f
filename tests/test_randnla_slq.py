"""Stochastic Lanczos quadrature: tr f(A) and log det A against numpy.linalg.eigh."""

import numpy as np
import pytest

from opu_hal import OPU
from opu_hal.randnla import GaussianSketch, OPUSketch, TraceResult, logdet, slq


def _psd(n, eigenvalues, seed):
    V = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))[0]
    return (V * eigenvalues) @ V.T


@pytest.fixture(scope="module")
def spd():
    lam = np.linspace(0.1, 10.0, 120)
    return _psd(120, lam, 0), lam


def test_logdet_is_within_four_standard_errors_of_the_exact_value(spd):
    A, lam = spd
    exact = float(np.sum(np.log(lam)))
    result = logdet(A, probes=40, steps=25, seed=1)
    assert isinstance(result, TraceResult)
    assert result.std_error > 0 and result.dof == 39
    assert abs(result.estimate - exact) < 4 * result.std_error
    assert result.matvecs == 40 * 25


def test_a_callable_f_gives_tr_f_of_a(spd):
    A, lam = spd
    result = slq(A, np.sqrt, probes=40, steps=25, seed=2)
    assert abs(result.estimate - np.sum(np.sqrt(lam))) < 4 * result.std_error
    # for a polynomial of degree < 2 steps the quadrature is exact: SLQ is then Hutchinson's estimator
    G = GaussianSketch(120, 16, 3).realize()
    G *= np.sqrt(120) / np.linalg.norm(G, axis=0)
    hutch = np.mean(np.einsum("ij,ij->j", G, A @ (A @ G)))
    quad = slq(A, np.square, GaussianSketch(120, 16, 3), steps=3)
    assert quad.estimate == pytest.approx(hutch, rel=1e-10)


def test_95_percent_intervals_cover_the_log_determinant_at_their_nominal_rate():
    # coverage of 200 independent intervals is binomial(200, 0.95): 95 % +- 1.5 %, so 90-99 %
    lam = 0.5 + np.random.default_rng(5).gamma(2.0, 1.0, 60)
    A = _psd(60, lam, 6)
    exact = float(np.sum(np.log(lam)))
    covered = 0
    for trial in range(200):
        low, high = logdet(A, probes=20, steps=15, seed=100 + trial).interval(0.95)
        covered += low <= exact <= high
    assert 180 <= covered <= 198


def test_an_opu_sketch_supplies_the_probes():
    lam = np.linspace(0.5, 4.0, 32)
    A = _psd(32, lam, 7)
    with OPU("emu://?fidelity=ideal", n_components=24, seed=1, progress=False) as opu:
        result = logdet(A, OPUSketch(opu, 32, 24), steps=12)
    assert result.usage.frames > 0
    assert abs(result.estimate - np.sum(np.log(lam))) < 4 * result.std_error


def test_bad_input_is_named(spd):
    A, _ = spd
    with pytest.raises(TypeError, match="f: expected a callable"):
        slq(A, 3.0)
    with pytest.raises(ValueError, match="steps"):
        slq(A, np.log, steps=0)
    with pytest.raises(ValueError, match="A: expected a positive definite matrix"):
        logdet(-np.eye(10), probes=4, steps=3)
