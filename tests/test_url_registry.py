"""The table of URL schemes (opu_hal.url): one parser, one validation, shared by OPU, ProtocolLink and serve."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, Field

from firmware_sim import EmulatorParams
from firmware_sim.firmware import Firmware
from firmware_sim.hosting import LoopbackFirmware, PtyFirmwareServer
from opu_hal import OPU, DeviceError
from opu_hal.cli import main
from opu_hal.devices.common import TriggerType
from opu_hal.devices.opu_firmware import ProtocolCamera, ProtocolLink
from opu_hal.protocol import ErrorCode
from opu_hal.sharing import SharingServer
from opu_hal.transport import Link, SerialTransport
from opu_hal.url import (
    DeviceSpec,
    SerialOptions,
    TokenOption,
    WireOptions,
    keys_table,
    mask_url,
    register_scheme,
    resolve_url,
    schemes,
    unregister_scheme,
)

SMALL = "fidelity=ideal&dmd_shape=20x24&camera_shape=10x30"
TOKEN = "correct-horse-battery"
WIRE_KEYS = ["chunk_frames", "retries", "timeout_s", "window"]


@pytest.fixture(scope="module")
def server():
    srv = SharingServer(f"emu://?seed=4&{SMALL}", TOKEN).start()
    yield srv
    srv.close()


# ---------------------------------------------------------------------------- token, baudrate, wire keys


def test_protocol_link_reaches_a_serve_endpoint_that_requires_the_token(server):
    # defect: from_url refused every query key, so ProtocolLink could not present a token
    camera = ProtocolCamera(f"{server.url}?token={TOKEN}&timeout_s=5")
    with camera:
        assert camera.link.token == TOKEN and camera.link.info.camera_shape == (10, 30)
        camera.update(trigger_type=TriggerType.SOFTWARE)
        camera.arm(1)
        camera.trigger()
        frame = camera.grab(5.0)
        assert frame.image.shape == (10, 30)
    with pytest.raises(DeviceError) as refused:
        with ProtocolCamera(server.url):
            pass
    assert refused.value.code == ErrorCode.UNAUTHORIZED


def test_protocol_link_honours_baudrate_timeout_and_wire_keys():
    # defect: from_url fixed the rate at 115200 and had no retries/timeout_s/chunk_frames keys
    link = ProtocolLink.from_url("serial:///dev/ttyNONE?baudrate=57600&retries=1&timeout_s=2.5&chunk_frames=8")
    transport = link._connect()
    assert isinstance(transport, SerialTransport) and (transport.port, transport.baudrate) == ("/dev/ttyNONE", 57600)
    assert (link.retries, link.timeout_s, link.chunk_frames, link.token) == (1, 2.5, 8, None)
    assert ProtocolLink.from_url("serial:///dev/ttyNONE", timeout_s=4.0).timeout_s == 4.0  # no key: the argument


def test_protocol_link_over_a_pty_at_the_url_baudrate_caps_the_dmd_memory_at_chunk_frames():
    device = PtyFirmwareServer(Firmware(EmulatorParams(seed=1, dmd_shape=(20, 24), camera_shape=(10, 30)))).start()
    try:
        link = ProtocolLink.from_url(f"serial://{device.path}?baudrate=230400&chunk_frames=5&retries=2")
        link.attach()
        try:
            assert link.client.transport.baudrate == 230400 and link.client.retries == 2
            assert link.max_frames() == 5
        finally:
            link.detach()
    finally:
        device.close()


@pytest.mark.parametrize(
    "url",
    [
        f"socket://127.0.0.1:9?token={TOKEN}&retries=1&window=3&chunk_frames=7&timeout_s=1.5",
        "serial:///dev/ttyNONE?baudrate=9600&retries=0",
        f"sim://?{SMALL}&timeout_s=3&retries=5",
    ],
)
def test_the_same_url_gives_the_opu_and_the_protocol_link_the_same_options(url):
    backend = OPU(url, n_components=3).backend
    link = ProtocolLink.from_url(url)
    wire = resolve_url(url).get(WireOptions)
    assert (backend.retries, backend.token, backend.chunk_frames) == (link.retries, link.token, link.chunk_frames)
    assert (backend.retries, backend.window, backend.chunk_frames) == (wire.retries, wire.window, wire.chunk_frames)
    assert backend.timeout_s == wire.timeout_s and link.timeout_s == (wire.timeout_s or 10.0)  # 10 s: both defaults
    if not url.startswith("sim"):  # the same transport (connecting sim:// would start a firmware)
        mine, theirs = backend._connect(), link._connect()
        assert type(mine) is type(theirs) and repr(mine) == repr(theirs)
        assert getattr(mine, "baudrate", None) == getattr(theirs, "baudrate", None)


def test_a_url_timeout_wins_over_the_opu_timeout(server):
    with OPU(f"{server.url}?token={TOKEN}&timeout_s=2.5", n_components=3, timeout_s=9.0) as opu:
        assert opu.backend.client.timeout_s == 2.5


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "url, scheme, documented",
    [
        ("socket://host:1?retrys=2", "socket", sorted([*WIRE_KEYS, "ca", "check_hostname", "tls", "token"])),
        ("serial:///dev/ttyS0?baud=9600", "serial", ["baudrate", *WIRE_KEYS]),
        ("bench://b.yaml?retries=2", "bench", "none"),
    ],
)
def test_unknown_keys_are_refused_naming_the_key_the_scheme_and_the_documented_keys(url, scheme, documented):
    key = re.search(r"\?(\w+)=", url).group(1)
    message = rf"unknown query key\(s\) \['{key}'\] for {scheme}://; documented keys: {re.escape(str(documented))}"
    with pytest.raises(ValueError, match=rf"^device: {message}"):
        OPU(url, n_components=3)
    if scheme != "bench":
        with pytest.raises(ValueError, match=rf"^url: {message}"):
            ProtocolLink.from_url(url)


def test_emulated_schemes_document_the_emulator_parameters():
    for scheme, extra in (("emu", []), ("sim", [*WIRE_KEYS, "optics"])):
        with pytest.raises(ValueError, match=rf"for {scheme}://; documented keys: \[") as info:
            resolve_url(f"{scheme}://?colour=red")
        documented = eval(str(info.value).split("documented keys: ")[1])
        assert sorted(documented) == sorted([*EmulatorParams.model_fields, "drift", *extra])


@pytest.mark.parametrize(
    "url, key, got",
    [
        ("socket://host:1?retries=-1", "retries", "'-1'"),
        ("serial:///dev/ttyS0?baudrate=abc", "baudrate", "'abc'"),
        ("sim://?timeout_s=0", "timeout_s", "'0'"),
        ("socket://host:1?window=0", "window", "'0'"),
        ("socket://host:1?chunk_frames=lots", "chunk_frames", "'lots'"),
        ("sim://?optics=maybe", "optics", "'maybe'"),
    ],
)
def test_bad_values_name_the_key_the_expected_and_the_received(url, key, got):
    scheme = url.split(":")[0]
    message = rf"{key}: expected .* \({scheme}:// query key\), got {got}"
    with pytest.raises(ValueError, match=rf"^device: {message}"):
        OPU(url, n_components=3)
    with pytest.raises(ValueError, match=rf"^url: {message}"):
        ProtocolLink.from_url(url)


def test_the_token_is_never_shown_in_errors():
    secret = "SECRET-never-shown"
    for url in (
        f"socket://host:1?token={secret}&retries=-1",
        f"socket://host:1?token={secret}&colour=red",
        f"socket://host:1?token={secret}&token={secret}",
        f"tcp://host:1?token={secret}",
        f"emu://?token={secret}",
    ):
        for make in (lambda u: OPU(u, n_components=3), ProtocolLink.from_url):
            with pytest.raises(ValueError) as info:
                make(url)
            assert secret not in str(info.value)
    assert mask_url(f"socket://h:1?retries=1&token={secret}") == "socket://h:1?retries=1&token=***"
    spec = resolve_url(f"socket://h:1?token={secret}")
    assert spec.url.masked() == "socket://h:1?token=***" and secret not in repr(spec.get(TokenOption))
    assert secret not in repr(spec)
    assert spec.value("token") == secret


def test_seed_applies_only_to_schemes_with_a_seed_key():
    with pytest.raises(ValueError, match=r"seed: applies to devices with a seed \(schemes \['emu', 'sim'\]\); socket://"):
        OPU("socket://host:1", n_components=3, seed=2)
    assert OPU(f"sim://?{SMALL}", n_components=3, seed=6).backend.params.seed == 6


# ---------------------------------------------------------------------------- registering a scheme


class LoopKeys(BaseModel):
    """Keys of the test's loop:// scheme."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, ge=0, description="seed of the emulated medium")


