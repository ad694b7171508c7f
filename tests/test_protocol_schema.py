"""Malformed but well-framed messages, through real links: every one gets an error reply (device) or
raises ProtocolError (host), and never kills a worker thread or poisons the device's state.

Requests are written as raw frames (JSON built here, by hand) to the emulator firmware (a loopback
pair or TCP) and to ``opu-hal serve``; replies are tampered with by a firmware that edits its own.
"""

from __future__ import annotations

import json
import math
import struct
import time

import numpy as np
import pytest

from firmware_sim import EmulatorParams
from firmware_sim.firmware import Firmware
from firmware_sim.hosting import LoopbackFirmware, TCPFirmwareServer
from opu_hal import ProtocolError
from opu_hal.backends.base import DeviceConfig
from opu_hal.backends.wire import WireBackend
from opu_hal.devices.opu_firmware import ProtocolLink
from opu_hal.layout import layout_1d
from opu_hal.limits import MAX_BATCH_FRAMES
from opu_hal.protocol import DMDPacker, ErrorCode, Frame, FrameDecoder, MsgType, Request, frame_bytes
from opu_hal.protocol.device_side import Reply
from opu_hal.sharing import SharingServer
from opu_hal.transport import TCPTransport, Transport, TransportError

DEVICE = "emu://?seed=4&fidelity=ideal&dmd_shape=20x24&camera_shape=10x30"
PARAMS = EmulatorParams(seed=4, fidelity="ideal", dmd_shape=(20, 24), camera_shape=(10, 30))
TOKEN = "correct-horse-battery"
LAYOUT = layout_1d(12, (20, 24))
LAYOUT_JSON = LAYOUT.model_dump(mode="json")
N_COMPONENTS = 40
X = (np.random.default_rng(1).random((2, 12)) < 0.5).astype(np.uint8)
PACKED = DMDPacker(LAYOUT).pack(X)


def body(**fields) -> bytes:
    """A control payload written by hand (``allow_nan``: Python's JSON writes ``Infinity``)."""
    return json.dumps(fields, separators=(",", ":")).encode()


def bulk(head: dict | bytes, raw: bytes) -> bytes:
    text = head if isinstance(head, bytes) else body(**head)
    return struct.pack("<I", len(text)) + text + raw


def acquire(**changes) -> bytes:
    head = {"count": 2, "rows": PACKED.shape[1], "row_bytes": PACKED.shape[2], "after": 0, "more": False, **changes}
    return bulk(head, PACKED.tobytes())


def configure(**changes) -> bytes:
    fields = {"layout": LAYOUT_JSON, "n_components": N_COMPONENTS, "exposure_us": None, "frametime_us": None}
    return body(**{**fields, **changes})


def hello(**changes) -> bytes:
    return body(**{"protocol": [1, 0], "session": "c0ffee", "keepalive_s": 0.5, "token": TOKEN, **changes})


