"""One suite, unchanged, against emu://, sim://, socket:// (a firmware_sim process) and a pty.

Every backend must behave as emu://: the same seed gives bitwise the same raw output,
frame ids and timestamps, in ideal and in physical fidelity.
"""

from __future__ import annotations

import numpy as np
import pytest

from opu_hal import OPU, NotFittedError
from wire_devices import FirmwareProcess, reset_device

SHAPES = {"seed": "7", "dmd_shape": "24x32", "camera_shape": "16x40"}
KINDS = ("emu", "sim", "socket", "pty")
FIDELITIES = ("ideal", "physical")


def query(fidelity: str) -> str:
    return "&".join(f"{k}={v}" for k, v in {**SHAPES, "fidelity": fidelity}.items())


@pytest.fixture(scope="module")
def processes():
    """Firmware processes, started together: (kind, fidelity) -> FirmwareProcess."""
    options = [f"--{k.replace('_', '-')}={v}" for k, v in SHAPES.items()]
    procs = {
        (kind, fid): FirmwareProcess("--listen" if kind == "socket" else "--pty", *(["127.0.0.1:0"] if kind == "socket" else []),
                                     *options, f"--fidelity={fid}")
        for kind in ("socket", "pty")
        for fid in FIDELITIES
    }
    yield procs
    for proc in procs.values():
        proc.close()


@pytest.fixture(params=[(k, f) for k in KINDS for f in FIDELITIES], ids=lambda p: f"{p[0]}-{p[1]}")
def device(request, processes) -> str:
    kind, fidelity = request.param
    if kind in ("emu", "sim"):
        return f"{kind}://?{query(fidelity)}"
    url = processes[(kind, fidelity)].url
    reset_device(url)  # a fresh device: counters from 0, as a new emu:// instance
    return url


def reference(fidelity: str, **kwargs) -> OPU:
    return OPU(f"emu://?{query(fidelity)}", progress=False, **kwargs)


def inputs(batch: int, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, n)) < 0.5


def assert_same(result, expected) -> None:
    assert result.dtype == expected.dtype
    np.testing.assert_array_equal(np.asarray(result), np.asarray(expected))
    np.testing.assert_array_equal(result.context.frame_ids, expected.context.frame_ids)
    np.testing.assert_array_equal(result.context.timestamps_us, expected.context.timestamps_us)
    assert result.context.output_roi == expected.context.output_roi
    assert result.context.exposure_us == expected.context.exposure_us


def test_info_describes_the_device(device):
    with OPU(device, n_components=10, progress=False) as opu:
        info = opu.info
        with reference(info.fidelity, n_components=10) as ref:
            expected = ref.info
    assert info.model_dump(exclude={"protocol_version"}) == expected.model_dump(exclude={"protocol_version"})
    assert info.dmd_shape == (24, 32) and info.camera_shape == (16, 40)
    assert info.bit_depth == (0 if info.fidelity == "ideal" else 8)


def test_transform_is_bitwise_the_emulator(device):
    x1, x2 = inputs(300, 50, 1), inputs(37, 50, 2)
    with OPU(device, n_components=60, progress=False) as opu:
        opu.fit1d(n_features=50)
        y1, y2 = opu.transform(x1), opu.transform(x2)
        fidelity = opu.info.fidelity
    with reference(fidelity, n_components=60) as ref:
        ref.fit1d(n_features=50)
        r1, r2 = ref.transform(x1), ref.transform(x2)
    assert_same(y1, r1)
    assert_same(y2, r2)
    np.testing.assert_array_equal(y2.context.frame_ids, np.arange(300, 337))
    assert y1.flags.writeable


def test_large_batches_are_split_the_same_way(device):
    x = inputs(250, 30, 3)
    settings = {"max_batch_frames": 64, "exposure_us": 300.0}
    with OPU(device, n_components=45, settings=settings, progress=False) as opu:
        opu.fit1d(n_features=30)
        y = opu.transform(x)
        z = opu.transform(x, output="intensity")
        fidelity = opu.info.fidelity
    with reference(fidelity, n_components=45, settings=settings) as ref:
        ref.fit1d(n_features=30)
        assert_same(y, ref.transform(x))
        np.testing.assert_array_equal(z, ref.transform(x, output="intensity"))
    assert y.context.exposure_us == 300.0


def test_fit2d_and_changing_n_components(device):
    x = inputs(40, 20, 4).reshape(40, 4, 5)
    with OPU(device, n_components=20, progress=False) as opu:
        opu.fit2d(n_features=(4, 5))
        a = opu.transform(x)
        opu.n_components = 70
        b = opu.transform(x)
        fidelity = opu.info.fidelity
    with reference(fidelity, n_components=20) as ref:
        ref.fit2d(n_features=(4, 5))
        assert_same(a, ref.transform(x))
        ref.n_components = 70
        assert_same(b, ref.transform(x))
    assert b.shape == (40, 70)


def test_refused_settings_and_misuse_raise_the_same_errors(device):
    with OPU(device, n_components=20, settings={"frametime_us": 1.0}, progress=False) as opu:
        with pytest.raises(ValueError, match="frametime_us"):
            opu.fit1d(n_features=10)
    with OPU(device, n_components=20, progress=False) as opu:
        with pytest.raises(NotFittedError):
            opu.transform(inputs(2, 10))
        with pytest.raises(ValueError, match="n_components"):
            opu.n_components = 16 * 40 + 1
        opu.fit1d(n_features=10)
        with pytest.raises(ValueError, match="X"):
            opu.transform(np.full((2, 10), 2))
        assert opu.transform(inputs(3, 10)).context.frame_ids.tolist() == [0, 1, 2]  # nothing was acquired before
