"""Golden bytes: the reference frames of docs/protocol.md, section 7, checked three ways.

(a) The hex blocks are read out of docs/protocol.md itself, so the document and the tests
cannot drift apart. (b) Each frame is checked byte by byte by a decoder written here with
``struct`` and ``zlib`` only (not ``opu_hal.protocol.frames``), against bodies written
here as plain Python values: what firmware in another language would be checked with.
(c) The project's encoders (frames + schema) produce exactly those bytes, and its decoder
and schema read them back to the expected models.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

import pytest

from opu_hal.layout import DMDLayout
from opu_hal.protocol.frames import FrameDecoder, MsgType, encode_frame, frame_bytes, write_frame
from opu_hal.protocol.schema import (
    KEEPALIVE_PAYLOAD,
    AcquireHead,
    BootNotice,
    ByeReply,
    ByeRequest,
    ConfiguredReply,
    ConfigureRequest,
    ErrorBody,
    FramesHead,
    HelloReply,
    HelloRequest,
    ResetReply,
    ResetRequest,
    StatusReply,
    StatusRequest,
    decode_bulk_reply,
    decode_bulk_request,
    decode_hello_request,
    decode_reply,
    decode_request,
    encode,
    encode_bulk_head,
)
from opu_hal.settings import DeviceInfo

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
BLOCK = re.compile(r"^```hex golden=(\w+)\n(.*?)^```", re.S | re.M)


def golden_frames() -> dict[str, bytes]:
    """The frames of docs/protocol.md by name: the hex before each ``#`` annotation."""
    frames = {}
    for name, block in BLOCK.findall(DOC.read_text(encoding="utf-8")):
        assert name not in frames, f"golden frame {name} appears twice in {DOC.name}"
        frames[name] = bytes.fromhex(" ".join(line.split("#", 1)[0] for line in block.splitlines()))
    return frames


GOLDEN = golden_frames()

# ---------------------------------------------------------------------------- (b) plain values
SESSION = "0123456789abcdef0123456789abcdef"
BOOT = "8f2c5e7a9b1d4c3e8a6f0b2d4e6c8a1f"
REBOOT = "1d4c3e8a6f0b2d4e6c8a1f8f2c5e7a9b"
LAYOUT = {"dmd_shape": [2, 16], "n_features": 4, "grid_shape": [1, 4], "factor": 2, "offset": [0, 4]}
INFO = {
    "model": "OPU-EMU", "serial": "EMU-00000001", "firmware_version": "1.0.0", "protocol_version": "1.0",
    "dmd_shape": [2, 16], "camera_shape": [1, 4], "bit_depth": 8, "fidelity": "physical",
    "default_exposure_us": 400.0, "dark_level_dn": 10.0, "dark_current_dn_per_us": 0.0, "dn_per_intensity_per_us": 0.5,
    "limits": {"max_n_components": 4, "max_n_features": 32, "min_exposure_us": 1.0, "max_exposure_us": 1000000.0,
               "max_batch_frames": 1000000},
    "medium": "dense",
}
FEATURES = [[1, 0, 1, 1], [0, 1, 0, 0]]
DMD_FRAMES = bytes([0x0C, 0xF0, 0x0C, 0xF0, 0x03, 0x00, 0x03, 0x00])  # 2 frames x 2 rows x 2 bytes
PIXELS = [[12, 200, 13, 11], [10, 11, 180, 12]]
FRAMES_RAW = struct.pack("<2q", 0, 1) + struct.pack("<2d", 0.0, 500.0) + bytes(sum(PIXELS, []))
PING = b"\x01\x02\x03\x04"

#: name: (type, seq, body), body a JSON object (dict), a bulk payload (head dict, raw bytes) or opaque bytes
EXPECTED: dict[str, tuple[int, int, dict | tuple[dict, bytes] | bytes]] = {
    "HELLO": (0x01, 1, {"protocol": [1, 0], "session": SESSION, "keepalive_s": 2.5}),
    "HELLO_REPLY": (0x81, 1, {
        "protocol_version": "1.0", "firmware_version": "1.0.0", "boot_id": BOOT, "info": INFO,
        "max_payload": 67108864, "max_in_flight": 4, "state": "idle", "frame_counter": 0, "clock_us": 0.0,
    }),
    "CONFIGURE": (0x03, 2, {"layout": LAYOUT, "n_components": 4, "exposure_us": 400.0, "frametime_us": None}),
    "CONFIGURED": (0x83, 2, {
        "exposure_us": 400.0, "frametime_us": 500.0, "roi": [0, 0, 1, 4], "frame_counter": 0, "clock_us": 0.0,
    }),
    "ACQUIRE": (0x04, 3, ({"count": 2, "rows": 2, "row_bytes": 2, "after": 0, "more": False}, DMD_FRAMES)),
    "KEEPALIVE": (0x7E, 3, b""),
    "FRAMES": (0x84, 3, ({
        "count": 2, "n_components": 4, "dtype": "|u1", "saturated_fraction": 0.0, "device_time_s": 0.001,
        "frame_counter": 2, "clock_us": 1000.0,
    }, FRAMES_RAW)),
    "ERROR": (0x7F, 4, {
        "code": 6, "message": "the camera delivered 6 of 8 frames; lost frame ids [3, 5]", "details": {"frame_ids": [3, 5]},
    }),
    "PING": (0x02, 5, PING),
    "PONG": (0x82, 5, PING),
    "STATUS": (0x05, 6, {}),
    "STATUS_REPLY": (0x85, 6, {
        "state": "configured", "boot_id": BOOT, "dropped_frames": 0, "frame_counter": 2, "clock_us": 1000.0,
    }),
    "RESET": (0x06, 7, {}),
    "RESET_REPLY": (0x86, 7, {"boot_id": REBOOT}),
    "BOOT": (0x7D, 0, {"boot_id": REBOOT}),
    "BYE": (0x07, 8, {}),
    "BYE_REPLY": (0x87, 8, {}),
}


