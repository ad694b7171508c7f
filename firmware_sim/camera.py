"""The camera: the EMVA 1288 linear model, frame by frame (docs/physics.md section 2.1).

Per pixel and frame: mean photo-electrons ``mu_e = eta * mu_p`` (the optics give
``mu_p``), electrons ``e ~ Poisson(mu_e + dark_current * t_exp)`` capped at the full well,
plus read noise ``N(0, sigma_read^2)`` electrons, and
``DN = clip(round(K * e + offset), 0, 2**bits - 1)`` (the offset is rounded with the
signal, so a fractional offset stays the mean dark level).
Optional fixed-pattern non-uniformities: PRNU (relative gain per pixel), DSNU (a fixed
zero-mean dark offset per pixel, electrons, added to the signal without shot noise, so
the mean dark level is unchanged) and hot pixels (stuck at the ADC maximum).

Shot noise is drawn exactly (Poisson) below ``_GAUSS_ABOVE_E`` electrons and by its
normal limit above, where the two agree to well within the ADC's quantisation.

Noise is keyed by frame id: frame f always gets the same noise for the same seed,
however frames are grouped into batches, so a result does not depend on chunking. Frame
f's stream is a Philox counter-based generator keyed by the seed with its counter at
``f * 2**64`` (streams of different frames never overlap; any frame's is reached at once).
Frames are processed in blocks, in parallel worker threads.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .params import EmulatorParams

_NOISE_STREAM = 0x6E6F6973  # "nois"
_PATTERN_STREAM = 0x66706E20  # fixed-pattern noise
_GAUSS_ABOVE_E = 100.0


_BLOCK_PIXELS = 1 << 17  # pixels per block of frames processed at once (stays in cache)
_EMPTY_PHILOX_BUFFER = np.zeros(4, dtype=np.uint64)


def _noise_key(seed: int) -> np.ndarray:
    return np.random.SeedSequence(seed, spawn_key=(_NOISE_STREAM,)).generate_state(2, np.uint64)


def _frame_counter(frame_id: int) -> np.ndarray:
    return np.array([0, frame_id, 0, 0], dtype=np.uint64)


def frame_generator(seed: int, frame_id: int) -> np.random.Generator:
    """Random stream of one frame's temporal noise (Philox, counter at ``frame_id * 2**64``)."""
    return np.random.Generator(np.random.Philox(key=_noise_key(seed), counter=_frame_counter(frame_id)))


class Camera:
    """EMVA 1288 camera whose pixels are indexed by output number (row-major in the ROI)."""

    def __init__(self, params: EmulatorParams) -> None:
        self.params = params
        self._pattern_seed = np.random.SeedSequence(params.seed, spawn_key=(_PATTERN_STREAM,))
        self._prnu: np.ndarray | None = None
        self._dsnu: np.ndarray | None = None
        self._hot: np.ndarray | None = None
        self._noise_key = _noise_key(params.seed)
        self._streams = threading.local()
        self._pool: ThreadPoolExecutor | None = None

    @property
    def dtype(self) -> type[np.unsignedinteger]:
        """uint8 for an 8-bit camera, uint16 for 10 to 16 bits."""
        return np.uint8 if self.params.bit_depth == 8 else np.uint16

    def _fixed_pattern(self, n_pixels: int) -> None:
        """Per-pixel PRNU, DSNU and hot pixels of the first ``n_pixels`` pixels (seeded)."""
        if self._prnu is not None and self._prnu.size >= n_pixels:
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
        """Turn mean photo-electrons (frames, pixels) into camera counts (DN).

        ``pixels`` selects which sensor pixels (output numbers) the columns are; default
        the first ``electrons_mean.shape[1]``.
        """
        p = self.params
        frames, n = electrons_mean.shape
        pixels = pixels or slice(0, n)
        non_uniform = p.prnu or p.dsnu_e or p.hot_pixel_fraction
        if non_uniform:
            self._fixed_pattern(pixels.stop)
            electrons_mean = electrons_mean * self._prnu[pixels]
        lam = electrons_mean + np.float32(self.dark_electrons(exposure_us))
        dsnu = self._dsnu[pixels] if non_uniform and p.dsnu_e else None
        gain = np.float32(p.system_gain)
        out = np.empty((frames, n), dtype=self.dtype)
        step = max(1, _BLOCK_PIXELS // max(n, 1))
        blocks = [slice(lo, min(lo + step, frames)) for lo in range(0, frames, step)]

        def expose_block(rows: slice) -> None:
            out[rows] = self._expose_frames(lam[rows], frame_ids[rows], gain, dsnu)

        if len(blocks) == 1:
            expose_block(blocks[0])
        else:
            list(self._workers().map(expose_block, blocks))
        if non_uniform and p.hot_pixel_fraction:
            out[:, self._hot[pixels]] = p.max_dn
        return out

    def _workers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="camera")
        return self._pool

    def _frame_stream(self, frame_id: int) -> np.random.Generator:
        """``frame_generator(seed, frame_id)``, re-keying this thread's generator (much cheaper)."""
        gen = getattr(self._streams, "gen", None)
        if gen is None:
            gen = self._streams.gen = np.random.Generator(np.random.Philox(key=self._noise_key))
        gen.bit_generator.state = {
            "bit_generator": "Philox",
            "state": {"counter": _frame_counter(frame_id), "key": self._noise_key},
            "buffer": _EMPTY_PHILOX_BUFFER,
            "buffer_pos": 4,
            "has_uint32": 0,
            "uinteger": 0,
        }
        return gen

    def _expose_frames(
        self, lam: np.ndarray, frame_ids: np.ndarray, gain: np.float32, dsnu: np.ndarray | None
    ) -> np.ndarray:
        """Counts (float32, before the cast) of a block of frames with mean electrons ``lam`` (frames, pixels)."""
        p = self.params
        # Each frame's stream gives its shot-noise normals, its read-noise normals, then its Poisson draws.
        z = np.empty((lam.shape[0], 2 if p.read_noise_e else 1, lam.shape[1]), dtype=np.float32)
        dim = lam < _GAUSS_ABOVE_E
        dim_frames = dim.any(axis=1)
        counts = []
        for row, frame_id in enumerate(frame_ids):
            gen = self._frame_stream(int(frame_id))
            gen.standard_normal(out=z[row], dtype=np.float32)
            if dim_frames[row]:
                # Drawn last: Poisson draws take a data-dependent share of the stream, so a
                # pixel crossing the threshold must not shift any other pixel's noise.
                counts.append((row, gen.poisson(lam[row][dim[row]])))
        electrons = np.sqrt(lam)
        electrons *= z[:, 0]
        electrons += lam
        for row, values in counts:
            electrons[row][dim[row]] = values
        np.minimum(electrons, np.float32(p.full_well_e), out=electrons)
        if p.read_noise_e:
            read = z[:, 1]
            read *= np.float32(p.read_noise_e)
            electrons += read
        if dsnu is not None:
            electrons += dsnu
        electrons *= gain
        electrons += np.float32(p.offset_dn)
        np.rint(electrons, out=electrons)
        np.clip(electrons, 0, p.max_dn, out=electrons)
        return electrons

    def close(self) -> None:
        """Stop the worker threads (they start again if needed)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
