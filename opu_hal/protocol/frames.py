"""Wire frames: sync marker, version, type, sequence number, length, two CRC-32s (docs/protocol.md).

Layout, little-endian::

    offset size  field
    0      2     sync          0xC5 0x3A
    2      1     version       PROTOCOL_MAJOR
    3      1     type          MsgType
    4      4     seq           uint32, matches a reply to its request
    8      4     length        payload bytes, at most the receiver's max_payload
    12     4     header CRC    zlib.crc32 of bytes 0-11
    16     n     payload
    16+n   4     payload CRC   zlib.crc32 of the payload

The header CRC is checked before the length is trusted, so a corrupt length never makes
the receiver allocate or wait for more bytes; after any error the decoder resumes its
search for a sync marker one byte after the failed one.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from typing import Callable

import numpy as np

from ..errors import CorruptFrameError, ProtocolError

SYNC = b"\xc5\x3a"
PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0
HEADER = struct.Struct("<2sBBIII")
HEADER_SIZE = HEADER.size  # 16
TRAILER_SIZE = 4
DEFAULT_MAX_PAYLOAD = 64 * 2**20
_DIRECT_ABOVE = 1 << 18  # frames with more than this still to come are read in place
_PREFIX = struct.Struct("<2sBBII")
_CRC = struct.Struct("<I")


class MsgType(IntEnum):
    """Message types. Requests come from the host; replies carry ``request | 0x80``."""

    HELLO = 0x01
    PING = 0x02
    CONFIGURE = 0x03
    ACQUIRE = 0x04
    STATUS = 0x05
    RESET = 0x06
    BYE = 0x07
    HELLO_REPLY = 0x81
    PONG = 0x82
    CONFIGURED = 0x83
    FRAMES = 0x84
    STATUS_REPLY = 0x85
    RESET_REPLY = 0x86
    BYE_REPLY = 0x87
    BOOT = 0x7D
    KEEPALIVE = 0x7E
    ERROR = 0x7F


@dataclass(frozen=True)
class Frame:
    """One decoded frame: message ``type``, sequence number ``seq`` and ``payload`` bytes.

    ``crc`` is the payload's CRC-32 as checked (None for frames built by hand). ``placed``
    counts the payload's last bytes that the decoder stored in the buffer its ``sink``
    gave instead of in ``payload`` (0: ``payload`` is the whole payload).
    """

    type: int
    seq: int
    payload: bytes | bytearray | memoryview
    crc: int | None = None
    placed: int = 0


def encode_frame(
    msg_type: int, seq: int, payload: bytes | bytearray | memoryview | list[bytes | memoryview] = b""
) -> list[bytes | memoryview]:
    """The frame as pieces to write in order (header, payload pieces, CRC); nothing is copied.

    ``payload`` is one bytes-like object or a list of pieces sent back to back.
    """
    if not 0 <= seq <= 0xFFFFFFFF:
        raise ValueError(f"seq: expected a uint32, got {seq}")
    pieces = [memoryview(p).cast("B") for p in (payload if isinstance(payload, list) else [payload])]
    crc = 0
    for piece in pieces:
        crc = zlib.crc32(piece, crc)
    prefix = _PREFIX.pack(SYNC, PROTOCOL_MAJOR, int(msg_type), seq, sum(len(p) for p in pieces))
    header = prefix + struct.pack("<I", zlib.crc32(prefix))
    return [header, *pieces, struct.pack("<I", crc)]


_POLY = 0xEDB88320  # CRC-32 (IEEE 802.3), reflected


def _multmodp(a: int, b: int) -> int:
    """a * b modulo the CRC-32 polynomial (bit-reflected, as zlib)."""
    m, p = 1 << 31, 0
    while True:
        if a & m:
            p ^= b
            if not a & (m - 1):
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


_X2N = [1 << 30]  # x^(2^k) modulo the polynomial
for _ in range(31):
    _X2N.append(_multmodp(_X2N[-1], _X2N[-1]))


@lru_cache(maxsize=256)
def _x8nmodp(n: int) -> int:
    """x^(8 n) modulo the polynomial: the effect of n bytes on a CRC register."""
    p, k = 1 << 31, 3
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return p


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of ``a + b`` from ``crc1 = crc32(a)``, ``crc2 = crc32(b)`` and ``len(b)`` (as zlib's)."""
    return _multmodp(_x8nmodp(length2), crc1) ^ crc2 if crc1 else crc2


