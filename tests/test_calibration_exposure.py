"""Auto-exposure for speckle: from 10x too long or too short to the target in a few acquisitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibration.exposure import auto_exposure, speckle_quantile
from opu_hal import OPU

N, M = 256, 2040


@pytest.fixture(scope="module")
def right_exposure():
    """The exposure that puts the 99.9 % percentile at 70 % of the range, from the emulator's truth."""
    with OPU("emu://", n_components=M, seed=4, progress=False) as opu:
        opu.fit1d(n_features=N)
        x = np.random.default_rng(0).random((8, N)) < 0.5
        intensity = opu.backend.model.intensity(x.astype(np.uint8))
        p = opu.backend.model.params
        c_per_us = opu.backend.model.dn_per_intensity(1.0)
        return 0.7 * (p.max_dn - opu.info.dark_level_dn) / (np.quantile(intensity, 0.999) * c_per_us)


@pytest.mark.parametrize("factor", [10.0, 0.1], ids=["10x-too-long", "10x-too-short"])
def test_converges_within_8_acquisitions(right_exposure, factor):
    with OPU("emu://", n_components=M, seed=4, progress=False, settings={"exposure_us": right_exposure * factor}) as opu:
        opu.fit1d(n_features=N)
        result = auto_exposure(opu)
        assert result.converged and result.acquisitions <= 8
        assert result.saturated_fraction <= 1e-4
        assert abs(result.quantile_dn / result.target_dn - 1) <= 0.05
        # the percentile of 16,000 values fluctuates by a few %: the exposure lands within 10 %
        assert result.exposure_us == pytest.approx(right_exposure, rel=0.10)
        assert opu.settings.exposure_us == result.exposure_us
        assert result.frame_rate_hz == pytest.approx(1e6 / result.frametime_us)
        assert result.frametime_us >= result.exposure_us  # the device's frametime limit holds
        y = opu.transform(np.zeros((1, N), dtype=np.uint8))
        assert y.context.exposure_us == result.exposure_us


def test_exposure_limit_stops_the_search():
    with OPU("emu://", n_components=M, seed=4, progress=False, settings={"exposure_us": 2.0}) as opu:
        opu.fit1d(n_features=N)
        result = auto_exposure(opu, inputs=np.zeros((2, N), dtype=np.uint8), max_acquisitions=4)
        assert not result.converged  # a dark input never reaches the target
        assert result.exposure_us <= opu.info.limits.max_exposure_us


def test_speckle_quantile_extrapolates_saturated_percentiles():
    rng = np.random.default_rng(1)
    values = rng.exponential(100.0, 200_000)
    truth = 100.0 * math.log(1000)  # 99.9 % percentile of an exponential of mean 100
    for level in (150.0, 300.0, 600.0):  # 22 %, 5 % and 0.25 % saturated
        clipped = np.minimum(values, level)
        q = speckle_quantile(clipped, values >= level, 99.9, level)
        assert q == pytest.approx(truth, rel=0.05)
    assert speckle_quantile(np.full(100, 5.0), np.ones(100, bool), 99.9, 5.0) == math.inf


@pytest.mark.parametrize("kwargs, pattern", [({"percentile": 100}, "percentile"), ({"target_fraction": 1.5}, "target_fraction")])
def test_bad_arguments(kwargs, pattern):
    with OPU("emu://", n_components=10, progress=False) as opu:
        opu.fit1d(n_features=16)
        with pytest.raises(ValueError, match=pattern):
            auto_exposure(opu, **kwargs)
