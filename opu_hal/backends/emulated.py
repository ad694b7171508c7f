"""``emu://``: the firmware_sim physical model in-process, with no wire (the fastest backend)."""

from __future__ import annotations

import numpy as np

from firmware_sim import EmulatorParams, OPUModel
from firmware_sim.identity import device_info

from ..limits import MAX_BATCH_FRAMES
from ..settings import DeviceInfo
from ..url import DeviceSpec
from .base import AppliedConfig, Backend, DeviceConfig, Frames

PROTOCOL_VERSION = "in-process"


class EmulatedBackend(Backend):
    """The physical model, called directly. ``model`` gives tests the ground truth."""

    def __init__(self, params: EmulatorParams) -> None:
        super().__init__()
        self.params = params
        self.model: OPUModel | None = None

    @property
    def seed(self) -> int:
        """The emulated device's seed."""
        return self.params.seed

    def _do_open(self, timeout_s: float) -> DeviceInfo:
        self.model = OPUModel(self.params)
        return device_info(self.model, PROTOCOL_VERSION, MAX_BATCH_FRAMES)

    def _do_configure(self, config: DeviceConfig) -> AppliedConfig:
        applied = self.model.configure(
            config.layout.n_features,
            config.n_components,
            config.exposure_us,
            config.frametime_us,
            mirrors_per_feature=config.layout.factor**2,
        )
        return AppliedConfig(applied.exposure_us, applied.frametime_us, applied.roi, self.model.medium.kind)

    def _do_acquire(self, features: np.ndarray) -> Frames:
        acq = self.model.acquire(features)
        return Frames(acq.frames, acq.frame_ids, acq.timestamps_us, acq.saturated_fraction, acq.device_time_s)

    def estimate_seconds(self, batch: int) -> float:
        """Rough compute time (s) of ``batch`` frames in one call: the emulator's (device time is not waited for)."""
        super().estimate_seconds(batch)  # validates
        return self.model.estimate_seconds(batch)

    def _do_close(self) -> None:
        self.model.close()
        self.model = None


def emu_backend(spec: DeviceSpec) -> EmulatedBackend:
    """The backend of ``emu://?KEY=VALUE...`` (keys: the emulator's parameters); it takes no location."""
    if spec.location:
        raise ValueError(f"expected emu:// with no host or path (an in-process emulator), got location {spec.location!r}")
    return EmulatedBackend(spec.get(EmulatorParams))
