"""Hostile or corrupted calibration records (issue 13 point 8): every corruption raises
``CalibrationRecordError`` naming the file and the field; none gives a silently wrong result."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from calibration import CalibrationRecord
from calibration.linear import calibrate_linear
from opu_hal import OPU
from opu_hal.errors import CalibrationRecordError, OPUError

N_FEATURES, N_COMPONENTS, SEED = 64, 40, 31


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A record written by the current calibration code (emulated camera noise)."""
    with OPU("emu://", n_components=N_COMPONENTS, seed=SEED, progress=False) as opu:
        opu.fit1d(n_features=N_FEATURES)
        record = calibrate_linear(opu)
    return record.save(tmp_path_factory.mktemp("cal"))


@pytest.fixture
def copy(saved, tmp_path) -> Path:
    """A private copy of the saved record (JSON path) to corrupt."""
    shutil.copy(saved, tmp_path / saved.name)
    shutil.copy(saved.with_suffix(".npz"), tmp_path / saved.with_suffix(".npz").name)
    return tmp_path / saved.name


def edit_json(path: Path, edit) -> None:
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def refused(path: Path, file: Path, field: str) -> CalibrationRecordError:
    with pytest.raises(CalibrationRecordError) as info:
        CalibrationRecord.load(path)
    error = info.value
    assert isinstance(error, OPUError) and isinstance(error, ValueError)
    assert error.path == file and error.field == field
    assert str(file) in str(error) and field in str(error)
    return error


@pytest.mark.parametrize(("field", "value"), [
    ("exposure_us", -1), ("exposure_us", 0), ("max_dn", 0), ("dn_per_intensity", 0), ("dn_per_intensity", -3.0),
    ("lit_fraction", 0), ("n_components", 0), ("frametime_us", "NaN"), ("exposure_us", "Infinity"),
])
def test_a_linear_section_out_of_range_is_refused_naming_the_file_and_field(copy, field, value) -> None:
    edit_json(copy, lambda meta: meta["linear"].update({field: value}))
    refused(copy, copy, f"linear.{field}")


def test_counts_out_of_range_are_refused(copy) -> None:
    edit_json(copy, lambda meta: meta["linear"].update(n_components=meta["linear"]["n_candidates"] + 1))
    refused(copy, copy, "linear.n_components")


def rewrite_array(path: Path, name: str, value: np.ndarray, *, checksum: bool) -> None:
    """Replace one array of the record's npz; with ``checksum``, as the writer would (so only the
    range and shape checks can catch it), else as a corruption on disk."""
    record_arrays = dict(np.load(path.with_suffix(".npz")))
    record_arrays[name] = value
    np.savez_compressed(path.with_suffix(".npz"), **record_arrays)
    if checksum:
        edit_json(path, lambda meta: meta["arrays"][name].update(
            sha256=hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest(),
            shape=list(value.shape), dtype=value.dtype.str))


def test_nan_in_the_reference_is_refused_even_with_a_matching_checksum(copy) -> None:
    ref = np.load(copy.with_suffix(".npz"))["linear_reference_dn"].copy()
    ref[3] = np.nan
    rewrite_array(copy, "linear_reference_dn", ref, checksum=True)
    error = refused(copy, copy.with_suffix(".npz"), "linear_reference_dn")
    assert "finite" in str(error)


def test_an_array_changed_on_disk_fails_its_checksum(copy) -> None:
    ref = np.load(copy.with_suffix(".npz"))["linear_reference_dn"].copy()
    ref[0] *= 1.01
    rewrite_array(copy, "linear_reference_dn", ref, checksum=False)
    error = refused(copy, copy.with_suffix(".npz"), "linear_reference_dn")
    assert "sha256" in str(error)


def test_an_array_of_the_wrong_shape_or_out_of_range_is_refused(copy, tmp_path) -> None:
    pixels = np.load(copy.with_suffix(".npz"))["linear_pixels"]
    rewrite_array(copy, "linear_pixels", pixels[:-1].copy(), checksum=True)
    assert "shape" in str(refused(copy, copy.with_suffix(".npz"), "linear_pixels"))
    far = pixels.copy()
    far[0] = 10**6
    rewrite_array(copy, "linear_pixels", far, checksum=True)
    refused(copy, copy.with_suffix(".npz"), "linear_pixels")


