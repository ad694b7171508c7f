"""One definition of ``matvecs`` across RandNLA, checked by counting the products a LinearOperator sees.

``matvecs`` counts every product of A or A^T with a vector that an algorithm makes,
optical or digital, the sketch ``A S`` included (k columns; a LinearOperator sketched
optically first gives up its m rows, m products with A^T). The operator below counts the
columns it is applied to, so the reported figure must equal its count.
"""

import numpy as np
import pytest
from scipy.sparse.linalg import LinearOperator

from opu_hal import OPU
from opu_hal.randnla import (
    GaussianSketch,
    OPUSketch,
    block_krylov_svd,
    hutchinson,
    hutchpp,
    na_hutchpp,
    nystrom,
    nystrompp,
    power_nystrompp,
    range_finder,
    rsvd,
    single_view,
    xtrace,
)

rng = np.random.default_rng(2)
M, N = 50, 30
A = rng.standard_normal((M, N)) * 0.8 ** np.arange(N)
P = A.T @ A


class Counting(LinearOperator):
    """``matrix`` as a LinearOperator that counts the vectors it multiplies (A and A^T alike)."""

    def __init__(self, matrix):
        super().__init__(np.float64, matrix.shape)
        self.matrix = matrix
        self.count = 0

    def _matmat(self, X):
        self.count += X.shape[1]
        return self.matrix @ X

    def _rmatmat(self, X):
        self.count += X.shape[1]
        return self.matrix.T @ X

    def _matvec(self, x):
        return self._matmat(x.reshape(-1, 1)).ravel()

    def _rmatvec(self, x):
        return self._rmatmat(x.reshape(-1, 1)).ravel()


CASES = {
    "range_finder": (A, lambda op: range_finder(op, GaussianSketch(N, 8), power_iters=1)),
    "range_finder adaptive": (A, lambda op: range_finder(op, tol=0.2, power_iters=1)),
    "rsvd": (A, lambda op: rsvd(op, 5, GaussianSketch(N, 8), power_iters=2)),
    "nystrom": (P, lambda op: nystrom(op, 5, GaussianSketch(N, 8))),
    "block_krylov_svd": (A, lambda op: block_krylov_svd(op, 5, GaussianSketch(N, 8), iters=2)),
    "single_view": (A, lambda op: single_view(op, 3)),
    "hutchinson": (P, lambda op: hutchinson(op, matvecs=12)),
    "hutchpp": (P, lambda op: hutchpp(op, matvecs=24)),
    "hutchpp power": (P, lambda op: hutchpp(op, matvecs=24, power_iters=1)),
    "nystrompp": (P, lambda op: nystrompp(op, matvecs=24)),
    "power_nystrompp": (P, lambda op: power_nystrompp(op, matvecs=24)),
    "na_hutchpp": (P, lambda op: na_hutchpp(op, matvecs=24)),
    "xtrace": (P, lambda op: xtrace(op, matvecs=24)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reported_matvecs_are_the_products_the_operator_saw(name):
    matrix, call = CASES[name]
    op = Counting(matrix)
    result = call(op)
    assert result.matvecs == op.count > 0


def test_rsvd_spends_sketch_power_steps_and_projection_and_no_error_estimate():
    # k sketch columns, 2 q k power-step products, k for Q^T A: no posterior test vectors
    op = Counting(A)
    result = rsvd(op, 5, GaussianSketch(N, 8), power_iters=2)
    assert op.count == result.matvecs == 8 + 2 * 2 * 8 + 8


def test_range_finder_estimates_its_error_only_when_asked():
    op = Counting(A)
    quiet = range_finder(op, GaussianSketch(N, 8), posterior=None)
    assert quiet.error_estimate is None and op.count == quiet.matvecs == 8
    asked = range_finder(A, GaussianSketch(N, 8), posterior=10)
    exact = np.linalg.norm(A - asked.Q @ (asked.Q.T @ A)) / np.linalg.norm(A)
    assert asked.matvecs == 18 and 0.3 * exact < asked.error_estimate < 3 * exact


def test_nystrom_counts_the_sketch_exact_or_optical():
    assert nystrom(P, 5, GaussianSketch(N, 8)).matvecs == 8  # A S, and the core S^T (A S) is free
    with OPU("emu://?fidelity=ideal", n_components=8, seed=0, progress=False) as opu:
        op = Counting(P)
        result = nystrom(op, 5, OPUSketch(opu, N, 8))
    assert result.matvecs == op.count == N + 8  # the rows of the operator (N products), then A Q
