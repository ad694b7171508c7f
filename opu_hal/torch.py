"""PyTorch adapter: :class:`OPUMap`, an OPU projection as an ``nn.Module``.

>>> import torch
>>> from opu_hal.torch import OPUMap
>>> layer = OPUMap(n_components=2000, n_features=784, seed=0)
>>> y = layer(torch.rand(64, 784).round())     # float 0/1 in -> float out, same device

**Not differentiable, by design.** Light does not carry gradients back: the output is
detached from the autograd graph (``requires_grad`` is False) and nothing upstream of the
layer receives a gradient through it. Train what comes after the projection (random
features), or use :mod:`opu_hal.dfa` (Direct Feedback Alignment) to train what comes before.

Device and dtype: the device computes on the host; the output is moved to the input's
device. A floating-point input gives an output of the same dtype; a bool or integer input
gives the device's dtype (uint8/uint16 camera counts, float32 intensities or projections).
Requires the ``torch`` extra.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from opu_hal.opu import OPU
from opu_hal.settings import OPUSettings
from opu_hal.validation import as_numpy, check_bool

logger = logging.getLogger(__name__)

__all__ = ["OPUMap"]


class OPUMap(nn.Module):
    """Random features ``|R x|^2`` (or linear projections ``M x``) of an OPU, as a layer.

    Parameters
    ----------
    n_components:
        Outputs per sample (camera pixels read).
    n_features:
        Inputs per sample (after ``encoder``); ``None`` fits it on the first batch.
    device:
        Device URL (``emu://`` by default; see docs/api.md section 3). Not a torch device: outputs follow the input's.
    seed:
        Seed of an emulated device.
    settings:
        :class:`OPUSettings` or a dict of its fields.
    encoder:
        A fitted object with ``transform`` (e.g. :class:`opu_hal.encoding.BinaryThresholdEncoder`)
        applied on the host before the device.
    linear:
        ``True``: real-valued linear projections (``OPU.linear_transform``).
    bits:
        Quantisation bits of the linear projection.
    output:
        Non-linear map only: ``"raw"`` camera counts or ``"intensity"`` (float32, dark-subtracted,
        divided by the gain).

    Input ``(..., n_features)``: for the non-linear map, values 0 and 1 of any dtype (floats
    such as ``(x > 0).float()`` are accepted when they hold only 0 and 1); any real values
    for the linear map. Output ``(..., n_components)``.
    """

    def __init__(
        self,
        n_components: int,
        n_features: int | None = None,
        *,
        device: str = "emu://",
        seed: int | None = None,
        settings: OPUSettings | dict[str, Any] | None = None,
        encoder: Any = None,
        linear: bool = False,
        bits: int = 8,
        output: Literal["raw", "intensity"] = "raw",
    ) -> None:
        super().__init__()
        if output not in ("raw", "intensity"):
            raise ValueError(f"output: expected 'raw' or 'intensity', got {output!r}")
        check_bool(linear, "linear")
        if encoder is not None and not hasattr(encoder, "transform"):
            raise TypeError(f"encoder: expected None or an object with a transform method, got {type(encoder).__name__}")
        self._opu_args = (device, n_components, seed, settings)
        self.opu = OPU(device, n_components=n_components, seed=seed, settings=settings, progress=False)
        self.n_features = n_features
        self.encoder = encoder
        self.linear = linear
        self.bits = bits
        self.output = output

    @property
    def n_components(self) -> int:
        """Outputs per sample."""
        return self.opu.n_components

    def extra_repr(self) -> str:
        return (f"device={self.opu.device!r}, n_features={self.n_features}, n_components={self.n_components}, "
                f"linear={self.linear}")

    def fit(self, n_features: int) -> "OPUMap":
        """Fix the input size (features per sample after the encoder); opens the device."""
        self.opu.fit1d(n_features=n_features)
        self.n_features = n_features
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project ``x`` (..., n_features); the result is detached (no gradient flows back)."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        data: Any = as_numpy(x, "x")  # bfloat16 as float32
        self.opu.open()
        if self.encoder is not None:
            data = np.asarray(self.encoder.transform(data))
        elif not self.linear and data.dtype.kind == "f":
            data = self._float_binary(data)
        if self.opu.n_features is None or (self.n_features is not None and self.opu.n_features != self.n_features):
            self.fit(self.n_features if self.n_features is not None else int(data.shape[-1]))
        if self.linear:
            result = self.opu.linear_transform(data, bits=self.bits)
        else:
            result = self.opu.transform(data, output=self.output)
        out = torch.from_numpy(np.ascontiguousarray(result))
        if x.is_floating_point():
            out = out.to(x.dtype)
        return out.to(x.device)

    @staticmethod
    def _float_binary(data: np.ndarray) -> np.ndarray:
        bad = (data != 0) & (data != 1)
        if bad.any():
            raise ValueError(
                f"x: expected only 0 and 1 for the non-linear map, got {int(bad.sum())} other values "
                f"(e.g. {data[bad].flat[0]!r}); pass an encoder, or linear=True for real-valued data"
            )
        return data.astype(np.uint8)

    def close(self) -> None:
        """Release the device; the next forward reopens it."""
        self.opu.close()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__().copy()
        del state["opu"]  # a connection is never pickled: the URL and settings are
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        device, n_components, seed, settings = self._opu_args
        self.opu = OPU(device, n_components=n_components, seed=seed, settings=settings, progress=False)
