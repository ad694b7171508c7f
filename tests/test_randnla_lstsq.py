"""Sketch-and-precondition least squares: exact to solver tolerance whatever the sketch."""

import numpy as np
import pytest

from opu_hal import OPU
from opu_hal.randnla import GaussianSketch, OPUSketch, lstsq


def problem(m, n, cond, seed=0):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((m, n)))[0]
    V = np.linalg.qr(rng.standard_normal((n, n)))[0]
    return (U * np.logspace(0, -np.log10(cond), n)) @ V.T, rng.standard_normal(m)


def residual_gap(A, b, x):
    r_ref = b - A @ np.linalg.lstsq(A, b, rcond=None)[0]
    return np.linalg.norm((b - A @ x) - r_ref) / np.linalg.norm(r_ref)


@pytest.mark.parametrize("sketch", [None, "gaussian"])
def test_digital_sketch_matches_numpy_on_an_ill_conditioned_problem(sketch):
    A, b = problem(2000, 40, 1e8)
    result = lstsq(A, b, None if sketch is None else GaussianSketch(2000, 160, 1))
    assert residual_gap(A, b, result.x) < 1e-8
    assert result.rounds == 1 and result.iterations < 100  # a well-conditioned system: few iterations


def test_noisy_opu_sketch_is_refined_until_the_preconditioner_works():
    A, b = problem(300, 12, 1e6, seed=1)
    with OPU("emu://", n_components=48, seed=4, progress=False) as opu:
        result = lstsq(A, b, OPUSketch(opu, 300, 48))
    assert residual_gap(A, b, result.x) < 1e-8
    # each round resolves the conditioning down to the camera noise: more than one is needed for 1e6
    assert result.rounds > 1 and result.factor_condition < 10
    assert result.usage.frames > 0


def test_lstsq_rejects_bad_arguments():
    with pytest.raises(ValueError, match="A: expected a tall matrix"):
        lstsq(np.ones((3, 5)), np.ones(3))
    with pytest.raises(ValueError, match="b: expected shape \\(5,\\), got \\(4,\\)"):
        lstsq(np.ones((5, 2)), np.ones(4))
    with pytest.raises(ValueError, match="sketch: expected more than n = 2 columns, got size 2"):
        lstsq(np.ones((5, 2)), np.ones(5), GaussianSketch(5, 2))
