"""The package layers of docs/architecture.md: every import points down (or sideways), no package cycle.

Bottom to top: foundation modules -> transport -> protocol -> firmware_sim -> devices ->
backends -> records and encoders -> the OPU facade -> clients (calibration, randnla, dfa,
sklearn, torch, compat, serve, cli, selftest, pytest plugin, benchmarks). Every import
statement counts, including those inside functions; imports under ``if TYPE_CHECKING:``
(annotations only) do not.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("opu_hal", "firmware_sim", "calibration", "benchmarks")

#: (rank, module prefixes): a module belongs to the longest prefix that matches it.
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (0, ("opu_hal", "opu_hal.errors", "opu_hal.limits", "opu_hal.validation", "opu_hal.layout", "opu_hal.settings",
         "opu_hal.result", "opu_hal.url", "opu_hal.locking")),
    (1, ("opu_hal.transport",)),
    (2, ("opu_hal.protocol",)),
    (3, ("firmware_sim",)),
    (4, ("opu_hal.devices",)),
    (5, ("opu_hal.backends",)),
    (6, ("opu_hal.record", "opu_hal.encoding")),
    (7, ("opu_hal.opu", "opu_hal.session", "opu_hal.linear")),
    (8, ("calibration", "opu_hal.randnla", "opu_hal.dfa", "opu_hal.sklearn", "opu_hal.torch", "opu_hal.compat",
         "opu_hal.sharing", "opu_hal.cli", "opu_hal.selftest", "opu_hal.pytest_plugin", "benchmarks")),
]
PREFIXES = {prefix: rank for rank, prefixes in LAYERS for prefix in prefixes}


def layer_of(module: str) -> tuple[int, str] | None:
    """(rank, unit) of a project module: the longest matching prefix; None for other packages."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in PREFIXES:
            return PREFIXES[prefix], prefix
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, int]]:
    """(imported module, line) of every run-time import in a module's syntax tree."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".")
                    base = base if is_package else base[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                # ``from package import name``: the name may be a submodule
                found.extend((f"{target}.{alias.name}", child.lineno) for alias in child.names)
            visit(child)

    visit(tree)
    return found


def scan(root: Path) -> list[tuple[str, str, int]]:
    """(importer, imported, line) for every import between project modules under ``root``."""
    edges = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            is_package = rel.name == "__init__"
            module = ".".join(rel.parts[:-1] if is_package else rel.parts)
            for target, line in _imports(ast.parse(path.read_text(), str(path)), module, is_package):
                if layer_of(target) is not None:
                    edges.append((module, _resolve(target, root), line))
    return edges


def _resolve(target: str, root: Path) -> str:
    """``a.b.name`` -> ``a.b`` unless ``name`` is a module or package under ``root``; names the root re-exports
    lazily (``from opu_hal import OPU``) resolve to their defining module."""
    parts = target.split(".")
    path = root.joinpath(*parts)
    if path.with_suffix(".py").exists() or (path / "__init__.py").exists():
        return target
    parent = ".".join(parts[:-1])
    if parent == "opu_hal":
        exports = _root_exports(root)
        if parts[-1] in exports:
            return "opu_hal" + exports[parts[-1]]
    return parent


def _root_exports(root: Path) -> dict[str, str]:
    tree = ast.parse((root / "opu_hal" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "_EXPORTS":
            return ast.literal_eval(node.value)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def wrong_way(edges: list[tuple[str, str, int]]) -> list[str]:
    """Imports from a higher layer than the importer's."""
    bad = []
    for importer, imported, line in edges:
        (low, _), (high, _) = layer_of(importer), layer_of(imported)
        if high > low:
            bad.append(f"{importer}:{line} imports {imported} (layer {high} above {low})")
    return bad


def unit_cycles(edges: list[tuple[str, str, int]]) -> list[list[str]]:
    """Cycles between units (the layer prefixes: packages and top-level modules)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for importer, imported, _ in edges:
        a, b = layer_of(importer)[1], layer_of(imported)[1]
        if a != b:
            graph[a].add(b)
    cycles, state = [], {}

    def dfs(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                dfs(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            dfs(node, [node])
    return cycles


def test_every_import_points_down():
    assert wrong_way(scan(ROOT)) == []


def test_no_cycle_between_packages():
    assert unit_cycles(scan(ROOT)) == []


def test_every_project_module_has_a_layer():
    missing = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if layer_of(".".join(path.relative_to(ROOT).with_suffix("").parts)) is None
    ]
    assert missing == []


def test_the_check_catches_a_wrong_way_import(tmp_path):
    """A test of the test: a transport that imports the facade, a firmware that imports a backend."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "opu_hal" / "transport").mkdir()
    (tmp_path / "opu_hal" / "transport" / "__init__.py").write_text("")
    (tmp_path / "opu_hal" / "opu.py").write_text("")
    (tmp_path / "opu_hal" / "backends").mkdir()
    (tmp_path / "opu_hal" / "backends" / "__init__.py").write_text("from firmware_sim import model\n")
    (tmp_path / "firmware_sim" / "model.py").write_text("")
    (tmp_path / "opu_hal" / "transport" / "bad.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from opu_hal.opu import OPU\n"
        "def lazy():\n    from ..opu import OPU\n"
    )
    (tmp_path / "firmware_sim" / "firmware.py").write_text("import opu_hal.backends\n")
    bad = sorted(wrong_way(scan(tmp_path)))
    assert bad == [
        "firmware_sim.firmware:1 imports opu_hal.backends (layer 5 above 3)",
        "opu_hal.transport.bad:5 imports opu_hal.opu (layer 7 above 1)",
    ]
    assert unit_cycles(scan(tmp_path)) == [["firmware_sim", "opu_hal.backends", "firmware_sim"]]


def test_importing_the_transport_layer_loads_neither_the_facade_nor_calibration():
    code = (
        "import sys, opu_hal.transport, firmware_sim.firmware\n"
        "print(sorted(m for m in sys.modules if m == 'opu_hal.opu' or m.startswith('calibration')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["OPU", "OPUSettings", "CalibrationRecord", "DeviceSession", "ProtocolError"])
def test_public_names_are_importable_from_the_package_root(name):
    import opu_hal

    assert getattr(opu_hal, name).__name__ == name and name in opu_hal.__all__
