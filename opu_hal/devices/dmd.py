"""The DMD interface: bit-packed pattern sequences, picture time, triggers, run and stop.

A frame is a binary mirror image of ``shape`` (rows, columns). Frames travel bit-packed:
``ceil(columns / 8)`` bytes per row, mirror ``(r, c)`` in bit ``7 - c % 8`` of byte
``c // 8`` (``numpy.packbits`` order), 1 = mirror on. A sequence lives in the DMD's
on-board memory (at most ``DMDLimits.max_frames`` frames) and is shown picture after
picture, each for ``picture_time_us`` microseconds, with a trigger pulse out at the
start of every picture when ``trigger_out`` is on (cameras synchronise to it).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..layout import DMDLayout
from .common import Device, TriggerMode, TriggerType, check_choice, check_range, coerce_model

logger = logging.getLogger(__name__)


def packed_shape(shape: tuple[int, int]) -> tuple[int, int]:
    """Shape of one bit-packed frame of a ``shape`` (rows, columns) DMD: (rows, bytes per row)."""
    return (shape[0], (shape[1] + 7) // 8)


class DMDSettings(BaseModel):
    """What a DMD is told about showing its sequence."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    picture_time_us: float = Field(500.0, gt=0, description="time each picture is shown (us)")
    trigger_type: TriggerType = Field(TriggerType.SOFTWARE, description="what starts the sequence (trigger in)")
    trigger_mode: TriggerMode = Field(TriggerMode.START, description="START: one trigger runs the sequence; ONCE: one picture per trigger")
    trigger_out: bool = Field(True, description="emit a pulse at the start of each picture")


class DMDLimits(BaseModel):
    """What a DMD accepts (read from the device when it opens)."""

    model_config = ConfigDict(frozen=True)

    shape: tuple[int, int] = Field(description="mirrors (rows, columns)")
    picture_time_us: tuple[float, float] = Field(description="shortest and longest picture time (us)")
    max_frames: int = Field(description="frames the on-board memory holds")
    continuous: bool = Field(description="whether the sequence can loop until stopped")
    trigger_types: tuple[TriggerType, ...]
    trigger_modes: tuple[TriggerMode, ...]


