"""Frames, payloads and DMD packing of the wire protocol; the decoder under arbitrary bytes."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opu_hal import DeviceBusyError, DeviceError, DeviceTimeoutError, IncompatibleFirmwareError, ProtocolError
from opu_hal.layout import layout_1d, layout_2d
from opu_hal.protocol import (
    CorruptFrameError,
    DMDPacker,
    ErrorCode,
    FrameDecoder,
    MsgType,
    decode_bulk,
    encode_bulk,
    frame_bytes,
)
from opu_hal.protocol.frames import HEADER_SIZE
from opu_hal.protocol.messages import error_payload, error_to_exception


def decode_all(decoder: FrameDecoder, data: bytes, step: int = 1 << 30) -> tuple[list, int]:
    """Feed data in pieces of ``step`` bytes; return (frames, number of ProtocolErrors)."""
    frames, errors = [], 0
    for start in range(0, len(data), step):
        decoder.feed(data[start : start + step])
        while True:
            try:
                frame = decoder.next_frame()
            except ProtocolError:
                errors += 1
                continue
            if frame is None:
                break
            frames.append(frame)
    return frames, errors


@pytest.mark.parametrize(("size", "step"), [(0, 1), (1, 1), (1000, 1), (1000, 7), (300_000, 7), (300_000, 1 << 20)])
def test_frames_survive_any_split_of_the_stream(size, step):
    payload = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    stream = frame_bytes(MsgType.FRAMES, 42, payload) + frame_bytes(MsgType.PONG, 43, b"x")
    frames, errors = decode_all(FrameDecoder(), stream, step)
    assert errors == 0
    assert [(f.type, f.seq, bytes(f.payload)) for f in frames] == [(MsgType.FRAMES, 42, payload), (MsgType.PONG, 43, b"x")]


def test_payload_pieces_are_sent_back_to_back():
    assert frame_bytes(MsgType.PING, 1, [b"ab", memoryview(b"cd")]) == frame_bytes(MsgType.PING, 1, b"abcd")


def test_garbage_is_skipped_and_counted():
    good = frame_bytes(MsgType.PONG, 9, b"hello")
    decoder = FrameDecoder()
    frames, _ = decode_all(decoder, b"\x00\xc5junk\xc5" + good + b"\xffgarbage" + good)
    assert [f.seq for f in frames] == [9, 9]
    assert decoder.discarded >= len(b"\x00\xc5junk\xc5") + len(b"\xffgarbage")


def test_a_corrupt_payload_names_its_seq_and_the_next_frame_survives():
    bad = bytearray(frame_bytes(MsgType.FRAMES, 77, b"0123456789"))
    bad[HEADER_SIZE + 3] ^= 0x10
    decoder = FrameDecoder()
    decoder.feed(bytes(bad) + frame_bytes(MsgType.PONG, 78))
    with pytest.raises(CorruptFrameError) as info:
        decoder.next_frame()
    assert info.value.seq == 77
    assert decoder.next_frame().seq == 78


def test_a_corrupt_length_never_makes_the_decoder_wait():
    bad = bytearray(frame_bytes(MsgType.FRAMES, 5, b"abc"))
    bad[10] ^= 0x40  # length field: now 4 MiB more than sent
    frames, errors = decode_all(FrameDecoder(), bytes(bad) + frame_bytes(MsgType.PONG, 6))
    assert errors >= 1 and [f.seq for f in frames] == [6]


def test_a_length_beyond_the_maximum_is_refused_at_once():
    prefix = struct.pack("<2sBBII", b"\xc5\x3a", 1, MsgType.FRAMES, 1, 1 << 20)
    header = prefix + struct.pack("<I", zlib.crc32(prefix))
    decoder = FrameDecoder(max_payload=1000)
    decoder.feed(header)
    with pytest.raises(ProtocolError, match="exceeds the maximum payload 1000"):
        decoder.next_frame()
    assert decoder.buffered < HEADER_SIZE


def test_a_frame_of_another_protocol_version_is_refused():
    prefix = struct.pack("<2sBBII", b"\xc5\x3a", 2, MsgType.PONG, 1, 0)
    decoder = FrameDecoder()
    decoder.feed(prefix + struct.pack("<I", zlib.crc32(prefix)) + struct.pack("<I", 0))
    with pytest.raises(ProtocolError, match="version 2"):
        decoder.next_frame()


def test_decoder_rejects_bad_max_payload():
    with pytest.raises(ValueError, match="max_payload"):
        FrameDecoder(max_payload=0)


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=300), max_size=20), tail_seq=st.integers(1, 2**32 - 1))
def test_arbitrary_bytes_raise_only_protocol_errors_in_bounded_memory(chunks, tail_seq):
    decoder = FrameDecoder(max_payload=256)
    for chunk in chunks:
        decode_all(decoder, chunk)
        assert decoder.buffered < decoder.max_frame
    # whatever came before, a valid frame after it is found
    frames, _ = decode_all(decoder, frame_bytes(MsgType.PONG, tail_seq, b"ok"))
    assert frames and frames[-1].seq == tail_seq and bytes(frames[-1].payload) == b"ok"


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=2000), flips=st.lists(st.integers(0, 10_000), max_size=5))
def test_damaged_frames_never_decode_to_wrong_data(data, flips):
    stream = bytearray(frame_bytes(MsgType.FRAMES, 3, data))
    for f in flips:
        stream[f % len(stream)] ^= 1 << (f % 8)
    frames, _ = decode_all(FrameDecoder(max_payload=4096), bytes(stream))
    assert all(bytes(f.payload) == data and f.seq == 3 for f in frames)  # intact or absent
    if bytes(stream) == frame_bytes(MsgType.FRAMES, 3, data):
        assert len(frames) == 1


def test_bulk_payload_round_trip_and_malformed():
    head, raw = decode_bulk(b"".join(bytes(p) for p in encode_bulk({"count": 2}, b"ab", b"cd")))
    assert head == {"count": 2} and bytes(raw) == b"abcd"
    with pytest.raises(ProtocolError, match="overruns"):
        decode_bulk(struct.pack("<I", 100) + b"{}")
    with pytest.raises(ProtocolError, match="JSON object"):
        decode_bulk(struct.pack("<I", 2) + b"[]")
    with pytest.raises(ProtocolError, match="shorter"):
        decode_bulk(b"\x01")


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (ErrorCode.BUSY, DeviceBusyError),
        (ErrorCode.INCOMPATIBLE, IncompatibleFirmwareError),
        (ErrorCode.TIMEOUT, DeviceTimeoutError),
        (ErrorCode.BAD_REQUEST, ProtocolError),
        (ErrorCode.INVALID_ARGUMENT, ValueError),
        (ErrorCode.FRAMES_DROPPED, DeviceError),
        (99, DeviceError),
    ],
)
def test_error_codes_map_to_the_documented_exceptions(code, kind):
    error = error_to_exception(error_payload(code, "because"))
    assert isinstance(error, kind) and "because" in str(error)
    if isinstance(error, DeviceError):
        assert error.code == code


LAYOUTS = [
    layout_1d(10_000, (912, 1140)),
    layout_1d(37, (16, 21), "small"),
    layout_1d(37, (16, 21), "full"),
    layout_2d((5, 7), (30, 29)),
    layout_1d(3, (5, 9), "full"),
]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: f"{lay.n_features}f-x{lay.factor}-{lay.dmd_shape}")
def test_packed_frames_are_the_layout_mirrors_bit_packed(layout):
    x = (np.random.default_rng(1).random((6, layout.n_features)) < 0.5).astype(np.uint8)
    packer = DMDPacker(layout)
    packed = packer.pack(x)
    np.testing.assert_array_equal(packed, np.packbits(layout.to_mirrors(x), axis=-1))
    assert packed.shape == (6, layout.dmd_shape[0], (layout.dmd_shape[1] + 7) // 8)
    np.testing.assert_array_equal(packer.unpack(packed), x)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 200), rows=st.integers(1, 40), cols=st.integers(1, 40), strategy=st.sampled_from(["small", "full"]))
def test_packing_round_trips_on_any_layout(n, rows, cols, strategy):
    if n > rows * cols:
        return
    layout = layout_1d(n, (rows, cols), strategy)
    x = (np.random.default_rng(n).random((3, n)) < 0.5).astype(np.uint8)
    packed = DMDPacker(layout).pack(x)
    np.testing.assert_array_equal(packed, np.packbits(layout.to_mirrors(x), axis=-1))
    np.testing.assert_array_equal(DMDPacker(layout).unpack(packed), x)
