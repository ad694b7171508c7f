"""``opu-hal calibrate URL --out DIR`` writes a loadable record and the PNG report."""

from __future__ import annotations

import cv2

from calibration import CalibrationRecord
from opu_hal.cli import main


def test_calibrate_writes_record_and_plots(tmp_path, capsys):
    out = tmp_path / "cal"
    assert main(["calibrate", "emu://?seed=3", "--out", str(out), "--n-features", "128", "--n-components", "100"]) == 0
    record = CalibrationRecord.load(out)
    assert record.device.serial == "EMU-00000003"
    assert record.camera is not None and record.exposure is not None and record.linear is not None
    assert set(record.frames_spent) == {"camera", "exposure", "linear", "tm"}
    assert record.tm["intensity_correlation"] > 0.95
    assert record.array("tm_matrix").shape == (100, 128)
    for name in ("photon_transfer.png", "exposure_histogram.png", "linear_repeatability.png", "tm_predicted_vs_measured.png"):
        image = cv2.imread(str(out / name))
        assert image is not None and image.shape[2] == 3
    assert "K = " in capsys.readouterr().out