def crc32_zeros(length: int) -> int:
    """``zlib.crc32(bytes(length))`` without reading any byte."""
    return _multmodp(_x8nmodp(length), 0xFFFFFFFF) ^ 0xFFFFFFFF


class RunningCRC:
    """The CRC-32 of bytes added in order; large amounts are summed by helper threads.

    ``zlib.crc32`` releases the GIL on large buffers, so helpers sum a large frame, batch
    by batch, while the caller sends or receives it; the batches' CRCs are then combined
    in order. The CRC (about 1-3 GB/s a thread) so costs little time of its own. The
    bytes added must not change until :meth:`value` returned.
    """

    _executor: ThreadPoolExecutor | None = None
    _executor_pid = 0
    _executor_lock = threading.Lock()
    BATCH = 1 << 20  # bytes handed to a helper at a time
    HELPERS = 2

    def __init__(self) -> None:
        self._parts: list[Future[tuple[int, int]] | tuple[int, int]] = []  # (CRC, length) of each batch, in order
        self._batch: list[memoryview] = []
        self._batched = 0

    def add(self, data: memoryview, crc: int | None = None) -> None:
        """Append bytes to the sum; ``crc``: their CRC-32 if known (they are then not read)."""
        if crc is not None:
            self._flush()
            self._parts.append((crc, len(data)))
            return
        self._batch.append(data)
        self._batched += len(data)
        if self._batched >= self.BATCH:
            self._flush()

    def value(self) -> int:
        """The CRC-32 of every byte added (waits for the helpers)."""
        if self._batch:  # the last, short batch: summed here while the helpers finish
            self._parts.append(_crc_and_length(self._batch))
            self._batch, self._batched = [], 0
        crc = 0
        for part in self._parts:
            crc = crc32_combine(crc, *(part.result() if isinstance(part, Future) else part))
        return crc

    def _flush(self) -> None:
        if self._batch:
            self._parts.append(self._helpers().submit(_crc_and_length, self._batch))
            self._batch, self._batched = [], 0

    @classmethod
    def _helpers(cls) -> ThreadPoolExecutor:
        with cls._executor_lock:
            if cls._executor is None or cls._executor_pid != os.getpid():  # a forked child has no helper threads
                cls._executor = ThreadPoolExecutor(max_workers=cls.HELPERS, thread_name_prefix="opu-crc")
                cls._executor_pid = os.getpid()
            return cls._executor


def _crc_and_length(batch: list[memoryview]) -> tuple[int, int]:
    crc = 0
    for data in batch:
        crc = zlib.crc32(data, crc)
    return crc, sum(len(data) for data in batch)


def write_frame(
    write: Callable[[bytes | memoryview], None],
    msg_type: int,
    seq: int,
    payload: bytes | bytearray | memoryview | list[bytes | memoryview],
    slice_bytes: int = 1 << 20,
    known_crcs: dict[int, int] | None = None,
) -> None:
    """Write a frame through ``write``, the payload CRC summed by a helper thread as it goes out.

    The payload CRC trails the payload, so the payload is sent while its CRC is computed,
    and the receiver checks the first slices while the sender still works on the last.
    ``known_crcs`` gives the CRC-32 of pieces known in advance (by index), not summed again.
    """
    pieces = [memoryview(p).cast("B") for p in (payload if isinstance(payload, list) else [payload])]
    prefix = _PREFIX.pack(SYNC, PROTOCOL_MAJOR, int(msg_type), seq, sum(len(p) for p in pieces))
    write(prefix + struct.pack("<I", zlib.crc32(prefix)))
    crc = RunningCRC()
    for index, piece in enumerate(pieces):
        if known_crcs and index in known_crcs:
            crc.add(piece, known_crcs[index])
            write(piece)
            continue
        for start in range(0, len(piece), slice_bytes):
            part = piece[start : start + slice_bytes]
            crc.add(part)
            write(part)
    write(struct.pack("<I", crc.value()))


def frame_bytes(msg_type: int, seq: int, payload: bytes | bytearray | memoryview | list[bytes | memoryview] = b"") -> bytes:
    """The whole frame as one bytes object: a small frame, written with one call."""
    if not 0 <= seq <= 0xFFFFFFFF:
        raise ValueError(f"seq: expected a uint32, got {seq}")
    if isinstance(payload, list):
        payload = b"".join(payload)
    elif not isinstance(payload, bytes):
        payload = bytes(memoryview(payload).cast("B"))
    prefix = _PREFIX.pack(SYNC, PROTOCOL_MAJOR, msg_type, seq, len(payload))
    return b"".join((prefix, _CRC.pack(zlib.crc32(prefix)), payload, _CRC.pack(zlib.crc32(payload))))


