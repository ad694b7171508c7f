"""TLS over TCP (standard library ``ssl``): ``sockets://HOST:PORT`` or ``socket://HOST:PORT?tls=1``.

The TLS state lives in memory (``ssl.MemoryBIO``), apart from the socket: the socket keeps
its kernel-bounded waits (:class:`~opu_hal.transport.tcp.TCPTransport`), and one lock
guards the TLS state, so one thread may read while others write (OpenSSL's objects must
not be used by two threads at once; here each use is a short in-memory step).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from pathlib import Path

from ..errors import TLSError
from ..url import DeviceSpec, TLSOptions, TokenOption
from .base import Link, TransportError
from .tcp import TCPTransport, device_keys, split_host_port

_RAW_READ = 1 << 16  # bytes of ciphertext read from the socket at a time
_WRITE_SLICE = 1 << 20  # bytes of plaintext encrypted and sent at a time
_PLAIN_HINT = "does the server speak TLS? a plain server is socket://"


class TLSTransport(TCPTransport):
    """A TLS connection to ``host:port`` (client side), or around an accepted socket (server side).

    Parameters
    ----------
    host, port:
        The server (client side).
    context:
        ``ssl.SSLContext``: :func:`client_context` on the client side, :func:`server_context`
        on the server side.
    sock:
        An accepted socket (server side); the handshake then runs with the first read.
    label:
        How messages name the link (the URL with its token masked).
    write_timeout_s:
        Seconds a write waits for the peer to accept at least one more byte.
    """

    def __init__(
        self,
        host: str = "",
        port: int = 0,
        *,
        context: ssl.SSLContext,
        sock: socket.socket | None = None,
        label: str | None = None,
        write_timeout_s: float = 10.0,
    ) -> None:
        if not isinstance(context, ssl.SSLContext):
            raise TypeError(f"context: expected an ssl.SSLContext, got {type(context).__name__}")
        self._context = context
        self.label = label or f"sockets://{host}:{port}"
        self._state_lock = threading.Lock()  # the TLS object and its buffers
        self._send_lock = threading.Lock()  # ciphertext leaves in the order it was made
        self._tls: ssl.SSLObject | None = None
        super().__init__(host, port, sock=sock, write_timeout_s=write_timeout_s)
        if sock is not None:
            self._tls = self._wrap(server_side=True)

    def __repr__(self) -> str:
        return f"TLSTransport({self.label})"

    def _wrap(self, server_side: bool) -> ssl.SSLObject:
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        hostname = None if server_side else self.host
        return self._context.wrap_bio(self._incoming, self._outgoing, server_side=server_side, server_hostname=hostname)

    # ------------------------------------------------------------------ life cycle
    def _do_open(self, timeout_s: float) -> None:
        super()._do_open(timeout_s)
        self._tls = self._wrap(server_side=False)
        try:
            self._handshake(timeout_s)
        except BaseException:
            super()._do_close()
            raise

    def _handshake(self, timeout_s: float) -> None:
        """The client's TLS handshake, within ``timeout_s`` seconds (TLSError otherwise)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._state_lock:
                try:
                    self._tls.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
                except ssl.SSLCertVerificationError as exc:
                    raise TLSError(
                        f"{self.label}: the server's TLS certificate was refused: {exc.verify_message or exc.reason} "
                        f"(trust its CA with ?ca=PATH)"
                    ) from None
                except ssl.SSLError as exc:
                    raise TLSError(f"{self.label}: TLS handshake failed: {exc.reason or exc} ({_PLAIN_HINT})") from None
            self._flush()
            if done:
                return
            try:
                data = super()._receive(False, _RAW_READ, max(0.0, deadline - time.monotonic()))
            except TransportError as exc:
                raise TLSError(f"{self.label}: the server closed the connection during the TLS handshake ({_PLAIN_HINT})") from exc
            if data is None:
                raise TLSError(f"{self.label}: no TLS handshake within {timeout_s} s ({_PLAIN_HINT})")
            with self._state_lock:
                self._incoming.write(data)

    # ------------------------------------------------------------------ data
    def _do_write(self, data: memoryview) -> None:
        with self._send_lock:
            for start in range(0, len(data), _WRITE_SLICE):
                with self._state_lock:
                    tls = self._tls
                    if tls is None:
                        raise TransportError(f"{self}: the link is closed")
                    try:
                        tls.write(data[start : start + _WRITE_SLICE])
                    except ssl.SSLError as exc:
                        raise TransportError(f"{self}: TLS write failed: {exc}") from exc
                    cipher = self._outgoing.read()
                super()._do_write(memoryview(cipher))
        self._flush()  # what a reader made while this thread was sending

    def _flush(self) -> None:
        """Send the ciphertext the TLS object made (handshake, alerts); left to a thread sending already."""
        while self._outgoing.pending:
            if not self._send_lock.acquire(blocking=False):
                return  # that thread sends it after its own data
            try:
                with self._state_lock:
                    cipher = self._outgoing.read()
                if cipher:
                    super()._do_write(memoryview(cipher))
            finally:
                self._send_lock.release()

    def _flush_quietly(self) -> None:
        try:
            self._flush()
        except TransportError:
            pass

    def _do_read(self, max_bytes: int, timeout_s: float) -> bytes:
        buffer = bytearray(max_bytes)
        count = self._do_read_into(memoryview(buffer), timeout_s)
        return bytes(buffer[:count])

    def _do_read_into(self, buffer: memoryview, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while True:
            failure: ssl.SSLError | None = None
            with self._state_lock:
                tls = self._tls
                if tls is None:
                    raise TransportError(f"{self}: the link is closed")
                try:
                    count = tls.read(len(buffer), buffer)
                except ssl.SSLWantReadError:
                    count = 0
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    raise TransportError(f"{self}: the peer closed the connection") from None
                except ssl.SSLError as exc:
                    failure, count = exc, 0
            if failure is not None:
                self._flush_quietly()  # the alert OpenSSL made tells the peer why
                raise TLSError(f"{self}: TLS failed: {failure.reason or failure} ({_PLAIN_HINT})")
            if self._outgoing.pending:
                self._flush()
            if count:
                return count
            data = super()._receive(False, _RAW_READ, max(0.0, deadline - time.monotonic()))
            if data is None:
                return 0
            with self._state_lock:
                self._incoming.write(data)

    def _do_close(self) -> None:
        with self._state_lock:
            self._tls = None
        super()._do_close()


def client_context(ca: str | None = None, check_hostname: bool = True) -> ssl.SSLContext:
    """A client's TLS context: verifies the server's certificate against ``ca`` (a PEM file) or the
    system's CAs, and its host name unless ``check_hostname`` is False. ValueError naming ``ca``
    if the file cannot be read."""
    try:
        context = ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"ca: expected a readable PEM file of CA certificates, got {ca!r} ({exc})") from None
    context.check_hostname = bool(check_hostname)
    return context


