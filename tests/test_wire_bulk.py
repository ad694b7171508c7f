"""Large frames, as bulk transfers use them: read in place, their tail placed straight in the
caller's buffer, their CRC summed by helper threads; damage to them is caught and survived."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from firmware_sim import EmulatorParams
from firmware_sim.faults import ByteFault, FaultSettings
from firmware_sim.firmware import Firmware
from firmware_sim.hosting import TCPFirmwareServer
from opu_hal import OPU, ProtocolError
from opu_hal.protocol import CorruptFrameError, FrameDecoder, MsgType, frame_bytes
from opu_hal.protocol.frames import RunningCRC, crc32_combine, crc32_zeros

BIG = 700_000  # bytes: read in place (more than 256 kB still to come)


def read_through(decoder: FrameDecoder, stream: bytes, step: int) -> tuple[list, list]:
    """Read ``stream`` as a client does (in place when the decoder offers a view), ``step`` bytes at most a read."""
    frames, errors, pos = [], [], 0
    while pos < len(stream):
        view = decoder.direct_view()
        n = min(step, len(stream) - pos)
        if view is not None:
            n = min(n, len(view))
            view[:n] = stream[pos : pos + n]
            decoder.filled(n)
        else:
            decoder.feed(stream[pos : pos + n])
        pos += n
        while True:
            try:
                frame = decoder.next_frame()
            except ProtocolError as exc:
                errors.append(exc)
                continue
            if frame is None:
                break
            frames.append(frame)
    return frames, errors


PAYLOAD = np.random.default_rng(3).integers(0, 256, BIG, dtype=np.uint8).tobytes()
STREAM = frame_bytes(MsgType.FRAMES, 42, PAYLOAD) + frame_bytes(MsgType.PONG, 43, b"x")


@pytest.mark.parametrize("step", [1 << 20, 65_536, 9_999])
def test_large_frames_read_in_place_survive_any_split(step):
    frames, errors = read_through(FrameDecoder(), STREAM, step)
    assert not errors
    assert [(f.type, f.seq, bytes(f.payload), f.placed) for f in frames] == [
        (MsgType.FRAMES, 42, PAYLOAD, 0),
        (MsgType.PONG, 43, b"x", 0),
    ]
    assert frames[0].crc == zlib.crc32(PAYLOAD)


@pytest.mark.parametrize("step", [300_000, 65_536, 9_999])  # the first read leaves most of the frame to come
def test_a_sink_receives_the_tail_of_a_large_payload(step):
    tail = bytearray(BIG - 1000)
    asked = []

    def sink(msg_type, seq, length):
        asked.append((msg_type, seq, length))
        return memoryview(tail) if seq == 42 else None

    frames, errors = read_through(FrameDecoder(sink=sink), STREAM, step)
    assert not errors and asked == [(MsgType.FRAMES, 42, BIG)]  # small frames never ask
    assert frames[0].placed == len(tail) and bytes(frames[0].payload) == PAYLOAD[:1000]
    assert bytes(tail) == PAYLOAD[1000:]
    assert bytes(frames[1].payload) == b"x"


def test_a_sink_larger_than_the_payload_is_not_used():
    frames, _ = read_through(FrameDecoder(sink=lambda *_: memoryview(bytearray(BIG + 1))), STREAM, 1 << 20)
    assert frames[0].placed == 0 and bytes(frames[0].payload) == PAYLOAD


@pytest.mark.parametrize("where", [100, BIG // 2, BIG - 1])
def test_a_corrupt_large_frame_names_its_seq_and_the_next_frame_survives(where):
    bad = bytearray(STREAM)
    bad[16 + where] ^= 0x04
    tail = bytearray(BIG - 1000)
    frames, errors = read_through(FrameDecoder(sink=lambda *_: memoryview(tail)), bytes(bad), 65_536)
    assert isinstance(errors[0], CorruptFrameError) and errors[0].seq == 42
    assert not any(isinstance(e, CorruptFrameError) for e in errors[1:])  # the rescan meets only garbage
    assert [(f.seq, bytes(f.payload)) for f in frames] == [(43, b"x")]


def test_a_frame_hidden_inside_a_damaged_large_frame_is_found():
    """A length that swallowed the next frame: the rescan after the CRC failure finds it."""
    small = frame_bytes(MsgType.PONG, 7, b"found")
    inner = bytearray(frame_bytes(MsgType.FRAMES, 6, PAYLOAD))
    inner[16 + 500 : 16 + 500 + len(small)] = small  # a frame inside, then damage elsewhere
    inner[16 + 10] ^= 0x01
    frames, errors = read_through(FrameDecoder(), bytes(inner), 65_536)
    assert any(isinstance(e, CorruptFrameError) and e.seq == 6 for e in errors)
    assert [(f.seq, bytes(f.payload)) for f in frames] == [(7, b"found")]


def test_crc_helpers_agree_with_zlib():
    rng = np.random.default_rng(0)
    for size_a, size_b in [(0, 0), (0, 5), (5, 0), (1, 1), (1000, 3), (3, 4_000_001)]:
        a, b = rng.bytes(size_a), rng.bytes(size_b)
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    for n in (0, 1, 7, 4096, 1_000_003):
        assert crc32_zeros(n) == zlib.crc32(bytes(n))
    data = memoryview(rng.bytes(5_000_000))
    crc, cuts = RunningCRC(), [0, 10, 1_500_000, 1_500_001, 3_900_000, 5_000_000]
    for k, (lo, hi) in enumerate(zip(cuts, cuts[1:])):
        crc.add(data[lo:hi], zlib.crc32(data[lo:hi]) if k == 3 else None)  # one piece of known CRC
    assert crc.value() == zlib.crc32(data)


def _sum_in_child(queue) -> None:
    data = memoryview(bytes(range(256)) * 20_000)
    crc = RunningCRC()
    crc.add(data)
    queue.put(crc.value() == zlib.crc32(data))


def test_a_forked_process_sums_large_crcs_too():
    """The helper threads do not survive a fork: the child starts its own instead of waiting forever."""
    import multiprocessing

    data = memoryview(bytes(3_000_000))
    crc = RunningCRC()
    crc.add(data)
    assert crc.value() == crc32_zeros(len(data))  # the parent's helpers exist now
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_sum_in_child, args=(queue,))
    child.start()
    child.join(20)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and queue.get(timeout=1) is True


# Large frames both ways over TCP: 64 x 64 camera frames (4 kB) and 128 x 256 DMD frames (4 kB),
# 150 frames a chunk: 600 kB requests and replies, read in place; replies land in the output.
PARAMS = EmulatorParams(seed=4, dmd_shape=(128, 256), camera_shape=(64, 64))
N_FEATURES, N_COMPONENTS, BATCH = 30, 64 * 64, 600
X = np.random.default_rng(8).random((BATCH, N_FEATURES)) < 0.5


def transform(url: str) -> np.ndarray:
    with OPU(url, n_components=N_COMPONENTS, timeout_s=0.5, progress=False, settings={"max_batch_frames": BATCH}) as opu:
        opu.fit1d(n_features=N_FEATURES)
        return opu.transform(X)


@pytest.fixture(scope="module")
def reference():
    return transform(f"emu://?seed={PARAMS.seed}&dmd_shape=128x256&camera_shape=64x64")


FAULTS = {
    "none": (),
    "bit flip in a large reply": (ByteFault(direction="to_host", at=1_000_000, kind="flip", bit=5),),
    "bit flip in a large request": (ByteFault(direction="to_device", at=1_000_000, kind="flip", bit=2),),
    "connection cut in a large reply": (ByteFault(direction="to_host", at=1_000_000, kind="cut"),),
}


@pytest.mark.parametrize("faults", FAULTS.values(), ids=FAULTS.keys())
def test_large_transfers_over_tcp_equal_emu_bitwise(faults, reference):
    firmware = Firmware(PARAMS, faults=FaultSettings(byte_faults=faults))
    server = TCPFirmwareServer(firmware).start()
    try:
        result = transform(f"{server.url}?chunk_frames=150")
    finally:
        firmware.close()
        server.close()
    np.testing.assert_array_equal(np.asarray(result), np.asarray(reference))
    np.testing.assert_array_equal(result.context.frame_ids, reference.context.frame_ids)
    np.testing.assert_array_equal(result.context.timestamps_us, reference.context.timestamps_us)


def test_optics_off_replies_sent_with_a_precomputed_crc_pass_the_host_check():
    firmware = Firmware(PARAMS, optics=False)
    server = TCPFirmwareServer(firmware).start()
    try:
        result = transform(f"{server.url}?chunk_frames=150&retries=0")  # a wrong CRC would raise
    finally:
        firmware.close()
        server.close()
    assert result.shape == (BATCH, N_COMPONENTS) and not np.asarray(result).any()
    np.testing.assert_array_equal(result.context.frame_ids, np.arange(BATCH))


def test_large_transfers_over_sim_equal_emu_bitwise(reference):
    result = transform("sim://?seed=4&dmd_shape=128x256&camera_shape=64x64&chunk_frames=150")
    np.testing.assert_array_equal(np.asarray(result), np.asarray(reference))
    np.testing.assert_array_equal(result.context.frame_ids, reference.context.frame_ids)