class RawPeer:
    """A host that writes raw frames and reads the replies (no retries, no validation)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.decoder = FrameDecoder()
        self.seq = 100

    def call(self, msg_type: int, payload: bytes, timeout_s: float = 5.0) -> Frame:
        self.seq += 1
        self.transport.write(frame_bytes(msg_type, self.seq, payload))
        deadline = time.monotonic() + timeout_s
        while True:
            frame = self.decoder.next_frame()
            if frame is not None:
                if frame.seq == self.seq and frame.type != MsgType.KEEPALIVE:
                    return frame
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no reply to message type {msg_type:#x} within {timeout_s} s")
            try:
                self.decoder.feed(self.transport.read(1 << 16, min(remaining, 0.2)))
            except TransportError as exc:
                raise AssertionError(f"the link closed without a reply to type {msg_type:#x}: {exc}") from None

    def json(self, msg_type: int, payload: bytes, expect: int) -> dict:
        reply = self.call(msg_type, payload)
        assert reply.type == expect, (reply.type, bytes(reply.payload))
        return json.loads(bytes(reply.payload))

    def frames(self, payload: bytes) -> tuple[dict, list[int]]:
        reply = self.call(MsgType.ACQUIRE, payload)
        assert reply.type == MsgType.FRAMES, bytes(reply.payload)
        (n,) = struct.unpack_from("<I", reply.payload)
        head = json.loads(bytes(reply.payload[4 : 4 + n]))
        ids = np.frombuffer(bytes(reply.payload[4 + n :]), "<i8", head["count"]).tolist()
        return head, ids

    def error_code(self, msg_type: int, payload: bytes) -> int:
        return self.json(msg_type, payload, MsgType.ERROR)["code"]

    def close(self) -> None:
        self.transport.close()


# ---------------------------------------------------------------------------- devices
@pytest.fixture(scope="module")
def serve_server():
    server = SharingServer(DEVICE, TOKEN, max_clients=2).start()
    yield server
    server.close()


def connect_serve(server: SharingServer) -> RawPeer:
    transport = TCPTransport(*server.address)
    transport.open(5)
    return RawPeer(transport)


@pytest.fixture(params=["firmware-loopback", "firmware-tcp", "serve"])
def peer(request, serve_server):
    """A connection to a device, greeted, configured, with 2 frames acquired (counters at 2)."""
    closers = []
    if request.param == "serve":
        raw = connect_serve(serve_server)
    elif request.param == "firmware-loopback":
        device = LoopbackFirmware(Firmware(PARAMS))
        closers.append(device.close)
        raw = RawPeer(device.start())
    else:
        server = TCPFirmwareServer(Firmware(PARAMS)).start()
        closers.append(server.close)
        transport = TCPTransport(*server.address)
        transport.open(5)
        raw = RawPeer(transport)
    raw.kind = request.param
    raw.json(MsgType.HELLO, hello(session=f"s{time.monotonic_ns()}"), MsgType.HELLO_REPLY)
    raw.json(MsgType.CONFIGURE, configure(), MsgType.CONFIGURED)
    raw.first_ids = raw.frames(acquire())[1]
    yield raw
    raw.close()
    for close in closers:
        close()


def status(peer: RawPeer) -> dict:
    return peer.json(MsgType.STATUS, b"{}", MsgType.STATUS_REPLY)


def assert_still_working(peer: RawPeer, before: dict) -> None:
    """The state did not change, and valid requests still work on the same connection."""
    after = status(peer)
    assert (after["state"], after["frame_counter"], after["clock_us"]) == (
        before["state"], before["frame_counter"], before["clock_us"]
    )
    peer.json(MsgType.CONFIGURE, configure(), MsgType.CONFIGURED)
    _, ids = peer.frames(acquire())
    assert ids == [peer.first_ids[-1] + 1, peer.first_ids[-1] + 2]  # the counter continues where it was


# ---------------------------------------------------------------------------- CONFIGURE: counters
@pytest.mark.parametrize(
    "counters",
    [{"frame_counter": 2**70}, {"frame_counter": -5}, {"clock_us": math.inf}, {"clock_us": -1.0},
     {"clock_us": math.nan}, {"frame_counter": 2**63}],
    ids=["frame_counter-2**70", "frame_counter--5", "clock_us-inf", "clock_us--1", "clock_us-nan", "frame_counter-2**63"],
)
def test_configure_refuses_out_of_range_counters_and_keeps_the_state(peer, counters):
    before = status(peer)
    code = peer.error_code(MsgType.CONFIGURE, configure(**counters))
    assert code == ErrorCode.INVALID_ARGUMENT
    assert_still_working(peer, before)


@pytest.mark.parametrize("peer", ["firmware-loopback", "firmware-tcp"], indirect=True)
def test_configure_restores_valid_counters(peer):
    applied = peer.json(MsgType.CONFIGURE, configure(frame_counter=2**63 - 10, clock_us=5e6), MsgType.CONFIGURED)
    assert applied["frame_counter"] == 2**63 - 10 and applied["clock_us"] == 5e6


@pytest.mark.parametrize("peer", ["serve"], indirect=True)
def test_serve_sets_the_clients_frame_counter_and_keeps_the_shared_clock_on_configure(peer):
    # docs/protocol.md section 6: serve numbers each client's frames from the client's own
    # counter, which CONFIGURE's frame_counter sets (a re-planned call keeps its frame ids);
    # the clock is the shared device's, so a CONFIGURE cannot move timestamps back.
    before = status(peer)
    applied = peer.json(MsgType.CONFIGURE, configure(frame_counter=2**63 - 10, clock_us=5e6), MsgType.CONFIGURED)
    assert applied["frame_counter"] == 2**63 - 10
    assert applied["clock_us"] == before["clock_us"]
    assert status(peer)["frame_counter"] == 2**63 - 10


# ---------------------------------------------------------------------------- malformed requests
BAD, INVALID = ErrorCode.BAD_REQUEST, ErrorCode.INVALID_ARGUMENT
MALFORMED = {
    MsgType.CONFIGURE: [
        ("not-json", b"{", BAD),
        ("not-utf8", b"\xff\xfe", BAD),
        ("an-array", b"[]", BAD),
        ("no-layout", body(n_components=3), BAD),
        ("n_components-string", configure(n_components="40"), BAD),
        ("n_components-float", configure(n_components=40.5), BAD),
        ("n_components-0", configure(n_components=0), INVALID),
        ("n_components-bool", configure(n_components=True), BAD),
        ("exposure-negative", configure(exposure_us=-1.0), INVALID),
        ("exposure-too-long", configure(exposure_us=1e9), INVALID),
        ("exposure-string", configure(exposure_us="fast"), BAD),
        ("frametime-0", configure(frametime_us=0), INVALID),
        ("frametime-inf", configure(frametime_us=math.inf), INVALID),
        ("layout-string", configure(layout="full"), BAD),
        ("layout-factor-0", configure(layout={**LAYOUT_JSON, "factor": 0}), INVALID),
        ("layout-offset-negative", configure(layout={**LAYOUT_JSON, "offset": [-1, 0]}), INVALID),
        ("layout-beyond-the-dmd", configure(layout={**LAYOUT_JSON, "offset": [19, 0]}), INVALID),
        ("layout-n_features-string", configure(layout={**LAYOUT_JSON, "n_features": "12"}), BAD),
        ("unknown-key", configure(gain_db=3), BAD),
        ("frame_counter-float", configure(frame_counter=1.5), BAD),
    ],
    MsgType.ACQUIRE: [
        ("short-payload", b"\x00\x00", BAD),
        ("head-overruns", struct.pack("<I", 10**6) + b"{}", BAD),
        ("head-not-json", bulk(b"{count", PACKED.tobytes()), BAD),
        ("head-an-array", bulk(b"[2]", PACKED.tobytes()), BAD),
        ("count-0", acquire(count=0), INVALID),
        ("count--1", acquire(count=-1), INVALID),
        ("count-string", acquire(count="2"), BAD),
        ("count-above-the-limit", acquire(count=MAX_BATCH_FRAMES + 1), INVALID),
        ("count-null", acquire(count=None), BAD),
        ("rows-0", acquire(rows=0), INVALID),
        ("row_bytes-float", acquire(row_bytes=3.0), BAD),
        ("after--1", acquire(after=-1), INVALID),
        ("after-above-uint32", acquire(after=2**32), INVALID),
        ("more-int", acquire(more=1), BAD),
        ("unknown-key", acquire(colour="red"), BAD),
        ("frames-missing", bulk({"count": 2, "rows": PACKED.shape[1], "row_bytes": PACKED.shape[2]}, b""), BAD),
    ],
    MsgType.STATUS: [
        ("not-json", b"status?", BAD),
        ("an-array", b"[]", BAD),
        ("unknown-key", body(verbose=True), BAD),
    ],
}
CASES = [(msg_type, name, payload, code) for msg_type, cases in MALFORMED.items() for name, payload, code in cases]


@pytest.mark.parametrize(
    ("msg_type", "payload", "code"),
    [case[:1] + case[2:] for case in CASES],
    ids=[f"{MsgType(case[0]).name}-{case[1]}" for case in CASES],
)
def test_a_malformed_request_gets_an_error_reply_and_changes_nothing(peer, msg_type, payload, code):
    before = status(peer)
    assert peer.error_code(msg_type, payload) == code
    assert_still_working(peer, before)


@pytest.mark.parametrize("payload", [b"{}", body(x=1), b"nope"], ids=["valid", "unknown-key", "not-json"])
def test_reset_reboots_only_when_well_formed(payload):
    device = LoopbackFirmware(Firmware(PARAMS))
    raw = RawPeer(device.start())
    try:
        boot_id = raw.json(MsgType.HELLO, hello(), MsgType.HELLO_REPLY)["boot_id"]
        if payload == b"{}":
            assert raw.json(MsgType.RESET, payload, MsgType.RESET_REPLY)["boot_id"] != boot_id
            return
        assert raw.error_code(MsgType.RESET, payload) == ErrorCode.BAD_REQUEST
        assert status(raw)["boot_id"] == boot_id
    finally:
        raw.close()
        device.close()


# ---------------------------------------------------------------------------- HELLO
MALFORMED_HELLO = [
    ("protocol-5", hello(protocol=5), (BAD, ErrorCode.INCOMPATIBLE)),
    ("protocol-string", hello(protocol="1.0"), (BAD, ErrorCode.INCOMPATIBLE)),
    ("protocol-empty", hello(protocol=[]), (BAD, ErrorCode.INCOMPATIBLE)),
    ("protocol-null-major", hello(protocol=[None, 0]), (BAD, ErrorCode.INCOMPATIBLE)),
    ("protocol-negative", hello(protocol=[-1, 0]), (INVALID, ErrorCode.INCOMPATIBLE)),
    ("protocol-missing", body(session="c0ffee", token=TOKEN), (BAD,)),
    ("session-int", hello(session=7), (BAD,)),
    ("keepalive-string", hello(keepalive_s="often"), (BAD,)),
    ("keepalive-negative", hello(keepalive_s=-1.0), (INVALID,)),
    ("keepalive-inf", hello(keepalive_s=math.inf), (INVALID,)),
    ("an-array", b"[1, 0]", (BAD,)),
    ("not-json", b"hello", (BAD,)),
]


@pytest.mark.parametrize("target", ["firmware", "serve"])
@pytest.mark.parametrize(("payload", "codes"), [c[1:] for c in MALFORMED_HELLO], ids=[c[0] for c in MALFORMED_HELLO])
def test_a_malformed_hello_gets_an_error_reply_and_the_device_keeps_serving(serve_server, target, payload, codes):
    if target == "serve":
        first = connect_serve(serve_server)
        reconnect = lambda: connect_serve(serve_server)  # noqa: E731
        closers = []
    else:
        server = TCPFirmwareServer(Firmware(PARAMS)).start()
        closers = [server.close]

        def reconnect() -> RawPeer:
            transport = TCPTransport(*server.address)
            transport.open(5)
            return RawPeer(transport)

        first = reconnect()
    try:
        assert first.error_code(MsgType.HELLO, payload) in codes
        first.close()
        again = reconnect()  # a refused HELLO ends its connection; the device serves the next one
        try:
            again.json(MsgType.HELLO, hello(), MsgType.HELLO_REPLY)
            again.json(MsgType.CONFIGURE, configure(), MsgType.CONFIGURED)
            assert len(again.frames(acquire())[1]) == 2
        finally:
            again.close()
    finally:
        for close in closers:
            close()


def test_serve_answers_an_authenticated_hello_with_a_non_list_protocol():
    """The defect: ``hello.get("protocol", [None])[0]`` raised TypeError and killed the worker thread."""
    server = SharingServer(DEVICE, TOKEN, max_clients=1).start()  # one client: a leaked connection would block the next
    try:
        raw = connect_serve(server)
        assert raw.error_code(MsgType.HELLO, hello(protocol=5)) in (ErrorCode.BAD_REQUEST, ErrorCode.INCOMPATIBLE)
        raw.close()
        for _ in range(2):  # a new connection succeeds once the old one's slot is released
            deadline = time.monotonic() + 5
            while server._clients and time.monotonic() < deadline:
                time.sleep(0.02)
            raw = connect_serve(server)
            assert raw.json(MsgType.HELLO, hello(), MsgType.HELLO_REPLY)["protocol_version"] == "1.0"
            raw.json(MsgType.BYE, b"{}", MsgType.BYE_REPLY)
            raw.close()
    finally:
        server.close()


# ---------------------------------------------------------------------------- malformed replies
class TamperingFirmware(Firmware):
    """Firmware whose replies of one type are edited (``edit(head) -> head`` on the JSON object)."""

    def __init__(self, target: int, edit, **options) -> None:
        super().__init__(PARAMS, **options)
        self.target, self.edit = target, edit

    def process(self, frame: Frame) -> Reply | None:
        reply = super().process(frame)
        if reply is None or reply.type != self.target:
            return reply
        payload = b"".join(bytes(p) for p in reply.pieces)
        if reply.type == MsgType.FRAMES:
            (n,) = struct.unpack_from("<I", payload)
            text = body(**self.edit(json.loads(payload[4 : 4 + n])))
            return Reply(reply.type, [struct.pack("<I", len(text)), text, payload[4 + n :]], reply.cacheable)
        return Reply(reply.type, [body(**self.edit(json.loads(payload)))], reply.cacheable)


def _set(**changes):
    return lambda obj: {**obj, **changes}


def _drop(key):
    return lambda obj: {k: v for k, v in obj.items() if k != key}


MALFORMED_REPLIES = [
    ("FRAMES-count--1", MsgType.FRAMES, _set(count=-1)),
    ("FRAMES-dtype-O", MsgType.FRAMES, _set(dtype="O")),
    ("FRAMES-dtype-unicode", MsgType.FRAMES, _set(dtype="<U1")),  # as many bytes as the float32 pixels
    ("FRAMES-dtype-int", MsgType.FRAMES, _set(dtype=4)),
    ("FRAMES-dtype-missing", MsgType.FRAMES, _drop("dtype")),
    ("FRAMES-n_components-string", MsgType.FRAMES, _set(n_components=str(N_COMPONENTS))),
    ("FRAMES-saturated-2", MsgType.FRAMES, _set(saturated_fraction=2.0)),
    ("FRAMES-clock-inf", MsgType.FRAMES, _set(clock_us=math.inf)),
    ("FRAMES-frame_counter-2**64", MsgType.FRAMES, _set(frame_counter=2**64)),
    ("CONFIGURED-roi-negative", MsgType.CONFIGURED, _set(roi=[0, 0, -1, 30])),
    ("CONFIGURED-frametime-nan", MsgType.CONFIGURED, _set(frametime_us=math.nan)),
    ("CONFIGURED-frame_counter-float", MsgType.CONFIGURED, _set(frame_counter=1.5)),
    ("HELLO_REPLY-max_payload--1", MsgType.HELLO_REPLY, _set(max_payload=-1)),
    ("HELLO_REPLY-boot_id-int", MsgType.HELLO_REPLY, _set(boot_id=5)),
    ("HELLO_REPLY-no-info", MsgType.HELLO_REPLY, _drop("info")),
    ("ERROR-code-string", MsgType.ERROR, _set(code="busy")),
]


@pytest.mark.parametrize(("target", "edit"), [c[1:] for c in MALFORMED_REPLIES], ids=[c[0] for c in MALFORMED_REPLIES])
def test_a_malformed_reply_raises_protocol_error_on_the_host(target, edit):
    firmware = TamperingFirmware(target, edit)
    device = LoopbackFirmware(firmware)
    backend = WireBackend(device.start, release=device.close, retries=0)
    try:
        with pytest.raises(ProtocolError, match="malformed reply"):
            backend.open(5)
            if target == MsgType.ERROR:  # a CONFIGURE without its fields: refused by the device
                backend.client.request(Request(MsgType.CONFIGURE, [b"{}"]))
            backend.configure(DeviceConfig(LAYOUT, N_COMPONENTS, None, None))
            backend.acquire(X)
    finally:
        if backend.is_open:
            backend.close()


@pytest.mark.parametrize("dtype", ["O", "<U1", "|V4"])
def test_the_protocol_camera_refuses_frames_of_an_unsafe_dtype(dtype):
    firmware = TamperingFirmware(MsgType.FRAMES, _set(dtype=dtype))
    device = LoopbackFirmware(firmware)
    link = ProtocolLink(device.start, device.close, timeout_s=5, retries=0)
    link.attach()
    try:
        packed = DMDPacker(link.default_layout()).pack(np.zeros((2, 20 * 24), dtype=np.uint8))
        with pytest.raises(ProtocolError, match="FRAMES: dtype"):
            link.show(packed)
    finally:
        link.detach()