class DMD(Device):
    """A DMD: upload a bit-packed sequence, set picture time and triggers, run, stop."""

    def __init__(self, settings: DMDSettings | dict[str, Any] | None = None) -> None:
        super().__init__()
        self._initial = coerce_model(settings, DMDSettings, "settings")
        self._settings: DMDSettings | None = None
        self._limits: DMDLimits | None = None
        self._n_frames = 0
        self._running = False
        self._layout: DMDLayout | None = None

    @property
    def limits(self) -> DMDLimits:
        """What the open DMD accepts."""
        self._require_open()
        return self._limits

    @property
    def settings(self) -> DMDSettings:
        """The settings in force."""
        self._require_open()
        return self._settings

    @property
    def sequence_length(self) -> int:
        """Frames of the uploaded sequence (0: none)."""
        return self._n_frames

    @property
    def running(self) -> bool:
        """True between ``run()`` and ``stop()``."""
        return self._running

    def open(self) -> "DMD":
        """Connect, read limits, and apply the settings given to the constructor."""
        if not self.is_open:
            super().open()
            try:
                self._limits = self._do_limits()
                self._settings = self._initial
                self.check(self._settings)
                self._do_apply(self._settings, set(DMDSettings.model_fields))
            except BaseException:
                self.close()
                raise
        return self

    def close(self) -> None:
        """Stop the sequence and disconnect; safe to call twice."""
        if self.is_open and self._running:
            self.stop()
        self._n_frames = 0
        super().close()

    def update(self, **changes: Any) -> DMDSettings:
        """Change some settings (names of :class:`DMDSettings`), checked against the limits first."""
        self._require_open()
        if self._running:
            raise RuntimeError("settings: cannot change the settings of a running DMD; call stop() first")
        new = coerce_model({**self._settings.model_dump(), **changes}, DMDSettings, "settings")
        self.check(new)
        changed = {k for k in DMDSettings.model_fields if getattr(new, k) != getattr(self._settings, k)}
        if changed:
            self._do_apply(new, changed)
            self._settings = new
        return new

    def check(self, settings: DMDSettings) -> None:
        """Raise ``ValueError`` if ``settings`` exceed this DMD's limits (no I/O)."""
        lim = self.limits
        check_range("picture_time_us", "us", settings.picture_time_us, *lim.picture_time_us)
        check_choice("trigger_type", settings.trigger_type, lim.trigger_types)
        check_choice("trigger_mode", settings.trigger_mode, lim.trigger_modes)

    def set_layout(self, layout: DMDLayout) -> None:
        """Say how features map to mirrors. Physical DMDs show mirrors and ignore it; a DMD
        inside OPU firmware, whose optics are defined per feature, needs it."""
        self._require_open()
        if layout.dmd_shape != self.limits.shape:
            raise ValueError(f"layout: expected a layout for the DMD {self.limits.shape}, got {layout.dmd_shape}")
        self._do_set_layout(layout)
        self._layout = layout

    def upload(self, frames: np.ndarray) -> None:
        """Store a sequence in on-board memory, replacing the previous one.

        ``frames``: bit-packed uint8 (F, rows, ceil(columns / 8)), or bool (F, rows, columns)
        which is packed here.
        """
        self._require_open()
        if self._running:
            raise RuntimeError("upload: the DMD is running; call stop() first")
        packed = self.pack(frames)
        check_range("frames", "frames (on-board memory)", packed.shape[0], 1, self.limits.max_frames)
        self._do_upload(packed)
        self._n_frames = packed.shape[0]

    def pack(self, frames: np.ndarray) -> np.ndarray:
        """Check a sequence's shape and return it bit-packed, uint8 (F, rows, bytes per row)."""
        frames = np.asarray(frames)
        rows, cols = self.limits.shape
        if frames.dtype == np.bool_:
            if frames.ndim != 3 or frames.shape[1:] != (rows, cols):
                raise ValueError(f"frames: expected bool frames of shape (F, {rows}, {cols}), got {frames.shape}")
            return np.packbits(frames, axis=2)
        if frames.dtype != np.uint8:
            raise TypeError(f"frames: expected bit-packed uint8 or bool frames, got dtype {frames.dtype}")
        expected = packed_shape((rows, cols))
        if frames.ndim != 3 or frames.shape[1:] != expected:
            raise ValueError(
                f"frames: expected bit-packed frames of shape (F, {expected[0]}, {expected[1]}), got {frames.shape}"
            )
        return np.ascontiguousarray(frames)

    def run(self, continuous: bool = False) -> None:
        """Start showing the sequence (once, or looping until ``stop()`` if ``continuous``)."""
        self._require_open()
        if self._n_frames == 0:
            raise RuntimeError("run: no sequence uploaded; call upload() first")
        if continuous and not self.limits.continuous:
            raise ValueError("continuous: expected False, this DMD shows a sequence once per run")
        if self._running:
            self.stop()
        self._do_run(continuous)
        self._running = True

    def stop(self) -> None:
        """Stop showing the sequence (mirrors go to rest)."""
        self._require_open()
        if self._running:
            self._running = False
            self._do_stop()

    # ------------------------------------------------------------------ hooks
    def _do_set_layout(self, layout: DMDLayout) -> None:
        """Physical DMDs show mirrors: nothing to do."""

    @abstractmethod
    def _do_limits(self) -> DMDLimits: ...

    @abstractmethod
    def _do_apply(self, settings: DMDSettings, changed: set[str]) -> None: ...

    @abstractmethod
    def _do_upload(self, packed: np.ndarray) -> None: ...

    @abstractmethod
    def _do_run(self, continuous: bool) -> None: ...

    @abstractmethod
    def _do_stop(self) -> None: ...
