"""The emulator firmware's state machine, reply cache and reporting, command by command."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_sim import EmulatorParams
from firmware_sim.firmware import Firmware
from firmware_sim.hosting import LoopbackFirmware
from opu_hal import IncompatibleFirmwareError
from opu_hal.layout import layout_1d
from opu_hal.protocol import (
    DMDPacker,
    ErrorCode,
    Frame,
    MsgType,
    ProtocolClient,
    Request,
    decode_bulk,
    decode_json,
    encode_bulk,
    encode_json,
)

PARAMS = EmulatorParams(seed=2, dmd_shape=(12, 20), camera_shape=(6, 10))
LAYOUT = layout_1d(15, PARAMS.dmd_shape)


def call(fw: Firmware, msg_type: int, seq: int, body: dict | None = None, payload: bytes | None = None):
    data = payload if payload is not None else encode_json(body or {})
    reply = fw.process(Frame(msg_type, seq, data))
    return reply.type, b"".join(bytes(p) for p in reply.pieces)


def configure(fw: Firmware, seq: int = 1, **extra) -> dict:
    body = {"layout": LAYOUT.model_dump(mode="json"), "n_components": 25, "exposure_us": None, "frametime_us": None}
    msg_type, payload = call(fw, MsgType.CONFIGURE, seq, {**body, **extra})
    assert msg_type == MsgType.CONFIGURED, payload
    return decode_json(payload)


def acquire_payload(x: np.ndarray, after: int = 0) -> bytes:
    packed = DMDPacker(LAYOUT).pack(x)
    head = {"count": len(x), "rows": packed.shape[1], "row_bytes": packed.shape[2], "after": after}
    return b"".join(bytes(p) for p in encode_bulk(head, packed.tobytes()))


def frames_of(payload: bytes) -> tuple[dict, np.ndarray, np.ndarray]:
    head, raw = decode_bulk(payload)
    n = head["count"]
    ids = np.frombuffer(raw, "<i8", n)
    frames = np.frombuffer(raw, np.dtype(head["dtype"]), offset=16 * n).reshape(n, head["n_components"])
    return head, ids, frames


def error_code(payload: bytes) -> int:
    return decode_json(payload)["code"]


X = (np.random.default_rng(0).random((8, 15)) < 0.5).astype(np.uint8)


def test_state_machine_idle_configured_and_acquiring():
    fw = Firmware(PARAMS)
    assert decode_json(call(fw, MsgType.STATUS, 1)[1])["state"] == "idle"
    msg_type, payload = call(fw, MsgType.ACQUIRE, 2, payload=acquire_payload(X))
    assert msg_type == MsgType.ERROR and error_code(payload) == ErrorCode.NOT_CONFIGURED
    applied = configure(fw, 3)
    assert applied["frame_counter"] == 0 and applied["roi"][2:] == [3, 10]
    assert decode_json(call(fw, MsgType.STATUS, 4)[1])["state"] == "configured"
    msg_type, payload = call(fw, MsgType.ACQUIRE, 5, payload=acquire_payload(X))
    head, ids, frames = frames_of(payload)
    assert msg_type == MsgType.FRAMES and ids.tolist() == list(range(8)) and head["frame_counter"] == 8
    reference = Firmware(PARAMS).model
    reference.configure(15, 25, mirrors_per_feature=LAYOUT.factor**2)  # the light of the layout's macro-pixels
    np.testing.assert_array_equal(frames, reference.acquire(X).frames)  # the centre mirrors read back X


def test_a_repeated_request_is_answered_from_the_cache_without_running_twice():
    fw = Firmware(PARAMS)
    configure(fw)
    first = call(fw, MsgType.ACQUIRE, 10, payload=acquire_payload(X))
    again = call(fw, MsgType.ACQUIRE, 10, payload=acquire_payload(X))
    assert first == again and fw.model.next_frame_id == 8
    different = call(fw, MsgType.ACQUIRE, 10, payload=acquire_payload(X[:3]))  # same seq, new request
    assert frames_of(different[1])[1].tolist() == [8, 9, 10]


def test_requests_out_of_order_are_refused_uncached_and_run_in_turn():
    fw = Firmware(PARAMS)
    configure(fw)
    msg_type, payload = call(fw, MsgType.ACQUIRE, 21, payload=acquire_payload(X[4:], after=20))
    assert msg_type == MsgType.ERROR and error_code(payload) == ErrorCode.OUT_OF_ORDER
    assert fw.model.next_frame_id == 0
    call(fw, MsgType.ACQUIRE, 20, payload=acquire_payload(X[:4]))
    msg_type, payload = call(fw, MsgType.ACQUIRE, 21, payload=acquire_payload(X[4:], after=20))
    assert frames_of(payload)[1].tolist() == [4, 5, 6, 7]


def test_reset_gives_a_new_boot_id_and_forgets_everything():
    fw = Firmware(PARAMS)
    configure(fw)
    call(fw, MsgType.ACQUIRE, 2, payload=acquire_payload(X))
    old = fw.boot_id
    msg_type, payload = call(fw, MsgType.RESET, 3)
    assert msg_type == MsgType.RESET_REPLY and decode_json(payload)["boot_id"] == fw.boot_id != old
    status = decode_json(call(fw, MsgType.STATUS, 4)[1])
    assert status["state"] == "idle" and status["frame_counter"] == 0


def test_configure_can_restore_the_counters_of_a_resumed_run():
    fw = Firmware(PARAMS)
    applied = configure(fw, frame_counter=500, clock_us=1e6)
    assert applied["frame_counter"] == 500 and applied["clock_us"] == 1e6
    _, ids, _ = frames_of(call(fw, MsgType.ACQUIRE, 2, payload=acquire_payload(X[:2]))[1])
    assert ids.tolist() == [500, 501]


@pytest.mark.parametrize(
    ("msg_type", "body", "code"),
    [
        (MsgType.CONFIGURE, {"n_components": 3}, ErrorCode.BAD_REQUEST),
        (MsgType.CONFIGURE, {"layout": layout_1d(15, (13, 20)).model_dump(mode="json"), "n_components": 3}, ErrorCode.INVALID_ARGUMENT),
        (MsgType.CONFIGURE, {"layout": LAYOUT.model_dump(mode="json"), "n_components": 61}, ErrorCode.INVALID_ARGUMENT),
        (0x55, {}, ErrorCode.UNKNOWN_COMMAND),
        (MsgType.HELLO, {"protocol": [9, 0]}, ErrorCode.INCOMPATIBLE),
    ],
)
def test_bad_commands_are_refused_with_their_code(msg_type, body, code):
    msg, payload = call(Firmware(PARAMS), msg_type, 1, body)
    assert msg == MsgType.ERROR and error_code(payload) == code


def test_malformed_acquire_is_refused():
    fw = Firmware(PARAMS)
    configure(fw)
    good = acquire_payload(X)
    msg, payload = call(fw, MsgType.ACQUIRE, 2, payload=good[:-1])
    assert msg == MsgType.ERROR and error_code(payload) == ErrorCode.BAD_REQUEST
    msg, payload = call(fw, MsgType.ACQUIRE, 3, payload=b"\x00\x00")
    assert msg == MsgType.ERROR and error_code(payload) == ErrorCode.BAD_REQUEST
    assert fw.model.next_frame_id == 0


def test_optics_off_returns_empty_frames_with_counters():
    fw = Firmware(PARAMS, optics=False)
    applied = configure(fw)
    head, ids, frames = frames_of(call(fw, MsgType.ACQUIRE, 2, payload=acquire_payload(X))[1])
    assert frames.shape == (8, 25) and frames.dtype == np.uint8 and not frames.any()
    assert ids.tolist() == list(range(8)) and head["clock_us"] == pytest.approx(8 * applied["frametime_us"])


def test_dropped_camera_frames_are_counted_in_status():
    from firmware_sim.faults import FaultSettings

    fw = Firmware(PARAMS, faults=FaultSettings(drop_camera_frames=(3, 5)))
    configure(fw)
    msg, payload = call(fw, MsgType.ACQUIRE, 2, payload=acquire_payload(X))
    body = decode_json(payload)
    assert msg == MsgType.ERROR and body["code"] == ErrorCode.FRAMES_DROPPED and body["details"]["frame_ids"] == [3, 5]
    assert decode_json(call(fw, MsgType.STATUS, 3)[1])["dropped_frames"] == 2


def test_client_refuses_a_device_of_another_protocol_major():
    device = LoopbackFirmware(Firmware(PARAMS))
    client = ProtocolClient(device.start(), timeout_s=2)
    try:
        client.connect()
        reply = client.request(Request(MsgType.HELLO, [encode_json({"protocol": [1, 0], "session": "x"})]))
        body = decode_json(reply.payload)
        body["protocol_version"] = "2.0"
        with pytest.raises(IncompatibleFirmwareError, match="protocol 2.0"):
            client._parse_hello(Frame(MsgType.HELLO_REPLY, 1, encode_json(body)))
    finally:
        client.close()
        device.close()
