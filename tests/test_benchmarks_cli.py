"""`opu-hal bench ...`: the suites of the ``benchmarks`` package, installed with opu-hal, run through the CLI."""

import ast
import math
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from opu_hal import cli

ROOT = Path(__file__).resolve().parents[1]


def test_bench_randnla_runs_through_the_cli_outside_the_checkout(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "opu_hal.cli", "bench", "randnla", "--sections", "lstsq",
                          "--lstsq-shape", "400x20", "--lstsq-opu-shape", "200x10"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "== lstsq: cond 1e+08 ==" in run.stdout and "OPU 4n" in run.stdout


def test_bench_protocol_faults_prints_success_and_throughput_against_the_fault_rate(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "opu_hal.cli", "bench", "protocol", "--quick", "--sections", "faults"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = re.findall(r"^faults ([\d.]+)%: success (\d+)/(\d+) \(\d+%\); ([\d,.na]+) frames/s; "
                      r"([\d.na]+) x fault-free; (\d+) wrong results$", run.stdout, re.M)
    assert [float(r[0]) for r in rows] == [0.0, 0.5, 1.0, 2.0, 5.0], run.stdout
    for rate, ok, runs, fps, ratio, wrong in rows:
        assert 0 <= int(ok) <= int(runs) and int(runs) >= 1 and int(wrong) == 0
        fps, ratio = float(fps.replace(",", "")), float(ratio)
        if int(ok):
            assert math.isfinite(fps) and fps > 0 and math.isfinite(ratio) and 0 < ratio < 10
        else:
            assert math.isnan(fps) and math.isnan(ratio)
    assert rows[0][1] == rows[0][2] and float(rows[0][4]) == 1.0  # fault-free: every run, the reference
    assert all(int(r[1]) == int(r[2]) for r in rows[1:4])  # 0.5-2 %: the fault-free result every time


def test_the_benchmarks_package_is_installed_with_the_project() -> None:
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert "benchmarks*" in include
    assert not (ROOT / "bench").exists() and not (ROOT / "opu_hal" / "randnla" / "benchmark.py").exists()


def test_the_driver_never_imports_the_benchmarks_outside_the_cli() -> None:
    for path in (ROOT / "opu_hal").rglob("*.py"):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "benchmarks" for n in names), path


def test_bench_without_the_benchmarks_package_ends_with_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "benchmarks.dfa", None)  # what an import that cannot be done raises
    assert cli.main(["bench", "dfa", "--quick"]) == 2
    assert "opu-hal bench dfa: cannot load benchmarks.dfa" in capsys.readouterr().err


def test_bench_dfa_medium_sets_the_medium_of_the_optical_runs(capsys: pytest.CaptureFixture[str]) -> None:
    # --medium replaces the medium key of --device (issue 14: optical DFA on the structured medium vs the dense one)
    assert cli.main(["bench", "dfa", "--quick", "--tasks", "mnist5k", "--device", "emu://?bit_depth=8&medium=dense",
                     "--medium", "structured"]) == 0
    out = capsys.readouterr().out
    assert "optical feedback on emu://?bit_depth=8&medium=structured\n" in out
    optical = next(line for line in out.splitlines() if "optical seed 0" in line)
    assert " 0 frames" not in optical and "training frames per step" in optical


def test_bench_dfa_refuses_an_unknown_medium(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "dfa", "--medium", "foam"])
    assert exit_info.value.code == 2
    assert "argument --medium: invalid choice: 'foam'" in capsys.readouterr().err
