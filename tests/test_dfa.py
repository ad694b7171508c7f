"""DFA client, digital feedback and API: gradient replacement, modes, shapes, alignment, errors."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from opu_hal.dfa import (  # noqa: E402
    DFA,
    BitPlanes,
    DFALayer,
    DigitalFeedback,
    StochasticRounding,
    ThresholdTernary,
    alignment,
    make_encoder,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one intra-op thread avoids spinning threads on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Net(nn.Module):
    """5 -> 4 -> 3 -> 2, tanh, markers after both hidden layers."""

    def __init__(self, mode: str = "digital", sizes: tuple[int, ...] = (5, 4, 3, 2), seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.markers = nn.ModuleList(DFALayer() for _ in sizes[2:])
        self.dfa = DFA(list(self.markers), mode=mode, seed=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for fc, marker in zip(self.fcs[:-1], self.markers):
            x = marker(torch.tanh(fc(x)))
        return self.dfa(self.fcs[-1](x))


def _plain_forward(net: Net, x: torch.Tensor) -> torch.Tensor:
    """The same network without markers or DFA module."""
    for fc in net.fcs[:-1]:
        x = torch.tanh(fc(x))
    return net.fcs[-1](x)


def test_digital_gradients_are_b_e_sliced_per_layer() -> None:
    net = Net("digital")
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 1, 0, 1, 0])
    out = net(x)
    nn.functional.cross_entropy(out, y).backward()
    # by hand: e = dL/d out, B the seeded N(0, 1) matrix (3 + 4 outputs, 2 errors) over sqrt(2)
    with torch.no_grad():
        e = (torch.softmax(out, 1) - nn.functional.one_hot(y, 2)) / 6
        b = torch.randn(7, 2, generator=torch.Generator().manual_seed(3)) / math.sqrt(2)
        fb = e @ b.T
        h1 = torch.tanh(net.fcs[0](x))
        h2 = torch.tanh(net.fcs[1](h1))
        d1 = fb[:, :4] * (1 - h1**2)
        d2 = fb[:, 4:] * (1 - h2**2)
    torch.testing.assert_close(net.dfa.digital.matrix, b)
    torch.testing.assert_close(net.fcs[0].weight.grad, d1.T @ x)
    torch.testing.assert_close(net.fcs[0].bias.grad, d1.sum(0))
    torch.testing.assert_close(net.fcs[1].weight.grad, d2.T @ h1)
    torch.testing.assert_close(net.fcs[2].weight.grad, e.T @ h2)  # the output layer keeps its true gradient
    assert net.dfa.digital.stats.steps == 1 and net.dfa.digital.stats.rows == 6


def test_bp_mode_equals_plain_autograd_and_output_mode_trains_only_the_head() -> None:
    net = Net("bp")
    ref = copy.deepcopy(net)
    x, y = torch.randn(8, 5), torch.randint(0, 2, (8,))
    nn.functional.cross_entropy(net(x), y).backward()
    nn.functional.cross_entropy(_plain_forward(ref, x), y).backward()
    for p, q in zip(net.parameters(), ref.parameters()):
        assert torch.equal(p.grad, q.grad)
    head = ref.fcs[2].weight.grad.clone()
    net.zero_grad(set_to_none=True)
    net.dfa.mode = "output"
    nn.functional.cross_entropy(net(x), y).backward()
    assert net.fcs[0].weight.grad is None and net.fcs[1].weight.grad is None
    torch.testing.assert_close(net.fcs[2].weight.grad, head)


def test_mode_switch_needs_no_model_change_and_eval_is_identity() -> None:
    net = Net("digital")
    x = torch.randn(4, 5)
    for mode in ("bp", "digital", "output"):
        net.dfa.mode = mode
        torch.testing.assert_close(net(x), _plain_forward(net, x))  # same forward values in every mode
        with torch.no_grad():
            torch.testing.assert_close(net(x), _plain_forward(net, x))
    net.dfa.mode = "digital"
    with net.dfa.using("bp"):
        assert net.dfa.mode == "bp" and net.dfa.feedback is None
    assert net.dfa.mode == "digital" and isinstance(net.dfa.feedback, DigitalFeedback)


def test_conv_feature_maps_receive_their_slice() -> None:
    markers = [DFALayer(), DFALayer()]
    dfa = DFA(markers, seed=1)
    conv = nn.Conv2d(1, 3, 3, padding=1)
    fc1, head = nn.Linear(3 * 16, 7), nn.Linear(7, 4)
    x = torch.randn(5, 1, 4, 4)
    out = dfa(head(markers[1](torch.relu(fc1(markers[0](torch.tanh(conv(x))).flatten(1))))))
    maps, hidden = dfa.last_hidden
    assert maps.shape == (5, 3, 4, 4)
    loss = (out**2).sum()
    g_maps, g_hidden = torch.autograd.grad(loss, [maps, hidden], retain_graph=True)
    fb = (2 * out.detach()) @ dfa.digital.matrix.T
    torch.testing.assert_close(g_maps, fb[:, :48].reshape(5, 3, 4, 4))
    torch.testing.assert_close(g_hidden, fb[:, 48:])
    loss.backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_transformer_tokens_are_rows_with_token_dims() -> None:
    torch.manual_seed(0)
    markers = [DFALayer("block1"), DFALayer("block2")]
    dfa = DFA(markers, token_dims=1, seed=2)
    embed = nn.Embedding(6, 16)
    blocks = nn.ModuleList(nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True) for _ in range(2))
    head = nn.Linear(16, 6)
    tokens = torch.randint(0, 6, (3, 5))
    x = embed(tokens)
    for block, marker in zip(blocks, markers):
        x = marker(block(x))
    out = dfa(head(x))
    y = torch.randint(0, 6, (3, 5))
    loss = nn.functional.cross_entropy(out.reshape(-1, 6), y.reshape(-1))
    grads = torch.autograd.grad(loss, dfa.last_hidden, retain_graph=True)
    e = torch.autograd.grad(loss, out, retain_graph=True)[0]  # the error per token
    fb = e.reshape(15, 6) @ dfa.digital.matrix.T
    assert dfa.digital.matrix.shape == (32, 6)  # per token: 6 errors -> 16 + 16 features
    torch.testing.assert_close(grads[0], fb[:, :16].reshape(3, 5, 16))
    torch.testing.assert_close(grads[1], fb[:, 16:].reshape(3, 5, 16))
    loss.backward()
    assert all(p.grad is not None for p in blocks.parameters())
    assert embed.weight.grad is not None


def test_alignment_becomes_positive_on_a_toy_task() -> None:
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 4))
    x = torch.randn(512, 10)
    with torch.no_grad():
        y = teacher(x).argmax(1)
    net = Net("digital", sizes=(10, 64, 64, 4), seed=1)
    probe = lambda: nn.functional.cross_entropy(net(x[:128]), y[:128])  # noqa: E731
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for step in range(150):
        idx = torch.randint(0, 512, (32,))
        opt.zero_grad()
        nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
        opt.step()
    after = alignment(net.dfa, net, probe)
    assert list(after) == ["layer0", "layer1"]
    assert all(v > 0.2 for v in after.values()), after
    assert all(p.grad is not None for p in net.parameters())  # alignment() leaves .grad alone


def test_encoders_are_exact_on_their_grid_and_stochastic_rounding_is_unbiased() -> None:
    rng = np.random.default_rng(0)
    e = np.array([[0.4, -0.1, 0.0, -0.8], [0.0, 0.0, 0.0, 0.0]])
    t = ThresholdTernary(0.3).encode(e, rng)
    np.testing.assert_array_equal(t, [[0.8, 0.0, 0.0, -0.8], [0, 0, 0, 0]])
    assert np.abs(ThresholdTernary(0.3, keep_magnitude=False).encode(e, rng)).max() == 1.0
    p = BitPlanes(2).encode(e, rng)
    np.testing.assert_allclose(p[0], np.rint(e[0] / 0.8 * 3) / 3 * 0.8)
    draws = np.stack([StochasticRounding(1).encode(e, rng) for _ in range(4000)])
    assert set(np.unique(np.round(draws[:, 0] / 0.8, 12))) <= {-1.0, 0.0, 1.0}
    # each entry is m * Bernoulli(|e|/m) * sign: std at most m / 2, so 5 sigma over 4000 draws is 0.8 * 0.5 * 5 / 63
    np.testing.assert_allclose(draws.mean(axis=0), e, atol=0.8 * 0.5 * 5 / math.sqrt(4000))
    assert StochasticRounding(3).encode(e, rng).shape == e.shape


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="mode: expected one of"):
        DFA([DFALayer()], mode="adjoint")
    with pytest.raises(ValueError, match="mode: 'optical' needs an OPU"):
        DFA([DFALayer()], mode="optical")
    with pytest.raises(TypeError, match=r"layers\[1\]: expected a DFALayer, got Linear"):
        DFA([DFALayer(), nn.Linear(2, 2)])
    with pytest.raises(TypeError, match="layers: expected a non-empty sequence"):
        DFA([])
    marker = DFALayer()
    DFA([marker])
    with pytest.raises(ValueError, match=r"layers\[0\]: expected a DFALayer of no other DFA"):
        DFA([marker])
    with pytest.raises(ValueError, match="token_dims: expected an integer from 0"):
        DFA([DFALayer()], token_dims=-1)
    with pytest.raises(RuntimeError, match="not attached to a DFA"):
        DFALayer()(torch.ones(1, requires_grad=True))
    with pytest.raises(ValueError, match="scale: expected a positive number"):
        DigitalFeedback(scale=-1.0)
    with pytest.raises(ValueError, match="encoding: expected an ErrorEncoder or one of"):
        make_encoder("sign")
    with pytest.raises(ValueError, match=r"threshold: expected a number in \(0, 1\]"):
        ThresholdTernary(1.5)
    with pytest.raises(ValueError, match="bits: expected an integer from 1 to 16"):
        StochasticRounding(0)

    net = Net("digital")
    net(torch.randn(2, 5)).sum().backward()
    net.fcs[1] = nn.Linear(4, 5)  # the second marker now sees 5 features, B was drawn for 3
    net.fcs[2] = nn.Linear(5, 2)
    with pytest.raises(ValueError, match="layer1: expected 3 features per row .* got 5"):
        net(torch.randn(2, 5))
    markers = [DFALayer(), DFALayer("skipped")]
    dfa = DFA(markers)
    with pytest.raises(RuntimeError, match=r"got none from \['skipped'\]"):
        dfa(markers[0](torch.randn(2, 3, requires_grad=True)) * 2)
    with pytest.raises(ValueError, match="hidden: expected leading .* like the output"):
        m = DFALayer("hidden")
        DFA([m])(m(torch.randn(3, 4, requires_grad=True)).sum(0, keepdim=True))
    with pytest.raises(ValueError, match="dfa: expected a DFA in 'digital' or 'optical' mode"):
        net.dfa.mode = "bp"
        alignment(net.dfa, net, lambda: net(torch.randn(2, 5)).sum())
