"""The package layers look only down, and nobody reaches into another package's privates.

crypto (1) → skel (2) → kernel (3) → cli (4); ``errors`` and ``_fileio`` sit
under all of them. Every ``import`` in ``src/bpfsign`` is checked, including the
lazy ones inside functions and those under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "bpfsign"

BASE = {"bpfsign.errors": 0, "bpfsign._fileio": 0}
LAYERS = {"bpfsign.crypto": 1, "bpfsign.skel": 2, "bpfsign.kernel": 3, "bpfsign.cli": 4}
TOP = {"bpfsign": 5, "bpfsign.__main__": 5}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> tuple[int, str]:
    """(layer number, owning package) of a module of bpfsign."""
    for table in (BASE, TOP):
        if module in table:
            return table[module], module
    for package, layer in LAYERS.items():
        if module == package or module.startswith(package + "."):
            return layer, package
    raise AssertionError(f"{module} belongs to no layer: add it to tests/test_layers.py")


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every bpfsign import in ``path``."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            for alias in node.names:
                candidate = f"{origin}.{alias.name}"
                is_module = (SRC / Path(*candidate.split("."))).with_suffix(".py").exists() or (
                    SRC / Path(*candidate.split(".")) / "__init__.py"
                ).exists()
                found.append((node.lineno, candidate if is_module else origin))
    return [(line, m) for line, m in found if m == "bpfsign" or m.startswith("bpfsign.")]


def violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = module_name(path)
        my_layer, my_package = layer_of(me)
        for line, target in imports(path):
            their_layer, their_package = layer_of(target)
            where = f"{path.relative_to(SRC.parent)}:{line}: {me} imports {target}"
            if their_layer > my_layer:
                problems.append(f"{where} (upward: layer {my_layer} -> {their_layer})")
            private = [
                p for p in target.split(".")[1:] if p.startswith("_") and not p.startswith("__")
            ]
            shared = their_package in BASE  # errors, _fileio: private to bpfsign, shared by all
            if private and not shared and their_package != my_package:
                problems.append(f"{where} (private module of {their_package})")
    return problems


def test_every_module_has_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        layer_of(module_name(path))


def test_imports_only_look_down() -> None:
    problems = violations()
    print("\n".join(problems) or "import check: every import looks down")
    assert problems == []


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_each_layer_package_says_what_it_owns(package: str) -> None:
    init = SRC / Path(*package.split(".")) / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text()))
    assert doc and "import" in doc, f"{init}: the docstring must say what it owns and may import"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The check itself works: a crypto module importing the loader is caught."""
    bad = PACKAGE / "crypto" / "_layer_probe_tmp.py"
    bad.write_text("from ..kernel import loader\nfrom ..kernel import _sys\n")
    try:
        found = [p for p in violations() if "_layer_probe_tmp" in p]
    finally:
        bad.unlink()
    assert found == [
        "src/bpfsign/crypto/_layer_probe_tmp.py:1: bpfsign.crypto._layer_probe_tmp imports "
        "bpfsign.kernel.loader (upward: layer 1 -> 3)",
        "src/bpfsign/crypto/_layer_probe_tmp.py:2: bpfsign.crypto._layer_probe_tmp imports "
        "bpfsign.kernel._sys (upward: layer 1 -> 3)",
        "src/bpfsign/crypto/_layer_probe_tmp.py:2: bpfsign.crypto._layer_probe_tmp imports "
        "bpfsign.kernel._sys (private module of bpfsign.kernel)",
    ]
