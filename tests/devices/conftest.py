"""Device fixtures: every implementation available here, plus real hardware named by ``--device-url``.

``--device-url`` (repeatable) adds real instruments to the shared suites:
``pylon://[SERIAL]`` (a Basler camera), ``socket://HOST:PORT`` or ``serial:///dev/PORT``
(an OPU's DMD and camera), ``alp://[DEVICE_NUMBER]`` (a Vialux DMD),
``visa://RESOURCE`` (a SCPI laser, e.g. ``visa://TCPIP::10.0.0.5::5025::SOCKET``).
Without it the hardware cases are skipped, and say so.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PYLON_CAMEMU", "1")  # pylon's emulated camera, before pypylon loads

from firmware_sim import EmulatorParams
from firmware_sim.firmware import Firmware
from firmware_sim.scpi_laser import ScpiLaserServer
from firmware_sim.hosting import LoopbackFirmware

from opu_hal.devices.opu_firmware import ProtocolCamera, ProtocolDMD, ProtocolLink

from alp_sim import SimulatedAlpLibrary

SIM_PARAMS = EmulatorParams(seed=3, dmd_shape=(24, 40), camera_shape=(16, 24))
SIM_MAX_FRAMES = 64
SCPI_YAML = Path(__file__).resolve().parents[2] / "firmware_sim" / "scpi_laser.yaml"


def hardware_url(config: pytest.Config, schemes: tuple[str, ...]) -> str:
    """The --device-url of one of ``schemes``, or skip saying why."""
    for url in config.getoption("--device-url"):
        if url.split("://")[0] in schemes:
            return url
    pytest.skip(f"real hardware not tested: no --device-url with scheme {'/'.join(schemes)} given")


def sim_link(params: EmulatorParams = SIM_PARAMS, max_frames: int = SIM_MAX_FRAMES, **firmware: object) -> ProtocolLink:
    """A link to emulator firmware in this process whose DMD memory holds ``max_frames`` frames."""
    frame_bytes = params.dmd_shape[0] * ((params.dmd_shape[1] + 7) // 8)
    holder: dict[str, LoopbackFirmware] = {}

    def start():
        holder["fw"] = LoopbackFirmware(Firmware(params, max_payload=4096 + max_frames * frame_bytes, **firmware))
        return holder["fw"].start()

    return ProtocolLink(start, lambda: holder.pop("fw").close(), timeout_s=5.0)


@pytest.fixture(params=["protocol", "pylon", "hardware"])
def camera(request: pytest.FixtureRequest):
    """An open camera of every kind available."""
    if request.param == "protocol":
        cam = ProtocolCamera(sim_link())
    elif request.param == "pylon":
        pytest.importorskip("pypylon", reason="the pylon extra is not installed")
        from opu_hal.devices.pylon import PylonCamera

        cam = PylonCamera()
    else:
        url = hardware_url(request.config, ("pylon", "socket", "serial"))
        if url.startswith("pylon://"):
            from opu_hal.devices.pylon import PylonCamera

            cam = PylonCamera(serial=url[len("pylon://"):] or None)
        else:
            cam = ProtocolCamera(url)
    with cam:
        yield cam


@pytest.fixture(params=["protocol", "alp", "hardware"])
def dmd(request: pytest.FixtureRequest):
    """An open DMD of every kind available."""
    if request.param == "protocol":
        device = ProtocolDMD(sim_link())
    elif request.param == "alp":
        from opu_hal.devices.alp import AlpDMD

        device = AlpDMD(SimulatedAlpLibrary(shape=(24, 40), memory=SIM_MAX_FRAMES))
    else:
        url = hardware_url(request.config, ("alp", "socket", "serial"))
        if url.startswith("alp://"):
            from opu_hal.devices.alp import AlpDMD, load_alp_library

            device = AlpDMD(load_alp_library(), int(url[len("alp://"):] or 0))
        else:
            device = ProtocolDMD(url)
    with device:
        yield device


@pytest.fixture(scope="module")
def scpi_server():
    """A SCPI laser served by firmware_sim on a loopback TCP port."""
    with ScpiLaserServer() as server:
        yield server


@pytest.fixture(params=["pyvisa-py-tcp", "pyvisa-sim", "hardware"])
def light(request: pytest.FixtureRequest):
    """An open light source of every kind available."""
    from opu_hal.devices.scpi_laser import ScpiLaser

    if request.param == "pyvisa-py-tcp":
        server = request.getfixturevalue("scpi_server")
        server.state.reset()
        source = ScpiLaser(server.resource)
    elif request.param == "pyvisa-sim":
        pytest.importorskip("pyvisa_sim", reason="pyvisa-sim is not installed")
        source = ScpiLaser("TCPIP::127.0.0.1::5025::SOCKET", visa_library=f"{SCPI_YAML}@sim")
    else:
        url = hardware_url(request.config, ("visa",))
        source = ScpiLaser(url[len("visa://"):])
    with source:
        yield source
        source.disable()
