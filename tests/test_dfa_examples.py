"""The DFA examples and bench: their Transformer learns with DFA, the scripts run with optical feedback."""

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def common() -> dict:
    return runpy.run_path(str(EXAMPLES / "dfa_common.py"))


def test_post_norm_transformer_learns_the_markov_chain_with_digital_dfa(common: dict) -> None:
    data, entropy = common["markov_task"](n_train=2000, vocab=8)
    losses, alignments = {}, {}
    for mode in ("bp", "digital", "output"):
        torch.manual_seed(0)
        model = common["Transformer"](vocab=8, length=16, causal=True, mode=mode, seed=0)
        result = common["train"](model, data, epochs=8, lr=4e-3, cosine=True, seed=0)
        losses[mode], alignments[mode] = result.test_loss, result.alignment
    assert entropy < losses["bp"] < losses["digital"] < 1.25 * losses["bp"]
    # DFA closes most of the gap between the output layer alone and BP ...
    assert losses["output"] - losses["digital"] > 2 * (losses["digital"] - losses["bp"])
    # ... with every block's update aligned with BP's
    assert set(alignments["digital"]) == {"hidden1", "hidden2"}
    assert min(alignments["digital"].values()) > 0.2


def test_data_sets_ship_or_are_generated_with_the_documented_splits(common: dict) -> None:
    expected = {"mnist5k": ((4000, 784), (1000, 784)), "mnist1d": ((4000, 40), (1000, 40)),
                "digits": ((1437, 64), (360, 64))}
    loaded = {name: common[name]() for name in expected}
    for name, (train_shape, test_shape) in expected.items():
        data = loaded[name]
        assert (tuple(data.x_train.shape), tuple(data.x_test.shape)) == (train_shape, test_shape), name
        assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64, name
        assert set(data.y_train.tolist()) == set(range(10)), name
    pixels = loaded["mnist5k"].x_train
    assert float(pixels.min()) == 0.0 and float(pixels.max()) == 1.0


