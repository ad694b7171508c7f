"""Distance geometry in the complex plane, vectorised over camera pixels (docs/physics.md section 5.1).

For one output pixel j, every binary input v is a point ``(R v)_j`` of the complex plane
and the intensity ``|(R (v + w))_j|^2`` of two disjoint inputs is the squared distance
between the points ``(R v)_j`` and ``-(R w)_j``. With S fixed anchors w = a_s, each input
x gives S + 1 squared distances: to the origin, ``|z|^2``, and to the anchors,
``|z + a_s|^2``. These helpers place points and anchors from such distances:

* :func:`anchor_frame` finds the anchors (up to a real-linear map of the plane) from the
  distances of many inputs, without any other measurement.
* :func:`laterate` places each input's point from its distances to the origin and to
  known anchors (linear least squares).
* :func:`refine_points` improves those points by weighted Gauss-Newton on the squared
  distances themselves (shot noise makes bright intensities noisier).

Arrays carry the pixel axis last, like camera frames. Intensities are in the caller's
units (here the calibrated scale of ``OPU.transform(..., output="intensity")``).
"""

from __future__ import annotations

import numpy as np


def anchor_frame(base: np.ndarray, anchored: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Anchor positions (S, M) complex, up to a real-linear map of each pixel's plane.

    ``anchored[k, s] - base[k] = 2 Re(conj(a_s) z_k) + |a_s|^2``: centred over the inputs k
    this (K, S) matrix has rank 2 per pixel, ``2 (Z - mean Z) A^T`` with Z and A the points
    and anchors as real 2-vectors. Its two leading right singular vectors span A's
    columns, so they give the anchors up to an invertible 2 x 2 map (fixed later by the
    intensities ``|z|^2``). Unusable equations (``valid`` False) are replaced by the mean
    of their anchor's usable ones.
    """
    diff = anchored - base[:, None, :]  # (K, S, M)
    counts = np.maximum(valid.sum(axis=0), 1)
    mean = np.where(valid, diff, 0.0).sum(axis=0) / counts  # (S, M)
    centred = np.where(valid, diff - mean, 0.0)
    gram = np.einsum("ksm,ktm->mst", centred, centred)
    _, vectors = np.linalg.eigh(gram)  # ascending eigenvalues: the last two lead
    return (vectors[:, :, -1] + 1j * vectors[:, :, -2]).T.copy()


def laterate(
    anchors: np.ndarray, base: np.ndarray, anchored: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Place points from their squared distances to the origin and to S known anchors.

    Subtracting ``|z|^2 = base`` from ``|z + a_s|^2 = anchored[:, s]`` gives the linear
    equations ``2 Re(conj(a_s) z) = anchored_s - base - |a_s|^2``, solved by least squares
    per input and pixel over the valid equations.

    Parameters
    ----------
    anchors:
        (S, M) complex anchor positions a_s (the anchor points are ``-a_s``).
    base:
        (K, M) intensities of the K inputs alone.
    anchored:
        (K, S, M) intensities of each input plus each anchor.
    valid:
        (K, S, M) bool mask of usable equations (both intensities unsaturated).

    Returns
    -------
    ``(z, solved)``: z (K, M) complex128, and solved (K, M) bool, False where fewer than two
    independent equations were usable (z is 0 there).
    """
    rhs = anchored - base[:, None, :] - (np.abs(anchors) ** 2)[None]
    cx, cy = 2.0 * anchors.real, 2.0 * anchors.imag  # (S, M)
    weight = valid.astype(np.float64)
    n11 = np.einsum("ksm,sm->km", weight, cx * cx)
    n12 = np.einsum("ksm,sm->km", weight, cx * cy)
    n22 = np.einsum("ksm,sm->km", weight, cy * cy)
    wr = weight * rhs
    b1 = np.einsum("ksm,sm->km", wr, cx)
    b2 = np.einsum("ksm,sm->km", wr, cy)
    return _solve_2x2(n11, n12, n22, b1, b2)


def refine_points(
    z: np.ndarray,
    anchors: np.ndarray,
    base: np.ndarray,
    anchored: np.ndarray,
    valid: np.ndarray,
    iterations: int = 2,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted Gauss-Newton on ``|z|^2 = base`` and ``|z + a_s|^2 = anchored_s``.

    Each squared distance d is weighted by ``1 / (d + floor)`` (shot noise: variance grows
    with intensity; ``floor`` is 5 % of the mean intensity, for the camera's read and
    quantisation noise). Starts from ``z`` (K, M); shapes as in :func:`laterate`, with
    ``valid`` (K, S + 1, M) covering the base intensity first.

    Returns ``(z, solved, rms)``: refined points, where they are determined, and the rms
    residual of the usable squared distances (intensity units).
    """
    points = np.concatenate([np.zeros((1, anchors.shape[1]), dtype=anchors.dtype), anchors])  # (S + 1, M)
    px, py = points.real[None], points.imag[None]
    measured = np.concatenate([base[:, None, :], anchored], axis=1)  # (K, S + 1, M)
    floor = 0.05 * float(np.mean(measured, where=valid)) if valid.any() else 1.0
    weight = np.where(valid, 1.0 / (np.maximum(measured, 0.0) + floor), 0.0)
    solved = np.ones(z.shape, dtype=bool)
    for done in range(iterations + 1):
        ox = z.real[:, None, :] + px  # (K, S + 1, M): offsets z + a_s, real and imaginary parts
        oy = z.imag[:, None, :] + py
        residual = ox * ox + oy * oy - measured
        if done == iterations:
            break
        wx, wy = weight * ox, weight * oy  # Jacobian rows are 2 (ox, oy)
        step, solved = _solve_2x2(
            4 * (wx * ox).sum(axis=1),
            4 * (wx * oy).sum(axis=1),
            4 * (wy * oy).sum(axis=1),
            2 * (wx * residual).sum(axis=1),
            2 * (wy * residual).sum(axis=1),
        )
        z = z - step
    count = np.count_nonzero(valid)
    rms = float(np.sqrt(np.sum(residual**2, where=valid) / count)) if count else float("nan")
    return z, solved, rms


def _solve_2x2(
    n11: np.ndarray, n12: np.ndarray, n22: np.ndarray, b1: np.ndarray, b2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise solution x + i y of [[n11, n12], [n12, n22]] (x, y) = (b1, b2), where regular."""
    det = n11 * n22 - n12 * n12
    solved = det > 1e-9 * (n11 + n22) ** 2
    safe = np.where(solved, det, 1.0)
    z = np.where(solved, ((n22 * b1 - n12 * b2) + 1j * (n11 * b2 - n12 * b1)) / safe, 0.0)
    return z, solved
