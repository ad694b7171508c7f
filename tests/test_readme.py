"""The README's Python examples run as written (each in a fresh namespace and directory)."""

import re
import runpy
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
SCRIPTS = [b for b in BLOCKS if "def test_" not in b]
TESTS = [b for b in BLOCKS if "def test_" in b]

pytest_plugins = ["pytester"]


def _first_line(block: str) -> str:
    return next(line for line in block.splitlines() if line and not line.startswith(("import", "from")))[:40]


def test_readme_has_its_examples() -> None:
    assert len(SCRIPTS) >= 4 and len(TESTS) == 1


@pytest.mark.parametrize("block", SCRIPTS, ids=_first_line)
def test_readme_example_runs(block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "example.py"
    script.write_text(block, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # examples that save files write them here
    runpy.run_path(str(script), run_name="__main__")


@pytest.mark.parametrize("block", TESTS, ids=_first_line)
def test_readme_test_passes_under_the_plugin(block: str, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_readme_block=block)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    result.assert_outcomes(passed=1)
