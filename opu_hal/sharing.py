"""``opu-hal serve``: one device (any URL) shared by several clients over TCP.

Clients connect with ``socket://HOST:PORT?token=SECRET`` (``sockets://`` when the server
has a TLS certificate and key: the token and data then cross the network encrypted). Every connection must say HELLO
with the shared secret before anything else; a wrong or missing token is refused and
the connection closed before any command runs. Strangers cannot block or exhaust the
server: a connection has ``auth_timeout_s`` to authenticate, sends frames of at most a few
KB until then, gets no PING answer, and does not count as a client; at most
``max_pending`` such connections exist (more are closed on accept, before anything is
allocated for them). Each client has its own configuration and reply cache, kept across
reconnections by its session id for ``session_linger_s`` after its last connection ends
(at once on BYE), then freed; all caches together hold at most ``max_cache_mb``; a FIFO queue gives the
device to one client at a time for a whole device call (all chunks of an ACQUIRE
sequence), so clients never interleave a batch, and the device is re-configured
whenever it passes from one client to another.
"""

from __future__ import annotations

import ctypes
import hmac
import ipaddress
import logging
import socket
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from .backends import Backend, DeviceConfig, make_backend
from .protocol.dmd import DMDPacker
from .protocol.frames import DEFAULT_MAX_PAYLOAD, Frame, MsgType
from .protocol.messages import ErrorCode
from .protocol.schema import (
    MAX_IN_FLIGHT,
    PROTOCOL_VERSION,
    AcquireHead,
    ByeReply,
    ByeRequest,
    ConfiguredReply,
    ConfigureRequest,
    FramesHead,
    HelloReply,
    HelloRequest,
    StatusReply,
    StatusRequest,
    decode_bulk_request,
    decode_request,
    encode,
    encode_bulk_head,
)
from .protocol.device_side import CacheBudget, CommandError, Endpoint, Reply, ServerLink
from .transport import TCPTransport, TLSTransport, server_context
from .url import parse_device_url
from .validation import check_int, check_number, check_positive_seconds

logger = logging.getLogger(__name__)


class DeviceQueue:
    """First come, first served ownership of the device; the owner may keep it across requests."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()
        self.owner: object | None = None

    def acquire(self, who: object) -> None:
        """Wait for the device (immediately if ``who`` already owns it)."""
        with self._cond:
            if self.owner is who:
                return
            self._waiting.append(who)
            while self.owner is not None or self._waiting[0] is not who:
                self._cond.wait()
            self._waiting.popleft()
            self.owner = who

    def release(self, who: object) -> None:
        """Give the device to the next in line (no-op if ``who`` does not own it)."""
        with self._cond:
            if self.owner is who:
                self.owner = None
                self._cond.notify_all()


class SharedDevice:
    """The backend behind ``serve``, its queue, and which client's configuration is in force."""

    def __init__(self, backend: Backend, timeout_s: float) -> None:
        self.backend = backend
        self.info = backend.open(timeout_s)
        self.queue = DeviceQueue()
        self.boot_id = uuid.uuid4().hex
        self.configured_for: tuple[object, DeviceConfig] | None = None
        self.lock = threading.Lock()

    def use(self, session: "ClientSession", config: DeviceConfig) -> None:
        """Make ``config`` the device's configuration (the caller owns the queue)."""
        if self.configured_for != (session, config):
            session.applied = self.backend.configure(config)
            self.configured_for = (session, config)


