"""Optical DFA feedback on the emulator (physical fidelity, 8-bit camera) against the true linear map."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from calibration.linear import true_linear_map  # noqa: E402
from opu_hal import OPU  # noqa: E402
from opu_hal.dfa import DFA, DFALayer, OpticalFeedback, StochasticRounding  # noqa: E402


@pytest.fixture()
def opu():
    with OPU("emu://?fidelity=physical&bit_depth=8", n_components=1, seed=4, progress=False) as device:
        yield device


def _true_map(opu: OPU) -> np.ndarray:
    return true_linear_map(opu.backend.model.transmission_matrix(), opu.calibration)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _completion(opu: OPU, x: np.ndarray) -> np.ndarray:
    """The exactly known part ``h (1 . x) / sqrt(N)`` of ``x @ M.T`` (complement scheme, docs/physics.md section 4.1), (B, M).

    Scored out of both the projection and the truth, so that the bounds measure the optical part only.
    """
    h = opu.calibration.array("linear_completion")
    return x.sum(axis=1)[:, None] * h[None, :] / math.sqrt(opu.calibration.linear.n_features)


def test_tiled_optical_projection_follows_the_true_linear_map(opu: OPU) -> None:
    feedback = OpticalFeedback(opu, seed=7, max_components=16)
    e = torch.randn(50, 6)
    z = feedback.project(e, 40).numpy()
    assert z.shape == (50, 40) and feedback.tiles == 3 and opu.n_components == 14 and opu.n_features == 18
    encoded = StochasticRounding(1).encode(e.numpy().astype(np.float64), np.random.default_rng(7))  # same draws
    m = _true_map(opu)  # (14, 18): tile t meets columns 6t .. 6t + 5
    expected = np.hstack([encoded @ m[:, 6 * t : 6 * t + 6].T for t in range(3)])[:, :40] / math.sqrt(6)
    # docs/physics.md section 4: ~3 % error per binary frame pair on an 8-bit camera; a row sums at most 2 planes (signed
    # inputs: small completion term, scored out of both all the same): 5.0-5.2 % measured
    known = np.hstack([_completion(opu, encoded)] * 3)[:, :40] / math.sqrt(6)
    assert _rel(z - known, expected - known) < 0.08
    wrong = np.hstack([encoded @ m[:, 6 * t : 6 * t + 6].T for t in (1, 2, 0)])[:, :40] / math.sqrt(6)
    assert abs(np.corrcoef(z.ravel(), wrong.ravel())[0, 1]) < 0.3  # each tile meets its own columns of M
    stats = feedback.stats
    assert stats.last_frames > 0 and stats.frames == stats.last_frames
    # every frame takes at most the calibrated frametime (bracketed frames at shorter exposures take less)
    full = stats.last_frames * opu.calibration.linear.frametime_us * 1e-6
    assert 0.5 * full < stats.last_device_time_s <= full * (1 + 1e-9)
    assert stats.calibration_frames > 0
    # unbiased encoding: averaged over draws the projection tends to the unencoded one
    mean = np.mean([feedback.project(e, 40).numpy() for _ in range(8)] + [z], axis=0)
    exact = np.hstack([e.numpy() @ m[:, 6 * t : 6 * t + 6].T for t in range(3)])[:, :40] / math.sqrt(6)
    assert np.corrcoef(mean.ravel(), exact.ravel())[0, 1] > 0.9
    assert stats.steps == 9 and stats.frames > stats.last_frames


def test_optical_dfa_gradients_are_the_projection_through_m(opu: OPU) -> None:
    torch.manual_seed(0)
    markers = [DFALayer(), DFALayer()]
    dfa = DFA(markers, mode="optical", opu=opu, encoding="planes", seed=1)
    fc1, fc2, head = nn.Linear(8, 12), nn.Linear(12, 10), nn.Linear(10, 3)
    x = torch.randn(20, 8)
    out = dfa(head(markers[1](torch.tanh(fc2(markers[0](torch.tanh(fc1(x))))))))
    loss = nn.functional.cross_entropy(out, torch.randint(0, 3, (20,)))
    e = torch.autograd.grad(loss, out, retain_graph=True)[0].numpy().astype(np.float64)
    g1, g2 = torch.autograd.grad(loss, dfa.last_hidden)
    m = _true_map(opu)  # (22, 3)
    planes = np.rint(e / np.abs(e).max(1, keepdims=True) * 15) / 15 * np.abs(e).max(1, keepdims=True)  # 4-bit planes
    fb = planes @ m.T / math.sqrt(3)
    known = _completion(opu, planes) / math.sqrt(3)  # exactly known: scored out of both (~0: rows of e sum to 0)
    # 4-bit planes of 3 features, 2.5 % and 2.7 % measured
    assert _rel(g1.numpy() - known[:, :12], (fb - known)[:, :12]) < 0.05
    assert _rel(g2.numpy() - known[:, 12:], (fb - known)[:, 12:]) < 0.05
    digital = e @ m.T / math.sqrt(3)
    assert np.corrcoef(np.hstack([g1, g2]).ravel(), digital.ravel())[0, 1] > 0.95


def test_optical_arguments_are_checked(opu: OPU) -> None:
    with pytest.raises(TypeError, match="opu: expected an opu_hal.OPU, got str"):
        OpticalFeedback("emu://")
    with pytest.raises(ValueError, match="max_components: expected an integer from 1"):
        OpticalFeedback(opu, max_components=0)
    with pytest.raises(ValueError, match="opu, optical: expected at most one"):
        DFA([DFALayer()], opu=opu, optical=OpticalFeedback(opu))
    feedback = OpticalFeedback(opu, max_components=16)
    feedback.project(torch.randn(2, 3), 5)
    with pytest.raises(ValueError, match=r"expected the feedback shape fixed on the first call, .* \(5, 3\), got \(5, 4\)"):
        feedback.project(torch.randn(2, 4), 5)
