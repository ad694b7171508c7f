"""Trace estimators: unbiasedness and variance reduction against theory; triangle counting."""

from functools import partial

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from opu_hal import OPU
from opu_hal.randnla import GaussianSketch, OPUSketch, hutchinson, hutchpp, na_hutchpp, trace, triangle_count, xtrace
from opu_hal.randnla.trace import hutchpp_sizes, nystrompp, power_nystrompp

N = 80


@pytest.fixture(scope="module")
def psd():
    V = np.linalg.qr(np.random.default_rng(0).standard_normal((N, N)))[0]
    return (V / np.arange(1, N + 1)) @ V.T


@pytest.mark.parametrize("estimator", [hutchinson, hutchpp, partial(hutchpp, power_iters=1), na_hutchpp, xtrace,
                                       nystrompp, power_nystrompp])
def test_estimators_are_unbiased_within_four_standard_errors(estimator, psd):
    truth = np.trace(psd)
    rel = np.array([(estimator(psd, seed=s, matvecs=24).estimate - truth) / truth for s in range(150)])
    assert abs(rel.mean()) < 4 * rel.std() / np.sqrt(rel.size) + 1e-12


def test_deflation_beats_hutchinson_at_equal_matvecs(psd):
    truth = np.trace(psd)

    def median_error(method):
        return np.median([abs(trace(psd, method=method, matvecs=48, seed=s).estimate - truth) for s in range(60)])

    plain = median_error("hutchinson")
    assert median_error("hutch++") < plain / 2
    assert median_error("xtrace") < plain / 2


def test_hutchpp_with_opu_blocks_is_unbiased_and_close_to_digital(psd):
    truth, k, trials = np.trace(psd), 8, 16
    with OPU("emu://", n_components=2 * k * trials, seed=2, progress=False) as opu:
        optical = []
        for t in range(trials):
            result = hutchpp(psd, OPUSketch(opu, N, k, offset=2 * k * t), matvecs=3 * k)
            optical.append((result.estimate - truth) / truth)
        assert result.usage.frames == 0  # one acquisition and one probe served every block
    digital = [(hutchpp(psd, GaussianSketch(N, k, t), matvecs=3 * k).estimate - truth) / truth for t in range(trials)]
    optical = np.array(optical)
    assert abs(optical.mean()) < 4 * optical.std() / np.sqrt(trials)
    assert np.median(np.abs(optical)) < 3 * np.median(np.abs(digital))


def test_power_nystrompp_with_the_opu_matches_digital_hutchpp_on_a_fast_decaying_spectrum():
    # 300 x 300, eigenvalues 1/j^2, 48 matvecs (16 optical, 32 digital). With 16 reference
    # frames in the linear calibration, its affine offset (docs/physics.md section 4.4, a rank-one error
    # of A S) cost plain Hutch++ 2.0x-3.0x the digital error here (device seeds 0-3) and
    # Nyström++ 0.67x-1.01x. With 1,024 and the light following the lit mirrors (docs/physics.md
    # section 1.1), device seeds 0-4: Nyström++ 0.62x-0.91x, plain Hutch++ 1.61x-2.23x (before
    # that change, 0.97x-1.94x: seed 0's 0.97x was the lucky end). All 32 trials share one
    # calibration, so Hutch++'s figure is one draw of its offset, not an average. The median of
    # 32 trials has a relative spread of ~1.17 / sqrt(32) = 21 % (400 digital trials: 6 %), so
    # the 1.5x bound sits ~2.4 spreads above Nyström++'s typical 1x; Hutch++ is bounded at 2.5x.
    n, k, trials = 300, 16, 32
    V = np.linalg.qr(np.random.default_rng(0).standard_normal((n, n)))[0]
    A = (V / np.arange(1, n + 1) ** 2) @ V.T
    truth = np.trace(A)
    digital = [(hutchpp(A, GaussianSketch(n, k, 1000 + t), matvecs=3 * k).estimate - truth) / truth for t in range(400)]
    nys, hpp = [], []
    with OPU("emu://", n_components=2 * k * trials, seed=0, progress=False) as opu:
        for t in range(trials):
            sketch = OPUSketch(opu, n, k, offset=2 * k * t)
            result = trace(A, sketch, method="power-nystrom++", matvecs=3 * k)
            assert result.matvecs == 3 * k
            nys.append((result.estimate - truth) / truth)
            hpp.append((hutchpp(A, sketch, matvecs=3 * k).estimate - truth) / truth)
    nys = np.array(nys)
    assert abs(nys.mean()) < 4 * nys.std() / np.sqrt(trials)
    assert np.median(np.abs(nys)) < 1.5 * np.median(np.abs(digital))
    assert np.median(np.abs(hpp)) < 2.5 * np.median(np.abs(digital))  # the same optical sketches


