"""The laser: power setpoint, per-frame jitter and slow wander (docs/physics.md section 3.2).

Relative power of frame f at device time t: ``(1 + jitter * z_f) * (1 + wander(t))``.
``z_f`` is keyed by frame id (independent of batching); ``wander(t)`` is a random function
of time with standard deviation ``laser_wander`` and correlation time ``laser_wander_tau_s``
(tau), made of a few seeded sinusoids so that it is defined at any time. Their frequencies
are Lorentzian (Cauchy, scale 1 / (2 pi tau)) and their phases uniform, so that over seeds
the autocorrelation is ``exp(-|dt| / tau)``, that of an Ornstein-Uhlenbeck process.
"""

from __future__ import annotations

import numpy as np

from .params import EmulatorParams

_JITTER_STREAM = 0x6C617372  # "lasr"
_WANDER_STREAM = 0x77616E64  # "wand"
_BLOCK = 4096
_WANDER_TERMS = 8


class Laser:
    """Power of the emulated laser (mW), frame by frame."""

    def __init__(self, params: EmulatorParams) -> None:
        self.params = params
        self.power_mw = params.laser_power_mw
        self.enabled = True
        gen = np.random.Generator(np.random.SFC64(np.random.SeedSequence(params.temporal_seed, spawn_key=(_WANDER_STREAM,))))
        # Lorentzian (Cauchy) frequencies of scale 1 / (2 pi tau): E cos(2 pi f dt) = exp(-|dt| / tau)
        self._wander_freq_hz = gen.standard_cauchy(_WANDER_TERMS) / (2 * np.pi * params.laser_wander_tau_s)
        self._wander_phase = gen.uniform(0, 2 * np.pi, _WANDER_TERMS)

    def _jitter(self, frame_ids: np.ndarray) -> np.ndarray:
        z = np.empty(frame_ids.size, dtype=np.float64)
        blocks = frame_ids // _BLOCK
        for block in np.unique(blocks):
            seq = np.random.SeedSequence(self.params.temporal_seed, spawn_key=(_JITTER_STREAM, int(block)))
            values = np.random.Generator(np.random.SFC64(seq)).standard_normal(_BLOCK)
            mask = blocks == block
            z[mask] = values[frame_ids[mask] % _BLOCK]
        return z

    def wander(self, times_s: np.ndarray) -> np.ndarray:
        """Relative slow power deviation (dimensionless) at device times ``times_s`` (seconds)."""
        phases = 2 * np.pi * np.outer(times_s, self._wander_freq_hz) + self._wander_phase
        return self.params.laser_wander * np.sqrt(2.0 / _WANDER_TERMS) * np.cos(phases).sum(axis=1)

    def relative_power(self, frame_ids: np.ndarray, times_s: np.ndarray) -> np.ndarray:
        """Power of each frame relative to the nominal ``laser_power_mw`` (0 when off; never negative)."""
        if not self.enabled:
            return np.zeros(frame_ids.size)
        rel = self.power_mw / self.params.laser_power_mw
        jitter = np.maximum(1.0 + self.params.laser_jitter * self._jitter(frame_ids), 0.0)
        return rel * jitter * np.maximum(1.0 + self.wander(times_s), 0.0)
