"""Drift monitor: replay a record's sentinel inputs and compare with the frames it holds.

When the medium drifts, ``R(t + dt) = sqrt(1 - eps) R(t) + sqrt(eps) W`` (docs/physics.md section 3.1), the
field of any input keeps a correlation ``sqrt(1 - eps)`` with its calibrated value, and for
circular Gaussian speckle the intensities keep a correlation ``|rho|^2 = 1 - eps``. The
monitor therefore measures the Pearson correlation of the dark-subtracted sentinel
intensities (all pixels read, all sentinels; values saturated in either set left out):
it estimates ``1 - eps`` up to the camera noise (a fresh record gives ~0.998 on the default
camera). Below ``threshold`` (default 0.95, i.e. 5 % decorrelation) the record is stale: a
warning is logged and, if asked, the device is calibrated again.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from opu_hal.errors import NotCalibratedError
from opu_hal.record import CalibrationRecord

if TYPE_CHECKING:
    from opu_hal.opu import OPU

logger = logging.getLogger(__name__)


class DriftWarning(UserWarning):
    """The medium has decorrelated from a calibration record."""


class DriftReport(BaseModel):
    """Result of a drift check. ``correlation`` estimates ``1 - eps`` (eps: decorrelated fraction)."""

    model_config = ConfigDict(frozen=True)

    record_id: str
    correlation: float
    threshold: float
    drifted: bool
    frames: int
    elapsed_device_s: float = Field(description="device time since the record's sentinel frames (s), by the frames' timestamps")
    recalibrated_id: str | None = None


class DriftMonitor:
    """Checks a calibration record against the device.

    Parameters
    ----------
    threshold:
        Smallest accepted intensity correlation (0 to 1).
    recalibrate:
        On drift, run the linear calibration again and put the new record in ``opu.calibration``.
    """

    def __init__(self, threshold: float = 0.95, recalibrate: bool = False) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold: expected 0 < threshold < 1, got {threshold}")
        self.threshold = threshold
        self.recalibrate = recalibrate

    def check(self, opu: "OPU", record: CalibrationRecord | None = None) -> DriftReport:
        """Replay the sentinels of ``record`` (default: ``opu.calibration``) and compare."""
        record = record or opu.calibration
        if record is None or record.sentinels is None:
            raise NotCalibratedError("drift check: expected a calibration record with sentinels, got none")
        sent = record.sentinels
        inputs = record.array("sentinel_inputs")
        stored = record.array("sentinel_frames").astype(np.float64)
        dark = record.array("sentinel_dark_dn").astype(np.float64)
        with opu.session() as session:
            session.configure(sent.n_features, sent.n_outputs, sent.exposure_us)
            frames = session.acquire(inputs).astype(np.float64)
            max_dn = session.max_dn
            frames_spent = session.frames
            now_s = float(session.context(None).timestamps_us[-1]) * 1e-6  # the device's clock
        now = (frames - dark).ravel()
        then = stored.ravel()
        usable = ((frames < max_dn) & (stored + dark < max_dn - 0.5)).ravel()
        correlation = float(np.corrcoef(now[usable], then[usable])[0, 1])
        drifted = correlation < self.threshold
        elapsed = now_s - sent.device_time_s
        new_id = None
        if drifted:
            message = (
                f"calibration {record.id}: sentinel correlation {correlation:.4f} is below {self.threshold} "
                "(the medium has drifted)"
            )
            logger.warning(message)
            warnings.warn(message, DriftWarning, stacklevel=2)
            if self.recalibrate:
                from .linear import calibrate_linear

                lin = record.linear
                fresh = calibrate_linear(
                    opu, scheme=lin.scheme if lin else "complement", record=record.derive()
                )
                opu.calibration = fresh
                new_id = fresh.id
        return DriftReport(
            record_id=record.id,
            correlation=correlation,
            threshold=self.threshold,
            drifted=drifted,
            frames=frames_spent,
            elapsed_device_s=elapsed,
            recalibrated_id=new_id,
        )