class ClientSession(Endpoint):
    """One client's view of the shared device: its configuration, its reply cache.

    ``links`` counts its open connections; ``detached_at`` (monotonic s) is when the last
    one ended, None while one is open.
    """

    def __init__(
        self, device: SharedDevice, session_id: str, forget: Any = None, budget: CacheBudget | None = None
    ) -> None:
        super().__init__(budget=budget)
        self.device, self.session_id, self._forget = device, session_id, forget
        self.links = 0
        self.detached_at: float | None = None
        self.config: DeviceConfig | None = None
        self.packer: DMDPacker | None = None
        self.applied = None
        self.last_acquire_seq: int | None = None
        self.frame_counter = 0  # the id of this client's next frame (its own numbering; a CONFIGURE may set it)
        self.clock_us = 0.0  # the device's clock after this client's last acquisition (us)

    def execute(self, frame: Frame) -> Reply:
        """Run one command of this client's."""
        if frame.type == MsgType.HELLO:
            return self._hello()
        if frame.type == MsgType.CONFIGURE:
            return self._configure(frame)
        if frame.type == MsgType.ACQUIRE:
            return self._acquire(frame)
        if frame.type == MsgType.STATUS:
            decode_request(StatusRequest, frame.payload)
            reply = StatusReply(
                state=self._state, boot_id=self.device.boot_id, dropped_frames=0,
                frame_counter=self.frame_counter, clock_us=self.clock_us,
            )
            return Reply(MsgType.STATUS_REPLY, [encode(reply)], False)
        if frame.type == MsgType.BYE:
            decode_request(ByeRequest, frame.payload)
            self.device.queue.release(self)
            if self._forget is not None:
                self._forget(self.session_id)
            return Reply(MsgType.BYE_REPLY, [encode(ByeReply())], False)
        if frame.type == MsgType.PING:
            return Reply(MsgType.PONG, [frame.payload], False)
        raise CommandError(ErrorCode.UNKNOWN_COMMAND, f"message type {frame.type:#x} is not served", False)

    @property
    def _state(self) -> str:
        return "idle" if self.config is None else "configured"

    def _hello(self) -> Reply:
        info = self.device.info.model_copy(update={"protocol_version": PROTOCOL_VERSION})
        reply = HelloReply(
            protocol_version=PROTOCOL_VERSION,
            firmware_version=info.firmware_version,
            boot_id=self.device.boot_id,
            info=info,
            max_payload=self.device.max_payload,
            max_in_flight=MAX_IN_FLIGHT,
            state=self._state,
            frame_counter=self.frame_counter,
            clock_us=self.clock_us,
        )
        return Reply(MsgType.HELLO_REPLY, [encode(reply)], False)

    def _configure(self, frame: Frame) -> Reply:
        body = decode_request(ConfigureRequest, frame.payload)
        config = DeviceConfig(body.layout, body.n_components, body.exposure_us, body.frametime_us)
        self.device.queue.acquire(self)
        try:
            self.device.use(self, config)
        except ValueError as exc:
            raise CommandError(ErrorCode.INVALID_ARGUMENT, str(exc), False) from None
        finally:
            self.device.queue.release(self)
        self.config, self.packer = config, DMDPacker(config.layout)
        if body.frame_counter is not None:  # a client resuming (after a re-plan or a reboot) numbers on from there
            self.frame_counter = body.frame_counter
        reply = ConfiguredReply(
            exposure_us=self.applied.exposure_us,
            frametime_us=self.applied.frametime_us,
            roi=self.applied.output_roi,
            frame_counter=self.frame_counter,
            clock_us=self.clock_us,
        )
        return Reply(MsgType.CONFIGURED, [encode(reply)])

    def _acquire(self, frame: Frame) -> Reply:
        if self.config is None:
            raise CommandError(ErrorCode.NOT_CONFIGURED, "ACQUIRE before CONFIGURE", False)
        head, raw = decode_bulk_request(AcquireHead, frame.payload)
        count, rows, row_bytes = head.count, head.rows, head.row_bytes
        expected = (self.config.layout.dmd_shape[0], self.packer.stride)
        if (rows, row_bytes) != expected or len(raw) != count * rows * row_bytes:
            raise CommandError(ErrorCode.BAD_REQUEST, f"ACQUIRE: expected {count} frames of {expected} bytes", False)
        if head.after and head.after != self.last_acquire_seq:
            raise CommandError(ErrorCode.OUT_OF_ORDER, f"ACQUIRE seq {frame.seq} follows seq {head.after}", False)
        features = self.packer.unpack(np.frombuffer(raw, dtype=np.uint8).reshape(count, rows, row_bytes))
        device = self.device
        device.queue.acquire(self)
        try:
            device.use(self, self.config)
            result = device.backend.acquire(features)
        except BaseException:
            device.queue.release(self)
            raise
        if not head.more:
            device.queue.release(self)
        self.last_acquire_seq = frame.seq
        # the client's frames are numbered on from its counter, whoever else used the device in between
        frame_ids = self.frame_counter + np.arange(count, dtype="<i8")
        self.frame_counter += count
        self.clock_us = float(result.timestamps_us[-1]) + self.applied.frametime_us
        frames = np.ascontiguousarray(result.frames)
        out = FramesHead(
            count=count,
            n_components=frames.shape[1],
            dtype=frames.dtype.str,
            saturated_fraction=result.saturated_fraction,
            device_time_s=result.device_time_s,
            frame_counter=self.frame_counter,
            clock_us=self.clock_us,
        )
        return Reply(MsgType.FRAMES, encode_bulk_head(
            out, frame_ids.tobytes(), result.timestamps_us.astype("<f8").tobytes(),
            memoryview(frames).cast("B"),
        ))


