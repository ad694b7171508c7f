"""The structured (FFT-based) medium against theory and against the dense medium (docs/physics.md section 1.7).

R = sqrt(L/N) P_out F D3 F D2 F D1 P_in (firmware_sim/medium_structured.py). Bounds are
derived from the sample sizes, stated next to each assertion; the seeds are fixed, so the
tests are deterministic.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.fft
from scipy import stats

from firmware_sim import EmulatorParams, OPUModel
from firmware_sim.medium import resolve_medium
from firmware_sim.medium_dense import DenseMedium
from firmware_sim.medium_structured import StructuredMedium
from opu_hal import OPU, SaturationWarning


def binary(rng: np.random.Generator, batch: int, n: int, density: float = 0.5) -> np.ndarray:
    return (rng.random((batch, n)) < density).astype(np.uint8)


@pytest.fixture
def structured():
    medium = StructuredMedium(seed=1)
    yield medium
    medium.close()


def test_mean_power_of_an_entry_is_one_over_n(structured):
    # M = 900 < L = 1,024: the block is not a whole unitary matrix, so its mean is a
    # statistic, not an identity. Each column's power over 900 of 1,024 outputs varies by
    # about sqrt((1 - M/L) / M) ~ 1.2 % around M/L; over 1,000 columns, ~ 0.04 %.
    n, m = 1000, 900
    assert structured.length(n, m) == 1024
    r = structured.matrix(m, n).astype(np.complex128)
    assert abs(np.mean(np.abs(r) ** 2) * n - 1) < 0.01
    # Any block, through unit vectors: columns 100..199 equal those of the whole matrix.
    np.testing.assert_allclose(structured.matrix(m, n, np.arange(100, 200)), r[:, 100:200], atol=1e-6)


def test_speckle_of_binary_inputs_is_exponential_with_contrast_one(structured):
    n, m = 2048, 40_000
    x = binary(np.random.default_rng(2), 3, n)
    y = np.abs(structured.field(x, m).astype(np.complex128)) ** 2
    for row, xi in zip(y, x):
        scale = xi.sum() / n  # E|(R x)_j|^2 = |x| / N
        # Contrast of m exponential samples: standard error 1/sqrt(m) = 0.5 %; 3 % is 6 of them.
        assert abs(row.std() / row.mean() - 1) < 0.03
        # KS against the exact law Exp(scale); 1.95/sqrt(m) is the critical value at level 0.001.
        assert stats.kstest(row / scale, "expon").statistic < 1.95 / math.sqrt(m)


@pytest.mark.parametrize("shared", [0.0, 0.3, 0.6, 0.9])
def test_output_correlation_of_two_inputs_is_their_squared_overlap(structured, shared):
    # x2 keeps a fraction `shared` of x1's lit features and lights as many new ones elsewhere:
    # for circular Gaussian fields, corr(|R x1|^2, |R x2|^2) = <x1,x2>^2 / (|x1|^2 |x2|^2).
    n, m = 2048, 40_000
    rng = np.random.default_rng(3)
    lit = rng.permutation(n)
    x1, x2 = np.zeros(n, np.uint8), np.zeros(n, np.uint8)
    x1[lit[:600]] = 1
    kept = int(shared * 600)
    x2[lit[:kept]] = 1
    x2[lit[600 : 600 + 600 - kept]] = 1
    y = np.abs(structured.field(np.stack([x1, x2]), m).astype(np.complex128)) ** 2
    a, b = x1.astype(np.int64), x2.astype(np.int64)
    expected = float(a @ b) ** 2 / float((a @ a) * (b @ b))
    # Sample correlation of m pairs: standard error <= 1/sqrt(m) = 0.005; 0.02 is 4 of them.
    assert abs(np.corrcoef(y[0], y[1])[0, 1] - expected) < 0.02


def test_the_field_of_one_mirror_is_circular_gaussian(structured):
    n, m = 2048, 4096
    columns = structured.matrix(m, n, np.arange(0, n, 128)).ravel().astype(np.complex128)  # 16 mirrors
    re, im = columns.real, columns.imag
    # 65,536 samples: kurtosis standard error sqrt(24/65,536) = 0.019 (0.1 is 5 of them);
    # correlation 1/sqrt(65,536) = 0.004; variance ratio sqrt(4/65,536) = 0.008.
    assert abs(stats.kurtosis(re, fisher=False) - 3) < 0.1
    assert abs(stats.kurtosis(im, fisher=False) - 3) < 0.1
    assert abs(np.corrcoef(re, im)[0, 1]) < 0.02
    assert abs(re.var() / im.var() - 1) < 0.04
    assert abs(np.mean(np.abs(columns) ** 2) * n - 1) < 0.01


def test_dense_and_structured_share_first_and_second_moments():
    # Exact for both in expectation: E R_ij = 0, E|R_ij|^2 = 1/N, E[R^H R] = (M/N) I.
    # M = 900 < L = 1,024 so that the structured block is not a whole unitary matrix.
    n, m = 600, 900
    for medium in (DenseMedium(seed=5), StructuredMedium(seed=5)):
        try:
            r = medium.matrix(m, n)
            np.testing.assert_array_equal(medium.matrix(m, n, np.arange(5, 10)), r[:, 5:10])  # any columns
            r = r.astype(np.complex128)
        finally:
            medium.close()
        # Means over M N = 540,000 entries: standard errors 1/sqrt(2 M N) ~ 1e-3 of sqrt(1/N)
        # for the mean, 1/sqrt(M N) = 1.4e-3 for the power.
        assert abs(r.mean()) * math.sqrt(n) < 0.005
        assert abs(np.mean(np.abs(r) ** 2) * n - 1) < 0.01
        gram = r.conj().T @ r * (n / m)  # E = I
        off = gram[~np.eye(n, dtype=bool)]
        assert abs(np.real(np.diag(gram)).mean() - 1) < 0.01
        # n (n - 1) / 2 independent pairs of rms 1/sqrt(M): the mean within 5 standard errors.
        assert abs(off.mean()) < 5 / math.sqrt(m * n * (n - 1) / 2)
        # The fluctuation of R^H R (a fourth moment of the entries) differs: dense, each
        # off-diagonal entry has rms 1/sqrt(M) = 0.033; structured, the columns are
        # orthonormal before P_out keeps M of the L outputs, and the rms is smaller:
        # sqrt(1 - M/L) / sqrt(M) ~ 0.012 (as for a Haar unitary; zero when M = L).
        rms = math.sqrt(np.mean(np.abs(off) ** 2)) * math.sqrt(m)
        if medium.kind == "dense":
            assert abs(rms - 1) < 0.02
        else:
            assert abs(rms - math.sqrt(1 - m / 1024)) < 0.05


def test_same_seed_same_medium_another_seed_another():
    x = binary(np.random.default_rng(6), 4, 300)
    fields = []
    for seed in (7, 7, 8):
        medium = StructuredMedium(seed=seed)
        try:
            fields.append(medium.field(x, 500))
        finally:
            medium.close()
    np.testing.assert_array_equal(fields[0], fields[1])
    # Independent media: the normalised overlap of two fields is ~ 1/sqrt(B M) = 0.02.
    a, b = fields[0].astype(np.complex128).ravel(), fields[2].astype(np.complex128).ravel()
    assert abs(np.vdot(a, b)) / (np.linalg.norm(a) * np.linalg.norm(b)) < 0.1


def test_auto_takes_dense_while_the_matrix_fits_and_structured_beyond():
    # cache_mb = 0.05: 52,428 bytes, 6,553 complex64 entries.
    assert resolve_medium("auto", 64, 100, 0.05) == "dense"
    assert resolve_medium("auto", 64, 200, 0.05) == "structured"
    assert resolve_medium("dense", 64, 200, 0.05) == "dense"
    with pytest.raises(ValueError, match="kind"):
        resolve_medium("sparse", 64, 200, 0.05)  # type: ignore[arg-type]
    model = OPUModel(EmulatorParams(fidelity="ideal", cache_mb=0.05, camera_shape=(16, 100)))
    try:
        model.configure(64, 100)
        assert model.medium.kind == "dense"
        model.advance(2.0)
        model.configure(64, 200)
        assert model.medium.kind == "structured"
        x = binary(np.random.default_rng(7), 2, 64)
        np.testing.assert_allclose(
            model.intensity(x), np.abs(x @ model.transmission_matrix().T) ** 2, rtol=1e-4, atol=1e-6
        )
    finally:
        model.close()


@pytest.mark.parametrize(
    ("query", "reported"),
    [("", "auto"), ("&medium=dense", "dense"), ("&medium=structured", "structured"), ("&cache_mb=0", "structured")],
)
def test_the_device_reports_its_medium(query, reported):
    with OPU(f"emu://?fidelity=ideal{query}", n_components=100, seed=0, progress=False) as opu:
        assert opu.info.medium == reported
        opu.fit1d(n_features=64)
        assert opu.backend.model.medium.kind == ("dense" if reported == "auto" else reported)


@pytest.mark.parametrize("scheme", ["emu", "sim"])
def test_info_names_the_medium_in_use_once_configured(scheme):
    # medium=auto with a 0.1 MB budget: 64 x 100 entries (51 kB) fit, 1,000 x 100 (800 kB) do not.
    with OPU(f"{scheme}://?fidelity=ideal&cache_mb=0.1", n_components=100, seed=0, progress=False) as opu:
        assert opu.info.medium == "auto"  # before any configuration: it depends on the size
        opu.fit1d(n_features=64)
        assert opu.info.medium == "dense"
        opu.fit1d(n_features=1000)
        assert opu.info.medium == "structured"


def test_structured_medium_end_to_end_through_transform():
    n, m = 300, 5000
    x = binary(np.random.default_rng(8), 5, n)
    with OPU("emu://?medium=structured&fidelity=ideal", n_components=m, seed=4, progress=False) as opu:
        opu.fit1d(n_features=n)
        y = np.asarray(opu.transform(x))
        r = opu.backend.model.transmission_matrix()
        np.testing.assert_array_equal(opu.backend.model.transmission_matrix(np.arange(40, 50)), r[:, 40:50])
    np.testing.assert_allclose(y, np.abs(x @ r.T) ** 2, rtol=1e-4, atol=1e-5 * y.mean())
    # The same firmware behind the wire protocol computes the same camera frames as emu://.
    frames = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SaturationWarning)
        for scheme in ("emu", "sim"):
            with OPU(f"{scheme}://?medium=structured", n_components=m, seed=4, progress=False) as opu:
                assert opu.info.medium == "structured"
                opu.fit1d(n_features=n)
                frames.append(np.asarray(opu.transform(x, output="raw")))
    np.testing.assert_array_equal(frames[0], frames[1])


def test_drift_decorrelates_outputs_as_the_dense_law():
    # Intensities of one input at lag dt: corr = |field corr|^2 = 1 - eps, eps = 1 - exp(-dt/tau).
    # The drift is driven by 3 L phases, not by every entry: a realisation's correlation
    # averages exp(i dphi) over the lit features (D1) and over L (D2, D3), a standard error
    # of about 0.005 here (std of exp(i dphi) <= 0.3 over ~1,000 features), plus 0.005 from
    # the 40,000 pixels; 0.02 is about 3 of them combined.
    n, m, tau = 2048, 40_000, 10.0
    x = binary(np.random.default_rng(9), 2, n)
    medium = StructuredMedium(seed=2, drift_tau_s=tau)
    try:
        y0 = np.abs(medium.field(x, m).astype(np.complex128)) ** 2
        r0 = medium.matrix(n, n).astype(np.complex128)
        elapsed = 0.0
        for step in (1.0, 2.0, 5.0):  # cumulative 1, 3, 8 s, reached by steps
            medium.advance(step)
            elapsed += step
            eps = -math.expm1(-elapsed / tau)
            y = np.abs(medium.field(x, m).astype(np.complex128)) ** 2
            for a, b in zip(y0, y):
                # Sample correlation of 40,000 pairs: standard error <= 0.005.
                assert abs(np.corrcoef(a, b)[0, 1] - (1 - eps)) < 0.02
            # The field keeps the correlation sqrt(1 - eps); stationary power 1/N.
            r = medium.matrix(n, n).astype(np.complex128)
            overlap = abs(np.vdot(r, r0)) / (np.linalg.norm(r) * np.linalg.norm(r0))
            assert abs(overlap - math.sqrt(1 - eps)) < 0.02
            assert abs(np.mean(np.abs(r) ** 2) * n - 1) < 0.02
    finally:
        medium.close()


def test_the_medium_is_the_documented_product_of_2d_ffts_and_phase_diagonals():
    # R = sqrt(L/N) P_out F D3 F D2 F D1 P_in with F the unitary 2-D DFT of the L1 x L2 grid.
    n, m = 700, 1000
    medium = StructuredMedium(seed=3)
    try:
        shape = medium.shape(n, m)
        assert shape == (32, 32)
        r = medium.matrix(m, n).astype(np.complex128)
        d = medium._current(shape[0] * shape[1]).astype(np.complex128)
    finally:
        medium.close()
    u = np.zeros((n, shape[0] * shape[1]), np.complex128)
    u[np.arange(n), np.arange(n)] = 1.0  # one unit vector per row
    for k in range(3):
        u = np.fft.fft2((u * d[k]).reshape(n, *shape), norm="ortho").reshape(n, -1)
    np.testing.assert_allclose(r, (u[:, :m] * math.sqrt(u.shape[1] / n)).T, atol=1e-5)


@pytest.mark.parametrize("n, m", [(150_000, 400_000), (400_000, 150_000)])
def test_products_cut_into_cache_bands_are_the_documented_product(n, m):
    # At these sizes the grid's rows are transformed in several bands of 1 MiB, with the last band
    # of inputs (or of outputs) cut short: field and intensity must still be the plain product.
    medium = StructuredMedium(seed=8)
    x = binary(np.random.default_rng(5), 3, n)
    try:
        shape = medium.shape(n, m)
        band_rows = 2**20 // (shape[1] * 8)
        assert -(-min(n, m) // shape[1]) > band_rows and min(n, m) % shape[1]  # several bands, a partial row
        field = medium.field(x, m)
        out = np.full((3, m), np.nan, dtype=np.float32)
        scale = np.array([1.0, 2.0, 0.5], dtype=np.float32)
        assert medium.intensity(x, m, scale, out=out) is out
        d = medium._current(shape[0] * shape[1]).astype(np.complex128)
        with pytest.raises(TypeError, match="out: expected a float32 array, got float64"):
            medium.intensity(x, m, out=out.astype(np.float64))
    finally:
        medium.close()
    u = np.zeros((3, shape[0] * shape[1]), np.complex128)
    u[:, :n] = x * math.sqrt(u.shape[1] / n)
    for k in range(3):
        u = np.fft.fft2((u * d[k]).reshape(3, *shape), norm="ortho").reshape(3, -1)
    np.testing.assert_allclose(field, u[:, :m], atol=2e-5)
    np.testing.assert_allclose(out, np.abs(u[:, :m]) ** 2 * scale[:, None], rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("n, m", [(1024, 1024), (1000, 1039), (1_039_680, 2_000_000), (1_039_680, 200_000)])
def test_the_grid_is_fast_and_no_longer_than_the_1d_fast_length(n, m):
    first, second = StructuredMedium.shape(n, m)
    assert first <= second
    assert scipy.fft.next_fast_len(first) == first and scipy.fft.next_fast_len(second) == second
    assert max(n, m, 1024) <= first * second <= scipy.fft.next_fast_len(max(n, m, 1024))


def test_intensity_is_the_scaled_squared_field_whatever_the_threads():
    x = binary(np.random.default_rng(11), 5, 1500)
    scale = np.linspace(0.5, 2.0, 5, dtype=np.float32)
    fields, intensities, lone = [], [], []
    for workers in (1, 2, 3):
        medium = StructuredMedium(seed=4, workers=workers)
        try:
            fields.append(medium.field(x, 1200))
            intensities.append(medium.intensity(x, 1200, scale))
            lone.append(medium.intensity(x[:1], 1200))  # a lone row: its FFT on every worker
        finally:
            medium.close()
    for field, intensity, one in zip(fields, intensities, lone):
        np.testing.assert_array_equal(field, fields[0])
        np.testing.assert_array_equal(intensity, intensities[0])
        np.testing.assert_array_equal(one, intensities[0][:1] / scale[0])
    np.testing.assert_allclose(intensities[0], np.abs(fields[0]) ** 2 * scale[:, None], rtol=1e-5)
    with pytest.raises(ValueError, match="scale"):
        StructuredMedium(seed=4).intensity(x, 1200, scale[:2])
