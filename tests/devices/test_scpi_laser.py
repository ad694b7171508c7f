"""The SCPI laser over TCP against firmware_sim's physical laser: readback, interlock, errors."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_sim import EmulatorParams
from firmware_sim.scpi_laser import ScpiLaserServer
from opu_hal.devices.scpi_laser import ScpiLaser
from opu_hal.errors import DeviceError


@pytest.fixture
def served():
    with ScpiLaserServer(params=EmulatorParams(seed=2, laser_jitter=0.002)) as server:
        with ScpiLaser(server.resource) as laser:
            yield server, laser


def test_readback_follows_the_model_laser(served) -> None:
    server, laser = served
    laser.set_power_mw(20.0)
    assert laser.power_mw == 0.0  # off
    laser.enable()
    readings = np.array([laser.power_mw for _ in range(20)])
    # relative power = setpoint * (1 + 0.002 z): 20 readings within 5 sigma, and not all equal
    assert np.all(np.abs(readings / 20.0 - 1) < 5 * 0.002) and readings.std() > 0


def test_interlock_forces_the_output_off_and_refuses_on(served) -> None:
    server, laser = served
    laser.enable()
    server.state.open_interlock()
    status = laser.status()
    assert not status.enabled and not status.interlock_closed and not status.ok
    with pytest.raises(DeviceError, match="SCPI error -221") as info:
        laser.enable()
    assert info.value.code == -221
    server.state.close_interlock()
    laser.enable()
    assert laser.enabled


def test_faults_are_reported_and_block_the_output(served) -> None:
    server, laser = served
    server.state.fault = (3, "diode over temperature")
    status = laser.status()
    assert status.fault_code == 3 and status.fault == "diode over temperature"
    with pytest.raises(DeviceError, match="fault 3"):
        laser.enable()


def test_every_command_is_checked_for_errors(served) -> None:
    server, laser = served
    with pytest.raises(DeviceError, match=r"'FOO:BAR 1' refused: SCPI error -113"):
        laser.write("FOO:BAR 1")
    laser.write("OUTP 0")  # the queue was emptied: the next command is fine


def test_out_of_range_setpoint_never_reaches_the_wire(served) -> None:
    server, laser = served
    sent = len(server.state.commands)
    with pytest.raises(ValueError, match="power_mw: expected 0 to 50 mW, got 51"):
        laser.set_power_mw(51)
    assert len(server.state.commands) == sent


def test_bad_resource_names_are_refused() -> None:
    with pytest.raises(ValueError, match="resource: expected a VISA resource name"):
        ScpiLaser("127.0.0.1:5025")
