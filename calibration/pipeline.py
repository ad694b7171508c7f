"""The whole calibration of a device, in order: camera, auto-exposure, linear projections, matrix."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from opu_hal.record import CalibrationRecord

from .camera import characterise_camera
from .exposure import auto_exposure
from .linear import calibrate_linear
from .tm import retrieve_transmission_matrix

if TYPE_CHECKING:
    from opu_hal.opu import OPU

logger = logging.getLogger(__name__)


_CHECK_INPUTS = 200


def _record_tm(opu: "OPU", record: CalibrationRecord, progress: bool) -> None:
    """Retrieve the complex transmission matrix and keep it, its metrics and a fresh-input check."""
    tm = retrieve_transmission_matrix(opu, progress=progress)
    check = np.random.default_rng(1).random((_CHECK_INPUTS, tm.matrix.shape[1])) < 0.5
    measured = np.asarray(opu.transform(check, output="intensity"), dtype=np.float32)
    record.set_array("tm_matrix", tm.matrix)
    record.set_array("tm_predicted", tm.predict_intensity(check))
    record.set_array("tm_measured", measured)
    record.tm = tm.model_dump(exclude={"matrix"})
    record.spend("tm", tm.frames_used + tm.check_frames + _CHECK_INPUTS)
    record.metrics["tm_intensity_correlation"] = float(tm.intensity_correlation or 0.0)
    record.metrics["tm_frames_per_feature"] = tm.frames_per_feature


def calibrate_all(opu: "OPU", *, camera: bool = True, tm: bool = True, progress: bool = True) -> CalibrationRecord:
    """Calibrate a fitted ``opu``: camera (if it has one and ``camera``), auto-exposure, linear,
    and (if ``tm``) the complex transmission matrix (about 28 frames per feature).

    The exposure found is kept in ``opu.settings`` and the record is put in
    ``opu.calibration``. Returns the record.
    """
    has_camera = opu.info.bit_depth > 0
    stages = (["camera"] if camera and has_camera else []) + (["exposure"] if has_camera else []) + ["linear"] + (["tm"] if tm else [])
    record = CalibrationRecord(device=opu.identity(), settings=opu.settings.model_dump())
    with tqdm(stages, desc="calibration", unit="stage", disable=not progress) as bar:
        for stage in bar:
            bar.set_postfix_str(stage)
            if stage == "camera":
                characterise_camera(opu, record=record)
            elif stage == "exposure":
                record.exposure = auto_exposure(opu)
                record.spend("exposure", record.exposure.frames)
                record.metrics["exposure_us"] = record.exposure.exposure_us
                record.metrics["frame_rate_hz"] = record.exposure.frame_rate_hz
            elif stage == "linear":
                calibrate_linear(opu, record=record)
            else:
                _record_tm(opu, record, progress)
    record.settings = opu.settings.model_dump()
    opu.calibration = record
    return record
