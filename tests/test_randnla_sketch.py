"""Sketch operators: statistics of the test matrices, consistency, independence of blocks, cost accounting."""

import pickle
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from opu_hal import OPU
from opu_hal.randnla import CountSketch, GaussianSketch, OPUSketch, SparseSignSketch, SRHTSketch, make_sketch

DIGITAL = [GaussianSketch, SparseSignSketch, SRHTSketch, CountSketch]


@pytest.fixture(scope="module")
def opu():
    with OPU("emu://", n_components=96, seed=3, progress=False) as device:
        yield device


@pytest.mark.parametrize("kind", DIGITAL)
def test_digital_sketch_has_unit_variance_entries_and_applies_its_matrix(kind):
    sketch = kind(256, 64, seed=1)
    S = sketch.realize()
    assert S.shape == (256, 64)
    # E[S S^T] = size * I: the mean squared entry is 1 (exact for SRHT, +- 4 s.e. for the random ones)
    assert abs(np.mean(S**2) - 1) < 4 * np.sqrt(2 / S.size) + 0.05
    assert abs(np.mean(S)) < 4 / np.sqrt(S.size)
    X = np.random.default_rng(0).standard_normal((10, 256))
    np.testing.assert_allclose(sketch.apply(X), X @ S, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(sketch.apply(sp.csr_array(X)), X @ S, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", DIGITAL)
def test_digital_sketch_is_reproducible_fresh_is_independent_and_pickles_as_recipe(kind):
    a, b = kind(128, 32, seed=5), kind(128, 32, seed=5)
    np.testing.assert_array_equal(a.realize(), b.realize())
    fresh = a.fresh().realize()
    corr = np.corrcoef(a.realize().ravel(), fresh.ravel())[0, 1]
    assert abs(corr) < 4 / np.sqrt(fresh.size)
    clone = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(clone.realize(), a.realize())
    assert a.usage().frames == 0


@pytest.mark.parametrize("n_features, size", [(1, 1), (100, 37), (256, 256), (1000, 64)])
def test_srht_realize_equals_the_sketch_applied_to_the_identity(n_features, size):
    sketch = SRHTSketch(n_features, size, seed=7)
    S = sketch.realize()
    np.testing.assert_array_equal(S, sketch.apply(np.eye(n_features)))  # exact: entries are +-1
    assert set(np.unique(S)) <= {-1.0, 1.0}


def test_srht_realize_needs_no_square_intermediate():
    # n = 100,000, k = 64: the result is 51 MB; an n x n float64 identity would be 80 GB
    sketch = SRHTSketch(100_000, 64, seed=2)
    tracemalloc.start()
    try:
        S = sketch.realize()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert S.shape == (100_000, 64)
    assert peak < 200e6
    rows = [0, 1, 65_535, 99_999]  # spot-check against the transform of one-hot rows
    one_hot = np.zeros((len(rows), 100_000))
    one_hot[np.arange(len(rows)), rows] = 1.0
    np.testing.assert_array_equal(S[rows], sketch.apply(one_hot))


def test_countsketch_is_its_explicit_sparse_matrix_realized_without_an_identity():
    sketch = CountSketch(100_000, 64, seed=4)
    S = sketch.matrix  # scipy sparse (n_features, size): one +-sqrt(size) per row
    assert sp.issparse(S) and S.shape == (100_000, 64) and S.nnz == 100_000
    assert set(np.unique(S.data)) == {-8.0, 8.0}
    X = sp.random_array((5, 100_000), density=1e-3, random_state=0, format="csr")
    np.testing.assert_array_equal(sketch.apply(X), (X @ S).toarray())
    tracemalloc.start()
    try:
        dense = sketch.realize()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100e6  # the result is 51 MB; an n x n identity would be 80 GB
    np.testing.assert_array_equal(dense, S.toarray())
    assert isinstance(make_sketch("count", 50, 8, seed=1), CountSketch)


def test_countsketch_is_a_subspace_embedding():
    # E ||U^T S S^T U / k - I||_F^2 <= 2 d^2 / k for orthonormal U (n, d) (Woodruff 2014, Thm 2.9 proof):
    # d = 4, k = 2,000 gives P(||.||_F > 0.5) <= 0.064 per seed by Markov's inequality
    d, k = 4, 2000
    U = np.linalg.qr(np.random.default_rng(0).standard_normal((20_000, d)))[0]
    distortions = []
    for seed in range(10):
        B = CountSketch(20_000, k, seed=seed).apply(U.T)  # (d, k)
        distortions.append(np.linalg.norm(B @ B.T / k - np.eye(d)))
    assert sum(e > 0.5 for e in distortions) <= 3
    assert np.mean(np.square(distortions)) < 2 * d**2 / k * 3  # the expectation, with room for 10 samples


def test_sketch_rejects_bad_input_naming_it():
    sketch = GaussianSketch(10, 4)
    with pytest.raises(ValueError, match=r"X: expected a 2-D array of shape \(rows, 10\), got shape \(3, 9\)"):
        sketch.apply(np.ones((3, 9)))
    with pytest.raises(ValueError, match="X: expected finite"):
        sketch.apply(np.full((2, 10), np.nan))
    with pytest.raises(TypeError, match="X: expected a numpy array"):
        sketch.apply("abc")
    with pytest.raises(ValueError, match="kind: expected one of"):
        make_sketch("fourier", 10, 4)
    with pytest.raises(ValueError, match="size: expected an integer from 1"):
        GaussianSketch(10, 0)
    with pytest.raises(TypeError, match="opu: expected an opu_hal.OPU"):
        OPUSketch(object(), 10, 4)


def test_opu_sketch_is_a_unit_variance_linear_projection_with_counted_frames(opu):
    sketch = OPUSketch(opu, 64, 48)
    X = np.random.default_rng(1).standard_normal((40, 64))
    before = sketch.usage()
    Y = sketch.apply(X)
    spent = sketch.usage() - before
    assert Y.shape == (40, 48)
    # E|z|^2 = ||x||^2 per output (docs/api.md section 7): within 15 % over 40 x 48 outputs
    assert abs(np.mean(Y**2) / np.mean(np.sum(X**2, axis=1)) - 1) < 0.15
    # 4 * bits frames at most per 8-bit vector, at least the two of a binary one
    assert 2 * 40 <= spent.frames <= 32 * 40 + 64
    assert spent.device_time_s > 0
    # the realized matrix predicts the optical products to the camera's noise (docs/physics.md section 4.7: under 8 % per 8-bit vector)
    S = sketch.realize()
    assert abs(np.mean(S**2) - 1) < 0.15
    assert np.linalg.norm(Y - X @ S) / np.linalg.norm(Y) < 0.15


def test_opu_blocks_are_independent_and_share_the_frames_of_one_acquisition(opu):
    first = OPUSketch(opu, 64, 32)
    second = first.fresh()
    assert second.offset == 32
    X = np.random.default_rng(2).standard_normal((20, 64))
    first.apply(X)
    before = second.usage()
    second.apply(X)
    assert (second.usage() - before).frames == 0  # every output was read in the same frames
    corr = np.corrcoef(first.realize().ravel(), second.realize().ravel())[0, 1]
    assert abs(corr) < 4 / np.sqrt(64 * 32)
    with pytest.raises(ValueError, match="offset: expected offset \\+ size <= n_components = 96"):
        second.fresh().fresh()
