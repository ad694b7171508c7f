"""The structured medium: unitary FFTs and random phase diagonals, for full-size devices.

A dense transmission matrix of a full device (1,039,680 mirrors x ~2,000,000 pixels) would
take 16 TB. This medium computes the field as

    R x = sqrt(L / N) P_out F D3 F D2 F D1 P_in x,

where P_in zero-pads the N features to a length L >= max(N, M) that the FFT handles fast
(``scipy.fft.next_fast_len``, at least ``_MIN_LENGTH``), F is the unitary FFT of length L
(``scipy.fft.fft``, ``norm="ortho"``), D_k = diag(exp(i phi_k)) with phases phi_k i.i.d.
uniform on [0, 2 pi), and P_out keeps the first M entries (output j is row j). A product
costs three FFTs of length L per input row and the medium keeps six vectors of length L
(three phase vectors, float64, and their diagonals, complex64).

Moments (docs/physics.md section 1.7). With independent uniform phases, E[d_a conj(d_b)] = delta_ab, so
for U = F D3 F D2 F D1: E|U_ji|^2 = sum_ab |F_ja|^2 |F_ab|^2 |F_bi|^2 = 1/L exactly, hence
E|R_ji|^2 = 1/N as for the dense medium, and E[R^H R] = (M / N) I (the off-diagonal terms
vanish through D1). Entries are sums of L^2 unit-modulus terms with random phases: close
to circular Gaussian, but not exactly (and not independent: U is unitary).

Seed. The phases of D_k are drawn from the stream ``(seed, "medi", "strc", L, k)``: the same
seed and L give the same medium. Unlike the dense medium, the medium of another L is
another medium: a smaller device's matrix is a block of a larger one only when both use
the same L.

Drift (docs/physics.md section 3.1). Each phase performs a Brownian motion: between device times t0
and t1, phi_k += sqrt((t1 - t0) / (3 tau)) * n, n standard normal, drawn from the stream
``(seed, "drif", "strc", L, step, k)``. Then E[exp(i (phi(t1) - phi(t0)))] = exp(-(t1 - t0) / (6 tau))
per diagonal, so the field keeps the correlation exp(-(t1 - t0) / (2 tau)) = sqrt(1 - eps),
eps = 1 - exp(-(t1 - t0) / tau), exactly as the dense medium's Ornstein-Uhlenbeck
process, and splitting an interval gives the same law; the phases stay uniform (stationary).
A new L while drifting draws new phases and brings them to the current time (a valid
state of the process): the history is not carried to another length.
"""

from __future__ import annotations

import logging
import math
from typing import ClassVar

import numpy as np
import scipy.fft

from .medium import DRIFT_STREAM, MEDIUM_STREAM, Medium, MediumKind, stream_generator

logger = logging.getLogger(__name__)

_STRUCTURED_STREAM = 0x73747263  # "strc"
_STAGES = 3  # diagonals D1, D2, D3, each followed by an FFT
_MIN_LENGTH = 1024  # at least this many terms mix in each FFT: near-Gaussian entries at small sizes
FFT_FLOP_PER_S = 2e9  # complex64 FFT throughput, 2 cores (for estimates: docs/physics.md section 1.8)


