"""``emu://``: the firmware_sim physical model in-process, with no wire (the fastest backend)."""

from __future__ import annotations

import numpy as np

from firmware_sim import EmulatorParams, OPUModel
from firmware_sim.model import FIRMWARE_VERSION, MODEL_NAME

from ..limits import MAX_BATCH_FRAMES, MAX_EXPOSURE_US, MIN_EXPOSURE_US
from ..settings import DeviceInfo, DeviceLimits
from ..url import DeviceSpec
from .base import AppliedConfig, Backend, DeviceConfig, Frames

PROTOCOL_VERSION = "in-process"


def model_info(model: OPUModel, protocol_version: str, max_batch_frames: int) -> DeviceInfo:
    """The description an emulated device gives of itself."""
    p = model.params
    return DeviceInfo(
        model=MODEL_NAME,
        serial=model.serial,
        firmware_version=FIRMWARE_VERSION,
        protocol_version=protocol_version,
        dmd_shape=p.dmd_shape,
        camera_shape=p.camera_shape,
        bit_depth=0 if model.ideal else p.bit_depth,
        fidelity=p.fidelity,
        default_exposure_us=p.exposure_us,
        dark_level_dn=model.dark_level_dn(0.0),
        dark_current_dn_per_us=model.dark_level_dn(1.0) - model.dark_level_dn(0.0),
        dn_per_intensity_per_us=model.dn_per_intensity(1.0),
        limits=DeviceLimits(
            max_n_components=model.max_outputs(),
            max_n_features=p.n_mirrors,
            min_exposure_us=MIN_EXPOSURE_US,
            max_exposure_us=MAX_EXPOSURE_US,
            max_batch_frames=max_batch_frames,
        ),
    )


class EmulatedBackend(Backend):
    """The physical model, called directly. ``model`` gives tests the ground truth."""

    def __init__(self, params: EmulatorParams) -> None:
        super().__init__()
        self.params = params
        self.model: OPUModel | None = None

    def _do_open(self, timeout_s: float) -> DeviceInfo:
        self.model = OPUModel(self.params)
        return model_info(self.model, PROTOCOL_VERSION, MAX_BATCH_FRAMES)

    def _do_configure(self, config: DeviceConfig) -> AppliedConfig:
        applied = self.model.configure(
            config.layout.n_features, config.n_components, config.exposure_us, config.frametime_us
        )
        return AppliedConfig(applied.exposure_us, applied.frametime_us, applied.roi)

    def _do_acquire(self, features: np.ndarray) -> Frames:
        acq = self.model.acquire(features)
        return Frames(acq.frames, acq.frame_ids, acq.timestamps_us, acq.saturated_fraction, acq.device_time_s)

    def _do_close(self) -> None:
        self.model.close()
        self.model = None


def emu_backend(spec: DeviceSpec) -> EmulatedBackend:
    """The backend of ``emu://?KEY=VALUE...`` (keys: the emulator's parameters)."""
    return EmulatedBackend(spec.get(EmulatorParams))