def test_an_array_that_inflates_beyond_its_listing_is_refused_before_it_is_read(copy) -> None:
    # 256 MB of zeros compress to ~250 KB: a record's .npz must not be able to make the loader
    # allocate what its JSON does not list.
    import tracemalloc

    bomb = np.zeros(256 * 2**20, dtype=np.uint8)
    rewrite_array(copy, "linear_pixels", bomb, checksum=False)
    del bomb
    tracemalloc.start()
    try:
        error = refused(copy, copy.with_suffix(".npz"), "linear_pixels")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "inflates" in str(error)
    assert peak < 32 * 2**20, peak


def test_a_missing_or_extra_array_is_refused(copy) -> None:
    arrays = dict(np.load(copy.with_suffix(".npz")))
    del arrays["linear_completion"]
    np.savez_compressed(copy.with_suffix(".npz"), **arrays)
    refused(copy, copy.with_suffix(".npz"), "linear_completion")


def test_a_truncated_npz_is_refused_naming_it(copy) -> None:
    npz = copy.with_suffix(".npz")
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    refused(copy, npz, "(file)")


def test_an_empty_npz_is_refused_naming_it(copy) -> None:
    npz = copy.with_suffix(".npz")
    npz.write_bytes(b"")
    refused(copy, npz, "(file)")


def test_a_truncated_json_is_refused_naming_it(copy) -> None:
    copy.write_text(copy.read_text()[:200])
    assert "line" in str(refused(copy, copy, "(file)"))


def test_a_json_list_at_top_level_is_refused(copy) -> None:
    copy.write_text("[1, 2, 3]")
    assert "list" in str(refused(copy, copy, "(file)"))


def test_a_wrong_schema_version_is_a_record_error_too(copy) -> None:
    edit_json(copy, lambda meta: meta.update(schema_version=99))
    assert "schema version 1" in str(refused(copy, copy, "schema_version"))


def test_a_record_without_checksums_loads_with_a_warning_and_is_still_checked(copy, caplog) -> None:
    edit_json(copy, lambda meta: meta.pop("arrays"))
    with caplog.at_level(logging.WARNING, logger="opu_hal"):
        record = CalibrationRecord.load(copy)
    assert record.linear is not None and "no checksums" in caplog.text and str(copy) in caplog.text
    ref = record.array("linear_reference_dn").copy()
    ref[0] = np.inf
    arrays = dict(np.load(copy.with_suffix(".npz")))
    arrays["linear_reference_dn"] = ref
    np.savez_compressed(copy.with_suffix(".npz"), **arrays)
    refused(copy, copy.with_suffix(".npz"), "linear_reference_dn")


def test_records_of_the_current_code_round_trip_and_give_the_same_projection(saved) -> None:
    loaded = CalibrationRecord.load(saved)
    meta = json.loads(saved.read_text())
    assert set(meta["arrays"]) == set(loaded.array_names) and all(len(a["sha256"]) == 64 for a in meta["arrays"].values())
    x = np.random.default_rng(2).standard_normal((3, N_FEATURES))
    with OPU("emu://", n_components=N_COMPONENTS, seed=SEED, progress=False, calibration=loaded) as opu:
        opu.fit1d(n_features=N_FEATURES)
        z = np.asarray(opu.linear_transform(x, calibrate=False))
    # z = x @ M.T with M ~ N(0, 1) entries: mean z^2 = N mean x^2 within ~15 % over these 120 values
    # (camera noise included); a 5.6x wrong scale, or NaN, cannot pass
    assert np.mean(z**2) == pytest.approx(np.mean(x**2) * N_FEATURES, rel=0.5)


def test_an_ideal_camera_record_with_no_saturation_level_round_trips(tmp_path) -> None:
    with OPU("emu://?fidelity=ideal", n_components=N_COMPONENTS, seed=SEED, progress=False) as opu:
        opu.fit1d(n_features=N_FEATURES)
        record = calibrate_linear(opu)
    assert record.linear.max_dn == np.inf
    loaded = CalibrationRecord.load(record.save(tmp_path))
    assert loaded.linear == record.linear