def loop_link(spec: DeviceSpec) -> Link:
    """Emulator firmware over a loopback pair, as a third-party transport module would write it."""
    params = EmulatorParams(seed=spec.get(LoopKeys).seed, fidelity="ideal", dmd_shape=(20, 24), camera_shape=(10, 30))
    running: list[LoopbackFirmware] = []

    def connect():
        running.append(LoopbackFirmware(Firmware(params)))
        return running[-1].start()

    return Link(connect, lambda: running.pop().close(), exclusive=False)


@pytest.fixture
def loop_scheme():
    register_scheme("loop", link=f"{__name__}:loop_link", keys=(LoopKeys,), doc="firmware over a loopback pair (test)")
    yield
    unregister_scheme("loop")


def test_a_registered_scheme_works_with_the_opu_and_the_protocol_camera(loop_scheme):
    x = np.random.default_rng(0).random((40, 30)) < 0.5
    with OPU("loop://?seed=5&retries=1&chunk_frames=16", n_components=60, progress=False) as opu:
        assert (opu.backend.retries, opu.backend.chunk_frames) == (1, 16)
        opu.fit1d(n_features=30)
        looped = np.asarray(opu.transform(x))
    with OPU(f"emu://?seed=5&{SMALL}", n_components=60, progress=False) as opu:
        opu.fit1d(n_features=30)
        np.testing.assert_allclose(looped, np.asarray(opu.transform(x)), rtol=1e-5)
    with ProtocolCamera("loop://?seed=5&timeout_s=5") as camera:
        assert camera.limits.sensor_shape == (10, 30) and camera.link.timeout_s == 5.0
    with pytest.raises(ValueError, match=r"documented keys: \['chunk_frames', 'retries', 'seed', 'timeout_s', 'window'\]"):
        OPU("loop://?sed=5", n_components=3)
    assert "loop" in schemes() and "`loop://`" in keys_table()