def test_hutchpp_with_one_digital_power_step_on_the_opu_is_within_2x_of_digital_hutchpp():
    # 300 x 300, eigenvalues 1/j^2, 48 matvecs: with power_iters=1, 14 optical columns, 14 + 14
    # digital products and 6 Hutchinson vectors. Plain OPU Hutch++ is 2.0x-3.0x digital
    # Hutch++ here; one power step gave 0.99x-1.60x (device seeds 0-3, 64 trials). The
    # median of 64 trials has a relative spread of ~1.17 / sqrt(64) = 15 % (400 digital
    # trials: 6 %), so the 2x bound (the target) sits ~2.9 spreads above the typical 1.3x.
    n, matvecs, trials = 300, 48, 64
    k, m = hutchpp_sizes(matvecs, 1)
    assert (k, m) == (14, 6)
    V = np.linalg.qr(np.random.default_rng(0).standard_normal((n, n)))[0]
    A = (V / np.arange(1, n + 1) ** 2) @ V.T
    truth = np.trace(A)
    digital = [(hutchpp(A, GaussianSketch(n, 16, 1000 + t), matvecs=matvecs).estimate - truth) / truth
               for t in range(400)]
    optical = []
    with OPU("emu://", n_components=2 * k * trials, seed=0, progress=False) as opu:
        for t in range(trials):
            result = hutchpp(A, OPUSketch(opu, n, k, offset=2 * k * t), matvecs=matvecs, power_iters=1)
            assert result.matvecs == matvecs
            optical.append((result.estimate - truth) / truth)
    optical = np.array(optical)
    assert abs(optical.mean()) < 4 * optical.std() / np.sqrt(trials)
    assert np.median(np.abs(optical)) < 2 * np.median(np.abs(digital))


@pytest.mark.parametrize("power_iters", [1, 2])
@pytest.mark.parametrize("matvecs", [5, 17, 48, 96, 101])
def test_hutchpp_with_power_steps_spends_exactly_matvecs_products(power_iters, matvecs, psd):
    # 5 with q = 1: k = 1, m = 2 > k, so the test vectors come from two fresh blocks
    columns = []

    def product(X):
        X = np.asarray(X).reshape(N, -1)
        columns.append(X.shape[1])
        return psd @ X

    counting = LinearOperator((N, N), matvec=product, matmat=product, dtype=np.float64)
    k, m = hutchpp_sizes(matvecs, power_iters)
    assert k >= 1 and m >= 1
    result = hutchpp(counting, GaussianSketch(N, k, 3), matvecs=matvecs, power_iters=power_iters)
    assert result.matvecs == matvecs == sum(columns) == (power_iters + 2) * k + m
    assert hutchpp_sizes(96, 1) == (28, 12)


@pytest.mark.parametrize("estimator, matvecs", [(hutchpp, 3 * N), (power_nystrompp, 3 * N), (nystrompp, 2 * N),
                                                (partial(hutchpp, power_iters=1), 275)])
def test_exact_when_the_sketch_spans_the_whole_space(estimator, matvecs, psd):
    # k = n: Q spans R^n, the deflated part is zero and the estimate is tr(A) exactly
    assert estimator(psd, matvecs=matvecs).estimate == pytest.approx(np.trace(psd), rel=1e-10)


def test_triangle_count_is_trace_of_cube_over_six_with_digital_and_optical_range():
    rng = np.random.default_rng(5)
    upper = sp.triu(sp.random(40, 40, density=0.3, random_state=rng), k=1)
    adjacency = sp.csr_array(((upper + upper.T) > 0).astype(np.float64))
    dense = adjacency.toarray()
    truth = np.trace(dense @ dense @ dense) / 6
    assert truth > 0
    assert triangle_count(adjacency, matvecs=120).estimate == pytest.approx(truth, rel=1e-8)
    with OPU("emu://", n_components=80, seed=2, progress=False) as opu:
        result = triangle_count(adjacency, OPUSketch(opu, 40, 40), matvecs=120)
    assert result.estimate == pytest.approx(truth, rel=1e-8)  # a noisy sketch still spans R^40
    assert result.usage.frames > 0
    sampled = [triangle_count(adjacency, matvecs=30, seed=s).estimate for s in range(40)]
    assert abs(np.mean(sampled) - truth) < 4 * np.std(sampled) / np.sqrt(40)


