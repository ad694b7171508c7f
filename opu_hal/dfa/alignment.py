"""Per-layer alignment: cosine between the DFA update and the backpropagation update."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .layers import DFA

__all__ = ["alignment"]


def alignment(dfa: DFA, model: nn.Module, closure: Callable[[], torch.Tensor]) -> dict[str, float]:
    """Cosine similarity, per marked layer, between the DFA and the BP gradient of its parameters.

    The parameters of marked layer k are those its marked tensor depends on in DFA mode
    (between marker k-1 and marker k: the detached markers cut the graph there). ``closure``
    runs a forward pass on a fixed batch and returns the loss; it runs twice, once with
    backpropagation and once in the DFA's mode (a feedback projection is spent). The
    parameters' ``.grad`` are left untouched.

    Returns ``{layer name: cosine}`` in marker order (NaN for a layer whose update is zero).
    """
    if not isinstance(dfa, DFA):
        raise TypeError(f"dfa: expected a DFA module, got {type(dfa).__name__}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not callable(closure):
        raise TypeError(f"closure: expected a callable returning the loss, got {type(closure).__name__}")
    if dfa.feedback is None:
        raise ValueError(f"dfa: expected a DFA in 'digital' or 'optical' mode, got mode {dfa.mode!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    with dfa.using("bp"):
        bp = torch.autograd.grad(_loss(closure), params, allow_unused=True)
    loss = _loss(closure)
    owned = []
    for h in dfa.last_hidden:
        reach = torch.autograd.grad(h, params, grad_outputs=torch.ones_like(h), allow_unused=True, retain_graph=True)
        owned.append([i for i, g in enumerate(reach) if g is not None])
    dfa_grads = torch.autograd.grad(loss, params, allow_unused=True)
    result = {}
    for name, indices in zip(dfa.names, owned):
        a = torch.cat([dfa_grads[i].reshape(-1) for i in indices if dfa_grads[i] is not None and bp[i] is not None])
        b = torch.cat([bp[i].reshape(-1) for i in indices if dfa_grads[i] is not None and bp[i] is not None])
        norm = float(a.norm() * b.norm())
        result[name] = float(a @ b) / norm if norm > 0 else math.nan
    return result


def _loss(closure: Callable[[], torch.Tensor]) -> torch.Tensor:
    loss = closure()
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        raise ValueError(f"closure: expected a scalar loss tensor, got {getattr(loss, 'shape', type(loss).__name__)}")
    return loss
