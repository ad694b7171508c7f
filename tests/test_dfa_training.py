"""DFA hooks in real training code: copies, saving, autocast, frozen layers, exceptions, replicas, skips, alignment."""

from __future__ import annotations

import copy
import gc
import io
import math
import warnings
import weakref

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from opu_hal import OPU  # noqa: E402
from opu_hal.dfa import DFA, DFALayer, alignment  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Net(nn.Module):
    """8 -> 6 -> 5 -> 3, tanh, markers after both hidden layers; optional BatchNorm and dropout, optional skip."""

    def __init__(self, mode: str = "digital", *, opu: OPU | None = None, norm: bool = False, skip: bool = False,
                 **dfa) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2, self.head = nn.Linear(8, 6), nn.Linear(6, 5), nn.Linear(5, 3)
        self.norm = nn.BatchNorm1d(6) if norm else nn.Identity()
        self.drop = nn.Dropout(0.5) if norm else nn.Identity()
        self.skip = nn.Linear(6, 3) if skip else None
        self.markers = nn.ModuleList([DFALayer("first"), DFALayer("second")])
        self.dfa = DFA(list(self.markers), mode=mode, opu=opu, seed=1, **dfa)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a1 = torch.tanh(self.norm(self.fc1(x)))
        h1 = self.markers[0](a1)
        h2 = self.markers[1](torch.tanh(self.fc2(self.drop(h1))))
        out = self.head(h2)
        if self.skip is not None:
            out = out + self.skip(a1)  # around the first marker: BP gradient reaches fc1
        return self.dfa(out)


