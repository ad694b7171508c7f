"""What the OPU facade needs from a device, whatever answers behind the URL.

Public methods validate and keep state; subclasses implement the ``_do_*`` hooks.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ..errors import DeviceClosedError
from ..layout import DMDLayout
from ..limits import MAX_FRAMETIME_US
from ..settings import DeviceInfo
from ..validation import check_int

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceConfig:
    """Geometry and timing sent to a device before acquiring.

    ``exposure_us``/``frametime_us`` of None ask for the device default / shortest.
    """

    layout: DMDLayout
    n_components: int
    exposure_us: float | None
    frametime_us: float | None


@dataclass(frozen=True)
class AppliedConfig:
    """What the device put in force: exposure and frametime (us), output ROI (y0, x0, rows, columns).

    ``medium``: the transmission-matrix model an emulated device uses for this
    configuration (``dense`` or ``structured``); None for hardware.
    """

    exposure_us: float
    frametime_us: float
    output_roi: tuple[int, int, int, int]
    medium: str | None = None


@dataclass(frozen=True)
class Frames:
    """One device call's frames and metadata.

    ``frames``: (B, n_components) camera counts, or float32 intensities in ideal fidelity;
    ``timestamps_us``: device time of each frame (us); ``device_time_s``: device time the
    call took (s).
    """

    frames: np.ndarray
    frame_ids: np.ndarray
    timestamps_us: np.ndarray
    saturated_fraction: float
    device_time_s: float


def _check_timing(config: DeviceConfig, info: DeviceInfo) -> None:
    """Raise ValueError naming ``exposure_us`` or ``frametime_us`` if it is outside what the device allows (us)."""
    limits = info.limits
    if config.exposure_us is not None and not limits.min_exposure_us <= config.exposure_us <= limits.max_exposure_us:
        raise ValueError(
            f"exposure_us: expected {limits.min_exposure_us:g} to {limits.max_exposure_us:g} us "
            f"(the limits of the device {info.model}), got {config.exposure_us!r}"
        )
    if config.frametime_us is not None:
        exposure_us = info.default_exposure_us if config.exposure_us is None else config.exposure_us
        if not exposure_us <= config.frametime_us <= MAX_FRAMETIME_US:
            raise ValueError(
                f"frametime_us: expected at least {exposure_us:g} us (the exposure) and at most "
                f"{MAX_FRAMETIME_US:g} us, got {config.frametime_us!r}"
            )


class Backend(ABC):
    """A device behind a URL: open, configure, acquire batches of binary inputs, close."""

    #: True for devices that other processes could also reach (they are locked on open).
    exclusive: bool = False

    def __init__(self) -> None:
        self._info: DeviceInfo | None = None
        self._config: DeviceConfig | None = None
        self._applied_config: AppliedConfig | None = None

    @property
    def is_open(self) -> bool:
        """True between ``open()`` and ``close()``."""
        return self._info is not None

    @property
    def seed(self) -> int | None:
        """Seed of an emulated device (its medium and noise); None for hardware."""
        return None

    @property
    def info(self) -> DeviceInfo:
        """What the device said about itself when opened."""
        if self._info is None:
            raise DeviceClosedError("the device is not open: call open() first")
        return self._info

    def device_keys(self) -> tuple[str, ...]:
        """Names of the device for the lock of an exclusive device, resolved now; () means the URL's."""
        return ()

    def open(self, timeout_s: float) -> DeviceInfo:
        """Connect (within ``timeout_s`` seconds) and return the device's description."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s: expected a positive number of seconds, got {timeout_s}")
        if self._info is None:
            self._info = self._do_open(timeout_s)
            logger.info("opened %s %s (firmware %s)", self._info.model, self._info.serial, self._info.firmware_version)
        return self._info

    def configure(self, config: DeviceConfig) -> AppliedConfig:
        """Put a geometry and timing in force; returns what the device applied.

        Checked here, before the device is asked, for every backend: ``exposure_us`` within
        the device's ``info.limits`` (us), ``frametime_us`` from the exposure in force (a frame
        is at least its exposure) to ``MAX_FRAMETIME_US`` (us); the device may refuse more.
        """
        info = self.info
        _check_timing(config, info)
        if config.layout.dmd_shape != info.dmd_shape:
            raise ValueError(f"layout: expected a layout for the DMD {info.dmd_shape}, got {config.layout.dmd_shape}")
        if not 1 <= config.n_components <= info.limits.max_n_components:
            raise ValueError(
                f"n_components: expected 1 to {info.limits.max_n_components} (camera pixels), got {config.n_components}"
            )
        applied = self._do_configure(config)
        self._config, self._applied_config = config, applied
        if applied.medium is not None and applied.medium != self._info.medium:  # auto resolved for this size
            self._info = self._info.model_copy(update={"medium": applied.medium})
        return applied

    def estimate_seconds(self, batch: int) -> float:
        """Rough wall time (s) of acquiring ``batch`` frames in one call at the configuration in force.

        Default: the frames' device time, ``batch`` x frametime (a device that computes its
        frames, such as an emulator, adds its compute time). For progress reporting only.
        """
        if self._applied_config is None:
            raise RuntimeError("the device is not configured: call configure() first")
        check_int(batch, "batch", low=0)
        return batch * self._applied_config.frametime_us * 1e-6

    def acquire(self, features: np.ndarray) -> Frames:
        """Acquire one frame per row of ``features`` (B, n_features), uint8 0/1."""
        if self._config is None:
            raise RuntimeError("the device is not configured: call configure() first")
        if features.ndim != 2 or features.shape[1] != self._config.layout.n_features:
            raise ValueError(
                f"features: expected shape (B, {self._config.layout.n_features}), got {features.shape}"
            )
        if features.shape[0] > self.info.limits.max_batch_frames:
            raise ValueError(
                f"features: expected at most {self.info.limits.max_batch_frames} frames per call, got {features.shape[0]}"
            )
        return self._do_acquire(features)

    def close(self) -> None:
        """Disconnect; safe to call twice."""
        if self._info is not None:
            self._do_close()
            self._info = None
            self._config = self._applied_config = None

    @abstractmethod
    def _do_open(self, timeout_s: float) -> DeviceInfo: ...

    @abstractmethod
    def _do_configure(self, config: DeviceConfig) -> AppliedConfig: ...

    @abstractmethod
    def _do_acquire(self, features: np.ndarray) -> Frames: ...

    @abstractmethod
    def _do_close(self) -> None: ...