def server_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    """A server's TLS context from its certificate chain and private key (PEM files);
    ValueError naming the files if they cannot be loaded."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"tls_cert, tls_key: expected a PEM certificate and its private key, got {str(cert_file)!r} and "
            f"{str(key_file)!r} ({exc})"
        ) from None
    return context


def socket_link(spec: DeviceSpec) -> Link:
    """The link of ``socket://HOST:PORT[?token=...&tls=1&ca=...]`` or ``sockets://HOST:PORT``: a TCP
    connection, with TLS for ``sockets://`` or ``tls=1``.

    A token means an ``opu-hal serve`` endpoint, shared by design: the link is not exclusive.
    """
    host, port = split_host_port(spec.location)
    options = spec.get(TLSOptions)
    if spec.scheme.name == "sockets" and options.tls is False:
        raise ValueError(f"tls: expected on (or absent) for sockets://, got off in {spec.url.masked()!r}")
    tls = spec.scheme.name == "sockets" or bool(options.tls)
    if not tls and (options.ca is not None or not options.check_hostname):
        raise ValueError(f"ca, check_hostname: expected only with TLS (sockets:// or tls=1), got {spec.url.masked()!r}")
    exclusive = spec.get(TokenOption).token is None
    keys = lambda: device_keys(host, port)  # noqa: E731
    if not tls:
        return Link(lambda: TCPTransport(host, port), exclusive=exclusive, keys=keys)
    context = client_context(options.ca, options.check_hostname)
    label = spec.url.masked()
    return Link(lambda: TLSTransport(host, port, context=context, label=label), exclusive=exclusive, keys=keys)
