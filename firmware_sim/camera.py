"""The camera: the EMVA 1288 linear model, frame by frame (PHYSICS.md 2).

Per pixel and frame: mean photo-electrons ``mu_e = eta * mu_p`` (the optics give
``mu_p``), electrons ``e ~ Poisson(mu_e + dark_current * t_exp)`` capped at the full well,
plus read noise ``N(0, sigma_read^2)`` electrons, and
``DN = clip(round(K * e) + offset, 0, 2**bits - 1)``.
Optional fixed-pattern non-uniformities: PRNU (relative gain per pixel), DSNU (dark
electrons per pixel) and hot pixels (stuck at the ADC maximum).

Shot noise is drawn exactly (Poisson) below ``_GAUSS_ABOVE_E`` electrons and by its
normal limit above, where the two agree to well within the ADC's quantisation.

Noise is keyed by frame id: frame f always gets the same noise for the same seed,
however frames are grouped into batches, so a result does not depend on chunking.
"""

from __future__ import annotations

import numpy as np

from .params import EmulatorParams

_NOISE_STREAM = 0x6E6F6973  # "nois"
_PATTERN_STREAM = 0x66706E20  # fixed-pattern noise
_GAUSS_ABOVE_E = 100.0


def frame_generator(seed: int, frame_id: int) -> np.random.Generator:
    """Random stream of one frame's temporal noise."""
    return np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed, spawn_key=(_NOISE_STREAM, frame_id))))


class Camera:
    """EMVA 1288 camera whose pixels are indexed by output number (row-major in the ROI)."""

    def __init__(self, params: EmulatorParams) -> None:
        self.params = params
        self._pattern_seed = np.random.SeedSequence(params.seed, spawn_key=(_PATTERN_STREAM,))
        self._prnu: np.ndarray | None = None
        self._dsnu: np.ndarray | None = None
        self._hot: np.ndarray | None = None

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
        if non_uniform and p.dsnu_e:
            lam = np.maximum(lam + self._dsnu[pixels], 0)
        gain = np.float32(p.system_gain)
        out = np.empty((frames, n), dtype=self.dtype)
        for row, frame_id in enumerate(frame_ids):
            out[row] = self._expose_frame(lam[row], frame_generator(p.seed, int(frame_id)), gain)
        if non_uniform and p.hot_pixel_fraction:
            out[:, self._hot[pixels]] = p.max_dn
        return out

    def _expose_frame(self, lam: np.ndarray, gen: np.random.Generator, gain: np.float32) -> np.ndarray:
        p = self.params
        z = gen.standard_normal(lam.size, dtype=np.float32)
        electrons = lam + np.sqrt(lam) * z
        dim = lam < _GAUSS_ABOVE_E
        if dim.any():
            electrons[dim] = gen.poisson(lam[dim])
        np.minimum(electrons, np.float32(p.full_well_e), out=electrons)
        if p.read_noise_e:
            electrons += np.float32(p.read_noise_e) * gen.standard_normal(lam.size, dtype=np.float32)
        dn = np.rint(electrons * gain)
        dn += np.float32(p.offset_dn)
        np.clip(dn, 0, p.max_dn, out=dn)
        return dn
