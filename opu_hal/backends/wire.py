"""``sim://``, ``socket://`` and ``serial://``: a device behind the wire protocol (docs/protocol.md).

The backend *has* a :class:`~opu_hal.protocol.client.ProtocolClient`, which has a
transport. A device call is sent as ACQUIRE requests of bit-packed DMD frames, at most
``window`` in flight, so the next chunk is packed (by a helper thread) and uploaded (by the
client's writer thread) while the device acquires the current one; the camera frames of
the replies are read straight into the call's output array. A call of up to 16 MiB is one
chunk (the emulator then computes exactly the batches ``emu://`` computes, so even float
results agree bitwise). Replies are checked
(count, dtype, sizes, consecutive frame ids). When the device reboots mid-batch, the
backend re-applies the configuration, restores the frame counter and clock, and resumes
from the first chunk not yet received, so the batch comes out as if nothing happened.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from ..errors import (
    DeviceError,
    DeviceTimeoutError,
    ProtocolError,
    RetriesSpentError,
    RetryBudgetError,
)
from ..protocol.client import DeviceResetError, Hello, ProtocolClient, Request
from ..protocol.dmd import DMDPacker
from ..protocol.frames import DEFAULT_MAX_PAYLOAD, Frame, MsgType
from ..protocol.messages import ErrorCode
from ..protocol.schema import (
    HEAD_ROOM,
    AcquireHead,
    ConfiguredReply,
    ConfigureRequest,
    FramesHead,
    decode_bulk_reply,
    decode_reply,
    encode,
    encode_bulk_head,
)
from ..settings import DeviceInfo
from ..transport import Transport
from ..url import DeviceSpec, WireOptions
from ..validation import check_int
from .base import AppliedConfig, Backend, DeviceConfig, Frames

if TYPE_CHECKING:
    from firmware_sim import OPUModel
    from firmware_sim.firmware import Firmware
    from firmware_sim.hosting import SimLink

logger = logging.getLogger(__name__)

# Calls up to this size go as one ACQUIRE (the emulator then computes exactly emu://'s batches);
# larger ones are split so that upload, acquisition and download overlap.
_CHUNK_TARGET = 16 * 2**20


class WireBackend(Backend):
    """A device spoken to over a transport.

    Parameters
    ----------
    connect:
        Makes the (unopened or open) transport when the backend opens.
    release:
        Called after the link is closed (stops an in-process firmware).
    exclusive:
        Whether other processes could reach the device (the OPU then locks it).
    keys:
        Names the device for that lock, resolved when called (the link's ``keys``).
    retries:
        Times a request is re-sent, the link re-opened or a reboot recovered from.
    window:
        ACQUIRE requests in flight.
    chunk_frames:
        Frames per ACQUIRE; None: a whole call if it fits the payload limit.
    token:
        Shared secret for ``opu-hal serve``.
    timeout_s:
        Seconds of silence before a request is retried; None: the ``timeout_s`` given to ``open``.
    """

    def __init__(
        self,
        connect: Callable[[], Transport],
        *,
        release: Callable[[], None] | None = None,
        exclusive: bool = True,
        keys: Callable[[], tuple[str, ...]] | None = None,
        retries: int = 3,
        window: int = 2,
        chunk_frames: int | None = None,
        token: str | None = None,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__()
        check_int(retries, "retries", low=0)
        check_int(window, "window", low=1)
        if chunk_frames is not None:
            check_int(chunk_frames, "chunk_frames", low=1)
        self.exclusive = exclusive
        self._connect, self._release, self._keys = connect, release, keys
        self.retries, self.window, self.chunk_frames = retries, window, chunk_frames
        self.token, self.max_payload, self.timeout_s = token, max_payload, timeout_s
        self.client: ProtocolClient | None = None
        self._packer: DMDPacker | None = None
        self._counters: tuple[int, float] = (0, 0.0)  # device frame counter and clock (us) after the last reply
        self._applied: AppliedConfig | None = None
        self._configured_boot: str | None = None  # the boot id of the device when it was last configured
        self._packing: ThreadPoolExecutor | None = None  # packs the next chunk while the current one is sent

    def device_keys(self) -> tuple[str, ...]:
        """The link's names of the device (resolved now), or () to key the lock on the URL."""
        return self._keys() if self._keys is not None else ()

    @property
    def hello(self) -> Hello:
        """What the device answered to the last handshake."""
        return self.client.hello

    # ------------------------------------------------------------------ life cycle
    def _do_open(self, timeout_s: float) -> DeviceInfo:
        if self.timeout_s is not None:  # the URL's timeout_s wins
            timeout_s = self.timeout_s
        client = ProtocolClient(
            self._connect(), timeout_s=timeout_s, retries=self.retries, max_payload=self.max_payload, token=self.token
        )
        try:
            hello = client.connect()
        except BaseException:
            client.transport.close()
            if self._release is not None:
                self._release()
            raise
        self.client = client
        return hello.info

    def _do_close(self) -> None:
        try:
            self.client.close()
        finally:
            self.client, self._packer = None, None
            if self._packing is not None:
                self._packing.shutdown(wait=False)
                self._packing = None
            if self._release is not None:
                self._release()

    def ping(self) -> float:
        """Round-trip time of a PING (s); raises if the device does not answer."""
        t0 = time.perf_counter()
        self.client.request(Request(MsgType.PING, [b""]))
        return time.perf_counter() - t0

    # ------------------------------------------------------------------ configuration
    def _do_configure(self, config: DeviceConfig) -> AppliedConfig:
        for attempt in range(self.retries + 1):
            try:
                return self._send_config(config, restore=False)
            except DeviceResetError:
                if attempt == self.retries:
                    raise
                self.client.handshake()
        raise AssertionError("unreachable")

    def _send_config(self, config: DeviceConfig, restore: bool) -> AppliedConfig:
        frame_counter, clock_us = self._counters if restore else (None, None)
        body = ConfigureRequest(
            layout=config.layout,
            n_components=config.n_components,
            exposure_us=config.exposure_us,
            frametime_us=config.frametime_us,
            frame_counter=frame_counter,
            clock_us=clock_us,
        )
        reply = decode_reply(ConfiguredReply, self.client.request(Request(MsgType.CONFIGURE, [encode(body)])).payload)
        applied = AppliedConfig(reply.exposure_us, reply.frametime_us, reply.roi, reply.medium)
        self._counters = (reply.frame_counter, reply.clock_us)
        self._configured_boot = self.client.hello.boot_id
        if self._packer is None or self._packer.layout != config.layout:
            self._packer = DMDPacker(config.layout)
        self._applied = applied
        return applied

    def _recover(self, reason: Exception) -> None:
        """After a reboot (or an unexpected 'not configured'): greet, re-configure, restore counters."""
        # against the boot configured, not the last HELLO: a link re-opened after a reboot has greeted it already
        hello = self.client.handshake()
        rebooted = hello.boot_id != self._configured_boot
        logger.warning(
            "device %s (%s): re-applying the configuration and resuming at frame %d",
            "rebooted" if rebooted else "lost its configuration", reason, self._counters[0],
        )
        before = self._applied
        applied = self._send_config(self._config, restore=rebooted)
        if applied != before:
            raise DeviceError(f"after recovering, the device applied {applied} instead of {before}")

    # ------------------------------------------------------------------ acquisition
    def _pixel_bytes(self) -> int:
        """Bytes per camera pixel: float32 intensities, 8- or 16-bit counts."""
        bit_depth = self.client.hello.info.bit_depth
        return 4 if bit_depth == 0 else (1 if bit_depth <= 8 else 2)

    def _chunk_size(self, batch: int) -> int:
        dmd_bytes = self._packer.frame_bytes
        camera_bytes = self._config.n_components * self._pixel_bytes() + 16  # with the frame id and timestamp
        limit = min(self.client.hello.max_payload, self.max_payload, _CHUNK_TARGET) - HEAD_ROOM
        fits = max(1, limit // max(dmd_bytes, camera_bytes))
        if self.chunk_frames is not None:
            return min(self.chunk_frames, fits)
        if batch <= fits:
            return batch
        chunks = -(-batch // fits)
        return -(-batch // chunks)  # equal chunks

    def _requests(
        self, features: np.ndarray, bounds: list[tuple[int, int]], start: int, out: memoryview
    ) -> Iterator[Request]:
        after = 0
        row = len(out) // bounds[-1][1]
        if self._packing is None:
            self._packing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opu-pack")
        pack, packer = self._packing.submit, self._packer.pack
        # each chunk is packed by a helper while the one before it goes out (numpy releases the GIL)
        upcoming = pack(packer, features[slice(*bounds[start])])
        for index in range(start, len(bounds)):
            lo, hi = bounds[index]
            packed = upcoming.result()
            if index + 1 < len(bounds):
                upcoming = pack(packer, features[slice(*bounds[index + 1])])
            seq = self.client.next_seq()
            head = AcquireHead(
                count=hi - lo,
                rows=packed.shape[1],
                row_bytes=packed.shape[2],
                after=after,
                more=hi < bounds[-1][1],  # a shared device stays ours until the call's last chunk
            )
            # the camera frames of the reply arrive straight in the call's output
            pieces = encode_bulk_head(head, memoryview(packed).cast("B"))
            yield Request(MsgType.ACQUIRE, pieces, seq, out[lo * row : hi * row])
            after = seq

    def _do_acquire(self, features: np.ndarray) -> Frames:
        batch = features.shape[0]
        size = self._chunk_size(batch)
        bounds = [(lo, min(lo + size, batch)) for lo in range(0, batch, size)]
        # the call's camera frames, as bytes (the device's dtype is read from its replies)
        out = np.empty(batch * self._config.n_components * self._pixel_bytes(), dtype=np.uint8)
        parts: list[_Chunk | None] = [None] * len(bounds)
        done, recoveries, replans, cause, reconfigure = 0, 0, 0, None, False
        # the call's retry budget: re-plans (halvings of the chunk down to one frame, plus
        # `retries`), and requests resent: `retries` per chunk first planned or re-planned
        budget = max(0, size - 1).bit_length() + self.retries
        resends = self.retries * (len(bounds) + budget)
        resent0 = self.client.resent
        while done < len(bounds):
            try:
                if cause is not None:
                    self._recover(cause)
                    cause = None
                if reconfigure:  # the frame ids the failed chunk would have had
                    self._send_config(self._config, restore=True)
                    reconfigure = False
                for reply in self.client.pipeline(self._requests(features, bounds, done, memoryview(out)), self.window):
                    lo, hi = bounds[done]
                    parts[done] = self._parse(reply, lo, hi, out)
                    done += 1
                    if self.client.resent - resent0 > resends:
                        raise RetryBudgetError(  # not a RetriesSpentError: no re-plan
                            f"ACQUIRE: the call's retry budget is spent: {self.client.resent - resent0} requests "
                            f"resent (after {self.retries} retries per request at most), at most {resends} allowed; "
                            f"{done} of {len(bounds)} chunks received",
                            resent=self.client.resent - resent0, max_resent=resends,
                            replans=replans, max_replans=budget,
                        )
            except (DeviceResetError, DeviceError) as exc:
                if isinstance(exc, DeviceError) and exc.code != ErrorCode.NOT_CONFIGURED:
                    raise
                recoveries += 1
                if recoveries > self.retries:
                    raise
                cause = exc
            except (RetriesSpentError, DeviceTimeoutError) as exc:
                # a chunk's retries spent on corruption (or those of the CONFIGURE re-sent before it):
                # smaller requests cross a faulty link more often intact. Silence is the device's
                # own failure, unless this call has already re-planned: then it is the same faulty
                # link swallowing whole frames, and it counts against the call's budget too.
                if not isinstance(exc, RetriesSpentError) and not replans:
                    raise
                lo, hi = bounds[done]
                replans += 1
                if replans > budget:
                    raise RetryBudgetError(
                        f"ACQUIRE: the call's retry budget is spent: {replans} re-plans, at most {budget} "
                        f"allowed; frames {lo}-{hi} failed last ({exc})",
                        resent=self.client.resent - resent0, max_resent=resends,
                        replans=replans, max_replans=budget,
                    ) from exc
                if not reconfigure:  # the chunk failed, not the CONFIGURE: halve it
                    size = max(1, (hi - lo) // 2)
                    logger.warning("frames %d-%d failed (%s); resuming in chunks of %d frames", lo, hi, exc, size)
                    bounds[done:] = [(start, min(start + size, batch)) for start in range(lo, batch, size)]
                    parts[done:] = [None] * (len(bounds) - done)
                reconfigure = True
        return _join(parts, out, self._config.n_components)

    def _parse(self, reply: Frame, lo: int, hi: int, out: np.ndarray) -> "_Chunk":
        """Check a FRAMES reply for frames ``lo:hi`` of the call; their camera frames end up in ``out``."""
        head, raw = decode_bulk_reply(FramesHead, reply.payload)
        n, dtype, got = head.n_components, head.numpy_dtype, head.count
        self._counters = (head.frame_counter, head.clock_us)
        count, row = hi - lo, self._config.n_components * self._pixel_bytes()
        expected = count * (16 + n * dtype.itemsize)
        if got != count or n != self._config.n_components or len(raw) + reply.placed != expected:
            raise ProtocolError(
                f"FRAMES: expected {count} frames of {self._config.n_components} outputs ({expected} bytes), "
                f"got {got} of {n} ({len(raw) + reply.placed} bytes)"
            )
        if n * dtype.itemsize != row or reply.placed not in (0, count * row):
            raise ProtocolError(
                f"FRAMES: pixels of dtype {dtype.str} from a camera of bit depth {self.client.hello.info.bit_depth}"
            )
        ids = np.frombuffer(raw, dtype="<i8", count=count).astype(np.int64)
        stamps = np.frombuffer(raw, dtype="<f8", count=count, offset=8 * count).astype(np.float64)
        if count > 1 and not np.array_equal(np.diff(ids), np.ones(count - 1, dtype=np.int64)):
            raise ProtocolError(f"FRAMES: frame ids are not consecutive: {ids.tolist()[:10]}...")
        if not reply.placed:  # a reply too small to be read in place
            out[lo * row : hi * row] = np.frombuffer(raw, dtype=np.uint8, offset=16 * count)
        return _Chunk(dtype, ids, stamps, head.saturated_fraction, head.device_time_s)


@dataclass(frozen=True)
class _Chunk:
    """What a FRAMES reply said besides its camera frames (which are in the call's output)."""

    dtype: np.dtype
    frame_ids: np.ndarray
    timestamps_us: np.ndarray
    saturated_fraction: float
    device_time_s: float


def _join(parts: list[_Chunk], out: np.ndarray, n_components: int) -> Frames:
    """The call's frames: ``out`` seen as the replies' dtype, with the chunks' ids and timestamps."""
    dtype = parts[0].dtype
    if any(p.dtype != dtype for p in parts):
        raise ProtocolError(f"FRAMES: the dtype changed between chunks: {sorted({p.dtype.str for p in parts})}")
    ids = np.concatenate([p.frame_ids for p in parts])
    if not np.array_equal(np.diff(ids), np.ones(ids.size - 1, dtype=np.int64)):
        raise ProtocolError("FRAMES: frame ids of consecutive chunks are not consecutive (a frame lost or repeated)")
    frames = out.view(dtype).reshape(ids.size, n_components)
    if not dtype.isnative:
        frames = frames.byteswap().view(dtype.newbyteorder("="))
    total = ids.size
    return Frames(
        frames,
        ids,
        np.concatenate([p.timestamps_us for p in parts]),
        sum(p.saturated_fraction * p.frame_ids.size for p in parts) / total,
        sum(p.device_time_s for p in parts),
    )


class SimBackend(WireBackend):
    """``sim://``: the emulator firmware in a thread, behind the full protocol over a loopback pair.

    ``firmware`` and ``model`` (the ground truth, as ``emu://``'s ``model``) exist while open.
    """

    def __init__(self, link: "SimLink", **options: object) -> None:
        super().__init__(link.connect, release=link.release, exclusive=link.exclusive, **options)
        self._device = link.device
        self.params, self.optics = link.device.params, link.device.optics

    @property
    def seed(self) -> int:
        """The emulated device's seed."""
        return self.params.seed

    @property
    def firmware(self) -> "Firmware":
        """The firmware answering (while open)."""
        if self._device.running is None:
            raise RuntimeError("the sim:// device is not open")
        return self._device.running.firmware

    @property
    def model(self) -> "OPUModel":
        """The emulator's physical model (the ground truth), while open."""
        return self.firmware.model


def wire_options(spec: DeviceSpec) -> dict[str, object]:
    """The :class:`WireBackend` keyword arguments a checked URL gives: its wire keys and token."""
    wire = spec.get(WireOptions)
    return {
        "retries": wire.retries,
        "window": wire.window,
        "chunk_frames": wire.chunk_frames,
        "timeout_s": wire.timeout_s,
        "token": spec.value("token"),
    }


def wire_backend(spec: DeviceSpec) -> WireBackend:
    """The backend of a URL whose scheme has a link (``socket://``, ``serial://``, registered ones)."""
    link = spec.make_link()
    return WireBackend(
        link.connect, release=link.release, exclusive=link.exclusive, keys=link.keys, **wire_options(spec)
    )


def sim_backend(spec: DeviceSpec) -> SimBackend:
    """The backend of ``sim://?KEY=VALUE...``: emulator keys, ``optics=on|off`` and the wire keys."""
    return SimBackend(spec.make_link(), **wire_options(spec))
