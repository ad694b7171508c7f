"""Linear projections (docs/physics.md section 4): accuracy against the emulator's true map, linearity, covariance, HDR.

Accuracy is scored on the optically measured part only: in the complement scheme the
completion term ``h |x| / sqrt(N)`` of ``M x`` is exactly known from the record (docs/physics.md section
4.1) and carries half of ``||M x||^2`` for a half-lit binary input, so it is removed from
both the estimate and the truth (``measured``). Bounds. On the default 8-bit camera the
measured part of a binary frame pair has ~3 % relative error (median 2.8-3.0 % on this
set-up; 2.0 % if the completion is left in) and an 8-bit real vector ~4 % (4.1-4.3 %: its
bit planes' noise adds with weights 4^k, and a zero-mean vector has a small completion
term); the bounds are 4.5 % and 6 %, about 1.5 times these.
"""

from __future__ import annotations

import numpy as np
import pytest

from calibration.linear import calibrate_linear, true_linear_map
from opu_hal.linear import encode_planes
from opu_hal import OPU, NotCalibratedError

N, M = 300, 200


@pytest.fixture(scope="module")
def opu():
    with OPU("emu://", n_components=M, seed=11, progress=False) as device:
        device.fit1d(n_features=N)
        device.calibration = calibrate_linear(device)
        yield device


def truth(opu: OPU) -> np.ndarray:
    return true_linear_map(opu.backend.model.transmission_matrix(), opu.calibration)


def rel_errors(z: np.ndarray, expected: np.ndarray) -> np.ndarray:
    return np.linalg.norm(z - expected, axis=1) / np.linalg.norm(expected, axis=1)


def measured(values: np.ndarray, x: np.ndarray, record) -> np.ndarray:
    """``values`` (B, M) less the exactly known completion term ``h (1 . x) / sqrt(N)`` of the complement scheme."""
    if record.linear.scheme != "complement":
        return np.asarray(values, dtype=np.float64)
    h = record.array("linear_completion")
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    return np.asarray(values, dtype=np.float64) - x.sum(axis=1)[:, None] * h[None, :] / np.sqrt(x.shape[1])


