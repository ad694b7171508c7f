"""The device side of the protocol, for any transport: framing, reply cache and keep-alive.

An :class:`Endpoint` executes requests (the emulator firmware, or ``opu-hal serve``
sharing a device); a :class:`ServerLink` serves one connection: a reader thread decodes
frames, a worker executes them in order and writes the replies, and a ticker sends
``KEEPALIVE`` frames while a request runs. A request repeated with the same sequence
number (and the same payload) is answered from the endpoint's reply cache without
executing it again.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
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


class ReplyCache:
    """The last ``size`` replies by sequence number, each tied to its request's payload CRC."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._entries: OrderedDict[int, tuple[int, Reply]] = OrderedDict()

    def get(self, seq: int, crc: int) -> Reply | None:
        """The cached reply to this request, if any."""
        entry = self._entries.get(seq)
        return entry[1] if entry is not None and entry[0] == crc else None

    def put(self, seq: int, crc: int, reply: Reply) -> None:
        """Remember a reply, forgetting the oldest beyond ``size``."""
        self._entries[seq] = (crc, reply)
        self._entries.move_to_end(seq)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every reply (the device rebooted, or a new client session began)."""
        self._entries.clear()


class Endpoint(ABC):
    """Executes requests one at a time; repeated requests are answered from the cache."""

    def __init__(self, cache_size: int = 16) -> None:
        self.lock = threading.RLock()
        self.cache = ReplyCache(cache_size)

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
    """

    def __init__(
        self,
        transport: Transport,
        resolver: Resolver,
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        keepalive_s: float = 1.0,
        max_queued: int = 8,
    ) -> None:
        self.transport = transport
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
        """Read and answer requests until the transport closes."""
        self._running.set()
        worker = threading.Thread(target=self._work, name="protocol-worker", daemon=True)
        ticker = threading.Thread(target=self._tick, name="protocol-keepalive", daemon=True)
        worker.start()
        ticker.start()
        decoder = FrameDecoder(self.max_payload)
        transport, running = self.transport, self._running
        try:
            while running.is_set():
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
                if received:
                    self._drain(decoder)
        finally:
            self._running.clear()
            self._stopped.set()
            self._queue.put(None)
            worker.join()
            ticker.join()
            self.transport.close()

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