def parse_frame(data: bytes) -> tuple[int, int, bytes]:
    """(type, seq, payload) of one whole frame, every field checked (struct and zlib only)."""
    assert len(data) >= 20, f"a frame has at least 20 bytes, got {len(data)}"
    sync, version, msg_type, seq, length, header_crc = struct.unpack_from("<2sBBIII", data)
    assert sync == b"\xc5\x3a"
    assert version == 1
    assert header_crc == zlib.crc32(data[:12]), "header CRC"
    assert len(data) == 16 + length + 4, "length field against the frame's size"
    payload = data[16 : 16 + length]
    (payload_crc,) = struct.unpack_from("<I", data, 16 + length)
    assert payload_crc == zlib.crc32(payload), "payload CRC"
    return msg_type, seq, payload


def compact(obj: dict) -> bytes:
    """The JSON a peer sends: keys in order, no spaces, ASCII."""
    return json.dumps(obj, separators=(",", ":")).encode("ascii")


def test_the_document_holds_one_reference_frame_of_every_message_type():
    assert sorted(GOLDEN) == sorted(EXPECTED)
    assert {msg_type for msg_type, _, _ in EXPECTED.values()} == {int(t) for t in MsgType}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_frame_byte_by_byte(name):
    msg_type, seq, body = EXPECTED[name]
    got_type, got_seq, payload = parse_frame(GOLDEN[name])
    assert (got_type, got_seq) == (msg_type, seq)
    if isinstance(body, dict):
        assert payload == compact(body)
    elif isinstance(body, tuple):
        head, raw = body
        (n,) = struct.unpack_from("<I", payload)
        assert payload[4 : 4 + n] == compact(head)
        assert payload[4 + n :] == raw
    else:
        assert payload == body


