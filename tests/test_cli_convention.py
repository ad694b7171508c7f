"""One convention for every ``opu-hal`` subcommand (issue 17, point 4).

The device URL is positional, defaults and choices are shown in ``--help``, usage errors
exit 2 with one line, device faults exit 1, numbers are printed with units and at most a
few significant digits, tables fit in 100 columns, and ``--json`` serves scripts.
"""

import argparse
import json
import re
import subprocess
import sys

import pytest

from opu_hal import cli

DEVICE_COMMANDS = ("info", "demo", "selftest", "calibrate", "serve")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", DEVICE_COMMANDS)
def test_the_device_url_is_positional_and_defaults_are_shown(command):
    sub = _subparsers()[command]
    positional = [a.dest for a in sub._actions if not a.option_strings]
    options = [s for a in sub._actions for s in a.option_strings]
    assert "device" in positional and "--device" not in options
    assert "(default: emu://)" in " ".join(sub.format_help().split())
    assert sub.formatter_class is argparse.ArgumentDefaultsHelpFormatter


def test_demo_takes_the_url_positionally(tmp_path, capsys):
    out = tmp_path / "frame.png"
    assert cli.main(["demo", "emu://?seed=1", "--n-features", "64", "--rows", "2", "--batch", "4",
                     "--out", str(out)]) == 0
    assert out.exists()


def test_bench_randnla_lists_its_sections():
    from benchmarks.randnla import build_parser

    help_text = " ".join(build_parser().format_help().split())
    assert "rsvd, trace, lstsq, dask" in help_text and "(default: rsvd,trace,lstsq,dask)" in help_text


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opu_hal.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, named", [
    (("selftest", "--n-features", "0"), "--n-features"),
    (("demo", "emu://", "--batch", "-3"), "--batch"),
    (("info", "nosuch://x"), "nosuch"),
    (("selftest", "--no-such-option"), "--no-such-option"),
])
def test_usage_errors_exit_2_with_one_line(args, named):
    run = _run(*args)
    assert run.returncode == 2, run.stderr
    assert run.stdout == "" and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert named in run.stderr and run.stderr.startswith(f"opu-hal {args[0]}: error:")


def test_a_device_fault_exits_1_with_one_line():
    run = _run("info", "socket://127.0.0.1:9?timeout_s=0.5", "--timeout-s", "0.5")  # nothing listens on port 9
    assert run.returncode == 1, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and run.stderr.startswith("opu-hal info: error:")


def test_info_prints_human_numbers_with_units_and_json_on_request(capsys):
    assert cli.main(["info", "emu://"]) == 0
    text = capsys.readouterr().out
    assert not re.search(r"\d\.\d{6,}", text), text  # no 1.0709999997970954e-06
    assert re.search(r"default exposure\s+\S+ us", text) and re.search(r"dark level\s+\S+ DN", text), text
    assert max(len(line) for line in text.splitlines()) <= 100
    assert cli.main(["info", "emu://", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["dmd_shape"]) == 2
    assert isinstance(report["dn_per_intensity_per_us"], float)


def test_selftest_table_fits_100_columns_and_json_on_request(capsys):
    sizes = ["--n-components", "400", "--n-features", "300", "--batch", "50"]
    assert cli.main(["selftest", "emu://", *sizes]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    assert cli.main(["selftest", "emu://", *sizes, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True
    assert [c["name"] for c in report["checks"]][:2] == ["handshake", "frame rate"]
    assert {c["status"] for c in report["checks"]} <= {"pass", "skip"}


def test_calibrate_json_names_the_record_and_the_exposures(tmp_path, capsys):
    out = tmp_path / "cal"
    assert cli.main(["calibrate", "emu://?seed=3", "--out", str(out), "--n-features", "64", "--n-components", "50",
                     "--no-tm", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["serial"] == "EMU-00000003" and (out / "calibration.json").exists()
    assert report["exposure_in_effect_us"]["transform"] == pytest.approx(report["stages"]["exposure"]["exposure_us"])
    assert report["exposure_in_effect_us"]["linear_transform"] == pytest.approx(
        report["stages"]["linear"]["exposure_us"])