@pytest.mark.parametrize("script, args", [
    ("dfa_transformer.py", ["--task", "markov"]),
    ("dfa_digits_conv.py", []),
    ("dfa_mnist.py", []),
    ("dfa_mnist1d.py", []),
    ("dfa_gcn.py", []),
])
def test_example_trains_one_epoch_with_optical_feedback(script: str, args: list[str]) -> None:
    run = subprocess.run([sys.executable, str(EXAMPLES / script), *args, "--mode", "optical", "--epochs", "1"],
                         cwd=EXAMPLES, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = run.stdout.strip().splitlines()[-1]
    match = re.search(r"optical seed 0: test accuracy +([\d.]+) %, loss ([\d.]+), .* (\d+) frames, device ([\d.]+) s", summary)
    assert match, summary
    accuracy, loss, frames, device_s = float(match[1]), float(match[2]), int(match[3]), float(match[4])
    assert 0 < accuracy <= 100 and loss > 0
    assert frames > 0 and device_s > 0


def test_bench_dfa_reports_every_figure_through_the_cli() -> None:
    run = subprocess.run([sys.executable, "-m", "opu_hal.cli", "bench", "dfa", "--quick", "--tasks", "transformer,gcn,overhead"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    for mode in ("bp", "digital", "optical", "output"):
        assert re.search(rf"transformer +{mode} seed 0: test accuracy .*, loss [\d.]+, alignment \[", out), mode
    assert re.search(r"optical seed 0: .* alignment \[hidden1 -?[\d.]+ hidden2 -?[\d.]+\], .* [1-9]\d* frames, device [\d.]+ s", out)
    # training frames per step exclude the alignment probes, counted apart
    assert re.search(r"optical seed 0: .* \([1-9]\d* training frames per step, .*; [1-9]\d* alignment frames apart\)", out)
    # energy and time per step: frames x frametime and x the device's 30 W, next to the digital step's time
    energy = re.search(r"transformer optical feedback per step: ([\d.]+) frames x ([\d.]+) ms frametime = ([\d.]+) ms, "
                       r"x 30 W = ([\d.]+) mJ; digital DFA step ([\d.]+) ms, BP step ([\d.]+) ms \(wall\)", out)
    assert energy, out
    frames, frametime_ms, time_ms, energy_mj = (float(energy[k]) for k in range(1, 5))
    assert frames > 0 and frametime_ms > 0 and float(energy[5]) > 0
    assert time_ms == pytest.approx(frames * frametime_ms, rel=0.02)
    assert energy_mj == pytest.approx(30 * time_ms, rel=0.02)  # W x ms = mJ
    assert "optical DFA loss / BP loss:" in out
    for mode in ("bp", "digital", "optical", "output"):
        assert re.search(rf"gcn +{mode} seed 0: test accuracy .*, alignment \[", out), mode
    assert re.search(r"gcn optical feedback per step: [\d.]+ frames", out)
    assert re.search(r"GCN optical DFA - BP: [+-][\d.]+ points \(target >= -3", out) and "lowest per-layer alignment of any DFA run:" in out
    assert re.search(r"hooks add [+-][\d.]+ % to a hand-written digital DFA step", out)
    assert "[--quick: not judged]" in out and "[meets target]" not in out


def test_sbm_graph_is_cora_like_and_a_gcn_trains_above_chance_with_digital_dfa(common: dict) -> None:
    graph = common["sbm_graph"]()
    n = 2708
    assert graph.x.shape == (n, 500) and set(graph.y.tolist()) == set(range(7))
    assert (int(graph.train.sum()), int(graph.val.sum()), int(graph.test.sum())) == (140, 500, 1000)
    assert not bool((graph.train & graph.test).any() or (graph.val & graph.test).any())
    assert 3.5 < 2 * graph.n_edges / n < 4.3  # mean degree 3.9 as Cora's
    i, j = graph.adjacency.indices()
    off = i != j
    assert 0.7 < float((graph.y[i[off]] == graph.y[j[off]]).float().mean()) < 0.9  # Cora: 81 % of edges within a class
    torch.manual_seed(0)
    model = common["GCN"](500, mode="digital")
    result = common["train_graph"](model, graph, epochs=30)
    assert result.test_accuracy > 3 * 100 / 7  # chance: 14.3 %
    assert result.alignment["hidden1"] > 0.2


def test_bench_dfa_conv_task_reports_every_mode_both_placements_and_the_gaps_through_the_cli() -> None:
    run = subprocess.run([sys.executable, "-m", "opu_hal.cli", "bench", "dfa", "--quick", "--tasks", "conv"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    assert "scikit-learn digits 8 x 8, 500 / 360, Adam lr 1e-3, batch 32, 1 epochs, 1 seed(s)" in out
    for mode in ("bp", "digital", "optical", "output"):
        assert re.search(rf"conv +{mode} seed 0: test accuracy +[\d.]+ %", out), mode
        assert re.search(rf"conv +{mode}: test accuracy [\d.]+ over 1 seed", out), mode
    # the conv layers' alignment, per layer, in both DFA modes and in the placement before the pools
    for name in ("conv +digital", "conv +optical", "conv-unpooled +digital"):
        assert re.search(rf"{name}: test accuracy [\d.]+ over 1 seed\(s\), alignment hidden1 -?[\d.]+ hidden2 -?[\d.]+",
                         out), name
    assert re.search(r"conv optical feedback per step: [\d.]+ frames x [\d.]+ ms frametime", out)
    for label in ("digital DFA", "optical DFA", "digital DFA, markers before the pools,"):
        assert re.search(rf"conv {label} - output layer only: [+-][\d.]+ points \(target >= 3", out), label
    assert "[--quick: not judged]" in out and "[meets target]" not in out


def test_conv_net_markers_after_the_pools_feed_back_to_each_window_s_strongest_position_only(common: dict) -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 64)
    grads = {}
    for after_pool in (False, True):
        torch.manual_seed(0)
        model = common["ConvNet"](8, after_pool=after_pool, mode="digital", seed=0)
        feature_map: list[torch.Tensor] = []

        def keep(module: torch.nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            out.retain_grad()
            feature_map.append(out)

        model.conv1.register_forward_hook(keep)
        model(x).sum().backward()
        grads[after_pool] = feature_map[0].grad  # dL/d(conv1 pre-activation), (4, 16, 8, 8)
    windows = lambda g: g.reshape(4, 16, 4, 2, 4, 2).permute(0, 1, 2, 4, 3, 5).reshape(4, 16, 4, 4, 4)  # noqa: E731
    assert int((windows(grads[True]) != 0).sum(-1).max()) == 1  # one position per 2 x 2 window: the max-pool's choice
    assert int((windows(grads[False]) != 0).sum(-1).min()) == 4  # before the pool: every position gets feedback
