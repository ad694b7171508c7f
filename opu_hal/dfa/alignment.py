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
    backpropagation and once in the DFA's mode, with the same random draws (dropout masks).

    No side effects on training: the parameters' ``.grad``, the model's buffers (BatchNorm
    running statistics, ``num_batches_tracked``), every module's train/eval flag and the torch
    random state are as before; the feedback projection is a probe (:meth:`Feedback.probing`:
    counted in ``stats.alignment_*``, a fixed stochastic-rounding draw in optical mode).

    Returns ``{layer name: cosine}`` in marker order (NaN for a layer whose update is zero).
    """
    if not isinstance(dfa, DFA):
        raise TypeError(f"dfa: expected a DFA module, got {type(dfa).__name__}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not callable(closure):
        raise TypeError(f"closure: expected a callable returning the loss, got {type(closure).__name__}")
    feedback = dfa.feedback
    if feedback is None:
        raise ValueError(f"dfa: expected a DFA in 'digital' or 'optical' mode, got mode {dfa.mode!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    flags = [(module, module.training) for module in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        gpus = sorted({p.device.index or 0 for p in params if p.device.type == "cuda"})
        with torch.random.fork_rng(devices=gpus):
            draws = torch.get_rng_state(), [torch.cuda.get_rng_state(d) for d in gpus]
            with dfa.using("bp"):
                bp = torch.autograd.grad(_loss(closure), params, allow_unused=True)
            torch.set_rng_state(draws[0])
            for d, state in zip(gpus, draws[1]):
                torch.cuda.set_rng_state(state, d)
            with feedback.probing():
                loss = _loss(closure)
                owned = []
                for h in dfa.last_hidden:
                    reach = torch.autograd.grad(h, params, grad_outputs=torch.ones_like(h), allow_unused=True,
                                                retain_graph=True)
                    owned.append([i for i, g in enumerate(reach) if g is not None])
                dfa_grads = torch.autograd.grad(loss, params, allow_unused=True)
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        for module, training in flags:
            module.training = training
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
