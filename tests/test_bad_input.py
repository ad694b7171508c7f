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


IDEAL = "emu://?fidelity=ideal&seed=3&dmd_shape=20x24&camera_shape=10x30"


@pytest.mark.parametrize("dtype_name", ["bfloat16", "float16"])
def test_torch_half_precision_input_is_converted_or_refused_by_name(dtype_name):
    """torch.bfloat16 input gave torch's own 'Got unsupported ScalarType BFloat16'."""
    import torch

    from opu_hal.torch import OPUMap

    dtype = getattr(torch, dtype_name)
    bits = torch.rand(6, 8, generator=torch.Generator().manual_seed(1)) > 0.5
    values = torch.arange(-24, 24).reshape(6, 8) / 8  # exact in bfloat16 and float16
    with OPU(IDEAL, n_components=10, progress=False) as opu:
        opu.fit1d(n_features=8)
        with pytest.raises(ValueError, match=rf"X: expected binary data of dtype bool or integer .* got dtype torch.{dtype_name}"):
            opu.transform(bits.to(dtype))  # floats are not binary input for OPU.transform (OPUMap takes 0.0/1.0)
        np.testing.assert_array_equal(
            opu.linear_transform(values.to(dtype)).numpy(), opu.linear_transform(values).numpy()
        )
    layer = OPUMap(10, device=IDEAL)
    y = layer(bits.to(dtype))
    assert y.dtype == dtype and y.shape == (6, 10)
    np.testing.assert_array_equal(y.float().numpy(), layer(bits.float()).to(dtype).float().numpy())
    linear = OPUMap(10, device=IDEAL, linear=True)
    assert linear(values.to(dtype)).dtype == dtype


def test_a_torch_dtype_numpy_lacks_is_refused_naming_the_argument_and_dtype():
    """torch.float8 input gave torch's own 'Got unsupported ScalarType Float8_e4m3fn'."""
    import torch

    from opu_hal.torch import OPUMap

    with pytest.raises(TypeError, match=r"x: expected a tensor of a dtype numpy supports .* got torch.float8_e4m3fn"):
        OPUMap(10, device=IDEAL)(torch.zeros(2, 8).to(torch.float8_e4m3fn))
    with OPU(IDEAL, n_components=10, progress=False) as opu:
        opu.fit1d(n_features=8)
        with pytest.raises(TypeError, match=r"X: expected a tensor of a dtype numpy supports .* got torch.float8_e4m3fn"):
            opu.linear_transform(torch.zeros(2, 8).to(torch.float8_e4m3fn))
