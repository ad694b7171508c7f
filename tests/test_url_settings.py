"""Device URLs, emulator parameters from query strings, and OPU settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from firmware_sim.params import EmulatorParams, params_from_query
from opu_hal import OPU, OPUSettings
from opu_hal.url import DeviceURL, parse_device_url


@pytest.mark.parametrize(
    "url, scheme, location, query",
    [
        ("emu://", "emu", "", {}),
        ("EMU://", "emu", "", {}),
        ("emu://?seed=5&fidelity=ideal", "emu", "", {"seed": "5", "fidelity": "ideal"}),
        ("sim://?camera_shape=100x200", "sim", "", {"camera_shape": "100x200"}),
        ("socket://lab-opu.local:5025", "socket", "lab-opu.local:5025", {}),
        ("serial:///dev/ttyUSB0", "serial", "/dev/ttyUSB0", {}),
        ("/dev/ttyACM1", "serial", "/dev/ttyACM1", {}),
    ],
)
def test_parse_device_url(url, scheme, location, query):
    parsed = parse_device_url(url)
    assert (parsed.scheme, parsed.location, parsed.query) == (scheme, location, query)
    assert parse_device_url(str(parsed)) == parsed  # str() gives a URL that parses back


def test_default_url_is_emu():
    assert OPU(n_components=3).device == "emu://"
    assert str(DeviceURL("emu", query={"seed": "1"})) == "emu://?seed=1"


@pytest.mark.parametrize("url", ["http://example.com", "emu:/", "tcp://host:1", "", "emu"])
def test_unknown_scheme(url):
    with pytest.raises(ValueError, match=rf"^device: expected a URL with scheme one of .*got {url!r}"):
        parse_device_url(url)


def test_repeated_query_key():
    with pytest.raises(ValueError, match=r"^device: query key\(s\) \['seed'\] given more than once"):
        parse_device_url("emu://?seed=1&seed=2")


@pytest.mark.parametrize("url", [None, 3, b"emu://"])
def test_url_must_be_a_string(url):
    with pytest.raises(TypeError, match=rf"^device: expected a URL string .*got {type(url).__name__}"):
        parse_device_url(url)


# ---------------------------------------------------------------------------- emulator parameters


def test_params_from_query_strings():
    p = params_from_query(
        {
            "dmd_shape": "912x1140",
            "camera_shape": "1088X2040",
            "drift": "60",
            "fidelity": "ideal",
            "seed": "7",
            "exposure_us": "250.5",
        }
    )
    assert p.dmd_shape == (912, 1140) and p.camera_shape == (1088, 2040)
    assert p.drift_tau_s == 60.0 and p.fidelity == "ideal" and p.seed == 7 and p.exposure_us == 250.5
    assert params_from_query({}) == EmulatorParams()
    assert params_from_query({"drift_tau_s": "3600"}).drift_tau_s == 3600.0
    for off in ("off", "none", "0"):
        assert params_from_query({"drift": off}).drift_tau_s is None
    assert params_from_query({"fidelity": "physical"}).fidelity == "physical"


def test_url_parameters_reach_the_emulator():
    with OPU("emu://?camera_shape=20x30&dmd_shape=64x80&fidelity=ideal&seed=9", n_components=50) as opu:
        info = opu.info
        assert info.camera_shape == (20, 30) and info.dmd_shape == (64, 80)
        assert info.fidelity == "ideal" and info.bit_depth == 0
        assert info.limits.max_n_components == 600
        assert opu.backend.params.seed == 9
    assert OPU("emu://?seed=2", n_components=3).backend.params.seed == 2
    assert OPU("emu://", n_components=3, seed=11).backend.params.seed == 11


@pytest.mark.parametrize(
    "query, name",
    [
        ({"camera_shape": "912x"}, "camera_shape"),
        ({"dmd_shape": "0x10"}, "dmd_shape"),
        ({"fidelity": "exact"}, "fidelity"),
        ({"drift": "-5"}, "drift"),
        ({"seed": "-1"}, "seed"),
        ({"exposure_us": "fast"}, "exposure_us"),
    ],
)
def test_bad_query_values_name_the_parameter(query, name):
    with pytest.raises(ValueError, match=name):
        params_from_query(query)


def test_unknown_query_key_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown emulator parameter\(s\) \['colour'\]; expected some of .*'fidelity'"):
        params_from_query({"colour": "red"})


# ---------------------------------------------------------------------------- settings


def test_settings_defaults_and_dict_form():
    s = OPUSettings()
    assert s.exposure_us is None and s.frametime_us is None and s.input_roi_strategy == "auto"
    assert s.max_batch_frames >= 1 and 0 <= s.saturation_warning_fraction <= 1
    opu = OPU(n_components=3, settings={"exposure_us": 250, "input_roi_strategy": "small"})
    assert opu.settings == OPUSettings(exposure_us=250.0, input_roi_strategy="small")


@pytest.mark.parametrize(
    "fields, name",
    [
        ({"exposure_us": -1}, "exposure_us"),
        ({"exposure_us": 0}, "exposure_us"),
        ({"exposure_us": 2e6}, "exposure_us"),
        ({"frametime_us": -10}, "frametime_us"),
        ({"input_roi_strategy": "large"}, "input_roi_strategy"),
        ({"max_batch_frames": 0}, "max_batch_frames"),
        ({"max_batch_frames": 2.5}, "max_batch_frames"),
        ({"saturation_warning_fraction": 1.5}, "saturation_warning_fraction"),
        ({"exposure": 100}, "exposure"),
    ],
)
def test_bad_settings_name_the_field(fields, name):
    with pytest.raises(ValidationError) as info:
        OPUSettings(**fields)
    assert isinstance(info.value, ValueError)
    assert info.value.errors()[0]["loc"] == (name,)
    assert name in str(info.value) and repr(next(iter(fields.values()))) in str(info.value)


def test_settings_are_immutable():
    s = OPUSettings()
    with pytest.raises(ValidationError, match="frozen"):
        s.exposure_us = 10.0


def test_settings_are_frozen_only_not_also_validated_on_assignment():
    assert OPUSettings.model_config.get("frozen") is True
    assert not OPUSettings.model_config.get("validate_assignment", False)


def test_assigning_a_setting_says_how_to_change_it():
    s = OPUSettings()
    with pytest.raises(ValueError) as info:
        s.exposure_us = 10.0
    message = str(info.value)
    assert "exposure_us" in message and "frozen" in message
    assert "opu.settings = " in message and 'model_copy(update={"exposure_us": ...})' in message
    assert s.exposure_us is None


def test_model_copy_with_an_update_validates_it():
    s = OPUSettings(exposure_us=300)
    assert s.model_copy(update={"max_batch_frames": 10}) == OPUSettings(exposure_us=300, max_batch_frames=10)
    with pytest.raises(ValidationError, match="exposure_us"):
        s.model_copy(update={"exposure_us": -5.0})
    with pytest.raises(ValidationError, match="exposure"):
        s.model_copy(update={"exposure": 5.0})


def test_the_facade_swaps_whole_settings():
    with OPU("emu://?fidelity=ideal", n_components=10) as opu:
        opu.settings = {"exposure_us": 300}
        assert opu.settings.exposure_us == 300
        opu.settings = opu.settings.model_copy(update={"exposure_us": 200})
        assert opu.settings.exposure_us == 200
        with pytest.raises(ValueError, match="opu.settings = "):
            opu.settings.exposure_us = 100


def test_settings_strategy_sets_the_layout():
    with OPU("emu://?fidelity=ideal", n_components=10, settings={"input_roi_strategy": "small"}) as opu:
        opu.fit1d(n_features=100)
        assert opu.layout.factor == 1
        opu.settings = opu.settings.model_copy(update={"input_roi_strategy": "full"})
        opu.fit1d(n_features=100)
        assert opu.layout.factor > 1
