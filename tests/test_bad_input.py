"""Clumsy input gets a clear error naming the argument (issue 13, point 9), never a crash deep inside."""

from __future__ import annotations

import numpy as np
import pytest

from opu_hal import OPU

SMALL = "emu://?dmd_shape=20x24&camera_shape=10x30"


def test_an_infinite_timeout_is_refused_by_name():
    """It was accepted, then overflowed the socket timeout."""
    with pytest.raises(ValueError, match=r"timeout_s: expected a finite number of seconds, got inf"):
        OPU(SMALL, n_components=10, timeout_s=float("inf"))


def test_linear_transform_of_all_zero_inputs_is_zero_with_its_context():
    """All-zero vectors need no frame; this raised an AttributeError, then a RuntimeError."""
    with OPU(SMALL, n_components=10, progress=False) as opu:
        opu.fit1d(n_features=8)
        z = opu.linear_transform(np.zeros((2, 8)))
        assert z.shape == (2, 10) and not np.any(np.asarray(z))
        assert z.context.calibration_id == opu.calibration.id and z.context.exposure_us > 0


def test_a_malformed_url_names_the_device_argument():
    with pytest.raises(ValueError, match=r"device: expected a well-formed URL .* got 'socket://\[::1'"):
        OPU("socket://[::1", n_components=10)


def test_an_emulator_url_with_a_location_is_refused():
    """``emu://host/path`` silently ignored its location."""
    with pytest.raises(ValueError, match=r"device: expected emu:// with no host or path .* 'host/path'"):
        OPU("emu://host/path", n_components=10)


def test_a_missing_serial_port_fails_at_once_naming_the_port():
    """It waited the whole timeout (10 s by default) before "No such file or directory"."""
    import time

    from opu_hal import TransportError

    start = time.monotonic()
    with pytest.raises(TransportError, match=r"serial port /dev/does-not-exist: .*does not exist"):
        OPU("serial:///dev/does-not-exist", n_components=10, timeout_s=5).open()
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("method", ["fit1d", "transform", "linear_transform"])
def test_a_masked_array_is_refused_not_its_mask_ignored(method):
    """A numpy masked array's mask was silently ignored: the masked values went to the device."""
    x = np.ma.masked_array(np.eye(4, 8, dtype=np.uint8), mask=np.eye(4, 8, dtype=bool))
    with OPU(SMALL, n_components=10, progress=False) as opu:
        if method != "fit1d":
            opu.fit1d(n_features=8)
        with pytest.raises(TypeError, match=r"X: expected a plain array, got a numpy masked array \(4 values masked\)"):
            getattr(opu, method)(x)
