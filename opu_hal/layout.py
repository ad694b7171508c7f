"""Where features go on the DMD: input ROI and macro-pixel replication.

A feature drives a square *macro-pixel* of ``factor x factor`` mirrors. Features are laid
out row-major on a grid of ``grid_shape`` macro-pixels (1-D inputs on a near-square grid
whose last row may be partial; 2-D inputs keep their own shape), and the grid is centred
on the DMD. Strategies (the names lightonml users know):

- ``"full"``: the largest macro-pixel factor whose grid still fits the DMD, so the input
  fills as much of the DMD as it can (most light, best signal).
- ``"small"``: one mirror per feature, centred (the smallest input ROI).
- ``"auto"``: ``"full"`` when features can take at least 2 x 2 mirrors each, else ``"small"``.

The device reads a feature back from the centre mirror of its macro-pixel.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

Strategy = Literal["auto", "full", "small"]
STRATEGIES: tuple[str, ...] = ("auto", "full", "small")


class DMDLayout(BaseModel):
    """Placement of ``n_features`` features on a DMD of ``dmd_shape`` mirrors (rows, columns)."""

    model_config = ConfigDict(frozen=True)

    dmd_shape: tuple[int, int]
    n_features: int
    grid_shape: tuple[int, int]
    factor: int
    offset: tuple[int, int]

    @property
    def roi_shape(self) -> tuple[int, int]:
        """Mirrors spanned by the input (rows, columns)."""
        return (self.grid_shape[0] * self.factor, self.grid_shape[1] * self.factor)

    @property
    def lit_fraction(self) -> float:
        """Fraction of the DMD's mirrors that the all-ones input lights: ``n_features * factor**2 / mirrors``."""
        return self.n_features * self.factor**2 / (self.dmd_shape[0] * self.dmd_shape[1])

    def mirror_map(self) -> np.ndarray:
        """Feature index of every mirror, int32 of ``dmd_shape``; -1 where no feature is shown."""
        rows, cols = self.grid_shape
        cell = np.arange(rows * cols, dtype=np.int32).reshape(rows, cols)
        cell[cell >= self.n_features] = -1
        roi = np.repeat(np.repeat(cell, self.factor, axis=0), self.factor, axis=1)
        mirrors = np.full(self.dmd_shape, -1, dtype=np.int32)
        y0, x0 = self.offset
        mirrors[y0 : y0 + roi.shape[0], x0 : x0 + roi.shape[1]] = roi
        return mirrors

    def sample_points(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column (mirrors) of the centre mirror of each feature's macro-pixel."""
        index = np.arange(self.n_features)
        half = self.factor // 2
        rows = self.offset[0] + (index // self.grid_shape[1]) * self.factor + half
        cols = self.offset[1] + (index % self.grid_shape[1]) * self.factor + half
        return rows, cols

    def to_mirrors(self, features: np.ndarray) -> np.ndarray:
        """Binary features (B, n_features) to mirror frames, bool (B, rows, columns)."""
        padded = np.zeros((features.shape[0], self.n_features + 1), dtype=bool)
        padded[:, :-1] = features
        return padded[:, self.mirror_map()]

    def from_mirrors(self, frames: np.ndarray) -> np.ndarray:
        """Mirror frames (B, rows, columns) back to features, uint8 (B, n_features)."""
        rows, cols = self.sample_points()
        return frames[:, rows, cols].astype(np.uint8)


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"input_roi_strategy: expected one of {STRATEGIES}, got {strategy!r}")


def _largest_factor(grid_shape: tuple[int, int], dmd_shape: tuple[int, int]) -> int:
    return min(dmd_shape[0] // grid_shape[0], dmd_shape[1] // grid_shape[1])


def _centred(dmd_shape: tuple[int, int], n: int, grid: tuple[int, int], factor: int) -> DMDLayout:
    offset = ((dmd_shape[0] - grid[0] * factor) // 2, (dmd_shape[1] - grid[1] * factor) // 2)
    return DMDLayout(dmd_shape=dmd_shape, n_features=n, grid_shape=grid, factor=factor, offset=offset)


def _pick_factor(strategy: str, largest: int) -> int:
    if strategy == "small" or (strategy == "auto" and largest < 2):
        return 1
    return largest


def layout_1d(n_features: int, dmd_shape: tuple[int, int], strategy: Strategy = "auto") -> DMDLayout:
    """Layout of a 1-D input of ``n_features`` features."""
    _check_strategy(strategy)
    capacity = dmd_shape[0] * dmd_shape[1]
    if not 1 <= n_features <= capacity:
        raise ValueError(f"n_features: expected 1 to {capacity} (DMD mirrors {dmd_shape}), got {n_features}")
    best: tuple[int, tuple[int, int]] | None = None
    cols = math.ceil(math.sqrt(n_features * dmd_shape[1] / dmd_shape[0]))
    for c in range(max(1, cols - 2), cols + 3):  # near-square grids in the DMD's aspect ratio
        c = min(c, dmd_shape[1])
        grid = (math.ceil(n_features / c), c)
        if grid[0] > dmd_shape[0]:
            continue
        factor = _largest_factor(grid, dmd_shape)
        if best is None or factor > best[0]:
            best = (factor, grid)
    if best is None:  # only a DMD-wide grid fits
        best = (1, (math.ceil(n_features / dmd_shape[1]), dmd_shape[1]))
    factor = _pick_factor(strategy, best[0])
    return _centred(dmd_shape, n_features, best[1], factor)


def layout_2d(shape: tuple[int, int], dmd_shape: tuple[int, int], strategy: Strategy = "auto") -> DMDLayout:
    """Layout of a 2-D input of ``shape`` (rows, columns) features."""
    _check_strategy(strategy)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"n_features: expected a 2-D shape (rows, columns) of positive sizes, got {shape}")
    if shape[0] > dmd_shape[0] or shape[1] > dmd_shape[1]:
        raise ValueError(f"n_features: expected a shape that fits the DMD {dmd_shape}, got {shape}")
    factor = _pick_factor(strategy, _largest_factor(shape, dmd_shape))
    return _centred(dmd_shape, shape[0] * shape[1], (shape[0], shape[1]), factor)
