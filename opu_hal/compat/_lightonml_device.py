"""The device behind the lightonml shim's ``OPU.device``: an :class:`opu_hal.OPU` with lightonml's device attributes.

Imported when the first shim OPU is made (it loads the facade).
"""

from __future__ import annotations

from opu_hal.opu import OPU


class LightonmlDevice(OPU):
    """:class:`opu_hal.OPU` plus ``input_shape`` and ``output_shape_max``, as lightonml's ``OPU.device`` had."""

    @property
    def input_shape(self) -> tuple[int, int]:
        """DMD mirrors (rows, columns): ``fit2d`` of an input of this shape uses the whole DMD (opens the device)."""
        rows, columns = self.info.dmd_shape
        return int(rows), int(columns)

    @property
    def output_shape_max(self) -> tuple[int, int]:
        """Camera pixels (rows, columns), the largest output (opens the device)."""
        rows, columns = self.info.camera_shape
        return int(rows), int(columns)
