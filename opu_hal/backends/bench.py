"""``bench://FILE.yaml``: an OPU built from bench parts, a DMD, a camera and a light source.

The DMD's trigger out starts each camera exposure (the camera is armed for hardware
triggers), so every picture gives one frame. A lost trigger or a stale frame would
silently misalign every result after it, and a frame counter cannot see a trigger the
camera never noticed, so each sequence interleaves *sentinels*: an all-on and an all-off
picture before every block of data frames and once more at the end. The sentinels are
recognised by their content (all-on frames repeat one bright speckle image; all-off
frames are dark); a block is accepted only when the sentinels before and after it sit
where they belong and the camera's frame counter has no gap inside it. A block that fails
is acquired again (up to ``retries`` times); then the bench refuses with
:class:`FrameSyncError` rather than return misaligned data.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..devices.camera import ROI, Camera, CapturedFrame
from ..devices.common import TriggerMode, TriggerType
from ..devices.dmd import DMD, packed_shape
from ..devices.light import LightSource
from ..errors import DeviceError, DeviceTimeoutError
from ..limits import MAX_BATCH_FRAMES
from ..protocol.dmd import DMDPacker
from ..settings import DeviceInfo, DeviceLimits
from ..url import DeviceSpec
from .base import AppliedConfig, Backend, DeviceConfig, Frames
from .bench_file import SentinelSettings, build_devices, load_bench_file

logger = logging.getLogger(__name__)

#: A sentinel frame must be within this fraction of the on/off contrast of its reference level.
LEVEL_TOLERANCE = 0.25
#: An all-on frame must correlate at least this much with the all-on reference image.
MIN_CORRELATION = 0.9


class FrameSyncError(DeviceError):
    """Frames and pictures stayed misaligned (a trigger lost or a frame shifted) after all retries."""


@dataclass(frozen=True)
class _Block:
    index: int  # first row of the batch
    count: int  # data frames


class Bench(Backend):
    """An OPU backend made of a :class:`DMD`, a :class:`Camera` and an optional :class:`LightSource`.

    ``frame_timeout_s``: time allowed for each frame beyond its exposure (s).
    """

    def __init__(
        self,
        dmd: DMD,
        camera: Camera,
        light: LightSource | None = None,
        *,
        sentinels: SentinelSettings | None = None,
        frame_timeout_s: float = 2.0,
    ) -> None:
        super().__init__()
        self.dmd, self.camera, self.light = dmd, camera, light
        self.sentinels = sentinels or SentinelSettings()
        self.frame_timeout_s = frame_timeout_s
        self.reacquired_blocks = 0  # blocks acquired again after a sentinel mismatch
        self._packer: DMDPacker | None = None
        self._applied: AppliedConfig | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> "Bench":
        """The bench a YAML file describes (validated before any device is touched)."""
        spec = load_bench_file(path)
        dmd, camera, light = build_devices(spec, Path(path).resolve().parent)
        return cls(dmd, camera, light, sentinels=spec.sentinels, frame_timeout_s=spec.frame_timeout_s)

    # ------------------------------------------------------------------ life cycle
    def _do_open(self, timeout_s: float) -> DeviceInfo:
        opened: list[LightSource | DMD | Camera] = []
        try:
            for device in (self.light, self.dmd, self.camera):
                if device is not None:
                    device.open()
                    opened.append(device)
        except BaseException:
            for device in reversed(opened):
                device.close()
            raise
        if self.light is not None and not self.light.status().ok:
            status = self.light.status()
            logger.warning("light source not ready: interlock closed=%s, fault %d %s", status.interlock_closed, status.fault_code, status.fault)
        cam, dmd = self.camera, self.dmd
        fmt = cam.settings.pixel_format
        dark, gain = cam.nominal_response or (0.0, 1.0)
        rows, cols = cam.limits.sensor_shape
        return DeviceInfo(
            model=f"bench: {dmd.identity.model} + {cam.identity.model}",
            serial=f"{dmd.identity.serial}+{cam.identity.serial}",
            firmware_version=f"{dmd.identity.firmware_version}/{cam.identity.firmware_version}",
            protocol_version="bench",
            dmd_shape=dmd.limits.shape,
            camera_shape=(rows, cols),
            bit_depth=fmt.bit_depth,
            fidelity="ideal" if fmt.bit_depth == 0 else "hardware",
            default_exposure_us=cam.settings.exposure_us,
            dark_level_dn=dark,
            dn_per_intensity_per_us=gain,
            limits=DeviceLimits(
                max_n_components=rows * cols,
                max_n_features=dmd.limits.shape[0] * dmd.limits.shape[1],
                min_exposure_us=cam.limits.exposure_us[0],
                max_exposure_us=cam.limits.exposure_us[1],
                max_batch_frames=MAX_BATCH_FRAMES,
            ),
        )

    def _do_close(self) -> None:
        for device in (self.camera, self.dmd, self.light):
            if device is not None:
                device.close()
        self._packer = None

    # ------------------------------------------------------------------ configuration
    def _do_configure(self, config: DeviceConfig) -> AppliedConfig:
        cam, dmd = self.camera, self.dmd
        height, width = cam.limits.sensor_shape
        rows = math.ceil(config.n_components / width)
        roi = ROI(x=0, y=(height - rows) // 2, width=width, height=rows)
        exposure = cam.settings.exposure_us if config.exposure_us is None else config.exposure_us
        cam.update(
            exposure_us=exposure, roi=roi, binning=1,
            trigger_type=TriggerType.RISING_EDGE, trigger_mode=TriggerMode.ONCE,
        )
        shortest = max(cam.min_frame_period_us, dmd.limits.picture_time_us[0])
        if config.frametime_us is not None and config.frametime_us < shortest:
            raise ValueError(
                f"frametime_us: expected at least {shortest:g} us (exposure {exposure:g} us and readout), "
                f"got {config.frametime_us}"
            )
        frametime = shortest if config.frametime_us is None else config.frametime_us
        dmd.set_layout(config.layout)
        dmd.update(picture_time_us=frametime, trigger_out=True)
        self._packer = DMDPacker(config.layout)
        self._applied = AppliedConfig(exposure, frametime, (roi.y, roi.x, roi.height, roi.width))
        return self._applied

    # ------------------------------------------------------------------ acquisition
    def _do_acquire(self, features: np.ndarray) -> Frames:
        n = self._config.n_components
        batch = features.shape[0]
        size = self.sentinels.block_frames
        pending = [_Block(lo, min(size, batch - lo)) for lo in range(0, batch, size)]
        out = np.empty((batch, n), dtype=self.camera.settings.pixel_format.dtype)
        ids = np.empty(batch, dtype=np.int64)
        stamps = np.empty(batch, dtype=np.float64)
        shown = 0
        for attempt in range(self.sentinels.retries + 1):
            failed: list[_Block] = []
            for group in self._sequences(pending):
                frames, count = self._run(features, group)
                shown += count
                for block, got in zip(group, align(frames, [b.count for b in group])):
                    if got is None:
                        failed.append(block)
                        continue
                    sl = slice(block.index, block.index + block.count)
                    out[sl] = np.stack([f.image.reshape(-1)[:n] for f in got])
                    ids[sl] = [f.frame_id for f in got]
                    stamps[sl] = [f.timestamp_us if f.timestamp_us is not None else f.host_time_s * 1e6 for f in got]
            if not failed:
                break
            self.reacquired_blocks += len(failed)
            logger.warning(
                "sentinels out of place in %d block(s) (first data row %d): acquiring them again (attempt %d)",
                len(failed), failed[0].index, attempt + 2,
            )
            pending = failed
        else:
            raise FrameSyncError(
                f"frames and DMD pictures stayed misaligned in {len(failed)} block(s) after "
                f"{self.sentinels.retries} retries (first data row {failed[0].index}): a camera dropping or "
                "shifting frames, or a trigger cable; refusing to return misaligned data"
            )
        bits = self.camera.settings.pixel_format.bit_depth
        saturated = 0.0 if bits == 0 else float(np.count_nonzero(out == (1 << bits) - 1)) / max(out.size, 1)
        return Frames(out, ids, stamps, saturated, shown * self._applied.frametime_us * 1e-6)

    def _sequences(self, blocks: list[_Block]) -> list[list[_Block]]:
        """Group blocks into sequences that fit the DMD's memory (2 sentinels per block, 2 at the end)."""
        limit = self.dmd.limits.max_frames
        if limit < self.sentinels.block_frames + 4:
            raise ValueError(
                f"sentinels.block_frames: expected at most {limit - 4} frames (DMD memory of {limit} frames "
                f"minus 4 sentinels), got {self.sentinels.block_frames}"
            )
        groups: list[list[_Block]] = [[]]
        used = 2
        for block in blocks:
            if used + block.count + 2 > limit:
                groups.append([])
                used = 2
            groups[-1].append(block)
            used += block.count + 2
        return groups

    def _run(self, features: np.ndarray, group: list[_Block]) -> tuple[list[CapturedFrame], int]:
        """Show one sequence and grab its frames (fewer if some never came)."""
        rows, stride = packed_shape(self.dmd.limits.shape)
        on = np.packbits(np.ones((1, *self.dmd.limits.shape), dtype=bool), axis=2)
        off = np.zeros((1, rows, stride), dtype=np.uint8)
        parts: list[np.ndarray] = []
        for block in group:
            parts += [on, off, self._packer.pack(features[block.index : block.index + block.count])]
        parts += [on, off]
        sequence = np.concatenate(parts)
        count = sequence.shape[0]
        timeout = self._applied.exposure_us * 1e-6 + self.frame_timeout_s
        self.camera.arm(count)
        try:
            self.dmd.upload(sequence)
            self.dmd.run()
            frames: list[CapturedFrame] = []
            try:
                for _ in range(count):
                    frames.append(self.camera.grab(timeout))
            except DeviceTimeoutError:
                logger.warning("camera delivered %d of %d frames", len(frames), count)
            self.dmd.stop()
        finally:
            self.camera.disarm()
        return frames, count


