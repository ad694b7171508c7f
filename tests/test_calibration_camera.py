"""Camera characterisation (EMVA 1288) on the emulator: the photon-transfer curve recovers the camera.

Bounds: the binned photon-transfer slope averages ~10^5 pixel pairs, so K is known to ~1 %
(3 % asked); on a 12-bit camera the dark noise (12 e- = 4 DN) is well resolved and the read
noise is within 10 %. On the default 8-bit camera the dark noise (0.26 DN) is below the
quantisation step: the result must say so.
"""

from __future__ import annotations

import pytest

from calibration.camera import characterise_camera
from opu_hal import OPU


def measure(url: str):
    with OPU(url, n_components=10, seed=2, progress=False) as opu:
        record = characterise_camera(opu)
        return record, opu.backend.model.params


def test_default_8bit_camera_gain_and_quantisation_limit():
    record, params = measure("emu://")
    cam = record.camera
    assert cam.gain_dn_per_e == pytest.approx(params.system_gain, rel=0.03)
    assert cam.offset_dn == pytest.approx(params.offset_dn, abs=0.05)
    assert not cam.read_noise_resolved and cam.read_noise_source == "ptc_intercept"
    assert cam.hot_pixels == 0
    # saturation: the ADC clips before the full well (255 - offset DN over K)
    assert cam.saturation_capacity_e == pytest.approx((params.max_dn - params.offset_dn) / params.system_gain, rel=0.1)
    assert cam.linearity_error_pct < 1.0
    assert record.frames_spent["camera"] == cam.frames > 0
    assert len(record.array("camera_ptc_mean_dn")) == len(record.array("camera_ptc_var_dn2"))


def test_12bit_camera_read_noise_is_measured():
    record, params = measure("emu://?bit_depth=12")
    cam = record.camera
    assert cam.read_noise_resolved and cam.read_noise_source == "dark"
    assert cam.gain_dn_per_e == pytest.approx(params.system_gain, rel=0.03)
    assert cam.read_noise_e == pytest.approx(params.read_noise_e, rel=0.10)


def test_fixed_pattern_dsnu_and_hot_pixels():
    record, params = measure("emu://?bit_depth=12&dsnu_e=40&hot_pixel_fraction=0.01")
    cam = record.camera
    # 1 % of the pixels read are hot, binomial spread; bound 5 sigma
    assert abs(cam.hot_pixels - 0.01 * cam.n_pixels) < 5 * (0.01 * cam.n_pixels) ** 0.5
    assert cam.dsnu_dn == pytest.approx(params.dsnu_e * params.system_gain, rel=0.1)
    assert cam.gain_dn_per_e == pytest.approx(params.system_gain, rel=0.03)


def test_ideal_fidelity_has_no_camera():
    with OPU("emu://?fidelity=ideal", n_components=10, progress=False) as opu:
        with pytest.raises(ValueError, match="camera"):
            characterise_camera(opu)