def test_trace_rejects_bad_arguments(psd):
    with pytest.raises(ValueError, match="A: expected a square matrix, got shape \\(3, 4\\)"):
        trace(np.ones((3, 4)))
    with pytest.raises(ValueError, match="method: expected one of"):
        trace(psd, method="girard")
    with pytest.raises(ValueError, match="sketch: expected size 8 for this number of matvecs, got 5"):
        hutchpp(psd, GaussianSketch(N, 5), matvecs=24)
    with pytest.raises(ValueError, match="adjacency: expected a symmetric matrix of 0 and 1"):
        triangle_count(np.array([[0.0, 2.0], [2.0, 0.0]]), matvecs=6)
    with pytest.raises(ValueError, match="matvecs: expected an integer from 3"):
        hutchpp(psd, matvecs=2)
    with pytest.raises(ValueError, match="matvecs: expected an integer from 4 to inf, got 3"):
        hutchpp(psd, matvecs=3, power_iters=1)
    with pytest.raises(ValueError, match="power_iters: expected an integer from 0 to inf, got -1"):
        hutchpp(psd, power_iters=-1)
    with pytest.raises(TypeError, match="power_iters: expected an integer, got float 1.0"):
        hutchpp(psd, power_iters=1.0)
    with pytest.raises(ValueError, match="sketch: expected size 28 for this number of matvecs, got 32"):
        hutchpp(psd, GaussianSketch(N, 32), matvecs=96, power_iters=1)
    indefinite = psd - 2 * np.trace(psd) / N * np.eye(N)
    for estimator in (nystrompp, power_nystrompp):
        with pytest.raises(ValueError, match="A: expected a symmetric positive semi-definite matrix, got Ritz value"):
            estimator(indefinite, matvecs=24)
        with pytest.raises(ValueError, match="A: expected a symmetric positive semi-definite matrix, got \\|Q\\^T A Q"):
            estimator(psd + np.triu(psd, 1), matvecs=24)


def test_nystrompp_is_the_published_two_block_estimator(psd):
    # Persson, Cortinovis, Kressner 2022: k = matvecs / 2 vectors build A_N = (A W)(W^T A W)^+ (A W)^T,
    # k more estimate tr(A - A_N); on a matrix of rank r <= k, A_N = A and the estimate is exact
    V = np.linalg.qr(np.random.default_rng(1).standard_normal((N, N)))[0][:, :10]
    low = (V * np.arange(1, 11)) @ V.T
    result = nystrompp(low, matvecs=24)
    assert result.matvecs == 24
    assert result.estimate == pytest.approx(np.trace(low), rel=1e-9)
    # the same algorithm by hand, with the sketch's own vectors
    W = GaussianSketch(N, 12, 7)
    G = W.fresh().realize()
    G *= np.sqrt(N) / np.linalg.norm(G, axis=0)
    Y = psd @ W.realize()
    A_N = Y @ np.linalg.pinv(W.realize().T @ Y) @ Y.T
    by_hand = np.trace(A_N) + np.trace(G.T @ (psd - A_N) @ G) / 12
    assert nystrompp(psd, W, matvecs=24).estimate == pytest.approx(by_hand, rel=1e-9)


@pytest.mark.parametrize("estimator, spectrum", [(hutchpp, lambda j: 1.0 / j), (nystrompp, lambda j: 1.0 / j**2),
                                                 (hutchinson, lambda j: 0.9**j)])
def test_95_percent_intervals_cover_the_trace_at_their_nominal_rate(estimator, spectrum):
    # 200 trials, digital Gaussian sketch, 48 matvecs (16 Hutchinson terms for Hutch++, 24 for
    # Nystrom++, 48 for Hutchinson): coverage is binomial(200, 0.95), 95 % +- 1.5 %, so 90-99 %
    # leaves over 3 standard deviations each side
    n = 200
    V = np.linalg.qr(np.random.default_rng(0).standard_normal((n, n)))[0]
    A = (V * spectrum(np.arange(1, n + 1))) @ V.T
    truth = np.trace(A)
    covered = []
    for seed in range(200):
        result = estimator(A, matvecs=48, seed=seed)
        low, high = result.interval(0.95)
        covered.append(low <= truth <= high)
        assert result.std_error > 0 and result.dof >= 15
    assert 0.90 <= np.mean(covered) <= 0.99


def test_interval_needs_a_standard_error_and_a_confidence_in_0_1(psd):
    with pytest.raises(ValueError, match="confidence: this estimate has no standard error"):
        xtrace(psd, matvecs=24).interval()
    with pytest.raises(ValueError, match="confidence: expected"):
        hutchpp(psd, matvecs=24).interval(1.5)
    wide, narrow = hutchpp(psd, matvecs=24).interval(0.99), hutchpp(psd, matvecs=24).interval(0.5)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]