class SharingServer:
    """Serves one device to several TCP clients (see the module docstring).

    Parameters
    ----------
    device:
        URL of the device to share (``emu://``, ``socket://``, a serial port...).
    token:
        The shared secret every client must present.
    host, port:
        Address to listen on; loopback unless another address is given (then, without TLS, a
        WARNING is logged: the token and data would cross the network in clear). Port 0: any
        free port.
    max_clients:
        Authenticated connections served at once; more are refused at HELLO
        (DeviceBusyError on the client).
    max_payload:
        Largest message accepted from an authenticated client (bytes).
    timeout_s:
        Seconds to wait for the device when opening it.
    auth_timeout_s:
        Seconds a connection has to authenticate (HELLO with the token) before it is closed.
    max_pending:
        Connections not yet authenticated at once (one thread and a few KB each); more are
        closed on accept.
    session_linger_s:
        Seconds a client's session (configuration, reply cache) outlives its last
        connection, for the client to reconnect and resume; 0: freed at once.
    max_cache_mb:
        Bound on the reply caches of all sessions together (MiB); the oldest replies go first.
    tls_cert, tls_key:
        PEM files of the server's certificate (chain) and private key: serve TLS
        (``sockets://``); both or neither.
    """

    def __init__(
        self,
        device: str,
        token: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_clients: int = 4,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        timeout_s: float = 10.0,
        auth_timeout_s: float = 3.0,
        max_pending: int = 64,
        session_linger_s: float = 10.0,
        max_cache_mb: float = 256.0,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
    ) -> None:
        if not isinstance(token, str) or len(token) < 8:
            raise ValueError(f"token: expected a shared secret of at least 8 characters, got {len(str(token))}")
        check_int(max_clients, "max_clients", low=1)
        check_int(max_pending, "max_pending", low=1)
        check_positive_seconds(auth_timeout_s, "auth_timeout_s")
        check_number(session_linger_s, "session_linger_s", low=0, unit="s")
        check_number(max_cache_mb, "max_cache_mb", low=0, unit="MiB")
        self.token, self.max_clients, self.max_pending = token, max_clients, max_pending
        self.auth_timeout_s, self.session_linger_s = float(auth_timeout_s), float(session_linger_s)
        self.cache_budget = CacheBudget(int(max_cache_mb * 2**20))
        if (tls_cert is None) != (tls_key is None):
            raise ValueError(f"tls_cert, tls_key: expected both PEM files or neither, got {tls_cert!r} and {tls_key!r}")
        self._tls = None if tls_cert is None else server_context(tls_cert, tls_key)
        _map_large_blocks()
        self.device = SharedDevice(make_backend(parse_device_url(device), None), timeout_s)
        self.device.max_payload = max_payload
        self.max_payload = max_payload
        self._sessions: dict[str, ClientSession] = {}
        self._clients = 0  # authenticated connections
        self._pending = 0  # connections not yet authenticated
        self._lock = threading.Lock()
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(0.2)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        if self._tls is None and not _is_loopback(host):
            logger.warning(
                "serving on %s:%d without TLS: the token and all data cross the network in clear; "
                "bind to a loopback address and tunnel (ssh -L) instead", host, self.address[1],
            )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []  # of connections (finished ones pruned)
        self._accepting: threading.Thread | None = None
        self._links: set[ServerLink] = set()

    @property
    def url(self) -> str:
        """What clients open (add ``?token=...``)."""
        return f"{'socket' if self._tls is None else 'sockets'}://{self.address[0]}:{self.address[1]}"

    def resolve(self, hello: HelloRequest, connection: "_Connection | None" = None) -> ClientSession:
        """Check the token, admit the connection as a client, find its session (called on HELLO)."""
        token = hello.token
        if token is None or not hmac.compare_digest(token.encode(), self.token.encode()):
            raise CommandError(ErrorCode.UNAUTHORIZED, "a valid token is required (socket://HOST:PORT?token=...)", False)
        session_id = hello.session or ""
        with self._lock:
            if connection is not None and not connection.client:
                if self._clients >= self.max_clients:
                    logger.warning("refused a client: %d clients already", self._clients)
                    raise CommandError(ErrorCode.BUSY, "too many clients; try again later", False)
                self._clients += 1
                self._pending -= 1
                connection.client = True
            session = self._sessions.get(session_id)
            if session is None:
                session = self._sessions[session_id] = ClientSession(
                    self.device, session_id, self._forget, self.cache_budget
                )
            if connection is not None and connection.session is not session:
                if connection.session is not None:
                    self._detach(connection.session)
                connection.session = session
                session.links += 1
                session.detached_at = None
            return session

    def _forget(self, session_id: str) -> None:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            session.cache.clear()

    def _detach(self, session: ClientSession) -> None:
        """A connection of ``session`` ended (``_lock`` held): free it now or after the linger."""
        session.links -= 1
        if session.links > 0:
            return
        session.detached_at = time.monotonic()
        if self.session_linger_s == 0 and self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]
            session.cache.clear()

    def _sweep(self) -> None:
        """Free the sessions whose last connection ended more than ``session_linger_s`` ago."""
        now = time.monotonic()
        with self._lock:
            stale = [
                s for s in self._sessions.values()
                if s.links == 0 and s.detached_at is not None and now - s.detached_at >= self.session_linger_s
            ]
            for session in stale:
                del self._sessions[session.session_id]
        for session in stale:
            session.cache.clear()
        self._threads = [t for t in self._threads if t.is_alive()]

    def start(self) -> "SharingServer":
        """Accept clients in a background thread; returns self."""
        thread = threading.Thread(target=self.serve_forever, name="serve-accept", daemon=True)
        thread.start()
        self._accepting = thread
        return self

    def serve_forever(self) -> None:
        """Accept clients until ``close()``."""
        while not self._stop.is_set():
            self._sweep()
            try:
                conn, peer = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            with self._lock:
                refuse = self._pending >= self.max_pending
                if not refuse:
                    self._pending += 1
            if refuse:
                logger.warning("closed a connection from %s: %d not yet authenticated", peer[0], self.max_pending)
                conn.close()
                continue
            connection = _Connection()
            transport = (
                TCPTransport(*peer[:2], sock=conn) if self._tls is None
                else TLSTransport(*peer[:2], sock=conn, context=self._tls, label=f"TLS client {peer[0]}:{peer[1]}")
            )
            link = ServerLink(
                transport, lambda hello, c=connection: self.resolve(hello, c),
                max_payload=self.max_payload, hello_timeout_s=self.auth_timeout_s,
            )
            thread = threading.Thread(target=self._serve_link, args=(link, connection), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve_link(self, link: ServerLink, connection: "_Connection") -> None:
        self._links.add(link)
        try:
            link.serve()
        finally:
            self._links.discard(link)
            if isinstance(link.endpoint, ClientSession):
                self.device.queue.release(link.endpoint)
            with self._lock:
                if connection.client:
                    self._clients -= 1
                else:
                    self._pending -= 1
                if connection.session is not None:
                    self._detach(connection.session)

    def close(self) -> None:
        """Stop serving, disconnect clients and close the device."""
        self._stop.set()
        self._listener.close()
        for link in list(self._links):
            link.stop()
        for thread in [self._accepting, *self._threads] if self._accepting else self._threads:
            thread.join(5)
        self.device.backend.close()


def _is_loopback(host: str) -> bool:
    """Whether every address ``host`` resolves to is a loopback address."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host or None, 0, type=socket.SOCK_STREAM)}
        return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)
    except (OSError, ValueError):
        return False


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
_MMAP_THRESHOLD = 2**20  # bytes: larger blocks are mapped, and unmapped when freed


def _map_large_blocks() -> None:
    """Make glibc map every block of 1 MiB or more, and unmap it when freed (process-wide).

    Replies are made in the connections' threads, each with its own malloc arena; by
    default glibc raises its mapping threshold once large blocks are freed, and then keeps
    what the arenas freed, so the RSS of a server whose clients come and go stays at its
    peak. A no-op where there is no glibc.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


class _Connection:
    """What the server knows of one connection: whether it is an admitted client, its session."""

    def __init__(self) -> None:
        self.client = False
        self.session: ClientSession | None = None
