"""Drift monitor: a fresh record passes, a record whose medium decorrelated by 10 % is flagged.

For circular Gaussian speckle the sentinel intensities keep a correlation 1 - eps after a
decorrelation eps (docs/physics.md section 3.1), times ~0.998 for the camera noise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibration.drift import DriftMonitor, DriftWarning
from calibration.linear import calibrate_linear
from opu_hal import OPU, NotCalibratedError

TAU_S = 1000.0


@pytest.fixture
def drifting():
    with OPU(f"emu://?drift={TAU_S:g}", n_components=200, seed=31, progress=False) as opu:
        opu.fit1d(n_features=256)
        opu.calibration = calibrate_linear(opu)
        yield opu


def test_fresh_record_is_not_flagged(drifting):
    report = DriftMonitor().check(drifting)
    assert not report.drifted and report.correlation > 0.99
    assert report.frames == 16


def test_ten_percent_decorrelation_is_flagged(drifting):
    drifting.backend.model.advance(-TAU_S * math.log(0.9))  # eps = 1 - exp(-dt/tau) = 0.10
    with pytest.warns(DriftWarning, match="drifted"):
        report = DriftMonitor().check(drifting)
    assert report.drifted
    assert report.correlation == pytest.approx(0.9, abs=0.03)
    assert report.elapsed_device_s == pytest.approx(-TAU_S * math.log(0.9), rel=0.01)


def test_recalibration_on_drift_gives_a_passing_record(drifting):
    old = drifting.calibration
    drifting.backend.model.advance(-TAU_S * math.log(0.8))
    with pytest.warns(DriftWarning):
        report = DriftMonitor(recalibrate=True).check(drifting)
    assert report.recalibrated_id == drifting.calibration.id != old.id
    assert not DriftMonitor().check(drifting).drifted
    z = drifting.linear_transform(np.ones(256))
    assert z.context.calibration_id == report.recalibrated_id


def test_needs_sentinels_and_a_valid_threshold():
    with pytest.raises(ValueError, match="threshold"):
        DriftMonitor(threshold=1.5)
    with OPU("emu://", n_components=10, progress=False) as opu:
        with pytest.raises(NotCalibratedError, match="sentinels"):
            DriftMonitor().check(opu)
