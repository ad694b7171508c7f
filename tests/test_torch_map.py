"""opu_hal.torch.OPUMap: an OPU projection as an nn.Module (detached, dtype and device kept)."""

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from opu_hal import OPU
from opu_hal.encoding import BinaryThresholdEncoder
from opu_hal.torch import OPUMap

IDEAL = "emu://?fidelity=ideal"


@pytest.fixture
def bits():
    return (torch.rand(8, 40, generator=torch.Generator().manual_seed(0)) > 0.5).float()


def _reference(x: np.ndarray, n_components: int, seed: int) -> np.ndarray:
    with OPU(IDEAL, n_components=n_components, seed=seed, progress=False) as opu:
        opu.fit1d(n_features=x.shape[-1])
        return np.asarray(opu.transform(x))


def test_forward_equals_the_opu_transform(bits):
    layer = OPUMap(30, device=IDEAL, seed=4)
    y = layer(bits)
    expected = _reference(bits.numpy().astype(np.uint8), 30, 4)
    np.testing.assert_array_equal(y.numpy(), expected)
    assert layer.n_features == 40 and layer.n_components == 30


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_floating_dtype_is_preserved(bits, dtype):
    y = OPUMap(30, device=IDEAL)(bits.to(dtype))
    assert y.dtype == dtype and y.device == bits.device and y.shape == (8, 30)


def test_integer_input_gives_the_device_dtype(bits):
    assert OPUMap(30)(bits.to(torch.uint8)).dtype == torch.uint8  # 8-bit camera counts
    assert OPUMap(30, output="intensity")(bits.bool()).dtype == torch.float32


def test_batch_axes_are_kept(bits):
    y = OPUMap(30, device=IDEAL)(bits.reshape(2, 4, 40))
    assert y.shape == (2, 4, 30)


def test_output_is_detached_and_no_gradient_flows_into_the_input(bits):
    x = bits.clone().requires_grad_(True)
    head = nn.Linear(30, 3)
    net = nn.Sequential(OPUMap(30, device=IDEAL), head)
    y = net[0](x)
    assert not y.requires_grad and y.grad_fn is None
    net(x).sum().backward()
    assert x.grad is None  # the optical projection is not differentiable, by design
    assert head.weight.grad is not None and torch.count_nonzero(head.weight.grad) > 0


def test_non_binary_floats_need_an_encoder_or_linear():
    x = torch.randn(4, 10, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="x: expected only 0 and 1"):
        OPUMap(20, device=IDEAL)(x)
    encoder = BinaryThresholdEncoder(clip=True).fit(x.numpy())
    y = OPUMap(20, device=IDEAL, encoder=encoder, seed=2)(x)
    expected = _reference(encoder.transform(x.numpy()), 20, 2)
    np.testing.assert_array_equal(y.numpy(), expected)


def test_input_size_is_fixed_by_the_first_batch(bits):
    layer = OPUMap(30, device=IDEAL)
    layer(bits)
    with pytest.raises(ValueError, match="X: expected shape"):
        layer(torch.ones(2, 41))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="output: expected"):
        OPUMap(10, output="counts")
    with pytest.raises(TypeError, match="x: expected a torch.Tensor"):
        OPUMap(10)(np.ones((2, 3)))


def test_pickle_keeps_the_device_url_not_the_connection(bits):
    layer = OPUMap(30, device=IDEAL, seed=5)
    expected = layer(bits)
    assert "opu" not in layer.__getstate__()
    restored = pickle.loads(pickle.dumps(layer))
    assert not restored.opu.backend.is_open
    torch.testing.assert_close(restored(bits), expected)


def test_close_then_forward_reopens_the_device(bits):
    layer = OPUMap(30, device=IDEAL, seed=6)
    first = layer(bits)
    layer.close()
    assert not layer.opu.backend.is_open
    torch.testing.assert_close(layer(bits), first)


def test_linear_projection_has_the_documented_scale():
    x = torch.randn(16, 64, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    z = OPUMap(300, linear=True, seed=1)(x)
    assert z.dtype == torch.float64 and z.shape == (16, 300)
    # E|z|^2 = n_components |x|^2 (docs/api.md section 7); sampling error of the ratio over 4800 outputs ~2 %,
    # plus the up to 8 % relative error per 8-bit vector (docs/physics.md section 4.7) adding ~1 % of power
    ratio = float((z**2).sum() / (300 * (x**2).sum()))
    assert 0.9 < ratio < 1.12
