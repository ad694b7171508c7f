"""The DMD suite: every DMD implementation (firmware over the protocol, the ALP driver on a
simulated ALP library, real hardware with --device-url) must pass it unchanged."""

from __future__ import annotations

import re

import numpy as np
import pytest

from opu_hal.devices import DMD, packed_shape


def patterns(dmd: DMD, count: int) -> np.ndarray:
    rng = np.random.default_rng(count)
    return rng.integers(0, 2, (count, *dmd.limits.shape)).astype(bool)


def test_limits_describe_the_dmd(dmd: DMD) -> None:
    lim = dmd.limits
    assert min(lim.shape) >= 1 and lim.max_frames >= 1
    assert 0 < lim.picture_time_us[0] < lim.picture_time_us[1]


def test_bool_and_packed_sequences_are_the_same_upload(dmd: DMD) -> None:
    frames = patterns(dmd, 5)
    packed = dmd.pack(frames)
    assert packed.shape == (5, *packed_shape(dmd.limits.shape)) and packed.dtype == np.uint8
    assert np.array_equal(np.unpackbits(packed, axis=2)[..., : dmd.limits.shape[1]], frames)
    dmd.upload(frames)
    assert dmd.sequence_length == 5
    dmd.upload(packed[:3])
    assert dmd.sequence_length == 3


def test_sequences_beyond_memory_or_of_the_wrong_shape_are_refused_before_io(dmd: DMD, monkeypatch: pytest.MonkeyPatch) -> None:
    limit = dmd.limits.max_frames
    dmd.upload(patterns(dmd, 2))
    monkeypatch.setattr(dmd, "_do_upload", lambda packed: pytest.fail("an invalid sequence reached the device"))
    too_many = np.zeros((limit + 1, *packed_shape(dmd.limits.shape)), dtype=np.uint8)
    with pytest.raises(ValueError, match=rf"frames: expected 1 to {limit} frames \(on-board memory\), got {limit + 1}"):
        dmd.upload(too_many)
    rows, cols = dmd.limits.shape
    with pytest.raises(ValueError, match="frames: expected bool frames of shape"):
        dmd.upload(np.zeros((2, rows, cols + 1), dtype=bool))
    with pytest.raises(TypeError, match="frames: expected bit-packed uint8 or bool"):
        dmd.upload(np.zeros((2, rows, cols), dtype=np.float32))
    assert dmd.sequence_length == 2


def test_picture_time_is_set_and_out_of_range_refused_before_io(dmd: DMD, monkeypatch: pytest.MonkeyPatch) -> None:
    low, high = dmd.limits.picture_time_us
    wanted = min(max(low, 1000.0), high)
    assert dmd.update(picture_time_us=wanted).picture_time_us == wanted
    monkeypatch.setattr(dmd, "_do_apply", lambda *a: pytest.fail("an invalid setting reached the device"))
    with pytest.raises(ValueError, match=re.escape(f"picture_time_us: expected {low:g} to {high:g} us, got {high * 10!r}")):
        dmd.update(picture_time_us=high * 10)
    assert dmd.settings.picture_time_us == wanted


def test_run_and_stop(dmd: DMD) -> None:
    with pytest.raises(RuntimeError, match="no sequence uploaded"):
        dmd.run()
    dmd.update(picture_time_us=max(dmd.limits.picture_time_us[0], 1000.0))
    dmd.upload(patterns(dmd, 4))
    dmd.run()
    assert dmd.running
    with pytest.raises(RuntimeError, match="call stop"):
        dmd.upload(patterns(dmd, 2))
    dmd.stop()
    assert not dmd.running
    if dmd.limits.continuous:
        dmd.run(continuous=True)
        assert dmd.running
        dmd.stop()
    else:
        with pytest.raises(ValueError, match="continuous: expected False"):
            dmd.run(continuous=True)