def measured_errors(z: np.ndarray, x: np.ndarray, m: np.ndarray, record) -> np.ndarray:
    """Relative errors of the optically measured part of ``z`` against that of ``x @ m.T``, per input."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    return rel_errors(measured(np.atleast_2d(z), x, record), measured(x @ m.T, x, record))


def test_true_map_is_a_unit_variance_gaussian_matrix(opu):
    opu.linear_transform(np.ones(N))  # puts the device in the calibrated geometry
    m = truth(opu)
    assert m.shape == (M, N)
    # entries of an i.i.d. N(0, 1) matrix: mean 0 +- 4/sqrt(MN), variance 1 +- 4 sqrt(2/MN)
    assert abs(m.mean()) < 4 / np.sqrt(M * N)
    assert abs(m.var() - 1) < 4 * np.sqrt(2 / (M * N))
    # rows uncorrelated with the all-ones direction (the complement scheme's reference)
    assert abs(np.mean(m.sum(axis=1) / np.sqrt(N))) < 4 / np.sqrt(M)


def test_binary_inputs_match_the_true_map(opu):
    x = (np.random.default_rng(1).random((20, N)) < 0.5).astype(np.uint8)
    z = opu.linear_transform(x)
    assert z.dtype == np.float32 and z.shape == (20, M)
    assert z.context.calibration_id == opu.calibration.id
    assert len(z.context.frame_ids) == 40  # 2 frames per binary input, whatever bits
    assert np.median(measured_errors(z, x, truth(opu), opu.calibration)) <= 0.045


def test_real_inputs_of_any_sign_match_the_true_map(opu):
    x = np.random.default_rng(2).standard_normal((10, N)) * 3.0
    z = opu.linear_transform(x, bits=8)
    assert np.median(measured_errors(z, x, truth(opu), opu.calibration)) <= 0.06
    # E|z|^2 = n_components ||x||^2 (per input, within ~4 sqrt(2/M) for a Gaussian M)
    ratio = np.sum(np.asarray(z) ** 2, axis=1) / (M * np.sum(x**2, axis=1))
    assert np.all(np.abs(ratio - 1) < 4 * np.sqrt(2 / M))


def test_linearity_is_a_black_box_property(opu):
    rng = np.random.default_rng(3)
    x1, x2 = rng.standard_normal((2, 8, N))
    a, b = 1.7, -0.6
    z = opu.linear_transform(np.concatenate([a * x1 + b * x2, x1, x2]))
    lhs, rhs = z[:8], a * z[8:16] + b * z[16:]
    # three independent ~5 % errors: sqrt(1 + a^2 + b^2) * 5 % ~ 10 %; a non-linear map is off by O(1)
    assert np.median(rel_errors(lhs, rhs)) < 0.15


def test_additivity_over_disjoint_binary_pairs_leaves_no_offset(opu):
    # f(x) + f(y) - f(x + y) over binary x, y of disjoint supports (x + y binary): 0 for a linear
    # map, the per-output offset for an affine one (docs/physics.md section 4.4: the reference estimate's
    # error). Each input is measured twice (separate calls); the repeats give each output's
    # noise, hence the standard error of its mean defect over 2 x 300 pairs.
    pairs = 300
    side = np.random.default_rng(9).integers(0, 4, size=(pairs, N))
    x, y = (side == 0).astype(np.uint8), (side == 1).astype(np.uint8)
    inputs = np.concatenate([x, y, x + y])
    runs = [np.asarray(opu.linear_transform(inputs), dtype=np.float64) for _ in range(2)]
    defects = [z[:pairs] + z[pairs : 2 * pairs] - z[2 * pairs :] for z in runs]
    mean = (defects[0] + defects[1]).mean(axis=0) / 2
    standard_error = np.sqrt(np.mean((defects[0] - defects[1]) ** 2 / 2, axis=0) / (2 * pairs))
    # pure noise: rms(mean) / rms(standard error) = 1 +- 0.05 over 200 outputs
    assert np.sqrt(np.mean(mean**2)) < 1.5 * np.sqrt(np.mean(standard_error**2))


def test_output_covariance_matches_a_unit_variance_gaussian_projection(opu):
    x = (np.random.default_rng(4).random((300, N)) < 0.5).astype(np.float64)
    z = np.asarray(opu.linear_transform(x), dtype=np.float64)
    cov = np.cov(z, rowvar=False) / (N / 4)  # Cov(x) = I/4 for fair bits, so Cov(z) = M M^T / 4
    diag, off = np.diag(cov), cov[~np.eye(M, dtype=bool)]
    assert abs(diag.mean() - 1) < 0.05
    # off-diagonal: sample noise 1/sqrt(K) and M M^T/N spread 1/sqrt(N); no common row mean
    assert abs(off.mean()) < 0.02
    assert off.std() < 1.3 * np.sqrt(1 / 300 + 1 / N)


def test_focusing_input_is_bracketed_not_clipped(opu):
    opu.linear_transform(np.ones(N))
    R = opu.backend.model.transmission_matrix()
    pixel = int(opu.calibration.array("linear_pixels")[7])
    x = (np.real(R[pixel] * np.exp(0.3j)) > 0).astype(np.uint8)  # concentrates light on that pixel
    lin = opu.calibration.linear
    intensity = np.abs(R[pixel] @ x) ** 2 * lin.dn_per_intensity / lin.lit_fraction  # c is per unit of R / sqrt(f)
    assert intensity > 2 * opu.calibration.linear.max_dn  # it would saturate at the calibrated exposure
    z = opu.linear_transform(x)
    assert len(z.context.frame_ids) > 2  # acquired again at a shorter exposure
    assert measured_errors(z, x, truth(opu), opu.calibration)[0] <= 0.045  # 2.4 % measured


def test_reference_scheme_matches_its_true_map():
    with OPU("emu://", n_components=100, seed=5, progress=False) as device:
        device.fit1d(n_features=200)
        device.calibration = calibrate_linear(device, scheme="reference")
        assert device.calibration.linear.n_device_features == 400
        x = (np.random.default_rng(6).random((10, 200)) < 0.5).astype(np.uint8)
        z = device.linear_transform(x)
        m = true_linear_map(device.backend.model.transmission_matrix(), device.calibration)
        assert abs(m.var() - 1) < 4 * np.sqrt(2 / m.size)
        assert np.median(measured_errors(z, x, m, device.calibration)) <= 0.055  # 3.4 % measured; scheme A has no completion term


def test_same_scale_in_ideal_fidelity():
    with OPU("emu://?fidelity=ideal", n_components=100, seed=5, progress=False) as device:
        device.fit1d(n_features=200)
        x = np.random.default_rng(7).standard_normal((5, 200))
        z = device.linear_transform(x)  # calibrates on demand
        m = true_linear_map(device.backend.model.transmission_matrix(), device.calibration)
        # no noise: only the 8-bit quantisation (~0.3 %) and the scale estimate (~1 %): 1.05 % measured
        assert np.median(measured_errors(z, x, m, device.calibration)) < 0.02


def test_encode_planes_reconstructs_the_quantised_input():
    x = np.random.default_rng(8).standard_normal((4, 50))
    planes, weights = encode_planes(x, 8)
    assert planes.shape == (4, 16, 50) and set(np.unique(planes)) <= {0, 1}
    back = np.einsum("bp,bpn->bn", weights, planes)
    assert np.max(np.abs(back - x)) <= np.max(np.abs(x)) / 255 / 2 + 1e-12


def test_without_calibration_and_calibrate_false_raises():
    with OPU("emu://", n_components=50, seed=5, progress=False) as device:
        device.fit1d(n_features=64)
        with pytest.raises(NotCalibratedError, match="linear calibration"):
            device.linear_transform(np.ones(64), calibrate=False)


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"X": np.ones(N), "bits": 0}, ValueError, "bits"),
        ({"X": np.ones(N), "bits": 2.0}, TypeError, "bits"),
        ({"X": np.ones(N) * 1j}, TypeError, "X: expected real"),
        ({"X": np.full(N, np.nan)}, ValueError, "X: expected finite"),
        ({"X": np.ones(N + 1)}, ValueError, "X: expected shape"),
    ],
)
def test_bad_arguments_are_named(opu, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        opu.linear_transform(**kwargs)
