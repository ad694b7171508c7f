"""The light-source suite: the SCPI laser driver through pyvisa-py on TCP (firmware_sim's
server), through pyvisa-sim, and on real hardware with --device-url."""

from __future__ import annotations

import math
import re

import pytest

from opu_hal.devices import LightSource


def test_identity_and_power_range(light: LightSource) -> None:
    assert light.identity.model
    low, high = light.limits.power_mw
    assert 0 <= low < high


def test_setpoint_round_trips(light: LightSource) -> None:
    low, high = light.limits.power_mw
    for value in (low + (high - low) * 0.1, low + (high - low) * 0.3):
        light.set_power_mw(value)
        assert light.setpoint_mw == pytest.approx(value, rel=1e-4)


def test_out_of_range_power_is_refused_before_io(light: LightSource, monkeypatch: pytest.MonkeyPatch) -> None:
    low, high = light.limits.power_mw
    before = light.setpoint_mw
    monkeypatch.setattr(light, "_do_set_power_mw", lambda v: pytest.fail("an invalid setpoint reached the device"))
    for bad in (high * 1.5, low - 1.0):
        with pytest.raises(ValueError, match=re.escape(f"power_mw: expected {low:g} to {high:g} mW, got {bad!r}")):
            light.set_power_mw(bad)
    with pytest.raises(TypeError, match="power_mw: expected a number"):
        light.set_power_mw("5")
    assert light.setpoint_mw == before


def test_output_switches_on_and_off(light: LightSource) -> None:
    light.enable()
    assert light.enabled and light.status().enabled
    reading = light.power_mw
    assert math.isfinite(reading) and reading >= 0
    light.disable()
    assert not light.enabled and not light.status().enabled


def test_status_reports_interlock_and_fault(light: LightSource) -> None:
    status = light.status()
    assert status.interlock_closed and status.fault_code == 0 and status.ok