def test_golden_acquire_shows_the_features_at_the_centre_mirrors():
    """Mirror (r, c) is bit 7 - c % 8 of byte c // 8 of row r; feature i is read at row 1, column 5 + 2 i."""
    _, _, payload = parse_frame(GOLDEN["ACQUIRE"])
    (n,) = struct.unpack_from("<I", payload)
    head, raw = json.loads(payload[4 : 4 + n]), payload[4 + n :]
    frame_bytes_ = head["rows"] * head["row_bytes"]
    shown = []
    for f in range(head["count"]):
        frame = raw[f * frame_bytes_ : (f + 1) * frame_bytes_]
        row = frame[1 * head["row_bytes"] : 2 * head["row_bytes"]]
        shown.append([(row[c // 8] >> (7 - c % 8)) & 1 for c in (5 + 2 * i for i in range(4))])
    assert shown == FEATURES


def test_golden_frames_reply_holds_ids_timestamps_and_pixels():
    _, _, payload = parse_frame(GOLDEN["FRAMES"])
    (n,) = struct.unpack_from("<I", payload)
    head, raw = json.loads(payload[4 : 4 + n]), payload[4 + n :]
    count, m = head["count"], head["n_components"]
    assert len(raw) == count * (8 + 8 + m)
    assert struct.unpack_from(f"<{count}q", raw) == (0, 1)
    assert struct.unpack_from(f"<{count}d", raw, 8 * count) == (0.0, 500.0)
    assert [list(raw[16 * count + i * m : 16 * count + (i + 1) * m]) for i in range(count)] == PIXELS


# ---------------------------------------------------------------------------- (c) the project's encoders and decoders
DEVICE_INFO = DeviceInfo.model_validate(INFO)
BULK_ARRAYS = {"ACQUIRE": [DMD_FRAMES], "FRAMES": [FRAMES_RAW[:16], FRAMES_RAW[16:32], FRAMES_RAW[32:]]}
#: name: (type, seq, model or opaque payload, decode: the project's decoder of that body)
MODELS = {
    "HELLO": (MsgType.HELLO, 1, HelloRequest(protocol=(1, 0), session=SESSION, keepalive_s=2.5), decode_hello_request),
    "HELLO_REPLY": (MsgType.HELLO_REPLY, 1, HelloReply(
        protocol_version="1.0", firmware_version="1.0.0", boot_id=BOOT, info=DEVICE_INFO, max_payload=2**26,
        max_in_flight=4, state="idle", frame_counter=0, clock_us=0.0,
    ), lambda p: decode_reply(HelloReply, p)),
    "CONFIGURE": (MsgType.CONFIGURE, 2, ConfigureRequest(
        layout=DMDLayout(dmd_shape=(2, 16), n_features=4, grid_shape=(1, 4), factor=2, offset=(0, 4)),
        n_components=4, exposure_us=400.0, frametime_us=None,
    ), lambda p: decode_request(ConfigureRequest, p)),
    "CONFIGURED": (MsgType.CONFIGURED, 2, ConfiguredReply(
        exposure_us=400.0, frametime_us=500.0, roi=(0, 0, 1, 4), frame_counter=0, clock_us=0.0,
    ), lambda p: decode_reply(ConfiguredReply, p)),
    "ACQUIRE": (MsgType.ACQUIRE, 3, AcquireHead(count=2, rows=2, row_bytes=2), lambda p: decode_bulk_request(AcquireHead, p)),
    "KEEPALIVE": (MsgType.KEEPALIVE, 3, KEEPALIVE_PAYLOAD, bytes),
    "FRAMES": (MsgType.FRAMES, 3, FramesHead(
        count=2, n_components=4, dtype="|u1", saturated_fraction=0.0, device_time_s=0.001, frame_counter=2, clock_us=1000.0,
    ), lambda p: decode_bulk_reply(FramesHead, p)),
    "ERROR": (MsgType.ERROR, 4, ErrorBody(
        code=6, message="the camera delivered 6 of 8 frames; lost frame ids [3, 5]", details={"frame_ids": [3, 5]},
    ), lambda p: decode_reply(ErrorBody, p)),
    "PING": (MsgType.PING, 5, PING, bytes),
    "PONG": (MsgType.PONG, 5, PING, bytes),
    "STATUS": (MsgType.STATUS, 6, StatusRequest(), lambda p: decode_request(StatusRequest, p)),
    "STATUS_REPLY": (MsgType.STATUS_REPLY, 6, StatusReply(
        state="configured", boot_id=BOOT, dropped_frames=0, frame_counter=2, clock_us=1000.0,
    ), lambda p: decode_reply(StatusReply, p)),
    "RESET": (MsgType.RESET, 7, ResetRequest(), lambda p: decode_request(ResetRequest, p)),
    "RESET_REPLY": (MsgType.RESET_REPLY, 7, ResetReply(boot_id=REBOOT), lambda p: decode_reply(ResetReply, p)),
    "BOOT": (MsgType.BOOT, 0, BootNotice(boot_id=REBOOT), lambda p: decode_reply(BootNotice, p)),
    "BYE": (MsgType.BYE, 8, ByeRequest(), lambda p: decode_request(ByeRequest, p)),
    "BYE_REPLY": (MsgType.BYE_REPLY, 8, ByeReply(), lambda p: decode_reply(ByeReply, p)),
}


def payload_pieces(name: str) -> list[bytes | memoryview]:
    _, _, body, _ = MODELS[name]
    if isinstance(body, bytes):
        return [body]
    if name in BULK_ARRAYS:
        return encode_bulk_head(body, *BULK_ARRAYS[name])
    return [encode(body)]


def test_every_reference_frame_has_a_model():
    assert sorted(MODELS) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_project_encodes_the_golden_bytes(name):
    msg_type, seq, _, _ = MODELS[name]
    pieces = payload_pieces(name)
    assert frame_bytes(msg_type, seq, pieces) == GOLDEN[name]
    assert b"".join(bytes(p) for p in encode_frame(msg_type, seq, pieces)) == GOLDEN[name]
    written: list[bytes] = []
    write_frame(lambda data: written.append(bytes(data)), msg_type, seq, pieces)
    assert b"".join(written) == GOLDEN[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_project_decodes_the_golden_bytes_to_the_models(name):
    msg_type, seq, body, decode = MODELS[name]
    decoder = FrameDecoder()
    decoder.feed(GOLDEN[name])
    frame = decoder.next_frame()
    assert (frame.type, frame.seq) == (msg_type, seq) and decoder.next_frame() is None
    decoded = decode(frame.payload)
    if name in BULK_ARRAYS:
        head, raw = decoded
        assert head == body and bytes(raw) == b"".join(BULK_ARRAYS[name])
    else:
        assert decoded == body


def test_the_reference_conversation_decodes_as_one_stream_byte_by_byte():
    stream = b"".join(GOLDEN[name] for name in EXPECTED)
    decoder = FrameDecoder()
    frames = []
    for i in range(len(stream)):
        decoder.feed(stream[i : i + 1])
        while (frame := decoder.next_frame()) is not None:
            frames.append((frame.type, frame.seq))
    assert frames == [(t, s) for t, s, _ in EXPECTED.values()] and decoder.discarded == 0