class StructuredMedium(Medium):
    """Seeded FFT-based transmission matrix ``sqrt(L/N) P_out F D3 F D2 F D1 P_in``, with optional drift.

    Same interface as :class:`~firmware_sim.medium_dense.DenseMedium` (see
    :class:`~firmware_sim.medium.Medium`); ``cache_mb`` is not used (the medium keeps six
    vectors of length L). Products are computed in batches of rows of about ``unit_mb``
    (at least ``workers`` rows), the FFTs of a batch spread over ``workers`` threads.
    """

    kind: ClassVar[MediumKind] = "structured"

    def __init__(
        self,
        seed: int,
        cache_mb: float = 4096.0,
        drift_tau_s: float | None = None,
        workers: int | None = None,
        unit_mb: float = 64.0,
    ) -> None:
        super().__init__(seed, cache_mb, drift_tau_s, workers, unit_mb)
        self._length = 0  # L of the phases in use (0: none yet)
        self._phases = np.empty((_STAGES, 0))  # phi_k (rad), float64 (3, L)
        self._diagonals = np.empty((_STAGES, 0), dtype=np.complex64)  # exp(i phi_k), complex64 (3, L)
        self._phase_time_s = 0.0  # device time the phases are at (s)
        self._drift_step = 0

    @staticmethod
    def length(n_features: int, n_outputs: int) -> int:
        """FFT length L used for N features and M outputs: fast for ``scipy.fft``, >= max(N, M, 1024)."""
        return scipy.fft.next_fast_len(max(n_features, n_outputs, _MIN_LENGTH))

    # ------------------------------------------------------------------ the diagonals in use
    def _current(self, length: int) -> np.ndarray:
        """Diagonals (complex64 (3, L)) of length L at the current device time."""
        if length != self._length:
            if self.drift_tau_s and self._length:
                logger.info("structured medium: FFT length %d -> %d, drift history restarts from the seed",
                            self._length, length)
            self._phases = np.stack([
                stream_generator(self.seed, MEDIUM_STREAM, _STRUCTURED_STREAM, length, k).random(length) * (2 * math.pi)
                for k in range(_STAGES)
            ])
            self._length, self._phase_time_s = length, 0.0
            self._diagonals = np.exp(1j * self._phases).astype(np.complex64)
        if self.drift_tau_s and self._time_s > self._phase_time_s:
            self._drift(self._time_s - self._phase_time_s)
            self._phase_time_s = self._time_s
        return self._diagonals

    def _drift(self, seconds: float) -> None:
        """Brownian phases: each phi_k gains N(0, seconds / (3 tau)) per entry, from a fresh stream."""
        self._drift_step += 1
        sigma = math.sqrt(seconds / (_STAGES * self.drift_tau_s))
        for k in range(_STAGES):
            steps = stream_generator(
                self.seed, DRIFT_STREAM, _STRUCTURED_STREAM, self._length, self._drift_step, k
            ).standard_normal(self._length)
            self._phases[k] += sigma * steps
        np.remainder(self._phases, 2 * math.pi, out=self._phases)  # keep float64 precision on the circle
        self._diagonals = np.exp(1j * self._phases).astype(np.complex64)

    # ------------------------------------------------------------------ hooks
    def _do_prepare(self, n_features: int, n_outputs: int) -> None:
        self._current(self.length(n_features, n_outputs))

    def _estimate_seconds(self, batch: int, n_features: int, n_outputs: int) -> float:
        """Three FFTs of length L per row, about 5 L log2(L) flops each."""
        length = self.length(n_features, n_outputs)
        return batch * _STAGES * 5.0 * length * math.log2(length) / FFT_FLOP_PER_S

    def _do_field(self, x: np.ndarray, n_outputs: int) -> np.ndarray:
        """``R x`` for x (B, N): three FFTs of length L per row, in batches of about ``unit_bytes``."""
        batch, n_features = x.shape
        length = self.length(n_features, n_outputs)
        diagonals = self._current(length)
        first = diagonals[0, :n_features] * np.complex64(math.sqrt(length / n_features))  # sqrt(L/N) D1 P_in
        out = np.empty((batch, n_outputs), dtype=np.complex64)
        rows = max(1, min(batch, max(self.workers, self.unit_bytes // (length * 8))))  # 1 for an empty batch
        buffer = np.empty((rows, length), dtype=np.complex64)
        for start in range(0, batch, rows):
            work = buffer[: min(rows, batch - start)]
            np.multiply(x[start : start + work.shape[0]], first, out=work[:, :n_features], casting="same_kind")
            work[:, n_features:] = 0
            for k in range(_STAGES):
                if k:
                    work *= diagonals[k]
                work = scipy.fft.fft(work, axis=1, norm="ortho", overwrite_x=True, workers=self.workers)
            out[start : start + work.shape[0]] = work[:, :n_outputs]
        return out
