"""Range finder, RSVD, Nyström and single-view approximation against the optimal (exact SVD) errors."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, aslinearoperator
from threadpoolctl import threadpool_limits

from opu_hal import OPU
from opu_hal.randnla import (
    GaussianSketch,
    OPUSketch,
    SingleViewSketch,
    block_krylov_svd,
    nystrom,
    range_finder,
    rsvd,
    single_view,
)


def spectral_matrix(m, n, sigma, seed=0):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((m, n)))[0]
    V = np.linalg.qr(rng.standard_normal((n, n)))[0]
    return (U * sigma) @ V.T


def ratio(A, result, rank):
    s = np.linalg.svd(A, compute_uv=False)
    U, sv, Vt = result
    return np.linalg.norm(A - (U * sv) @ Vt) / np.sqrt(np.sum(s[rank:] ** 2))


@pytest.fixture(scope="module")
def opu():
    with OPU("emu://", n_components=40, seed=1, progress=False) as device:
        yield device


def test_rsvd_digital_is_near_optimal_and_the_same_for_every_matrix_type():
    A = spectral_matrix(300, 120, 1.0 / np.arange(1, 121) ** 2)
    dense = rsvd(A, 10, GaussianSketch(120, 20, 0), power_iters=1)
    assert ratio(A, dense, 10) < 1.05  # HMT 2011: q = 1 with p = 10 is within a few % on fast decay
    for other in (sp.csr_array(A), aslinearoperator(A)):
        res = rsvd(other, 10, GaussianSketch(120, 20, 0), power_iters=1)
        np.testing.assert_allclose(res.s, dense.s, rtol=1e-10)
        np.testing.assert_allclose(np.abs(res.U.T @ dense.U), np.eye(10), atol=1e-8)
    assert dense.usage.frames == 0


def test_rsvd_with_the_8bit_opu_and_one_digital_power_iteration_is_near_optimal(opu):
    A = spectral_matrix(150, 80, 0.7 ** np.arange(80))
    sketch = OPUSketch(opu, 80, 15)
    result = rsvd(A, 5, sketch, power_iters=1)
    # the optical noise spends a few oversampling columns; the digital iteration restores the range
    assert ratio(A, result, 5) < 1.05
    assert result.usage.frames > 0 and result.usage.device_time_s > 0
    naive = rsvd(A, 5, sketch, power_iters=0)
    assert ratio(A, naive, 5) > ratio(A, result, 5)


def test_adaptive_range_finder_meets_its_tolerance_and_estimates_its_error():
    A = spectral_matrix(200, 150, 0.9 ** np.arange(150))
    found = range_finder(A, tol=1e-3, seed=2)
    true = np.linalg.norm(A - found.Q @ (found.Q.T @ A)) / np.linalg.norm(A)
    assert true < 2e-3
    assert 0.3 < found.error_estimate / true < 3  # 10 Gaussian vectors: chi^2_10 spread
    np.testing.assert_allclose(found.Q.T @ found.Q, np.eye(found.Q.shape[1]), atol=1e-10)
    fixed = range_finder(A, rank=10, seed=2)
    assert fixed.Q.shape == (200, 20)


def test_nystrom_matches_the_psd_optimum_digitally_and_with_the_opu(opu):
    n = 100
    V = np.linalg.qr(np.random.default_rng(3).standard_normal((n, n)))[0]
    lam = 0.6 ** np.arange(n)
    A = (V * lam) @ V.T
    optimal = np.sqrt(np.sum(lam[8:] ** 2))
    for sketch in (GaussianSketch(n, 18, 0), OPUSketch(opu, n, 18)):
        U, ev = nystrom(A, 8, sketch)
        assert np.linalg.norm(A - (U * ev) @ U.T) / optimal < 1.2
        np.testing.assert_allclose(ev[:3], lam[:3], rtol=5e-3)


def test_single_view_sketch_is_linear_in_its_updates_and_near_optimal():
    A = spectral_matrix(120, 90, np.r_[np.ones(5), 0.01 * np.ones(85)])
    whole = single_view(A, 5, seed=4)
    # Tropp et al. 2017 (Thm 5.1), k = 2r + 1, l = 2k + 1: expected squared error of the rank-k
    # reconstruction <= (1 + k/(l-k-1)) (1 + r/(k-r-1)) = 4x optimal; truncation to rank r adds at most as much
    assert ratio(A, whole, 5) < 3
    stream = SingleViewSketch(A.shape, 5, seed=4)
    half = A.copy()
    half[60:] = 0
    stream.update(half)
    stream.update(A - half)
    np.testing.assert_allclose(stream.approximation().s, whole.s, rtol=1e-10)


def test_lowrank_rejects_bad_arguments():
    A = np.ones((20, 10))
    with pytest.raises(ValueError, match="rank: expected an integer from 1 to 10, got 11"):
        rsvd(A, 11)
    with pytest.raises(ValueError, match="sketch: expected a sketch of 10 features, got 9"):
        rsvd(A, 2, GaussianSketch(9, 4))
    with pytest.raises(TypeError, match="A: expected a numpy array, a scipy sparse matrix"):
        rsvd([[1.0]], 1)
    with pytest.raises(ValueError, match="A: expected a square matrix"):
        nystrom(A, 2)
    with pytest.raises(ValueError, match="tol: expected a relative Frobenius error in \\(0, 1\\)"):
        range_finder(A, tol=2.0)
    with pytest.raises(ValueError, match="A: expected finite values"):
        rsvd(np.full((4, 4), np.inf), 1)


def test_single_view_with_a_noisy_drifting_opu_uses_one_realization_of_psi():
    # the formula X = (Psi Q)^+ W holds only if W = Psi A and Psi Q use the same Psi; a
    # physical emulated OPU with medium drift gives each acquisition new noise and a moved
    # medium, so the result must equal the computation from one realization of Psi
    # (square A: both sketches use one fit of the OPU, which keeps its realized matrix)
    A = spectral_matrix(32, 32, 0.7 ** np.arange(32))
    with OPU("emu://?drift_tau_s=0.5", n_components=40, seed=2, progress=False) as device:
        range_sketch = OPUSketch(device, 32, 7)
        corange_sketch = OPUSketch(device, 32, 15, offset=7)
        stream = SingleViewSketch(A.shape, 3, range_sketch, corange_sketch)
        stream.update(A)
        result = stream.approximation()
        T = corange_sketch.realize()  # kept by the sketch: the same numbers, no new frames
    Q = np.linalg.qr(stream.Y)[0]
    X = np.linalg.lstsq(T.T @ Q, T.T @ A, rcond=None)[0]
    Ux, s, Vt = np.linalg.svd(X, full_matrices=False)
    np.testing.assert_allclose(result.s, s[:3], rtol=1e-9)
    np.testing.assert_allclose((result.U * result.s) @ result.Vt, (Q @ Ux[:, :3] * s[:3]) @ Vt[:3], atol=1e-9)
    assert result.matvecs == 7 + 15 and result.usage.frames > 0


class CountingPasses(LinearOperator):
    """``matrix`` as a LinearOperator counting passes over it (each block product with A or A^T is one)."""

    def __init__(self, matrix):
        super().__init__(np.float64, matrix.shape)
        self.matrix, self.passes = matrix, 0

    def _matmat(self, X):
        self.passes += 1
        return self.matrix @ X

    def _rmatmat(self, X):
        self.passes += 1
        return self.matrix.T @ X


def test_block_krylov_beats_rsvd_at_equal_passes_on_the_1_over_j_spectrum():
    # Musco & Musco 2015: the whole Krylov space [A S, A A^T A S] against rsvd's last block
    # A A^T A S, both in 4 passes over A (sketch, A^T, A, Q^T A); 300 x 150, rank 10, block 20
    with threadpool_limits(1):  # small BLAS products: one thread avoids oversubscription on a loaded machine
        n, k = 150, 10
        A = spectral_matrix(300, n, 1.0 / np.arange(1, n + 1))
        s = np.linalg.svd(A, compute_uv=False)
        for seed in range(3):
            krylov_op, rsvd_op = CountingPasses(A), CountingPasses(A)
            krylov = block_krylov_svd(krylov_op, k, iters=1, seed=seed)
            power = rsvd(rsvd_op, k, power_iters=1, seed=seed)
            assert krylov_op.passes == rsvd_op.passes == 4
            assert krylov.matvecs == 20 + 2 * 20 + 2 * 20
            assert ratio(A, krylov, k) <= 1.01 and ratio(A, power, k) <= 1.02
            assert ratio(A, krylov, k) < ratio(A, power, k)
        deeper = block_krylov_svd(A, k, iters=2)
        np.testing.assert_allclose(deeper.s, s[:k], rtol=1e-4)  # the top singular values of the exact SVD
        assert ratio(A, deeper, k) < 1.0001


def test_block_krylov_with_the_opu_sketch_is_near_optimal(opu):
    A = spectral_matrix(100, 64, 0.85 ** np.arange(64))
    result = block_krylov_svd(A, 8, opu, oversampling=4, iters=1)
    assert result.usage.frames > 0 and ratio(A, result, 8) < 1.05