def test_register_scheme_checks_its_arguments(loop_scheme):
    with pytest.raises(ValueError, match=r"^name: expected a new scheme, got 'loop', already registered"):
        register_scheme("loop", link=loop_link, doc="again")
    with pytest.raises(ValueError, match=r"^name: expected a lowercase URL scheme .*got 'Loop 2'"):
        register_scheme("Loop 2", link=loop_link, doc="bad name")
    with pytest.raises(ValueError, match=r"^link, backend: expected at least one factory for none://"):
        register_scheme("none", doc="no factory")
    with pytest.raises(TypeError, match=r"^keys: expected pydantic models .*got 3"):
        register_scheme("three", link=loop_link, keys=(3,), doc="bad keys")
    with pytest.raises(ValueError, match=r"^name: expected a registered scheme"):
        unregister_scheme("never")
    assert resolve_url("serial:///dev/ttyS1?baudrate=9600").get(SerialOptions).baudrate == 9600


def test_emu_and_bench_have_no_link():
    with pytest.raises(ValueError, match=r"^url: device: expected a URL of a device behind the wire protocol .*got emu://"):
        ProtocolLink.from_url("emu://")


def test_the_docs_show_the_table_of_the_registry():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    assert keys_table() in docs, "docs/protocol.md: paste the output of `opu-hal urls` into its URL section"


def test_serve_and_the_cli_go_through_the_table(capsys):
    with pytest.raises(ValueError, match=r"^unknown query key\(s\) \['colour'\] for emu://; documented keys: \["):
        SharingServer("emu://?colour=red", TOKEN)
    assert main(["urls"]) == 0
    assert capsys.readouterr().out.strip() == keys_table()
    assert main(["info", "serial:///dev/ttyNONE?baudrate=abc"]) == 2  # a malformed URL is a usage error
    assert "baudrate: expected a valid integer" in capsys.readouterr().err
