"""Encodings of the output error for a binary DMD (optical DFA feedback).

``OPU.linear_transform(x, bits=b)`` scales each row of x by its largest magnitude m,
rounds ``x / m`` to the ``2^b - 1`` levels of b bits, and sends the positive and the
negative part as bit planes (one binary frame pair per distinct non-empty plane, the sign
split into two planes); the magnitude m is multiplied back digitally. An encoder turns the
error rows e into values that this quantisation represents exactly, so the optical
projection is ``M encode(e)`` up to camera noise:

- :class:`StochasticRounding` (default, ``bits=1``: stochastic ternarisation): each
  ``|e_i| / m`` is rounded up or down to a neighbouring level at random, with the
  probabilities that make the rounding unbiased (``E[encode(e)] = e``). With ``bits=1`` the
  row becomes ``m * t`` with t in {-1, 0, 1}: two binary planes (positive, negative).
- :class:`ThresholdTernary`: deterministic ``sign(e_i) * [|e_i| >= threshold * m]`` (biased;
  for comparison).
- :class:`BitPlanes`: ``e`` as it stands, rounded by ``linear_transform`` to ``bits`` bits
  (``2 * bits`` planes).

``keep_magnitude`` (default True) keeps the per-row magnitude m (applied digitally); with
False every encoded row has largest magnitude 1.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..validation import check_bool, check_int, check_number

__all__ = ["BitPlanes", "ErrorEncoder", "StochasticRounding", "ThresholdTernary", "make_encoder"]


class ErrorEncoder(ABC):
    """Error rows (R, d) float64 -> encoded rows, exact on ``bits``-bit planes."""

    def __init__(self, bits: int, keep_magnitude: bool) -> None:
        self.bits = check_int(bits, "bits", low=1, high=16)
        self.keep_magnitude = check_bool(keep_magnitude, "keep_magnitude")

    def encode(self, e: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Encoded rows (R, d) float64 of error rows ``e`` (R, d); all-zero rows stay zero."""
        if not isinstance(e, np.ndarray) or e.ndim != 2:
            raise ValueError(f"e: expected a 2-D numpy array (rows, error features), got {getattr(e, 'shape', type(e))}")
        m = np.max(np.abs(e), axis=1, keepdims=True)
        unit = np.divide(e, m, out=np.zeros_like(e, dtype=np.float64), where=m > 0)
        levels = self._do_encode(unit, rng)
        return levels * m if self.keep_magnitude else levels

    @abstractmethod
    def _do_encode(self, unit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Rows of largest magnitude 1 (or 0) -> values on the grid ``k / (2^bits - 1)``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bits={self.bits}, keep_magnitude={self.keep_magnitude})"


class StochasticRounding(ErrorEncoder):
    """Unbiased stochastic rounding to ``bits`` bits (``bits=1``: stochastic ternarisation)."""

    def __init__(self, bits: int = 1, keep_magnitude: bool = True) -> None:
        super().__init__(bits, keep_magnitude)

    def _do_encode(self, unit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        steps = (1 << self.bits) - 1
        scaled = np.abs(unit) * steps
        q = np.floor(scaled + rng.random(unit.shape))  # rounds up with probability frac(scaled)
        return np.sign(unit) * np.minimum(q, steps) / steps


class ThresholdTernary(ErrorEncoder):
    """Deterministic ternarisation: ``sign(e) * [|e| >= threshold * max|e|]`` per row."""

    def __init__(self, threshold: float = 0.5, keep_magnitude: bool = True) -> None:
        super().__init__(1, keep_magnitude)
        self.threshold = check_number(threshold, "threshold", low=0.0, low_open=True, high=1.0)

    def _do_encode(self, unit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.sign(unit) * (np.abs(unit) >= self.threshold)


class BitPlanes(ErrorEncoder):
    """The error itself, rounded to ``bits`` bits by the bit-plane encoding (deterministic)."""

    def __init__(self, bits: int = 4, keep_magnitude: bool = True) -> None:
        super().__init__(bits, keep_magnitude)

    def _do_encode(self, unit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        steps = (1 << self.bits) - 1
        return np.rint(unit * steps) / steps


_NAMES = {"stochastic": StochasticRounding, "threshold": ThresholdTernary, "planes": BitPlanes}


def make_encoder(encoding: "ErrorEncoder | str") -> ErrorEncoder:
    """An encoder from an instance or a name: ``"stochastic"``, ``"threshold"`` or ``"planes"``."""
    if isinstance(encoding, ErrorEncoder):
        return encoding
    if isinstance(encoding, str) and encoding in _NAMES:
        return _NAMES[encoding]()
    raise ValueError(f"encoding: expected an ErrorEncoder or one of {sorted(_NAMES)}, got {encoding!r}")
