"""Exposure and frametime are checked host-side against the device's limits, for every backend, before the device is asked."""

from __future__ import annotations

import numpy as np
import pytest

from opu_hal import OPU, DeviceError
from opu_hal.backends.base import AppliedConfig, Backend, DeviceConfig, Frames
from opu_hal.layout import layout_1d
from opu_hal.limits import MAX_FRAMETIME_US
from opu_hal.settings import DeviceInfo

SMALL = "seed=3&dmd_shape=24x32&camera_shape=16x40&fidelity=ideal"


def _refused_before_the_device(url: str, settings: dict, monkeypatch: pytest.MonkeyPatch) -> ValueError:
    with OPU(url, n_components=20, settings=settings, progress=False) as opu:
        opu.open()

        def device_asked(config: DeviceConfig) -> AppliedConfig:
            raise AssertionError(f"the device was asked to configure {config}")

        monkeypatch.setattr(opu.backend, "_do_configure", device_asked)
        with pytest.raises(ValueError) as info:
            opu.fit1d(n_features=10)
        assert not isinstance(info.value, DeviceError)  # the host refused, not the device
        return info.value


@pytest.mark.parametrize("scheme", ["emu", "sim"])
@pytest.mark.parametrize("exposure_us", [0.5, 0.999, 0.0])
def test_an_exposure_outside_the_device_limits_is_refused_host_side(scheme, exposure_us, monkeypatch) -> None:
    url = f"{scheme}://?{SMALL}"
    with OPU(url, n_components=20, progress=False) as opu:
        limits = opu.info.limits
    if exposure_us <= 0:  # the settings refuse it before any device
        with pytest.raises(ValueError, match="exposure_us"):
            OPU(url, n_components=20, settings={"exposure_us": exposure_us})
        return
    message = str(_refused_before_the_device(url, {"exposure_us": exposure_us}, monkeypatch))
    assert message.startswith("exposure_us: expected ")
    assert f"{limits.min_exposure_us:g} to {limits.max_exposure_us:g} us" in message and f"got {exposure_us!r}" in message


@pytest.mark.parametrize("scheme", ["emu", "sim"])
def test_a_frametime_shorter_than_the_exposure_is_refused_host_side(scheme, monkeypatch) -> None:
    message = str(_refused_before_the_device(f"{scheme}://?{SMALL}", {"exposure_us": 400.0, "frametime_us": 100.0},
                                             monkeypatch))
    assert message.startswith("frametime_us: expected at least 400 us (the exposure)")
    assert f"{MAX_FRAMETIME_US:g} us" in message and "got 100.0" in message


@pytest.mark.parametrize("scheme", ["emu", "sim"])
def test_the_shortest_exposure_the_device_allows_is_accepted(scheme) -> None:
    with OPU(f"{scheme}://?{SMALL}", n_components=20, progress=False) as opu:
        opu.settings = {"exposure_us": opu.info.limits.min_exposure_us}
        opu.fit1d(n_features=10)
        assert opu.transform(np.ones(10, dtype=np.uint8)).context.exposure_us == opu.info.limits.min_exposure_us


class _NoChecks(Backend):
    """A backend whose device would accept anything: the limits must still hold."""

    def __init__(self, info: DeviceInfo) -> None:
        super().__init__()
        self._device_info = info
        self.configured: list[DeviceConfig] = []

    def _do_open(self, timeout_s: float) -> DeviceInfo:
        return self._device_info

    def _do_configure(self, config: DeviceConfig) -> AppliedConfig:
        self.configured.append(config)
        return AppliedConfig(config.exposure_us or 1.0, config.frametime_us or 1.0, (0, 0, 1, config.n_components))

    def _do_acquire(self, features: np.ndarray) -> Frames:
        raise NotImplementedError

    def _do_close(self) -> None:
        pass


def test_every_backend_checks_the_limits_its_device_gives() -> None:
    with OPU(f"emu://?{SMALL}", n_components=20, progress=False) as opu:
        info = opu.info.model_copy(update={"limits": opu.info.limits.model_copy(update={"min_exposure_us": 10.0})})
    backend = _NoChecks(info)
    backend.open(timeout_s=1.0)
    layout = layout_1d(10, info.dmd_shape, "auto")
    with pytest.raises(ValueError, match=r"^exposure_us: expected 10 to .* got 5.0$"):
        backend.configure(DeviceConfig(layout, 20, 5.0, None))
    with pytest.raises(ValueError, match=r"^frametime_us: expected at least 10 us .* got 5.0$"):
        backend.configure(DeviceConfig(layout, 20, 10.0, 5.0))
    with pytest.raises(ValueError, match=r"^frametime_us: .* got 20000000.0$"):
        backend.configure(DeviceConfig(layout, 20, None, 2e7))
    assert backend.configured == []
    backend.configure(DeviceConfig(layout, 20, 10.0, 10.0))
    assert len(backend.configured) == 1
