"""The device side of the protocol, for any transport: framing, reply cache and keep-alive.

An :class:`Endpoint` executes requests (the emulator firmware, or ``opu-hal serve``
sharing a device); a :class:`ServerLink` serves one connection. Until the peer's HELLO is
accepted, the connection has one thread (its reader, which answers HELLO itself), accepts
frames of at most ``hello_payload`` bytes (a larger one closes it), answers no PING and,
with ``hello_timeout_s``, is closed when that deadline passes. Then a worker executes
requests in order and writes the replies, and a ticker sends ``KEEPALIVE`` frames while a
request runs. A request repeated with the same sequence number (and the same payload) is
answered from the endpoint's reply cache without executing it again; caches may share a
:class:`CacheBudget` that bounds their total bytes.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import CommandError, ProtocolError
from ..transport import Transport, TransportError
from .frames import DEFAULT_MAX_PAYLOAD, CorruptFrameError, Frame, FrameDecoder, MsgType, frame_bytes, write_frame
from .messages import ErrorCode, error_payload
from .schema import BootNotice, HelloRequest, decode_hello_request, encode

logger = logging.getLogger(__name__)

Pieces = list[bytes | memoryview]
_SMALL_FRAME = 1 << 16
_READ_BYTES = 1 << 16  # a read when no large frame is in progress (then read in place)


@dataclass
class Reply:
    """An endpoint's answer: message type, payload pieces, and whether to cache it.

    ``known_crcs``: the CRC-32 of pieces known in advance (by index), not summed again.
    """

    type: int
    pieces: Pieces
    cacheable: bool = True
    known_crcs: dict[int, int] = field(default_factory=dict)


class CacheBudget:
    """A bound on the bytes of several reply caches together: the oldest replies go first."""

    def __init__(self, max_bytes: int) -> None:
        if not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes: expected a non-negative number of bytes, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self.used = 0
        self._order: OrderedDict[tuple[int, int], tuple["ReplyCache", int, int]] = OrderedDict()
        self._lock = threading.Lock()

    def charge(self, cache: "ReplyCache", seq: int, size: int) -> None:
        """Count a reply of ``size`` bytes now in ``cache``; evict the oldest replies beyond the bound."""
        evict = []
        with self._lock:
            old = self._order.pop((id(cache), seq), None)
            if old is not None:
                self.used -= old[2]
            self._order[(id(cache), seq)] = (cache, seq, size)
            self.used += size
            while self.used > self.max_bytes and self._order:
                _, (owner, old_seq, old_size) = self._order.popitem(last=False)
                self.used -= old_size
                evict.append((owner, old_seq))
        for owner, old_seq in evict:
            owner.drop(old_seq, charged=False)

    def refund(self, cache: "ReplyCache", seq: int) -> None:
        """Forget a reply that left ``cache``."""
        with self._lock:
            old = self._order.pop((id(cache), seq), None)
            if old is not None:
                self.used -= old[2]


class ReplyCache:
    """The last ``size`` replies by sequence number, each tied to its request's payload CRC.

    ``budget``: a :class:`CacheBudget` shared with other caches (their total bytes bounded).
    """

    def __init__(self, size: int = 16, budget: CacheBudget | None = None) -> None:
        self.size = size
        self.budget = budget
        self._entries: OrderedDict[int, tuple[int, Reply]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, seq: int, crc: int) -> Reply | None:
        """The cached reply to this request, if any."""
        with self._lock:
            entry = self._entries.get(seq)
        return entry[1] if entry is not None and entry[0] == crc else None

    def put(self, seq: int, crc: int, reply: Reply) -> None:
        """Remember a reply, forgetting the oldest beyond ``size``."""
        with self._lock:
            self._entries[seq] = (crc, reply)
            self._entries.move_to_end(seq)
            dropped = []
            while len(self._entries) > self.size:
                dropped.append(self._entries.popitem(last=False)[0])
        if self.budget is not None:
            for old in dropped:
                self.budget.refund(self, old)
            self.budget.charge(self, seq, sum(len(piece) for piece in reply.pieces))

    def drop(self, seq: int, charged: bool = True) -> None:
        """Forget one reply (``charged``: also refund it to the budget)."""
        with self._lock:
            self._entries.pop(seq, None)
        if charged and self.budget is not None:
            self.budget.refund(self, seq)

    def clear(self) -> None:
        """Forget every reply (the device rebooted, a session ended or a new one began)."""
        with self._lock:
            seqs = list(self._entries)
            self._entries.clear()
        if self.budget is not None:
            for seq in seqs:
                self.budget.refund(self, seq)


class Endpoint(ABC):
    """Executes requests one at a time; repeated requests are answered from the cache."""

    def __init__(self, cache_size: int = 16, budget: CacheBudget | None = None) -> None:
        self.lock = threading.RLock()
        self.cache = ReplyCache(cache_size, budget)

    @property
    def stalled(self) -> bool:
        """True while the endpoint is unresponsive (no keep-alives are sent)."""
        return False

    def process(self, frame: Frame) -> Reply | None:
        """The reply to a request: cached, or executed now; None if the device rebooted instead."""
        crc = frame.crc if frame.crc is not None else zlib.crc32(frame.payload)  # checked on arrival
        with self.lock:
            hit = self.cache.get(frame.seq, crc)
            if hit is not None:
                logger.debug("seq %d answered from the reply cache", frame.seq)
                return hit
            try:
                reply = self.execute(frame)
            except CommandError as exc:
                reply = Reply(MsgType.ERROR, [error_payload(exc.code, str(exc), **exc.details)], exc.cacheable)
            except ProtocolError as exc:
                reply = Reply(MsgType.ERROR, [error_payload(ErrorCode.BAD_REQUEST, str(exc))], False)
            except Exception as exc:  # the device must answer whatever went wrong inside it
                logger.exception("internal error executing %#x seq %d", frame.type, frame.seq)
                reply = Reply(MsgType.ERROR, [error_payload(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")])
            if reply is not None and reply.cacheable:
                self.cache.put(frame.seq, crc, reply)
            return reply

    @abstractmethod
    def execute(self, frame: Frame) -> Reply | None:
        """Run one request (called with ``lock`` held); raise CommandError to refuse it.

        Returns None when the request is lost, as when the device reboots while running it.
        """


#: Called with a HELLO request; returns the endpoint of the session, or raises CommandError.
Resolver = Callable[[HelloRequest], Endpoint]


class ServerLink:
    """Serves one connection until the peer leaves or ``stop()`` is called.

    Parameters
    ----------
    transport:
        The open connection.
    resolver:
        Picks the endpoint when the client says HELLO (checking credentials if any).
    max_payload:
        Largest request payload accepted (bytes).
    keepalive_s:
        Interval of KEEPALIVE frames while a request runs (seconds); a HELLO may ask for
        a shorter one.
    hello_payload:
        Largest frame payload accepted before a HELLO is accepted (bytes); a larger one
        closes the connection before anything is allocated for it.
    hello_timeout_s:
        Seconds a connection may take to get its HELLO accepted before it is closed; None:
        no deadline.
    """

    def __init__(
        self,
        transport: Transport,
        resolver: Resolver,
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        keepalive_s: float = 1.0,
        max_queued: int = 8,
        hello_payload: int = 4096,
        hello_timeout_s: float | None = None,
    ) -> None:
        self.transport = transport
        self.hello_payload, self.hello_timeout_s = hello_payload, hello_timeout_s
        self.resolver = resolver
        self.max_payload = max_payload
        self.keepalive_s = keepalive_s
        self.endpoint: Endpoint | None = None
        self._write_lock = threading.Lock()
        self._queue: queue.Queue[Frame | None] = queue.Queue(max_queued)
        self._busy_seq: int | None = None
        self._running = threading.Event()
        self._stopped = threading.Event()

    # ------------------------------------------------------------------ output
    def send(self, msg_type: int, seq: int, pieces: Pieces, known_crcs: dict[int, int] | None = None) -> bool:
        """Write one frame (``known_crcs``: CRC-32 of pieces by index, if known); False if the link is down."""
        try:
            with self._write_lock:
                if sum(map(len, pieces)) <= _SMALL_FRAME:
                    self.transport.write(frame_bytes(msg_type, seq, pieces))
                else:
                    write_frame(self.transport.write, msg_type, seq, pieces, known_crcs=known_crcs)
            return True
        except TransportError as exc:
            logger.info("reply to seq %d not sent: %s", seq, exc)
            return False

    def send_error(self, seq: int, code: ErrorCode, message: str) -> None:
        """Answer ``seq`` with an uncached error."""
        self.send(MsgType.ERROR, seq, [error_payload(code, message)])

    # ------------------------------------------------------------------ threads
    def stop(self) -> None:
        """Ask the link to end (it closes the transport)."""
        self._running.clear()
        self.transport.close()

    def serve(self) -> None:
        """Read and answer requests until the transport closes (or no HELLO came in time)."""
        self._running.set()
        decoder = FrameDecoder(min(self.hello_payload, self.max_payload))
        deadline = None if self.hello_timeout_s is None else time.monotonic() + self.hello_timeout_s
        threads: list[threading.Thread] = []
        transport, running = self.transport, self._running
        last_rx = time.monotonic()
        try:
            while running.is_set():
                if not threads and deadline is not None and time.monotonic() >= deadline:
                    logger.info("%s: no HELLO accepted within %s s; closing", transport, self.hello_timeout_s)
                    break
                try:
                    view = decoder.direct_view()
                    if view is not None:
                        try:
                            received = transport.read_into(view, 0.2)
                        finally:
                            view.release()  # the decoder may resize its buffer once the frame is complete
                        decoder.filled(received)
                    else:
                        data = transport.read(max(decoder.need(), _READ_BYTES), 0.2)
                        received = len(data)
                        decoder.feed(data)
                except TransportError:
                    break
                now = time.monotonic()
                if not received:
                    if decoder.partial and now - last_rx >= 2 * self.keepalive_s:
                        decoder.drop_partial()  # cut short by lost bytes: the host's resend starts afresh
                    continue
                last_rx = now
                if not threads:
                    if not self._greet(decoder):
                        break
                    if self.endpoint is None:
                        continue
                    decoder.max_payload = self.max_payload
                    threads = [
                        threading.Thread(target=self._work, name="protocol-worker", daemon=True),
                        threading.Thread(target=self._tick, name="protocol-keepalive", daemon=True),
                    ]
                    for thread in threads:
                        thread.start()
                self._drain(decoder)
        finally:
            self._running.clear()
            self._stopped.set()
            if threads:
                self._queue.put(None)
            for thread in threads:
                thread.join()
            self.transport.close()

    def _greet(self, decoder: FrameDecoder) -> bool:
        """Before a HELLO is accepted: answer HELLO here, refuse other requests, ignore PING.

        Returns False when the connection is to be closed (a refused HELLO, a frame over
        ``hello_payload``)."""
        while self.endpoint is None:
            try:
                frame = decoder.next_frame()
            except CorruptFrameError as exc:
                self.send_error(exc.seq, ErrorCode.CORRUPT_REQUEST, str(exc))
                continue
            except ProtocolError as exc:
                logger.info("%s: closed before HELLO: %s", self.transport, exc)
                return False
            if frame is None:
                return True
            if frame.type == MsgType.PING:
                continue
            reply = self._answer(frame)
            if reply is not None:
                self.send(reply.type, frame.seq, reply.pieces, reply.known_crcs)
                if reply.type == MsgType.ERROR and frame.type == MsgType.HELLO:
                    return False  # refused at HELLO: nothing else runs on this connection
        return True

    def _drain(self, decoder: FrameDecoder) -> None:
        while True:
            try:
                frame = decoder.next_frame()
            except CorruptFrameError as exc:
                self.send_error(exc.seq, ErrorCode.CORRUPT_REQUEST, str(exc))
                continue
            except ProtocolError as exc:
                logger.debug("discarded bytes: %s", exc)
                continue
            if frame is None:
                return
            if frame.type == MsgType.PING:
                self.send(MsgType.PONG, frame.seq, [frame.payload])
            else:
                self._queue.put(frame)

    def _work(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            reply = self._answer(frame)
            if reply is not None:
                self.send(reply.type, frame.seq, reply.pieces, reply.known_crcs)
                if reply.type == MsgType.ERROR and self.endpoint is None:
                    self.stop()  # refused at HELLO: nothing else runs on this connection

    def _answer(self, frame: Frame) -> Reply | None:
        if frame.type == MsgType.HELLO:
            try:
                hello = decode_hello_request(frame.payload)
                self.endpoint = self.resolver(hello)
            except CommandError as exc:
                return Reply(MsgType.ERROR, [error_payload(exc.code, str(exc))], False)
            except Exception as exc:  # the device must answer whatever went wrong inside it
                logger.exception("internal error answering HELLO seq %d", frame.seq)
                return Reply(MsgType.ERROR, [error_payload(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")], False)
            if hello.keepalive_s is not None and hello.keepalive_s < self.keepalive_s:
                self.keepalive_s = hello.keepalive_s
        elif self.endpoint is None:
            return Reply(MsgType.ERROR, [error_payload(ErrorCode.BAD_REQUEST, "send HELLO first")], False)
        self._busy_seq = frame.seq
        try:
            return self.endpoint.process(frame)
        finally:
            self._busy_seq = None

    def _tick(self) -> None:
        while not self._stopped.wait(self.keepalive_s):
            seq, endpoint = self._busy_seq, self.endpoint
            if seq is not None and endpoint is not None and not endpoint.stalled:
                self.send(MsgType.KEEPALIVE, seq, [b""])

    def notify_boot(self, boot_id: str) -> None:
        """Tell the host the device rebooted (unsolicited BOOT frame, seq 0)."""
        self.send(MsgType.BOOT, 0, [encode(BootNotice(boot_id=boot_id))])


def serve_until_signalled(server: Any) -> None:
    """Start ``server`` (an object with ``start()`` and ``close()``), block until SIGINT or
    SIGTERM, then close it: the main loop of a command-line server."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    stop.wait()
    server.close()
