"""The host side of the protocol: handshake, requests with retries, pipelined bulk transfers.

Every request gets a sequence number; its reply carries the same one. A request whose
reply does not come within ``timeout_s`` seconds of silence (KEEPALIVE frames from the
device count as life), or comes corrupt, is sent again with the *same* sequence number,
up to ``retries`` times; the device answers a repeated request from its reply cache
without executing it twice. A broken link is re-opened and re-greeted, in a bounded loop
with backoff (each failed attempt counts against the waiting requests' retries; never
recursion); if the device's boot id changed, it rebooted and :class:`DeviceResetError` tells the caller to
re-configure and resume.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from ..errors import (
    DeviceResetError,
    DeviceTimeoutError,
    IncompatibleFirmwareError,
    OPUError,
    ProtocolError,
    RetriesSpentError,
)
from ..settings import DeviceInfo
from ..validation import check_int, check_positive_seconds
from ..transport import Transport, TransportError
from .frames import (
    DEFAULT_MAX_PAYLOAD,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    CorruptFrameError,
    Frame,
    FrameDecoder,
    MsgType,
    frame_bytes,
    write_frame,
)
from .messages import ErrorCode, error_to_exception
from .schema import BootNotice, ByeRequest, ErrorBody, HelloReply, HelloRequest, VersionProbe, decode_reply, encode

logger = logging.getLogger(__name__)

_READ_BYTES = 1 << 16  # a read when no large frame is in progress (then read in place)
_SMALL_FRAME = 1 << 16  # payload bytes: larger frames are written with their CRC summed alongside
Pieces = list[bytes | memoryview]


@dataclass(frozen=True)
class Hello:
    """What the device answered to HELLO. ``max_payload`` in bytes."""

    protocol_version: str
    firmware_version: str
    boot_id: str
    info: DeviceInfo
    max_payload: int
    max_in_flight: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """A message to send: type, payload pieces, and a sequence number from ``next_seq()`` or None.

    ``sink``: a writable byte buffer for the last ``len(sink)`` bytes of a large reply's
    payload (its bulk arrays), which then arrive there without a copy; the reply's
    ``placed`` says whether they did (a small or differently sized reply comes whole).
    """

    type: int
    payload: Pieces
    seq: int | None = None
    sink: memoryview | None = None


@dataclass(eq=False)
class _Pending:
    seq: int
    request: Request
    attempts: int = 0
    reply: Frame | None = None
    deadline: float | None = None
    deferred: bool = False
    last_failure: str = "no reply"
    corrupt: bool = False
    retries: int | None = None  # this request's own limit (None: the client's)


class _Writer:
    """Writes frames in order from a thread of its own, so that the caller reads replies meanwhile."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._jobs: queue.SimpleQueue[tuple[int, int, int, Pieces] | None] = queue.SimpleQueue()
        self._unfinished = 0
        self._generation = 0  # frames queued before discard() belong to an older one and are dropped
        self._done = threading.Condition()
        threading.Thread(target=self._run, name="opu-writer", daemon=True).start()

    @property
    def busy(self) -> bool:
        """Whether frames are queued or being written."""
        return self._unfinished > 0

    def put(self, msg_type: int, seq: int, pieces: Pieces) -> None:
        """Queue a frame (its pieces must not change until written)."""
        with self._done:
            self._unfinished += 1
            self._jobs.put((self._generation, msg_type, seq, pieces))

    def discard(self, timeout_s: float) -> None:
        """Drop the frames not yet written; wait (at most ``timeout_s``) for the one being written to fail."""
        with self._done:
            self._generation += 1
            self._done.wait_for(lambda: not self._unfinished, timeout_s)

    def stop(self) -> None:
        """End the thread once the queued frames are written."""
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            generation, msg_type, seq, pieces = job
            try:
                if generation == self._generation:
                    write_frame(self._transport.write, msg_type, seq, pieces)
            except TransportError as exc:
                logger.info("send of seq %d failed: %s", seq, exc)  # the next read re-opens the link
            finally:
                with self._done:
                    self._unfinished -= 1
                    self._done.notify_all()


