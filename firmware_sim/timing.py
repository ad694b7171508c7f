"""Frame timing of the emulated OPU (docs/physics.md section 3.3).

A frame lasts ``frametime >= max(exposure, readout of the ROI rows) + margin`` and never
less than the DMD's fastest binary frame period. The sensor reads whole rows, one per
``line_time_us``, while the next frame is exposed (global shutter, pipelined), so the frame
rate falls with the rows read: at the defaults 2 kHz up to 80 rows (163,200 outputs, readout
400 us = exposure), 180 Hz for the whole 2040 x 1088 sensor (5,440 us readout). Times are
in microseconds.
"""

from __future__ import annotations

import math

from .params import EmulatorParams


def readout_us(params: EmulatorParams, roi_rows: int) -> float:
    """Camera readout time of an ROI of ``roi_rows`` sensor rows (us)."""
    return roi_rows * params.line_time_us


def min_frametime_us(params: EmulatorParams, exposure_us: float, roi_rows: int) -> float:
    """Shortest frametime (us) the device allows at this exposure and ROI height."""
    return max(
        max(exposure_us, readout_us(params, roi_rows)) + params.frame_margin_us,
        1e6 / params.dmd_max_rate_hz,
    )


def roi_rows(params: EmulatorParams, n_outputs: int) -> int:
    """Sensor rows read for ``n_outputs`` pixels: the ROI is whole sensor rows, filled row-major."""
    return math.ceil(n_outputs / params.camera_shape[1])
