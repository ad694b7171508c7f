"""The camera suite: every Camera implementation (firmware over the protocol, pylon's emulated
camera, real hardware with --device-url) must pass it unchanged."""

from __future__ import annotations

import re

import numpy as np
import pytest

from opu_hal.devices import ROI, Camera, TriggerType
from opu_hal.errors import DeviceTimeoutError


def refuse_io(camera: Camera, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to send settings to the device fail the test."""

    def no_io(*args, **kwargs):
        raise AssertionError("settings reached the device although they were out of range")

    monkeypatch.setattr(camera, "_do_apply", no_io)


def small_roi(camera: Camera) -> ROI:
    rows, cols = camera.limits.sensor_shape
    return ROI(x=cols // 4, y=rows // 4, width=max(2, cols // 2) // 2 * 2, height=max(2, rows // 4) // 2 * 2)


def test_identity_and_limits_describe_the_camera(camera: Camera) -> None:
    lim = camera.limits
    assert camera.identity.model and min(lim.sensor_shape) >= 1
    assert 0 < lim.exposure_us[0] < lim.exposure_us[1]
    assert lim.gain_db[0] <= lim.gain_db[1]
    assert TriggerType.SOFTWARE in lim.trigger_types and lim.pixel_formats


def test_exposure_is_set_and_out_of_range_refused_before_io(camera: Camera, monkeypatch: pytest.MonkeyPatch) -> None:
    low, high = camera.limits.exposure_us
    wanted = min(max(low, 200.0), high)
    assert camera.update(exposure_us=wanted).exposure_us == pytest.approx(wanted)
    assert camera.settings.exposure_us == pytest.approx(wanted)
    refuse_io(camera, monkeypatch)
    for bad in (high * 2, low / 2):
        with pytest.raises(ValueError, match=re.escape(f"exposure_us: expected {low:g} to {high:g} us, got {bad!r}")):
            camera.update(exposure_us=bad)
    assert camera.settings.exposure_us == pytest.approx(wanted)


def test_gain_and_binning_out_of_range_are_refused_before_io(camera: Camera, monkeypatch: pytest.MonkeyPatch) -> None:
    lo, hi = camera.limits.gain_db
    refuse_io(camera, monkeypatch)
    with pytest.raises(ValueError, match=re.escape(f"gain_db: expected {lo:g} to {hi:g} dB, got {hi + 10.0!r}")):
        camera.update(gain_db=hi + 10.0)
    too_many = camera.limits.max_binning + 1
    with pytest.raises(ValueError, match=rf"binning: expected 1 to {too_many - 1}"):
        camera.update(binning=too_many)


def test_roi_sets_the_frame_shape_and_outside_the_sensor_is_refused(camera: Camera, monkeypatch: pytest.MonkeyPatch) -> None:
    roi = small_roi(camera)
    camera.update(roi=roi, exposure_us=max(camera.limits.exposure_us[0], 100.0))
    camera.arm(1)
    camera.trigger()
    frame = camera.grab(1.0)
    camera.disarm()
    assert frame.image.shape == (roi.height, roi.width) == camera.image_shape
    rows, cols = camera.limits.sensor_shape
    refuse_io(camera, monkeypatch)
    with pytest.raises(ValueError, match=rf"roi.width: expected 1 to {cols - roi.x} px, got {cols}"):
        camera.update(roi=ROI(x=roi.x, y=0, width=cols, height=1))


def test_binning_when_supported_divides_the_frame(camera: Camera) -> None:
    if camera.limits.max_binning < 2:
        assert camera.settings.binning == 1
        return
    roi = small_roi(camera)
    camera.update(roi=roi, binning=2)
    camera.arm(1)
    camera.trigger()
    assert camera.grab(1.0).image.shape == (roi.height // 2, roi.width // 2)


def test_every_pixel_format_gives_its_dtype_and_others_are_refused(camera: Camera) -> None:
    camera.update(roi=small_roi(camera))
    for fmt in camera.limits.pixel_formats:
        camera.update(pixel_format=fmt)
        camera.arm(1)
        camera.trigger()
        image = camera.grab(1.0).image
        camera.disarm()
        assert image.dtype == fmt.dtype
        if fmt.bit_depth:
            assert int(image.max()) < 2**fmt.bit_depth
    unsupported = {"Mono8", "Mono10", "Mono12", "Mono16", "Float32"} - {f.value for f in camera.limits.pixel_formats}
    for name in unsupported:
        with pytest.raises(ValueError, match="pixel_format: expected one of"):
            camera.update(pixel_format=name)


def test_software_triggers_give_counted_consecutive_frames(camera: Camera) -> None:
    camera.update(roi=small_roi(camera), exposure_us=max(camera.limits.exposure_us[0], 100.0))
    camera.arm(4)
    for _ in range(4):
        camera.trigger()
    frames = camera.grab_many(4, 1.0)
    ids = [f.frame_id for f in frames]
    assert np.array_equal(np.diff(ids), np.ones(3)), ids
    assert all(f.dropped_before == 0 for f in frames) and camera.dropped_frames == 0
    stamps = [f.timestamp_us for f in frames]
    if stamps[0] is not None:
        assert np.all(np.diff(stamps) > 0)
    assert np.all(np.diff([f.host_time_s for f in frames]) >= 0)


def test_grab_timeouts_must_exceed_the_exposure_and_always_fire(camera: Camera) -> None:
    exposure = max(camera.limits.exposure_us[0], 1000.0)
    camera.update(exposure_us=exposure, roi=small_roi(camera))
    camera.arm()
    with pytest.raises(ValueError, match="timeout_s: expected more than the exposure"):
        camera.grab(exposure * 1e-6 / 2)
    with pytest.raises(DeviceTimeoutError, match="no frame within"):
        camera.grab(0.2)  # armed, never triggered


def test_software_trigger_is_refused_when_waiting_for_hardware(camera: Camera) -> None:
    hardware = [t for t in camera.limits.trigger_types if t is not TriggerType.SOFTWARE]
    if not hardware:
        pytest.fail("a camera of an OPU bench needs a hardware trigger input")
    camera.update(trigger_type=hardware[0])
    camera.arm()
    with pytest.raises(RuntimeError, match="not software ones"):
        camera.trigger()
    camera.disarm()
    with pytest.raises(RuntimeError, match="armed camera"):
        camera.arm()
        camera.update(exposure_us=camera.settings.exposure_us * 2)
