"""``bench://``: an OPU built from a protocol DMD, a protocol camera and a SCPI laser, all served
by firmware_sim; sentinel frames catch a camera that drops or shifts frames."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from firmware_sim import EmulatorParams
from firmware_sim.firmware import Firmware
from firmware_sim.scpi_laser import ScpiLaserServer
from firmware_sim.hosting import TCPFirmwareServer
from opu_hal import OPU
from opu_hal.backends import DeviceConfig
from opu_hal.backends.bench import Bench, FrameSyncError
from opu_hal.backends.bench_file import SentinelSettings, load_bench_file
from opu_hal.devices import Camera, CapturedFrame
from opu_hal.devices.opu_firmware import ProtocolCamera, ProtocolDMD, ProtocolLink
from opu_hal.layout import layout_1d

SEED, N_FEATURES, N_COMPONENTS = 11, 300, 150


@pytest.fixture(scope="module")
def firmware_servers():
    """OPU firmware (ideal fidelity) on a TCP port and a SCPI laser driving its laser."""
    firmware = Firmware(EmulatorParams(seed=SEED, fidelity="ideal"))
    server = TCPFirmwareServer(firmware).start()
    laser = ScpiLaserServer(firmware.model.laser).start()
    yield server, laser
    laser.close()
    server.close()
    firmware.close()


@pytest.fixture(scope="module")
def features() -> np.ndarray:
    return np.random.default_rng(5).integers(0, 2, (40, N_FEATURES)).astype(np.uint8)


@pytest.fixture(scope="module")
def reference(features) -> np.ndarray:
    with OPU("sim://?fidelity=ideal", n_components=N_COMPONENTS, seed=SEED) as opu:
        opu.fit1d(n_features=N_FEATURES)
        return np.asarray(opu.transform(features))


def write_bench(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def assert_same(result: np.ndarray, reference: np.ndarray) -> None:
    # float32 intensities: the same up to the rounding of sums taken in another order
    np.testing.assert_allclose(result, reference, rtol=1e-5, atol=1e-6 * float(reference.mean()))


def test_bench_file_of_firmware_parts_gives_the_sim_results(tmp_path, firmware_servers, features, reference) -> None:
    server, laser = firmware_servers
    path = write_bench(tmp_path, f"""
        dmd: {{driver: protocol, url: "{server.url}"}}
        camera:
          driver: protocol
          url: "{server.url}"
        light:
          driver: scpi_laser
          resource: "{laser.resource}"
          settings: {{power_mw: 10, enabled: true}}
        sentinels: {{block_frames: 16}}
    """)
    with OPU(f"bench://{path}", n_components=N_COMPONENTS) as opu:
        opu.fit1d(n_features=N_FEATURES)
        result = opu.transform(features)
        assert opu.info.fidelity == "ideal" and opu.backend.reacquired_blocks == 0
        assert laser.state.laser.enabled and laser.state.laser.power_mw == 10
    assert result.shape == reference.shape
    assert_same(np.asarray(result), reference)
    ids = result.context.frame_ids
    assert np.all(np.diff(ids) > 0)  # data frames in order (sentinel frames in between)


class FaultyCamera(Camera):
    """A camera that silently loses (or repeats) the frames of the given grab indices, with a
    continuous counter, as a camera that missed (or doubled) a trigger does."""

    def __init__(self, inner: Camera, lose: set[int] = frozenset(), repeat: set[int] = frozenset(), every_time: bool = False) -> None:
        super().__init__()
        self.inner, self.lose, self.repeat, self.every_time = inner, set(lose), set(repeat), every_time
        self._grabs = 0
        self._next_id = 0
        self._held: CapturedFrame | None = None

    def _do_open(self):
        return self.inner.open().identity

    def _do_close(self) -> None:
        self.inner.close()

    def _do_limits(self):
        return self.inner.limits

    def _do_read_settings(self):
        return self.inner.settings

    def _do_apply(self, settings, changed) -> None:
        self.inner.update(**{k: getattr(settings, k) for k in changed})

    @property
    def nominal_response(self):
        return self.inner.nominal_response

    def _do_min_frame_period_us(self) -> float:
        return self.inner.min_frame_period_us

    def _do_arm(self, n_frames) -> None:
        self.inner.arm(n_frames)
        self._grabs = 0

    def _do_disarm(self) -> None:
        self.inner.disarm()
        if not self.every_time:
            self.lose, self.repeat = set(), set()

    def _do_trigger(self) -> None:
        self.inner.trigger()

    def _do_grab(self, timeout_s):
        index = self._grabs
        self._grabs += 1
        if index in self.repeat and self._held is not None:
            frame = self._held
        else:
            try:
                frame = self.inner.grab(timeout_s)
            except Exception:
                return None
            if index in self.lose:
                try:
                    frame = self.inner.grab(timeout_s)
                except Exception:
                    return None
        self._held = frame
        self._next_id += 1
        return CapturedFrame(frame.image, self._next_id, frame.timestamp_us, frame.host_time_s)


def faulty_bench(server, **faults) -> Bench:
    link = ProtocolLink.from_url(server.url)
    return Bench(ProtocolDMD(link), FaultyCamera(ProtocolCamera(link), **faults), sentinels=SentinelSettings(block_frames=16))


def run_bench(bench: Bench, features: np.ndarray) -> np.ndarray:
    """Raw frames of a bench, configured as ``OPU.fit1d`` configures a device."""
    info = bench.open(timeout_s=5.0)
    try:
        bench.configure(DeviceConfig(layout_1d(N_FEATURES, info.dmd_shape, "auto"), N_COMPONENTS, None, None))
        return bench.acquire(features).frames
    finally:
        bench.close()


@pytest.mark.parametrize("fault", [{"lose": {20}}, {"repeat": {5}}, {"lose": {40}, "repeat": {3}}])
def test_a_dropped_or_shifted_frame_is_detected_and_its_block_acquired_again(firmware_servers, features, reference, fault) -> None:
    server, _ = firmware_servers
    bench = faulty_bench(server, **fault)
    result = run_bench(bench, features)
    assert bench.reacquired_blocks >= 1
    assert_same(result, reference)


def test_a_camera_that_keeps_losing_frames_is_refused(firmware_servers, features) -> None:
    server, _ = firmware_servers
    bench = faulty_bench(server, lose={5}, every_time=True)
    with pytest.raises(FrameSyncError, match="misaligned in 1 block"):
        run_bench(bench, features)


def test_frames_the_firmware_camera_drops_are_recovered(tmp_path, features, reference) -> None:
    from firmware_sim.faults import FaultSettings

    firmware = Firmware(EmulatorParams(seed=SEED, fidelity="ideal"), faults=FaultSettings(drop_camera_frames=(7,)))
    server = TCPFirmwareServer(firmware).start()
    try:
        path = write_bench(tmp_path, f"""
            dmd: {{driver: protocol, url: "{server.url}"}}
            camera: {{driver: protocol, url: "{server.url}"}}
        """)
        bench = Bench.from_file(path)
        assert_same(run_bench(bench, features), reference)
        assert bench.reacquired_blocks >= 1
    finally:
        server.close()
        firmware.close()


def test_sentinels_refuse_a_dark_bench(tmp_path, features) -> None:
    firmware = Firmware(EmulatorParams(seed=SEED))
    server = TCPFirmwareServer(firmware).start()
    laser = ScpiLaserServer(firmware.model.laser).start()
    try:
        path = write_bench(tmp_path, f"""
            dmd: {{driver: protocol, url: "{server.url}"}}
            camera: {{driver: protocol, url: "{server.url}"}}
            light: {{driver: scpi_laser, resource: "{laser.resource}", settings: {{enabled: false}}}}
        """)
        with OPU(f"bench://{path}", n_components=N_COMPONENTS) as opu:
            opu.fit1d(n_features=N_FEATURES)
            with pytest.raises(FrameSyncError, match="is the light source on"):
                opu.transform(features[:4])
    finally:
        laser.close()
        server.close()
        firmware.close()


def test_bench_files_are_validated_before_any_device_with_the_line_at_fault(tmp_path) -> None:
    # nothing listens on port 9: touching a device would fail differently
    path = write_bench(tmp_path, """
        dmd: {driver: protocol, url: "socket://127.0.0.1:9"}
        camera:
          driver: protocol
          url: "socket://127.0.0.1:9"
          settings:
            exposure_us: -5
        light: {driver: laserbeam, resource: "X::Y"}
    """)
    with pytest.raises(ValueError) as info:
        OPU(f"bench://{path}", n_components=10)
    text = str(info.value)
    assert f"{path}:7: camera.protocol.settings.exposure_us: Input should be greater than 0 (got -5)" in text
    assert f"{path}:8: light" in text and "laserbeam" in text
    bad_yaml = write_bench(tmp_path, "dmd: [unclosed\n")
    with pytest.raises(ValueError, match=rf"{bad_yaml}:2: not valid YAML"):
        load_bench_file(bad_yaml)
    with pytest.raises(ValueError, match="bench file: cannot read"):
        load_bench_file(tmp_path / "missing.yaml")