#: Called as ``sink(type, seq, length)`` when a large frame's header arrives; returns a
#: writable byte view where the frame's last ``len(view)`` payload bytes are to go, or None.
Sink = Callable[[int, int, int], "memoryview | None"]


class FrameDecoder:
    """Turns a byte stream into frames, skipping garbage; memory stays below ``max_buffer``.

    ``feed`` bytes, then call ``next_frame`` until it returns None (more bytes needed).
    ``next_frame`` raises :class:`ProtocolError` (or :class:`CorruptFrameError` naming
    the seq) once per corrupt frame found, and resumes after it on the next call.

    Large frames are read in place (``direct_view`` / ``filled``), their CRC computed as
    the bytes arrive. ``sink`` lets the reader put the tail of a large payload (the bulk
    arrays) straight where it belongs, so the bytes are copied once, socket to destination.
    """

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD, sink: Sink | None = None) -> None:
        if not 0 < max_payload < 2**32:
            raise ValueError(f"max_payload: expected 1 to 2**32 - 1 bytes, got {max_payload}")
        self.max_payload = max_payload
        self.sink = sink
        self._buf = bytearray()
        self.discarded = 0  # bytes skipped as garbage
        # a large frame in progress: its header, the payload bytes not placed plus the CRC
        # trailer (``_big``), the placed tail (``_tail``), and the stream position reached
        self._big: np.ndarray | None = None
        self._tail: memoryview | None = None
        self._big_header = b""
        self._length = 0
        self._filled = 0
        self._crc = RunningCRC()  # of the payload bytes filled so far

    @property
    def max_frame(self) -> int:
        """Largest frame accepted (bytes)."""
        return HEADER_SIZE + self.max_payload + TRAILER_SIZE

    @property
    def buffered(self) -> int:
        """Bytes held, waiting for the rest of a frame."""
        return len(self._buf)

    def need(self) -> int:
        """Bytes still missing for the frame in progress (at least 1)."""
        if self._big is not None:
            return max(1, self._length + TRAILER_SIZE - self._filled)
        buf = self._buf
        if len(buf) >= HEADER_SIZE and buf.startswith(SYNC):
            _, _, _, _, length, _ = HEADER.unpack_from(buf)
            if length <= self.max_payload:
                return max(1, HEADER_SIZE + length + TRAILER_SIZE - len(buf))
        return max(1, HEADER_SIZE - len(buf))

    def reset(self) -> None:
        """Forget buffered bytes (after the link was re-established)."""
        self._buf.clear()
        self._big = self._tail = None

    @property
    def partial(self) -> bool:
        """Whether part of a frame is held, waiting for the rest."""
        return self._big is not None or bool(self._buf)

    def drop_partial(self) -> None:
        """Give up the frame in progress: after a silence, its missing bytes were lost, not late.

        Otherwise the next frame to arrive (typically the resent one) would be read as the
        rest of it, fail its CRC and cost one more retry.
        """
        if self.partial:
            self.discarded += len(self._buf) + (self._filled if self._big is not None else 0)
            self.reset()

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes. Call ``next_frame`` before feeding more than one frame's worth."""
        data = memoryview(data).cast("B")
        while self._big is not None and len(data) and self._filled < self._length + TRAILER_SIZE:
            view, _ = self._segment(self._filled)
            take = min(len(data), len(view))
            view[:take] = data[:take]
            self.filled(take)
            data = data[take:]
        self._buf += data

    def direct_view(self) -> memoryview | None:
        """Where the rest of a large frame in progress can be read in place, or None (use ``feed``).

        Fill it (``transport.read_into``), then call ``filled(n)``: bulk data is then
        copied once, from the socket into the payload (or the sink's buffer).
        """
        if self._big is None:
            buf = self._buf
            if len(buf) < HEADER_SIZE or not buf.startswith(SYNC):
                return None
            _, version, msg_type, seq, length, header_crc = HEADER.unpack_from(buf)
            if zlib.crc32(memoryview(buf)[:12]) != header_crc or version != PROTOCOL_MAJOR or length > self.max_payload:
                return None  # next_frame reports it
            have = len(buf) - HEADER_SIZE
            if length + TRAILER_SIZE - have < _DIRECT_ABOVE:
                return None
            tail = self.sink(msg_type, seq, length) if self.sink is not None else None
            if tail is not None:
                tail = memoryview(tail).cast("B")
                if tail.readonly or not 0 < len(tail) <= length:
                    tail = None
            self._tail, self._length = tail, length
            # np.empty: a fresh large buffer without zero-filling it first
            self._big = np.empty(length - (len(tail) if tail is not None else 0) + TRAILER_SIZE, dtype=np.uint8)
            self._big_header = bytes(buf[:HEADER_SIZE])
            self._filled, self._crc = 0, RunningCRC()
            rest = bytes(buf[HEADER_SIZE:])
            buf.clear()
            self.feed(rest)
        view, _ = self._segment(self._filled)
        return view

    def _segment(self, pos: int) -> tuple[memoryview, int]:
        """(writable view from stream position ``pos`` to the end of its buffer, that end's position)."""
        big = memoryview(self._big)
        if self._tail is None:
            return big[pos:], len(big)
        split = len(big) - TRAILER_SIZE  # payload bytes before the tail
        if pos < split:
            return big[pos:split], split
        if pos < self._length:
            return self._tail[pos - split :], self._length
        return big[split + pos - self._length :], self._length + TRAILER_SIZE

    def filled(self, n: int) -> None:
        """``n`` bytes were read into the view of ``direct_view``."""
        pos, end = self._filled, min(self._filled + n, self._length)
        while pos < end:
            view, stop = self._segment(pos)
            stop = min(stop, end)
            self._crc.add(view[: stop - pos])
            pos = stop
        self._filled += n

    def _finish_big(self) -> Frame | None:
        if self._filled < self._length + TRAILER_SIZE:
            return None
        big, tail, length = self._big, self._tail, self._length
        self._big = self._tail = None
        _, _, msg_type, seq, _, _ = HEADER.unpack_from(self._big_header)
        split = len(big) - TRAILER_SIZE
        (payload_crc,) = struct.unpack_from("<I", big, split)
        payload = memoryview(big)[:split]
        if self._crc.value() != payload_crc:
            parts = [self._big_header[1:], payload] + ([tail] if tail is not None else []) + [big[split:]]
            self._buf[:0] = b"".join(parts)  # rescan inside it
            self._skip_to_sync(0)
            raise CorruptFrameError(f"corrupt payload in frame seq {seq} type {msg_type:#x} (CRC mismatch)", seq)
        return Frame(msg_type, seq, payload, payload_crc, length - split)

    def _skip_to_sync(self, start: int) -> None:
        buf = self._buf
        index = buf.find(SYNC, start)
        if index < 0:
            index = len(buf) - 1 if buf[-1:] == SYNC[:1] else len(buf)
        self.discarded += index
        del buf[:index]

    def next_frame(self) -> Frame | None:
        """The next complete frame, None if more bytes are needed; raises ProtocolError on a corrupt one."""
        if self._big is not None:
            return self._finish_big()
        buf = self._buf
        while True:
            if not buf:
                return None
            if not buf.startswith(SYNC):
                self._skip_to_sync(0)  # leaves a sync marker first, a lone first sync byte, or nothing
                if len(buf) < 2:
                    return None
                continue
            if len(buf) < HEADER_SIZE:
                return None
            _, version, msg_type, seq, length, header_crc = HEADER.unpack_from(buf)
            if zlib.crc32(memoryview(buf)[:12]) != header_crc:
                self._skip_to_sync(1)
                raise ProtocolError("corrupt frame header (CRC mismatch); resynchronising")
            if version != PROTOCOL_MAJOR or length > self.max_payload:
                self._skip_to_sync(1)
                if version != PROTOCOL_MAJOR:
                    raise ProtocolError(f"frame of protocol version {version}, expected {PROTOCOL_MAJOR}")
                raise ProtocolError(f"frame length {length} exceeds the maximum payload {self.max_payload} bytes")
            end = HEADER_SIZE + length
            if len(buf) < end + TRAILER_SIZE:
                return None
            with memoryview(buf) as view:
                payload = bytearray(view[HEADER_SIZE:end])  # writable: arrays decoded from it are too
                (payload_crc,) = struct.unpack_from("<I", view, end)
            if zlib.crc32(payload) != payload_crc:
                self._skip_to_sync(1)
                raise CorruptFrameError(f"corrupt payload in frame seq {seq} type {msg_type:#x} (CRC mismatch)", seq)
            del buf[: end + TRAILER_SIZE]
            return Frame(msg_type, seq, payload, payload_crc)