def align(frames: list[CapturedFrame], sizes: list[int]) -> list[list[CapturedFrame] | None]:
    """The data frames of each block of a sentinel-interleaved sequence, or None where misaligned.

    The sequence was ``[on, off, data(sizes[0]), on, off, data(sizes[1]), ..., on, off]``.
    Block b is accepted when an on/off pair starts at its expected position (shifted by the
    offset found so far; a shift of up to 2 frames is re-synchronised) and another pair
    follows its data at the same offset, with no gap in the frame counter in between.
    """
    starts = np.cumsum([0] + [k + 2 for k in sizes]).tolist()  # start of each pair, the last one closing
    if len(frames) < 4:  # not even two sentinel pairs: nothing can be trusted
        return [None] * len(sizes)
    images = [f.image.astype(np.float64).reshape(-1) for f in frames]
    means = np.array([im.mean() for im in images])
    # References wherever the sentinels landed: the brightest frame is an all-on one (every
    # mirror lit), the darkest an all-off one; all-on frames repeat one speckle image.
    bright, dark = int(np.argmax(means)), int(np.argmin(means))
    contrast = float(means[bright] - means[dark])

    def similar(i: int, ref: np.ndarray) -> bool:
        if ref.size < 2 or ref.std() == 0 or images[i].std() == 0:
            return True
        return float(np.corrcoef(images[i], ref)[0, 1]) >= MIN_CORRELATION

    on_set = [
        i for i in range(len(images))
        if abs(means[i] - means[bright]) <= LEVEL_TOLERANCE * contrast and similar(i, images[bright])
    ]
    if not contrast > 0 or len(on_set) < 2:
        raise FrameSyncError(
            f"sentinels: no repeated bright all-on frame among {len(images)} frames (brightest mean "
            f"{means[bright]:g}, darkest {means[dark]:g}); is the light source on?"
        )
    on_ref = np.median(np.stack([images[i] for i in on_set]), axis=0)
    on_level = float(on_ref.mean())
    off_level = float(np.median([m for m in means if abs(m - means[dark]) <= LEVEL_TOLERANCE * contrast]))
    tolerance = LEVEL_TOLERANCE * (on_level - off_level)

    def is_on(i: int) -> bool:
        return 0 <= i < len(images) and abs(means[i] - on_level) <= tolerance and similar(i, on_ref)

    def is_off(i: int) -> bool:
        return 0 <= i < len(images) and abs(means[i] - off_level) <= tolerance

    def pair(i: int) -> bool:
        return is_on(i) and is_off(i + 1)

    result: list[list[CapturedFrame] | None] = []
    offset = 0
    for b, size in enumerate(sizes):
        found = next((o for o in (offset, offset - 1, offset + 1, offset - 2, offset + 2) if pair(starts[b] + o)), None)
        if found is None:
            result.append(None)
            continue
        offset = found
        first = starts[b] + offset + 2
        data = frames[first : first + size]
        closed = pair(starts[b + 1] + offset)
        counted = len(data) == size and not any(f.dropped_before for f in frames[first : first + size + 2])
        result.append(data if closed and counted else None)
    return result


def bench_backend(spec: DeviceSpec) -> Bench:
    """The backend of ``bench://PATH.yaml`` (no query keys: the file says it all)."""
    return Bench.from_file(spec.location)
