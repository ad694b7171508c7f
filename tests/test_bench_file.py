"""Hostile and clumsy bench files (issue 13, points 8 and 9): an alias bomb, an oversized file,
duplicate keys, non-finite or mistyped values. Each is refused quickly, naming the file and line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from opu_hal.backends.bench_file import MAX_BENCH_FILE_BYTES, load_bench_file

GOOD = """\
dmd: {driver: protocol, url: "socket://127.0.0.1:9"}
camera:
  driver: protocol
  url: "socket://127.0.0.1:9"
  settings: {exposure_us: 400}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def alias_bomb() -> str:
    """The issue's bomb: 9 levels of 9 aliases each (9**9 strings once expanded) under ``url:``."""
    lines = ["a0: &a0 [" + ",".join(["x"] * 9) + "]"]
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    lines += ["dmd: {driver: protocol, url: *a8}", 'camera: {driver: protocol, url: "socket://127.0.0.1:9"}']
    return "\n".join(lines) + "\n"


# The child bounds itself once imported: SIGALRM (default action: terminate) 1 s of wall time
# after the imports, and an address-space limit 100 MB above what the imports took.
BOUNDED_PARSE = """
import resource, signal, sys
from opu_hal.backends.bench_file import load_bench_file
with open("/proc/self/statm") as f:
    vsize = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (vsize + 100 * 2**20, resource.RLIM_INFINITY))
signal.setitimer(signal.ITIMER_REAL, 1.0)
try:
    load_bench_file(sys.argv[1])
except ValueError as exc:
    print("REFUSED", exc)
"""


def test_an_alias_bomb_is_refused_within_a_second_and_100_MB_naming_the_file_and_line(tmp_path) -> None:
    path = write(tmp_path, alias_bomb())
    assert path.stat().st_size < 1024
    child = subprocess.run([sys.executable, "-c", BOUNDED_PARSE, str(path)], capture_output=True, text=True, check=False,
                           timeout=120)
    assert child.returncode == 0, f"killed or failed (rc {child.returncode}): {child.stderr[-500:]}"
    assert f"REFUSED {path}:1: anchors and aliases are not allowed in a bench file (&a0)" in child.stdout


def test_anchors_alone_merge_keys_and_undefined_aliases_are_refused_too(tmp_path) -> None:
    path = write(tmp_path, GOOD.replace("settings: {", "settings: &s {"))
    with pytest.raises(ValueError, match=rf"{path}:5: anchors and aliases are not allowed in a bench file \(&s\)"):
        load_bench_file(path)
    merge = write(tmp_path, GOOD + "sentinels: {<<: {retries: 1}}\n")
    with pytest.raises(ValueError, match=rf"{merge}:6: merge keys \(<<\) are not allowed in a bench file"):
        load_bench_file(merge)
    alias = write(tmp_path, GOOD + "sentinels: *s\n")
    with pytest.raises(ValueError, match=rf"{alias}:6: not valid YAML: found undefined alias"):
        load_bench_file(alias)


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path) -> None:
    path = write(tmp_path, GOOD + "#" * MAX_BENCH_FILE_BYTES + "\n")
    with pytest.raises(ValueError, match=rf"{path}: larger than the 1000000-byte limit of a bench file"):
        load_bench_file(path)
    assert load_bench_file(write(tmp_path, GOOD)).camera.settings.exposure_us == 400


def test_nesting_deeper_than_the_limit_is_refused_not_a_recursion_error(tmp_path) -> None:
    path = write(tmp_path, GOOD + "sentinels: " + "[" * 100_000 + "\n")
    with pytest.raises(ValueError, match=rf"{path}:6: nested deeper than 32 levels"):
        load_bench_file(path)


def test_a_duplicate_key_is_an_error_naming_the_key_file_and_both_lines(tmp_path) -> None:
    path = write(tmp_path, GOOD + "  url: \"socket://127.0.0.1:10\"\n")
    with pytest.raises(ValueError, match=rf"{path}:6: duplicate key 'url' \(first on line 4\)"):
        load_bench_file(path)
    top = write(tmp_path, GOOD + "frame_timeout_s: 1\nframe_timeout_s: 3\n")
    with pytest.raises(ValueError, match=rf"{top}:7: duplicate key 'frame_timeout_s' \(first on line 6\)"):
        load_bench_file(top)


@pytest.mark.parametrize(("line", "field", "message"), [
    ("frame_timeout_s: .inf", "frame_timeout_s", "Input should be a finite number"),
    ("frame_timeout_s: .nan", "frame_timeout_s", "Input should be a finite number"),
    ('frame_timeout_s: "2"', "frame_timeout_s", "Input should be a valid number"),
    ("sentinels: {block_frames: 2.0}", "sentinels.block_frames", "Input should be a valid integer"),
    ('sentinels: {retries: "1"}', "sentinels.retries", "Input should be a valid integer"),
    ("sentinels: {retries: true}", "sentinels.retries", "Input should be a valid integer"),
])
def test_non_finite_and_mistyped_values_are_refused_naming_the_field(tmp_path, line, field, message) -> None:
    path = write(tmp_path, GOOD + line + "\n")
    with pytest.raises(ValueError, match=rf"{path}:6: {field}: {message}"):
        load_bench_file(path)


@pytest.mark.parametrize(("setting", "field", "message"), [
    ("exposure_us: .inf", "exposure_us", "Input should be a finite number"),
    ("gain_db: .nan", "gain_db", "Input should be a finite number"),
    ('exposure_us: "400"', "exposure_us", "Input should be a valid number"),
    ("binning: 1.5", "binning", "Input should be a valid integer"),
])
def test_device_settings_are_strict_and_finite_too(tmp_path, setting, field, message) -> None:
    path = write(tmp_path, GOOD.replace("exposure_us: 400", setting))
    with pytest.raises(ValueError, match=rf"{path}:5: camera.protocol.settings.{field}: {message}"):
        load_bench_file(path)


def test_the_documented_kinds_of_value_still_load(tmp_path) -> None:
    path = write(tmp_path, GOOD.replace("{exposure_us: 400}", "{exposure_us: 400, pixel_format: Mono12, "
                                        "roi: {x: 0, y: 0, width: 8, height: 4}, trigger_type: rising_edge}")
                 + "light: {driver: scpi_laser, resource: 'X::Y', settings: {power_mw: 10, enabled: true}}\n"
                 + "sentinels: {block_frames: 64, retries: 2}\nframe_timeout_s: 3\n")
    bench = load_bench_file(path)
    assert bench.camera.settings.pixel_format.value == "Mono12" and bench.camera.settings.roi.height == 4
    assert bench.light.settings.power_mw == 10.0 and bench.frame_timeout_s == 3.0
