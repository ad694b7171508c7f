"""Transmission-matrix retrieval (docs/physics.md section 5): exactness, accuracy on the 8-bit camera, metrics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration.tm import TMResult, aligned_relative_error, intensity_correlation, retrieve_transmission_matrix
from opu_hal import OPU, NotFittedError, SaturationWarning


def _opu(n: int, fidelity: str = "physical", seed: int = 7) -> OPU:
    opu = OPU(f"emu://?seed={seed}&fidelity={fidelity}", n_components=n, progress=False)
    return opu.fit1d(n_features=n)


@pytest.fixture(scope="module")
def ideal() -> tuple[OPU, TMResult]:
    opu = _opu(64, "ideal")
    return opu, retrieve_transmission_matrix(opu, progress=False)


@pytest.fixture(scope="module")
def physical() -> tuple[OPU, TMResult]:
    opu = _opu(128)  # default 8-bit camera, default exposure (400 us)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SaturationWarning)  # the default exposure saturates well under 1 %
        result = retrieve_transmission_matrix(opu, progress=False)
    return opu, result


# ---------------------------------------------------------------------- retrieval
def test_ideal_retrieval_is_exact_up_to_float32(ideal: tuple[OPU, TMResult]) -> None:
    # Noise-free float32 intensities: the only error is rounding (relative 6e-8 per
    # intensity), amplified by the lateration and least-squares conditioning (< 1e3).
    opu, result = ideal
    truth = opu.backend.model.transmission_matrix()
    assert result.matrix.shape == truth.shape and result.matrix.dtype == np.complex64
    assert aligned_relative_error(result.matrix, truth) < 1e-4
    assert result.intensity_correlation > 1 - 1e-8
    assert result.fit_correlation > 1 - 1e-8
    assert result.saturated_fraction == 0.0


def test_retrieved_rows_span_both_halves_in_one_frame(ideal: tuple[OPU, TMResult]) -> None:
    # Inputs lighting every feature mix columns retrieved in both passes: their predicted
    # intensities only match if both halves of each row share one phase and conjugation.
    opu, result = ideal
    x = np.ones((3, 64), dtype=np.uint8)
    x[1, ::2] = 0
    x[2, 1::3] = 0
    measured = np.asarray(opu.transform(x, output="intensity"))
    np.testing.assert_allclose(result.predict_intensity(x), measured, rtol=1e-3, atol=1e-5)


def test_frame_budget_follows_the_design(ideal: tuple[OPU, TMResult]) -> None:
    _, result = ideal
    n = 64
    assert result.n_calibration == 3 * n and result.n_anchors == 8
    assert result.frames_used == 16 + (8 + 1) * 3 * n  # dark frames + (S + 1) frames per input
    assert result.frames_used <= 30 * n
    assert result.frames_per_feature == pytest.approx(result.frames_used / n)
    assert result.check_frames == 256
    assert result.compute_seconds > 0 and result.device_time_s > 0


def test_physical_fidelity_meets_the_n256_targets_at_n128(physical: tuple[OPU, TMResult]) -> None:
    # The error depends on the noise per point and on K / N and S, not on N itself
    # (least squares over K = 3N inputs for N unknowns per row), so the N = M = 256
    # targets apply unchanged at N = M = 128: correlation >= 0.99, error <= 0.10.
    opu, result = physical
    truth = opu.backend.model.transmission_matrix()
    assert aligned_relative_error(result.matrix, truth) <= 0.10
    assert result.intensity_correlation >= 0.99
    assert result.frames_used <= 30 * 128
    assert 0.0 <= result.saturated_fraction < 0.01
    assert result.exposure_us == 400.0


def test_fresh_correlation_is_measured_on_new_inputs(physical: tuple[OPU, TMResult]) -> None:
    opu, result = physical
    again = intensity_correlation(opu, result, n_inputs=200, seed=3)
    assert again >= 0.99
    # a random matrix of the same statistics predicts nothing
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(result.matrix.shape) + 1j * rng.standard_normal(result.matrix.shape)) / 16
    assert intensity_correlation(opu, noise, n_inputs=200) < 0.5


def test_fit2d_features_are_flattened_row_major() -> None:
    opu = OPU("emu://?seed=2&fidelity=ideal", n_components=32, progress=False).fit2d(n_features=(4, 8))
    result = retrieve_transmission_matrix(opu, n_check=64, progress=False)
    assert result.matrix.shape == (32, 32)
    assert aligned_relative_error(result.matrix, opu.backend.model.transmission_matrix()) < 1e-4


def test_saturated_intensities_are_dropped_and_warned_about() -> None:
    # At about 3x the default exposure per lit mirror (64 features light f = 0.8 of the DMD,
    # docs/physics.md section 1.2, so 1250 us / 0.8) about 2 % of the intensities saturate. Used
    # as clipped values they bias R̂ to a relative error of about 0.23; dropped, the retrieval
    # still meets the 0.10 target, and the warning says to lower the exposure.
    opu = _opu(64)
    opu.settings = {"exposure_us": 1250.0 / 0.8}
    with pytest.warns(SaturationWarning, match="saturated and dropped"):
        result = retrieve_transmission_matrix(opu, n_check=0, progress=False)
    assert 0.01 < result.saturated_fraction < 0.05
    assert aligned_relative_error(result.matrix, opu.backend.model.transmission_matrix()) <= 0.10
    assert result.intensity_correlation is None and result.check_frames == 0


def test_saturation_warning_text_is_constant_and_the_numbers_are_attributes() -> None:
    # Python's filters show a warning once per (message, place): a message carrying the varying
    # fraction defeated them; the text is now constant and the numbers are attributes.
    opu = _opu(64)
    fractions = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for exposure_us in (1250.0 / 0.8, 1500.0 / 0.8):
            opu.settings = {"exposure_us": exposure_us}
            fractions.append(retrieve_transmission_matrix(opu, n_check=0, progress=False).saturated_fraction)
    shown = [w.message for w in caught if issubclass(w.category, SaturationWarning)]
    assert fractions[1] > fractions[0] > 0.01
    assert len(shown) == 2 and str(shown[0]) == str(shown[1])
    assert [w.fraction for w in shown] == pytest.approx(fractions)
    assert [w.exposure_us for w in shown] == pytest.approx([1250.0 / 0.8, 1500.0 / 0.8])


# ---------------------------------------------------------------------- alignment metric
def _random_matrix(rng: np.random.Generator, m: int, n: int) -> np.ndarray:
    return (rng.standard_normal((m, n)) + 1j * rng.standard_normal((m, n))) / np.sqrt(2 * n)


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 12),
    n=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    noise=st.floats(0.0, 1.0),
)
def test_alignment_ignores_row_phase_and_conjugation(m: int, n: int, seed: int, noise: float) -> None:
    rng = np.random.default_rng(seed)
    truth = _random_matrix(rng, m, n)
    estimate = truth + noise * _random_matrix(rng, m, n)
    phases = np.exp(2j * np.pi * rng.random((m, 1)))
    flips = rng.random((m, 1)) < 0.5
    disguised = phases * np.where(flips, np.conj(estimate), estimate)
    assert aligned_relative_error(disguised, truth) == pytest.approx(aligned_relative_error(estimate, truth), abs=1e-9)
    assert aligned_relative_error(phases * np.where(flips, np.conj(truth), truth), truth) < 1e-6


def test_alignment_is_a_relative_frobenius_error() -> None:
    rng = np.random.default_rng(1)
    truth = _random_matrix(rng, 5, 7)
    assert aligned_relative_error(np.zeros_like(truth), truth) == pytest.approx(1.0)
    assert aligned_relative_error(2 * truth, truth) == pytest.approx(1.0)
    assert aligned_relative_error(0.9 * truth, truth) == pytest.approx(0.1)
    # a phase that varies along a row is not a per-row phase: it is an error
    twisted = truth * np.exp(1j * np.linspace(0, np.pi, 7))
    assert aligned_relative_error(twisted, truth) > 0.3


# ---------------------------------------------------------------------- bad arguments
def test_bad_arguments_raise_clear_errors(ideal: tuple[OPU, TMResult]) -> None:
    opu, result = ideal
    with pytest.raises(TypeError, match="opu: expected an opu_hal.OPU, got ndarray"):
        retrieve_transmission_matrix(np.zeros(3))
    with pytest.raises(NotFittedError, match="opu: expected a fitted OPU"):
        retrieve_transmission_matrix(OPU("emu://?fidelity=ideal", n_components=8))
    with pytest.raises(ValueError, match="n_anchors: expected an integer from 4 to inf, got 3"):
        retrieve_transmission_matrix(opu, n_anchors=3)
    with pytest.raises(ValueError, match="n_calibration: expected an integer from 66 to inf, got 64"):
        retrieve_transmission_matrix(opu, n_calibration=64)
    with pytest.raises(TypeError, match="n_calibration: expected an integer, got float"):
        retrieve_transmission_matrix(opu, n_calibration=200.0)
    with pytest.raises(TypeError, match="progress: expected a bool, got str"):
        retrieve_transmission_matrix(opu, progress="yes")
    with pytest.raises(ValueError, match=r"tm: expected a matrix of shape \(n_components, n_features\) = \(64, 64\)"):
        intensity_correlation(opu, result.matrix[:, :10])
    with pytest.raises(ValueError, match="n_inputs: expected an integer from 2"):
        intensity_correlation(opu, result, n_inputs=1)
    with pytest.raises(ValueError, match=r"R_hat: expected the shape of R_true \(64, 64\), got \(64, 63\)"):
        aligned_relative_error(result.matrix[:, 1:], result.matrix)
    with pytest.raises(ValueError, match="R_true: expected a non-zero matrix"):
        aligned_relative_error(result.matrix, np.zeros((64, 64)))
    with pytest.raises(ValueError, match="R_hat: expected finite entries"):
        aligned_relative_error(np.full((2, 2), np.nan), np.ones((2, 2)))
    with pytest.raises(ValueError, match="X: expected binary inputs"):
        result.predict_intensity(np.full((1, 64), 0.5))


def test_tiny_inputs_are_refused() -> None:
    opu = OPU("emu://?fidelity=ideal", n_components=4, progress=False).fit1d(n_features=6)
    with pytest.raises(ValueError, match="opu: expected an OPU fitted to at least 8 features, got 6"):
        retrieve_transmission_matrix(opu)


def test_smallest_calibration_is_determined_for_odd_sizes() -> None:
    # n_calibration = N + 2 gives each half as many inputs as unknowns (its columns and an
    # intercept), also when the halves differ in size: noise-free, the retrieval is exact.
    opu = OPU("emu://?seed=4&fidelity=ideal", n_components=16, progress=False).fit1d(n_features=33)
    result = retrieve_transmission_matrix(opu, n_calibration=35, n_check=0, progress=False)
    assert result.n_calibration == 35 and result.frames_used == 16 + 9 * 35
    assert aligned_relative_error(result.matrix, opu.backend.model.transmission_matrix()) < 1e-4
