"""DFA under torch.nn.parallel.DistributedDataParallel, the supported data-parallel path (issue 16).

Two CPU processes (gloo, world size 2), each with half of a batch, make the same parameter
update as one process on the whole batch: the feedback is computed per sample, and DDP
averages the gradients (hidden layers' feedback gradients included) across processes.
"""

from __future__ import annotations

import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from opu_hal.dfa import DFA, DFALayer

WORLD = 2


class Net(nn.Module):
    """A 6-8-8-3 tanh MLP with a DFA marker after each hidden layer (digital feedback)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 3)
        self.markers = nn.ModuleList([DFALayer(), DFALayer()])
        self.dfa = DFA(list(self.markers), mode="digital", seed=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = self.markers[0](torch.tanh(self.fc1(x)))
        h2 = self.markers[1](torch.tanh(self.fc2(h1)))
        return self.dfa(self.fc3(h2))


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)


def step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """One SGD step on the mean cross-entropy of (x, y)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(0)
        model = nn.parallel.DistributedDataParallel(Net())
        x, y = batch()
        half = len(y) // WORLD
        step(model, x[rank * half : (rank + 1) * half], y[rank * half : (rank + 1) * half])
        torch.save(model.module.state_dict(), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ddp_with_two_processes_makes_the_update_of_one_process_on_the_whole_batch(tmp_path: Path) -> None:
    out = str(tmp_path / "params")
    port = free_port()
    # fork, not spawn: the children need not import torch again (seconds each on a loaded machine)
    processes = [mp.get_context("fork").Process(target=worker, args=(rank, port, out)) for rank in range(WORLD)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * WORLD
    torch.manual_seed(0)
    single = Net()
    before = {k: v.clone() for k, v in single.state_dict().items()}
    step(single, *batch())
    for rank in range(WORLD):
        ranked = torch.load(f"{out}.{rank}")
        for name, value in single.state_dict().items():
            assert not torch.equal(value, before[name]), name  # every layer moved, the hidden ones by the feedback
            torch.testing.assert_close(ranked[name], value, rtol=1e-5, atol=1e-6, msg=name)
