"""Calibration records: save/load, OPU(calibration=...), device check, calibrated intensities."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calibration import CalibrationRecord
from calibration.linear import calibrate_linear
from opu_hal import OPU


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    with OPU("emu://", n_components=100, seed=21, progress=False) as opu:
        opu.fit1d(n_features=128)
        record = calibrate_linear(opu)
        x = (np.random.default_rng(0).random((6, 128)) < 0.5).astype(np.uint8)
        opu.calibration = record
        z = np.asarray(opu.linear_transform(x))
    path = record.save(tmp_path_factory.mktemp("cal"))
    return record, path, x, z


def test_round_trip_keeps_metadata_and_arrays(saved):
    record, path, _, _ = saved
    assert path.name == "calibration.json" and path.with_suffix(".npz").exists()
    loaded = CalibrationRecord.load(path.parent)
    assert loaded.model_dump() == record.model_dump()
    assert loaded.array_names == record.array_names
    for name in record.array_names:
        np.testing.assert_array_equal(loaded.array(name), record.array(name))
    meta = json.loads(path.read_text())
    assert meta["device"]["serial"] == "EMU-00000021" and meta["device"]["seed"] == 21
    assert meta["frames_spent"]["linear"] == record.linear.frames > 0
    assert "linear_noise_rel" in meta["metrics"]


def test_opu_loads_a_record_and_reproduces_the_projection(saved):
    record, path, x, z = saved
    with OPU("emu://", n_components=100, seed=21, progress=False, calibration=path) as opu:
        opu.fit1d(n_features=128)
        again = opu.linear_transform(x, calibrate=False)
        assert again.context.calibration_id == record.id
        # same device, same calibration: only the camera noise differs (~3 % per frame pair)
        assert np.median(np.linalg.norm(again - z, axis=1) / np.linalg.norm(z, axis=1)) < 0.08


def test_record_of_another_device_is_refused(saved):
    _, path, _, _ = saved
    opu = OPU("emu://", n_components=100, seed=22, progress=False, calibration=path)
    with pytest.raises(ValueError, match="EMU-00000022.*EMU-00000021"):
        opu.open()
    with OPU("emu://", n_components=100, seed=22, progress=False) as other:
        with pytest.raises(ValueError, match="calibration: expected a record of this device"):
            other.calibration = path


def test_calibrated_intensity_is_unbiased(saved):
    record, path, _, _ = saved
    with OPU("emu://", n_components=2000, seed=21, progress=False, calibration=record) as opu:
        opu.fit1d(n_features=128)
        x = (np.random.default_rng(1).random((20, 128)) < 0.5).astype(np.uint8)
        y = opu.transform(x, output="intensity")
        expected = np.abs(x @ opu.backend.model.transmission_matrix().T.astype(np.complex128)) ** 2
        assert y.context.calibration_id == record.id
        # mean over 40,000 values of the exponential speckle: scale within ~1 % (+ 2 % for the estimate of c)
        assert float(np.mean(y)) == pytest.approx(float(np.mean(expected)), rel=0.03)


def test_wrong_schema_version_and_bad_argument(saved, tmp_path):
    record, path, _, _ = saved
    meta = json.loads(path.read_text())
    meta["schema_version"] = 99
    bad = tmp_path / "old.json"
    bad.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="schema version 1.*99"):
        CalibrationRecord.load(bad)
    with pytest.raises(TypeError, match="calibration: expected a CalibrationRecord"):
        OPU("emu://", n_components=10, calibration=42)
    with pytest.raises(KeyError, match="linear_pixels"):
        CalibrationRecord(device=record.device).array("linear_pixels")
