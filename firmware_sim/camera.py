"""The camera: the EMVA 1288 linear model, frame by frame (docs/physics.md section 2.1).

Per pixel and frame: mean photo-electrons ``mu_e = eta * mu_p`` (the optics give
``mu_p``), electrons ``e ~ Poisson(mu_e + dark_current * t_exp)`` capped at the full well,
plus read noise ``N(0, sigma_read^2)`` electrons, and
``DN = clip(round(K * e + offset), 0, 2**bits - 1)`` (the offset is rounded with the
signal, so a fractional offset stays the mean dark level).
Optional fixed-pattern non-uniformities: PRNU (relative gain per pixel), DSNU (a fixed
zero-mean dark offset per pixel, electrons, added to the signal without shot noise, so
the mean dark level is unchanged) and hot pixels (stuck at the ADC maximum).

One standard normal z per pixel and frame carries the temporal noise. Shot noise is drawn
exactly (Poisson) only where the added noise leaves it skewed: where the skewness of shot
plus read noise and ADC quantisation, ``mu / (mu + sigma_read^2 + 1 / (12 K^2))**1.5``,
exceeds ``_MAX_SKEW`` = 0.1 (that of a 100 e- Poisson law alone); there z is the read noise,
``e = Poisson(mu) + sigma_read z``. Elsewhere shot and read noise take their joint normal
limit, ``e = mu + sqrt(mu + sigma_read^2) z``; at the defaults (12 e- of read noise, 47 e-
per DN) that is every pixel. The full-well cap then keeps the read noise of a full pixel,
``e = min(mu + sqrt(mu + sigma_read^2) z, full_well + sigma_read z)``, and is skipped when the
ADC saturates at least 8 sigma_read below the full well (the defaults), where it cannot
change a count. Mean and variance are exact in both regimes away from the full well.

Noise is keyed by frame id and pixel block: the pixels of frame f are cut into blocks of
``_BLOCK_ROWS`` sensor rows (``_BLOCK_ROWS * width`` output numbers), and block b of frame
f draws from one PCG64DXSM stream seeded by the noise seed (`noise_seed`, default `seed`),
advanced to position ``f * 2**64 + b * 2**32`` (windows of 2**32 words that never overlap;
any one is reached at once by the generator's jump-ahead). The normals come by Box-Muller,
two per 64-bit word, in chunks of ``_CHUNK`` words: chunk c of a block gives pixels
``2 c _CHUNK`` to ``2 (c + 1) _CHUNK - 1``; of its words seen as 2 ``_CHUNK`` little-endian
32-bit halves, half q < ``_CHUNK`` is the radius uniform and half ``_CHUNK + q`` the angle
uniform of pair q, whose cosine goes to pixel ``2 c _CHUNK + q`` and sine to pixel
``(2 c + 1) _CHUNK + q`` (23-bit uniforms: radii stop at 5.65, a tail of probability 1.2e-7).
Every pass is then over contiguous runs of ``_CHUNK`` numbers. So a frame gets the same
noise for the same seed however frames are batched, whatever the number of worker threads,
and a pixel's normal does not depend on which outputs are read. Blocks (or groups of small
frames) are processed by worker threads: numpy releases the GIL in the draws and
arithmetic, so every core is used.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from opu_hal.validation import check_rows_out

from .params import EmulatorParams

_NOISE_STREAM = 0x6E6F6973  # "nois"
_PATTERN_STREAM = 0x66706E20  # fixed-pattern noise
_MAX_SKEW = 0.1  # of shot plus added noise: beyond, shot noise is drawn exactly (a 100 e- Poisson law)
_BLOCK_ROWS = 32  # sensor rows per noise block (65,280 pixels of a 2040-wide sensor: stays in cache)
_CAP_SIGMAS = 8.0  # the full-well cap is skipped when the ADC saturates this many sigma_read below it
_PERIOD = 2**128  # of the PCG64DXSM generator (64-bit words)
_CV_DEPTH = {np.uint8: cv2.CV_8U, np.uint16: cv2.CV_16U}  # OpenCV's depth of each camera dtype
_CHUNK = 1024  # 64-bit words per Box-Muller chunk: 2,048 pixels, cosines then sines


def _noise_state(seed: int) -> dict:
    """State of the noise stream of ``seed`` at its start (PCG64DXSM)."""
    return np.random.PCG64DXSM(np.random.SeedSequence(seed, spawn_key=(_NOISE_STREAM,))).state


def _stream_position(frame_id: int, block: int, word: int = 0) -> int:
    """Position (64-bit words) of word ``word`` of block ``block`` of frame ``frame_id`` in the noise stream."""
    return (frame_id << 64) + (block << 32) + word


def frame_generator(seed: int, frame_id: int, block: int = 0) -> np.random.Generator:
    """Random stream of block ``block`` of one frame's temporal noise.

    PCG64DXSM seeded by the seed, advanced to ``frame_id * 2**64 + block * 2**32`` words.
    """
    bit_generator = np.random.PCG64DXSM()
    bit_generator.state = _noise_state(seed)
    bit_generator.advance(_stream_position(frame_id, block))
    return np.random.Generator(bit_generator)


class Camera:
    """EMVA 1288 camera whose pixels are indexed by output number (row-major in the ROI).

    ``workers``: threads that expose blocks in parallel (default: one per CPU); the frames
    do not depend on it.
    """

    def __init__(self, params: EmulatorParams, workers: int | None = None) -> None:
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers: expected a positive int or None, got {workers!r}")
        self.params = params
        self.workers = workers or os.cpu_count() or 1
        self.block_pixels = _BLOCK_ROWS * params.camera_shape[1]
        self._pattern_seed = np.random.SeedSequence(params.seed, spawn_key=(_PATTERN_STREAM,))
        self._prnu: np.ndarray | None = None
        self._dsnu: np.ndarray | None = None
        self._hot: np.ndarray | None = None
        self._noise_state = _noise_state(params.temporal_seed)
        self._streams = threading.local()
        self._pool: ThreadPoolExecutor | None = None

    @property
    def dtype(self) -> type[np.unsignedinteger]:
        """uint8 for an 8-bit camera, uint16 for 10 to 16 bits."""
        return np.uint8 if self.params.bit_depth == 8 else np.uint16

    def _fixed_pattern(self) -> None:
        """Per-pixel PRNU, DSNU and hot pixels of the whole sensor (seeded), made once."""
        if self._prnu is not None:
            return
        p = self.params
        total = p.n_pixels
        gen = np.random.Generator(np.random.SFC64(self._pattern_seed))
        self._prnu = (1.0 + p.prnu * gen.standard_normal(total, dtype=np.float32)).clip(0).astype(np.float32)
        self._dsnu = (p.dsnu_e * gen.standard_normal(total, dtype=np.float32)).astype(np.float32)
        self._hot = gen.random(total, dtype=np.float32) < p.hot_pixel_fraction

    def dark_electrons(self, exposure_us: float) -> float:
        """Mean dark electrons per pixel at this exposure (e-)."""
        return self.params.dark_current_e_per_s * exposure_us * 1e-6

    def expose(
        self, electrons_mean: np.ndarray, exposure_us: float, frame_ids: np.ndarray, pixels: slice | None = None
    ) -> np.ndarray:
        """Turn mean photo-electrons (frames, pixels), float32, into camera counts (DN).

        ``pixels`` selects which sensor pixels (output numbers) the columns are; default
        the first ``electrons_mean.shape[1]``. ``electrons_mean`` is not modified.
        """
        out = np.empty(electrons_mean.shape, dtype=self.dtype)
        self.expose_into(electrons_mean, exposure_us, frame_ids, out, pixels)
        return out

    def expose_into(
        self, electrons_mean: np.ndarray, exposure_us: float, frame_ids: np.ndarray, out: np.ndarray,
        pixels: slice | None = None,
    ) -> int:
        """:meth:`expose` into ``out`` (the camera's dtype, the shape of ``electrons_mean``, contiguous
        rows); returns the number of pixels at the ADC maximum (counted while each tile is in cache)."""
        p = self.params
        frames, n = electrons_mean.shape
        check_rows_out(out, (frames, n), self.dtype)
        pixels = pixels or slice(0, n)
        start = pixels.start or 0
        non_uniform = bool(p.prnu or p.dsnu_e or p.hot_pixel_fraction)
        if non_uniform:
            self._fixed_pattern()
        prnu = self._prnu[pixels] if non_uniform and p.prnu else None
        dsnu = self._dsnu[pixels] if non_uniform and p.dsnu_e else None
        hot = self._hot[pixels] if non_uniform and p.hot_pixel_fraction else None
        noise = _Noise(p, self.dark_electrons(exposure_us), 0.0 if dsnu is None else float(np.abs(dsnu).max()))
        tasks = self._tasks(frames, start, n)

        def expose_tile(task: tuple[slice, slice, int]) -> int:
            rows, cols, block = task
            lam = electrons_mean[rows, cols]
            if prnu is not None:
                lam = lam * prnu[cols]
            skip = start + cols.start - block * self.block_pixels  # pixels of the block before this tile
            counts = out[rows, cols]
            noise.expose(self, lam, frame_ids[rows], block, skip, None if dsnu is None else dsnu[cols], counts)
            if hot is not None:
                counts[:, hot[cols]] = p.max_dn
            return int(np.count_nonzero(counts == p.max_dn))

        if len(tasks) == 1 or self.workers == 1:
            return sum(map(expose_tile, tasks))
        return sum(self._workers().map(expose_tile, tasks))

    def _tasks(self, frames: int, start: int, n: int) -> list[tuple[slice, slice, int]]:
        """Tiles (frame rows, columns, noise block) covering the output: one block of one
        frame each, or a group of frames when a frame's pixels lie in one block."""
        size = self.block_pixels
        first, last = start // size, (start + max(n, 1) - 1) // size
        cols = [
            (slice(max(b * size, start) - start, min((b + 1) * size, start + n) - start), b)
            for b in range(first, last + 1)
        ]
        group = max(1, size // max(n, 1)) if len(cols) == 1 else 1
        return [(slice(lo, min(lo + group, frames)), c, b) for lo in range(0, frames, group) for c, b in cols]

    def _workers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="camera")
        return self._pool

    def _seek(self, frame_id: int, block: int, word: int) -> np.random.Generator:
        """This thread's generator, moved to word ``word`` of the stream of block ``block`` of
        frame ``frame_id`` by one jump from where it stands (the generator's period is 2**128:
        a jump back is a jump forward modulo it); re-seeded first if its place is unknown."""
        local = self._streams
        target = _stream_position(frame_id, block, word)
        if getattr(local, "position", None) is None:
            if getattr(local, "gen", None) is None:
                local.gen = np.random.Generator(np.random.PCG64DXSM())
            local.gen.bit_generator.state = self._noise_state
            local.position = 0
        local.gen.bit_generator.advance((target - local.position) % _PERIOD)
        local.position = target
        return local.gen

    def _stream_words(self, frame_id: int, block: int, word: int, count: int) -> np.ndarray:
        """Words ``word`` to ``word + count - 1`` (uint64) of the stream of block ``block`` of frame ``frame_id``."""
        words = self._seek(frame_id, block, word).bit_generator.random_raw(count)
        self._streams.position += count
        return words

    def _frame_stream(self, frame_id: int, block: int = 0, word: int = 0) -> np.random.Generator:
        """``frame_generator(seed, frame_id, block)`` from its 64-bit word ``word`` on (this
        thread's generator: valid until the thread's next draw)."""
        gen = self._seek(frame_id, block, word)
        self._streams.position = None  # the caller draws an unknown number of words
        return gen

    def close(self) -> None:
        """Stop the worker threads (they start again if needed)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class _Noise:
    """The constants of one exposure and the per-tile noise arithmetic (float32, in place)."""

    def __init__(self, p: EmulatorParams, dark_e: float, dsnu_max_e: float) -> None:
        self.dark = dark_e
        self.read = np.float32(p.read_noise_e)
        self.variance_floor = np.float32(dark_e + p.read_noise_e**2)  # added to the mean photo-electrons
        # Shot noise is drawn exactly where read noise and quantisation (1/12 DN^2) leave it skewed.
        self.poisson_band = _poisson_band(p.read_noise_e**2 + 1.0 / (12.0 * p.system_gain**2))
        self.full_well = p.full_well_e
        self.gain = np.float32(p.system_gain)
        self.shift = p.system_gain * dark_e + p.offset_dn  # DN of the dark signal and the offset
        self.max_dn = p.max_dn
        lowest_full = p.system_gain * (p.full_well_e - _CAP_SIGMAS * p.read_noise_e - dsnu_max_e) + p.offset_dn
        self.cap = lowest_full + 0.5 < p.max_dn  # the full well can show below the ADC maximum

    def expose(
        self, camera: Camera, lam: np.ndarray, frame_ids: np.ndarray, block: int, skip: int,
        dsnu: np.ndarray | None, out: np.ndarray,
    ) -> None:
        """Counts of a tile with mean photo-electrons ``lam`` (frames, pixels) into ``out``.

        The tile starts ``skip`` pixels into noise block ``block``: its normals are those of
        the block's whole Box-Muller chunks that hold its pixels, so a pixel's normal is the
        same whatever part of the sensor is read.
        """
        frames, n = lam.shape
        first, end = skip // (2 * _CHUNK), -(-(skip + n) // (2 * _CHUNK))  # the chunks of the tile's pixels
        words = (end - first) * _CHUNK
        raw = np.empty((frames, words), dtype=np.uint64) if frames > 1 else None  # a lone frame's words: not copied
        exact = {}
        if self.poisson_band is not None:
            mu = lam + np.float32(self.dark)
            dim = (mu > self.poisson_band[0]) & (mu < self.poisson_band[1])
            has_dim = dim.any(axis=1)
        for row, frame_id in enumerate(frame_ids):
            draw = camera._stream_words(int(frame_id), block, first * _CHUNK, words)
            if raw is None:
                raw = draw[None]
            else:
                raw[row] = draw
            if self.poisson_band is not None and has_dim[row]:
                # Drawn after the normals' words: Poisson draws take a data-dependent share of
                # the stream, so a pixel entering the band must not shift any pixel's normal.
                where = np.flatnonzero(dim[row])
                gen = camera._frame_stream(int(frame_id), block, end * _CHUNK)
                exact[row] = (where, gen.poisson(mu[row, where]))
        offset = skip - 2 * _CHUNK * first
        z = _box_muller(raw)[:, offset : offset + n]
        e = lam + self.variance_floor  # electrons, less the dark signal
        np.sqrt(e, out=e)
        e *= z
        e += lam
        if self.cap:
            np.minimum(e, self.read * z + np.float32(self.full_well - self.dark), out=e)
        for row, (where, counts) in exact.items():
            e[row, where] = np.minimum(counts, self.full_well) - self.dark + self.read * z[row, where]
        if dsnu is not None:
            e += dsnu
        # K e + shift rounded to the nearest count (ties to even) and clipped to the camera's dtype, in one pass.
        cv2.addWeighted(e, float(self.gain), e, 0.0, self.shift, out, _CV_DEPTH[out.dtype.type])
        if self.max_dn < np.iinfo(out.dtype).max:  # 10 to 14 bits in uint16
            np.minimum(out, self.max_dn, out=out)


def _box_muller(raw: np.ndarray) -> np.ndarray:
    """Standard normals, float32 (F, 2 W), from random 64-bit words (F, W), W a multiple of ``_CHUNK``.

    Chunk c of the words (``_CHUNK`` words, seen as 2 ``_CHUNK`` little-endian 32-bit halves)
    gives normals ``2 c _CHUNK`` on: half q < ``_CHUNK`` is the radius uniform u in (0, 1]
    (radius ``sqrt(-2 ln u)``, at most 5.65) and half ``_CHUNK + q`` the angle uniform v in
    [0, 1) of pair q, whose cosine is normal ``2 c _CHUNK + q`` and sine normal
    ``(2 c + 1) _CHUNK + q``. The uniforms are built from the bits (exponent of 1.0), not by
    conversion, in place in ``raw``; OpenCV's log, sqrt and polar-to-Cartesian conversion
    (accurate to ~1.5e-7) take half the time of numpy's.
    """
    frames, words = raw.shape
    rows = frames * (words // _CHUNK)  # one chunk per row: OpenCV's vectorised log, sqrt and polar-to-Cartesian
    bits = raw.view(np.dtype("<u4")).reshape(rows, 2 * _CHUNK)
    bits >>= np.uint32(9)
    bits |= np.uint32(0x3F800000)  # floats in [1, 2)
    floats = bits.view(np.float32)
    radius = floats[:, :_CHUNK]
    np.subtract(np.float32(2.0), radius, out=radius)  # u in (0, 1]
    cv2.log(radius, radius)
    radius *= np.float32(-2.0)
    cv2.sqrt(radius, radius)
    angle = floats[:, _CHUNK:]
    angle *= np.float32(2.0 * math.pi)  # 2 pi (1 + v): the same cosine and sine as 2 pi v
    z = np.empty((rows, 2, _CHUNK), dtype=np.float32)
    cv2.polarToCart(radius, angle, z[:, 0], z[:, 1])  # radius cos, radius sin (1.5e-7 absolute)
    return z.reshape(frames, 2 * words)


@functools.lru_cache(maxsize=64)
def _poisson_band(noise_variance_e2: float) -> tuple[float, float] | None:
    """Mean electrons (lo, hi) between which shot noise is drawn exactly, or None.

    ``noise_variance_e2``: the variance added to the shot noise (read noise and ADC
    quantisation, e-^2). The normal limit is used where the skewness of the sum,
    ``mu / (mu + noise_variance)**1.5``, is at most ``_MAX_SKEW`` (that of a Poisson law of
    100 e- without added noise, the limit the model always accepted).
    """

    def skew(mu: float) -> float:
        return mu / (mu + noise_variance_e2) ** 1.5

    if noise_variance_e2 <= 0:
        raise ValueError(f"noise_variance_e2: expected > 0 e-^2, got {noise_variance_e2}")
    peak = 2.0 * noise_variance_e2  # skew rises up to here, then falls (below 1 / sqrt(mu): under _MAX_SKEW past 100)
    if skew(peak) <= _MAX_SKEW:
        return None

    def crossing(lo: float, hi: float, rising: bool) -> float:
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if (skew(mid) > _MAX_SKEW) == rising:
                hi = mid
            else:
                lo = mid
        return 0.5 * (lo + hi)

    return crossing(0.0, peak, rising=True), crossing(peak, 1.0 / _MAX_SKEW**2, rising=False)
