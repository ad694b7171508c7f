"""Results that carry their acquisition metadata."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class TransformContext(BaseModel):
    """How a result was acquired. Units are in the names (us microseconds, s seconds)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    exposure_us: float
    frametime_us: float
    gain_dn_per_intensity: float = Field(description="camera counts per unit |R x|^2 at this exposure (DN)")
    dark_level_dn: float = Field(description="count of an unlit pixel subtracted for output='intensity' (DN)")
    input_roi: tuple[int, int, int, int] = Field(description="DMD mirrors in use: (y0, x0, rows, columns)")
    macro_pixel: int = Field(description="mirrors per feature along each side")
    output_roi: tuple[int, int, int, int] = Field(description="camera pixels read: (y0, x0, rows, columns)")
    frame_ids: np.ndarray = Field(description="device frame counter of each frame, int64")
    timestamps_us: np.ndarray = Field(description="device time of each frame (us)")
    device_time_s: float = Field(description="device time the transform took (s)")
    saturated_fraction: float = Field(description="fraction of output pixels at the ADC maximum")
    calibration_id: str | None = None
    fidelity: str


class OPUResult(np.ndarray):
    """A numpy array with the acquisition metadata in ``.context`` (a :class:`TransformContext`)."""

    context: TransformContext | None

    def __new__(cls, array: np.ndarray, context: TransformContext | None = None) -> "OPUResult":
        obj = np.asarray(array).view(cls)
        obj.context = context
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        self.context = getattr(obj, "context", None)