def _step(net: nn.Module, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
    x = torch.randn(4, 8) if x is None else x
    y = torch.tensor([0, 1, 2, 1]) if y is None else y
    loss = nn.functional.cross_entropy(net(x), y)
    loss.backward()
    return loss


def test_deepcopy_and_torch_save_after_a_step_and_activations_released() -> None:
    net = Net()
    x = torch.randn(4, 8)
    out = net(x)
    held = [weakref.ref(h) for h in net.dfa.last_hidden]
    nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 1])).backward()
    del out
    gc.collect()
    assert net.dfa.last_hidden == [] and all(r() is None for r in held)  # no batch of activations stays alive
    ema = copy.deepcopy(net)  # raised RuntimeError (non-leaf activations) before
    buffer = io.BytesIO()
    torch.save(net, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    for copied in (ema, loaded):
        torch.testing.assert_close(copied(x), net(x))
        copied.zero_grad()
        _step(copied, x)  # the copy trains on its own markers
        assert copied.fc1.weight.grad is not None
    # a forward pass whose output never reaches backward holds its activations only until the copy
    net(x)
    copy.deepcopy(net)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_digital_keeps_the_float32_master_feedback(dtype: torch.dtype) -> None:
    net = Net()
    _step(net)
    master = net.dfa.digital.matrix.clone()
    net.zero_grad()
    with torch.autocast("cpu", dtype=dtype):
        out = net(torch.randn(4, 8))
        assert out.dtype == dtype
        nn.functional.cross_entropy(out.float(), torch.tensor([0, 1, 2, 1])).backward()
    assert net.dfa.digital.matrix.dtype == torch.float32
    assert float((net.dfa.digital.matrix - master).abs().max()) == 0.0  # was 2.9e-3 with bf16
    assert net.fc1.weight.grad.dtype == torch.float32 and torch.isfinite(net.fc1.weight.grad).all()
    assert float(net.fc1.weight.grad.abs().sum()) > 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_optical_step_runs(dtype: torch.dtype) -> None:
    with OPU("emu://", n_components=1, seed=2, progress=False) as opu:
        net = Net("optical", opu=opu)
        with torch.autocast("cpu", dtype=dtype):
            out = net(torch.randn(4, 8))
        nn.functional.cross_entropy(out.float(), torch.tensor([0, 1, 2, 1])).backward()  # raised TypeError before
        assert net.fc1.weight.grad.dtype == torch.float32 and float(net.fc1.weight.grad.abs().sum()) > 0
        assert net.dfa.optical.stats.frames > 0


def test_frozen_marked_layer_gets_no_feedback_and_a_clear_warning() -> None:
    net = Net()
    net.fc1.requires_grad_(False)
    with pytest.warns(UserWarning, match=r"marked layer 'first'.* does not require grad .*frozen"):
        _step(net)  # raised "got none from ['first']" before
    assert net.fc1.weight.grad is None and net.fc2.weight.grad is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _step(net)  # once only
        frozen = copy.deepcopy(net).requires_grad_(False)
        frozen(torch.randn(4, 8))  # a fully frozen copy (EMA) runs with grad enabled, silently
    # B keeps its layout: unfreezing gives the first layer its slice
    net.fc1.requires_grad_(True)
    _step(net)
    assert net.fc1.weight.grad is not None


def test_an_exception_between_a_marker_and_the_output_does_not_break_the_next_step() -> None:
    net = Net()
    x = torch.randn(4, 8)
    with pytest.raises(ValueError, match="boom"):
        net.markers[0](torch.tanh(net.fc1(x)))
        raise ValueError("boom")
    net.zero_grad()
    _step(net, x)  # raised "ran twice" before
    ref = Net()
    _step(ref, x)
    torch.testing.assert_close(net.fc1.weight.grad, ref.fc1.weight.grad)


def _replicate(module: nn.Module) -> nn.Module:
    """What torch.nn.parallel.replicate does to each module (shallow copies of __dict__), without a GPU."""
    replicas = {m: m._replicate_for_data_parallel() for m in module.modules()}
    for original, replica in replicas.items():
        replica.__dict__.update(original._parameters)  # replicate sets the broadcast parameters as plain attributes
        for name, child in original._modules.items():
            if child is not None:
                replica._modules[name] = replicas[child]
    return replicas[module]


def test_data_parallel_replicas_raise_an_error_naming_distributed_data_parallel() -> None:
    net = Net()
    _step(net)
    replica = _replicate(net)
    with pytest.raises(RuntimeError, match=r"replica .*DataParallel.*DistributedDataParallel"):
        replica(torch.randn(4, 8))
    net.zero_grad()
    _step(net)  # the original is untouched


def test_alignment_has_no_side_effects_and_a_fixed_feedback_draw() -> None:
    net = Net(norm=True)
    _step(net)
    x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
    closure = lambda: nn.functional.cross_entropy(net(x), y)  # noqa: E731
    net.eval()
    net.drop.train()  # mixed modes are restored as they were
    buffers = {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k}
    rng = torch.get_rng_state()
    first = alignment(net.dfa, net, closure)
    for k, v in net.state_dict().items():
        if k in buffers:
            assert torch.equal(v, buffers[k]), k  # num_batches_tracked went 1 -> 3 before
    assert not net.training and not net.norm.training and net.drop.training
    assert torch.equal(torch.get_rng_state(), rng)  # dropout draws of training unchanged
    assert alignment(net.dfa, net, closure) == first  # same dropout masks, same feedback: same result
    net.train()
    assert all(-1 <= v <= 1 for v in alignment(net.dfa, net, closure).values())


def test_optical_alignment_frames_are_counted_apart_and_draws_fixed() -> None:
    with OPU("emu://", n_components=1, seed=2, progress=False) as opu:
        net = Net("optical", opu=opu)
        _step(net)
        stats = net.dfa.optical.stats
        frames, steps = stats.frames, stats.steps
        x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
        closure = lambda: nn.functional.cross_entropy(net(x), y)  # noqa: E731
        state = net.dfa.optical._rng.bit_generator.state
        first = alignment(net.dfa, net, closure)
        assert (stats.frames, stats.steps) == (frames, steps)  # training counters unchanged
        assert stats.alignment_frames > 0 and stats.alignment_steps == 1
        assert net.dfa.optical._rng.bit_generator.state == state  # training draws untouched
        second = alignment(net.dfa, net, closure)
        assert second == pytest.approx(first, abs=0.05)  # same ternarisation; only camera noise differs


def test_a_skip_connection_around_a_marker_warns_once_naming_the_layer() -> None:
    net = Net(skip=True)
    with pytest.warns(UserWarning, match=r"marked layer 'first'.*around its marker"):
        _step(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _step(net)  # one-time check
        _step(Net())  # no skip, no warning
    assert math.isfinite(float(net.fc1.weight.grad.norm()))


class Wide(nn.Module):
    """10 inputs -> 256 -> 128 -> 10 outputs: TinyDFA's setting of the issue (H = 256, d = 10)."""

    def __init__(self, **dfa) -> None:
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(10, 256), nn.Linear(256, 128), nn.Linear(128, 10)
        self.markers = nn.ModuleList([DFALayer(), DFALayer()])
        self.dfa = DFA(list(self.markers), seed=5, **dfa)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = self.markers[0](torch.tanh(self.fc1(x)))
        return self.dfa(self.head(self.markers[1](torch.tanh(self.fc2(h1)))))


def _feedback_matrices(net: Wide) -> tuple[torch.Tensor, torch.Tensor]:
    """The effective feedback of each marker, (10 errors, width): unit errors e_i give row i."""
    out = net(torch.randn(10, 10))
    return torch.autograd.grad((out * torch.eye(10)).sum(), net.dfa.last_hidden)


@pytest.mark.parametrize("scale, expected", [
    (None, (1 / math.sqrt(10), 1 / math.sqrt(10))),  # the default: 1/sqrt(error features)
    ("tinydfa", (1 / math.sqrt(3 * 256), 1 / math.sqrt(3 * 256))),  # std of uniform(-1, 1)/sqrt(max width)
    ((0.1, 0.2), (0.1, 0.2)),  # per layer
    (0.05, (0.05, 0.05)),
])
def test_feedback_scales_have_the_documented_standard_deviation(scale, expected) -> None:
    net = Wide(scale=scale)
    b1, b2 = _feedback_matrices(net)
    # 2,560 and 1,280 Gaussian entries: the sample std is within 3 % (1.4 % and 2 % relative standard error) ...
    assert float(b1.std()) == pytest.approx(expected[0], rel=0.06)
    assert float(b2.std()) == pytest.approx(expected[1], rel=0.08)
    assert abs(float(b1.mean())) < 4 * expected[0] / math.sqrt(b1.numel())  # ... with mean zero
    assert net.dfa.layer_scales == pytest.approx(expected)


def test_tinydfa_scale_is_8_8_times_smaller_than_the_default_at_h256_d10() -> None:
    default, tiny = (_feedback_matrices(Wide(scale=s))[0] for s in (None, "tinydfa"))
    ratio = float(default.std() / tiny.std())
    assert ratio == pytest.approx(math.sqrt(3 * 256 / 10), rel=1e-6)  # 8.76: the same B, two factors
    with OPU("emu://", n_components=1, seed=3, progress=False) as opu:
        optical = _feedback_matrices(Wide(scale="tinydfa", mode="optical", opu=opu, encoding="planes"))[0]
    assert float(optical.std()) == pytest.approx(1 / math.sqrt(3 * 256), rel=0.15)  # M ~ N(0, 1), same factor


def test_bad_scales_are_rejected_naming_the_argument() -> None:
    with pytest.raises(ValueError, match=r"scale: expected None, a positive number, 'tinydfa' or one positive number "
                                         r"per marked layer \(2\), got 'fan_in'"):
        Wide(scale="fan_in")
    with pytest.raises(ValueError, match=r"scale: expected .* per marked layer \(2\), got \(0.1,\)"):
        Wide(scale=(0.1,))
    with pytest.raises(ValueError, match=r"scale\[1\]: expected a positive number"):
        Wide(scale=(0.1, -1.0))
    from opu_hal.dfa import DigitalFeedback

    with pytest.raises(ValueError, match="scale: expected None when digital= or optical= is given"):
        Wide(scale="tinydfa", digital=DigitalFeedback())


def test_an_optical_model_copies_sharing_its_opu_and_refuses_pickling_with_a_clear_error() -> None:
    with OPU("emu://", n_components=1, seed=2, progress=False) as opu:
        net = Net("optical", opu=opu)
        _step(net)
        ema = copy.deepcopy(net)  # raised TypeError (cannot pickle '_thread.RLock') before
        assert ema.dfa.optical is net.dfa.optical and ema.dfa.layers[0] is ema.markers[0]
        ema.zero_grad()
        _step(ema)
        assert ema.fc1.weight.grad is not None
        with pytest.raises(TypeError, match="OpticalFeedback: expected no pickling .*state_dict"):
            torch.save(net, io.BytesIO())