class ProtocolClient:
    """Talks to one device over a transport (the client *has* the transport).

    Parameters
    ----------
    transport:
        The link; opened by :meth:`connect`.
    timeout_s:
        Seconds of silence before a request is sent again; also the connect timeout.
    retries:
        Times a request is sent again (or the link re-opened) before giving up.
    max_payload:
        Largest reply payload accepted (bytes).
    token:
        Shared secret sent in HELLO (needed by ``opu-hal serve``).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        timeout_s: float = 10.0,
        retries: int = 3,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        token: str | None = None,
    ) -> None:
        check_positive_seconds(timeout_s, "timeout_s")
        check_int(retries, "retries", low=0)
        self.transport = transport
        self.timeout_s = float(timeout_s)
        self.retries = retries
        self.token = token
        self.session = uuid.uuid4().hex
        self.hello: Hello | None = None
        self._decoder = FrameDecoder(max_payload, sink=self._sink)
        self._seq = random.randrange(1, 2**31)
        self._pending: dict[int, _Pending] = {}
        self._in_handshake = False
        self._last_rx = time.monotonic()  # when bytes last arrived
        self.resent = 0  # requests sent again so far (for budgets over many requests)
        self._writer: _Writer | None = None  # sends large frames while replies are read (full-duplex links)

    # ------------------------------------------------------------------ connection
    def connect(self) -> Hello:
        """Open the link and greet the device."""
        self.transport.open(self.timeout_s)
        self._decoder.reset()
        return self.handshake()

    def handshake(self) -> Hello:
        """Send HELLO; returns (and keeps) the device's answer. Raises IncompatibleFirmwareError."""
        return self._greet(reconnect=True)

    def _greet(self, reconnect: bool) -> Hello:
        """HELLO; with ``reconnect`` False a single attempt whose link failure raises TransportError
        (the reconnect loop's own greeting: it counts the attempt, never recurses)."""
        body = HelloRequest(
            protocol=(PROTOCOL_MAJOR, PROTOCOL_MINOR), session=self.session, keepalive_s=self.timeout_s / 4, token=self.token
        )
        self._in_handshake = True
        try:
            request = Request(MsgType.HELLO, [encode(body)])
            reply = self._request(request, None if reconnect else 0, reconnect)
        finally:
            self._in_handshake = False
        hello = self._parse_hello(reply)
        self.hello = hello
        return hello

    @staticmethod
    def _parse_hello(reply: Frame) -> Hello:
        if reply.type != MsgType.HELLO_REPLY:
            raise ProtocolError(f"HELLO: expected a HELLO_REPLY, got message type {reply.type:#x}")
        probe = decode_reply(VersionProbe, reply.payload)
        if probe.protocol_version.split(".")[0] != str(PROTOCOL_MAJOR):
            raise IncompatibleFirmwareError(
                f"the device speaks protocol {probe.protocol_version or 'unknown'}, this driver protocol "
                f"{PROTOCOL_MAJOR}.x (firmware {probe.firmware_version})"
            )
        body = decode_reply(HelloReply, reply.payload)
        return Hello(
            protocol_version=body.protocol_version,
            firmware_version=body.firmware_version,
            boot_id=body.boot_id,
            info=body.info,
            max_payload=body.max_payload,
            max_in_flight=body.max_in_flight,
            extra=body.model_dump(mode="json", include={"state", "frame_counter", "clock_us"}),
        )

    def close(self) -> None:
        """Say goodbye (best effort) and close the link."""
        if self.transport.is_open and self.hello is not None:
            retries, self.retries = self.retries, 0
            try:
                self.request(Request(MsgType.BYE, [encode(ByeRequest())]))
            except OPUError as exc:
                logger.debug("BYE not answered: %s", exc)
            finally:
                self.retries = retries
        self.transport.close()
        self._stop_writing()
        if self._writer is not None:
            self._writer.stop()
            self._writer = None
        self.hello = None

    # ------------------------------------------------------------------ requests
    def request(self, request: Request) -> Frame:
        """Send one request and return its reply (an ERROR reply raises its exception).

        The pipeline of one request, without its bookkeeping: a small request's own
        time is on the round trip of every command.
        """
        return self._request(request, None, True)

    def _request(self, request: Request, retries: int | None, reconnect: bool) -> Frame:
        pending = _Pending(request.seq or self.next_seq(), request, retries=retries)
        self._pending[pending.seq] = pending
        queue = [pending]
        try:
            self._send(pending)
            while pending.reply is None:
                self._pump(queue, reconnect)
        finally:
            self._pending.pop(pending.seq, None)
        if pending.reply.type == MsgType.ERROR:
            raise error_to_exception(pending.reply.payload)
        return pending.reply

    def pipeline(self, requests: Iterable[Request], window: int) -> Iterator[Frame]:
        """Send requests with up to ``window`` in flight; yield their replies in order.

        An ERROR reply raises the matching :mod:`opu_hal.errors` exception when its turn
        comes; replies after it are dropped.
        """
        if window < 1:
            raise ValueError(f"window: expected at least 1, got {window}")
        source = iter(requests)
        queue: list[_Pending] = []
        exhausted = False
        try:
            while True:
                while not exhausted and len(queue) < window:
                    request = next(source, None)
                    if request is None:
                        exhausted = True
                        break
                    pending = _Pending(request.seq or self.next_seq(), request)
                    self._pending[pending.seq] = pending
                    queue.append(pending)
                    self._send(pending)
                if not queue:
                    return
                head = queue[0]
                while head.reply is None:
                    self._pump(queue)
                queue.pop(0)
                del self._pending[head.seq]
                if head.reply.type == MsgType.ERROR:
                    raise error_to_exception(head.reply.payload)
                yield head.reply
        finally:
            for pending in queue:
                self._pending.pop(pending.seq, None)

    def next_seq(self) -> int:
        """A fresh sequence number (for requests that name the one before them)."""
        self._seq = self._seq % 0xFFFFFFFF + 1
        return self._seq

    def _send(self, pending: _Pending) -> None:
        request = pending.request
        small = sum(map(len, request.payload)) <= _SMALL_FRAME
        writer = self._writer
        if not (small and (writer is None or not writer.busy)) and self.transport.full_duplex:
            if writer is None:
                writer = self._writer = _Writer(self.transport)
            writer.put(request.type, pending.seq, request.payload)  # after the frames queued before it
            return
        try:
            if small:
                self.transport.write(frame_bytes(request.type, pending.seq, request.payload))
            else:
                write_frame(self.transport.write, request.type, pending.seq, request.payload)
        except TransportError as exc:
            logger.info("send of seq %d failed: %s", pending.seq, exc)  # the next read re-opens the link

    def _stop_writing(self) -> None:
        """After the link was closed: drop the frames still queued (they are sent again on the new link)."""
        if self._writer is not None:
            self._writer.discard(self.transport.write_timeout_s)

    def _sink(self, msg_type: int, seq: int, length: int) -> memoryview | None:
        """Where a large reply's tail goes: its request's sink, if the reply answers it and is larger."""
        pending = self._pending.get(seq)
        if pending is None or pending.reply is not None or msg_type != pending.request.type | 0x80:
            return None
        sink = pending.request.sink
        return sink if sink is not None and len(sink) < length else None

    def _retry(self, pending: _Pending, reason: str, corrupt: bool) -> None:
        pending.attempts += 1
        pending.last_failure, pending.corrupt = reason, pending.corrupt or corrupt  # corrupt once: a faulty link
        retries = self.retries if pending.retries is None else pending.retries
        if pending.attempts > retries:
            name = _type_name(pending.request.type)
            text = (
                f"{name} request (seq {pending.seq}): no valid reply after {retries} retries "
                f"({self.timeout_s} s timeout each); last failure: {reason}"
            )
            raise RetriesSpentError(text) if pending.corrupt else DeviceTimeoutError(text)
        logger.info("resending seq %d (attempt %d): %s", pending.seq, pending.attempts + 1, reason)
        self.resent += 1
        pending.deadline = time.monotonic() + self.timeout_s
        pending.deferred = False
        self._send(pending)

    def _pump(self, queue: list[_Pending], reconnect: bool = True) -> None:
        """Read what arrives until the first unanswered request's deadline; handle it.

        A broken link is re-opened (``reconnect``) or its TransportError raised."""
        first = next((p for p in queue if p.reply is None and not p.deferred), None)
        now = time.monotonic()
        if first is not None and (first.deadline is None or (self._writer is not None and self._writer.busy)):
            first.deadline = now + self.timeout_s  # the silence timer runs once the requests are out
        wait = self.timeout_s if first is None else max(0.0, first.deadline - now)
        try:
            view = self._decoder.direct_view()
            if view is not None:
                try:
                    received = self.transport.read_into(view, wait)
                finally:
                    view.release()  # the decoder may resize its buffer once the frame is complete
                self._decoder.filled(received)
            else:
                data = self.transport.read(max(self._decoder.need(), _READ_BYTES), wait)
                received = len(data)
                self._decoder.feed(data)
        except TransportError as exc:
            if not reconnect:
                raise
            self._reconnect(queue, str(exc))
            return
        if received:
            self._last_rx = time.monotonic()
            self._drain()
        for index, pending in enumerate(queue):  # requests refused out of order go again in turn
            if pending.deferred and all(p.reply is not None for p in queue[:index]):
                self._retry(pending, "executed out of order", corrupt=False)
        if first is not None and first.reply is None and time.monotonic() >= first.deadline:
            cut_short = self._decoder.partial and time.monotonic() - self._last_rx >= self.timeout_s
            if cut_short:
                self._decoder.drop_partial()  # a frame cut short by lost bytes: the resent reply starts afresh
            reason = "a frame cut short (bytes lost)" if cut_short else f"no reply within {self.timeout_s} s"
            self._retry(first, reason, corrupt=cut_short)

    def _drain(self) -> None:
        while True:
            try:
                frame = self._decoder.next_frame()
            except CorruptFrameError as exc:
                pending = self._pending.get(exc.seq)
                if pending is not None and pending.reply is None:
                    self._retry(pending, "corrupt reply", corrupt=True)
                continue
            except ProtocolError as exc:
                logger.debug("discarded bytes: %s", exc)
                continue
            if frame is None:
                return
            self._dispatch(frame)

    def _dispatch(self, frame: Frame) -> None:
        if frame.type == MsgType.BOOT:
            boot_id = decode_reply(BootNotice, frame.payload).boot_id
            if self.hello is not None and not self._in_handshake and boot_id != self.hello.boot_id:
                raise DeviceResetError(f"the device rebooted (boot id {boot_id})", boot_id)
            return
        pending = self._pending.get(frame.seq)
        if pending is None or pending.reply is not None:
            logger.debug("ignored frame type %#x seq %d (late or duplicate)", frame.type, frame.seq)
            return
        if frame.type == MsgType.KEEPALIVE:
            pending.deadline = time.monotonic() + self.timeout_s
            return
        if frame.type == MsgType.ERROR:
            code = decode_reply(ErrorBody, frame.payload).code
            if code == ErrorCode.CORRUPT_REQUEST:
                self._retry(pending, "the device received the request corrupt", corrupt=True)
                return
            if code == ErrorCode.OUT_OF_ORDER:
                pending.deferred, pending.deadline = True, None
                return
        elif frame.type != pending.request.type | 0x80:
            raise ProtocolError(
                f"reply of type {frame.type:#x} to a {_type_name(pending.request.type)} request (seq {frame.seq})"
            )
        pending.reply = frame

    def _reconnect(self, queue: list[_Pending], reason: str) -> None:
        """Re-open a broken link, greet the device, and resend unanswered requests (same seqs).

        A loop: every failed attempt (the link, or the greeting on it) counts against the
        waiting requests' retries and is followed by a backoff (doubling from 50 ms, at most a
        quarter of ``timeout_s``), so a device that accepts and hangs up gives a
        DeviceTimeoutError after ``retries`` attempts, each bounded by ``timeout_s``.
        """
        waiting = [p for p in queue if p.reply is None]
        backoff = 0.05
        while True:
            for pending in waiting:
                pending.attempts += 1
                retries = self.retries if pending.retries is None else pending.retries
                if pending.attempts > retries:
                    raise DeviceTimeoutError(
                        f"{_type_name(pending.request.type)} request (seq {pending.seq}): the link failed "
                        f"{retries + 1} times; last: {reason}"
                    )
            logger.info("link lost (%s); reconnecting", reason)
            self.transport.close()
            self._stop_writing()
            try:
                self.transport.open(self.timeout_s)
                self._decoder.reset()
                old = self.hello.boot_id if self.hello else None
                hello = self._greet(reconnect=False)
                break
            except (TransportError, DeviceTimeoutError, ProtocolError) as exc:
                reason = str(exc)
                time.sleep(backoff)
                backoff = min(2 * backoff, self.timeout_s / 4)
        if old is not None and hello.boot_id != old:
            raise DeviceResetError(f"the device rebooted while the link was down (boot id {hello.boot_id})", hello.boot_id)
        for pending in waiting:
            pending.deadline, pending.deferred = None, False
            self._send(pending)


def _type_name(msg_type: int) -> str:
    try:
        return MsgType(msg_type).name
    except ValueError:
        return f"type {msg_type:#x}"

