"""opu-hal selftest: the switch-on checks pass on a healthy device and catch broken ones."""

import pytest

from opu_hal.cli import main
from opu_hal import OPU
from opu_hal.record import CalibrationRecord, CameraCalibration
from opu_hal.selftest import CHECK_NAMES, SelftestConfig, format_table, run_selftest

SMALL = SelftestConfig(n_components=400, n_features=300, batch=50)


def _statuses(results):
    return {r.name: r.status for r in results}


def test_healthy_emulator_passes_every_check():
    results = run_selftest("emu://", SMALL)
    assert [r.name for r in results] == list(CHECK_NAMES)
    assert set(_statuses(results).values()) == {"pass"}, format_table(results)


def test_ideal_emulator_has_no_camera_to_saturate():
    statuses = _statuses(run_selftest("emu://?fidelity=ideal", SMALL))
    assert statuses.pop("saturation") == "skip"
    assert set(statuses.values()) == {"pass"}


def test_fast_drifting_medium_fails_repeatability():
    # decorrelation time 10 ms: between two acquisitions of the known input (10 frames of
    # 500 us plus the batch in between) the speckle decorrelates well below 0.95
    statuses = _statuses(run_selftest("emu://?drift=0.01", SMALL))
    assert statuses["repeatability"] == "fail"
    assert statuses["dark level"] == "pass" and statuses["frame rate"] == "pass"


def test_hot_pixels_fail_the_dark_level():
    # hot pixels read full scale whatever the light: the dark mean is far above the nominal level
    statuses = _statuses(run_selftest("emu://?hot_pixel_fraction=0.05", SMALL))
    assert statuses["dark level"] == "fail"


@pytest.mark.parametrize("url", ["emu://?offset_dn=20", "emu://?offset_dn=2", "emu://?bit_depth=12&offset_dn=80"])
def test_shifted_dark_offset_fails_the_dark_level(url):
    # the datasheet offset is 4 DN at 8 bits, 64 DN at 12 bits (docs/physics.md 2.2), whatever the device reports
    results = run_selftest(url, SMALL)
    dark = next(r for r in results if r.name == "dark level")
    assert dark.status == "fail", format_table(results)
    assert _statuses(results)["frame rate"] == "pass"


def test_dark_level_is_checked_against_a_loaded_record_s_camera_offset():
    # a device whose offset was measured at 20 DN by its camera calibration passes against that record
    with OPU("emu://", n_components=1) as device:
        record = CalibrationRecord(device=device.identity())
    record.camera = CameraCalibration(
        dark_exposure_us=400.0, offset_dn=20.0, dark_noise_dn=0.3, dsnu_dn=0.0, hot_pixels=0, gain_dn_per_e=0.02,
        read_noise_dn=0.26, read_noise_e=12.0, read_noise_resolved=False, read_noise_source="ptc_intercept",
        saturation_dn=250.0, saturation_capacity_e=12000.0, linearity_error_pct=0.1, n_pixels=100,
        exposures_us=[400.0], frames=16,
    )
    dark = _statuses(run_selftest("emu://?offset_dn=20", SMALL, record=record))["dark level"]
    assert dark == "pass"
    dark = _statuses(run_selftest("emu://", SMALL, record=record))["dark level"]  # 4 DN against 20 recorded
    assert dark == "fail"


def test_unreachable_device_fails_the_handshake_and_runs_nothing_else():
    results = run_selftest("socket://127.0.0.1:1", SMALL, timeout_s=2)
    assert results[0].name == "handshake" and results[0].status == "fail"
    assert all(r.status == "fail" and r.measured == "not run (no handshake)" for r in results[1:])


def test_cli_prints_the_table_and_sets_the_exit_code(capsys):
    assert main(["selftest", "emu://", "--n-components", "400", "--n-features", "300", "--batch", "50"]) == 0
    out = capsys.readouterr().out
    for name in CHECK_NAMES:
        assert name in out
    assert out.strip().endswith("selftest passed")
    assert main(["selftest", "emu://?drift=0.01", "--n-components", "400", "--n-features", "300",
                 "--batch", "50"]) == 1
    verdict = capsys.readouterr().out.strip().splitlines()[-1]
    assert verdict.startswith("selftest FAILED:") and "repeatability" in verdict


@pytest.mark.parametrize("bad", [{"n_components": 0}, {"n_features": 0}, {"batch": -1}])
def test_bad_sizes_are_refused_with_the_argument_named_not_reported_as_a_device_failure(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SelftestConfig(**bad)
