"""The package's layers: core -> engine -> analysis -> app, with no import back up.

- core: the clinical model and its inputs (`sim/*.py`: schema, loader, model, rules'
  numbers, random numbers, economics setting, tables' contract);
- engine: what simulates (`sim.engine`, `sim.rules`, `sim.runner`);
- analysis: what summarises a run's tables (`analysis`);
- app: what a user runs (`sim.app`: the command line, the run pipeline, outputs, sweeps;
  and `python -m sim`).

A module may import from its own layer and the layers below it, never above; and no
module imports another module's private names (`_x`): what is shared is public.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("core", "engine", "analysis", "app")


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name of this project, None for anything else."""
    parts = module.split(".")
    if parts[0] == "analysis":
        return "analysis"
    if parts[0] != "sim":
        return None
    if len(parts) > 1 and parts[1] in ("app", "__main__"):
        return "app"
    if len(parts) > 1 and parts[1] in ("engine", "rules", "runner"):
        return "engine"
    return "core"


def project_modules() -> list[tuple[str, Path]]:
    """Every module of `sim` and `analysis` as (dotted name, path)."""
    modules = []
    for package in ("sim", "analysis"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules.append((".".join(parts), path))
    return modules


def imports_of(path: Path) -> list[tuple[str, list[str], int]]:
    """The project imports of a file as (module, imported names, line), including those inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names], node.lineno))
    return [item for item in found if layer_of(item[0]) is not None]


def test_every_module_has_a_layer():
    assert {layer_of(name) for name, _ in project_modules()} == set(LAYERS)


@pytest.mark.parametrize("module, path", project_modules(), ids=[name for name, _ in project_modules()])
def test_no_import_reaches_a_higher_layer(module, path):
    own = LAYERS.index(layer_of(module))
    upward = [f"line {line}: {target} ({layer_of(target)})" for target, _, line in imports_of(path)
              if LAYERS.index(layer_of(target)) > own]
    assert not upward, f"{module} ({layer_of(module)}) imports from a higher layer: {upward}"


@pytest.mark.parametrize("module, path", project_modules(), ids=[name for name, _ in project_modules()])
def test_no_private_name_is_imported_from_another_module(module, path):
    private = [f"line {line}: {name} from {target}" for target, names, line in imports_of(path)
               for name in names if name.startswith("_") and not name.startswith("__")]
    assert not private, f"{module} imports private names: {private}"


def test_the_check_sees_an_upward_import(tmp_path):
    offender = tmp_path / "offender.py"
    offender.write_text("from analysis.summary import summarize_run\nfrom sim.model import _hidden\n")
    imports = imports_of(offender)
    assert [layer_of(target) for target, _, _ in imports] == ["analysis", "core"]
    assert imports[1][1] == ["_hidden"]


def test_no_test_folder_shadows_a_package():
    """pytest puts tests/ on sys.path: a folder there named like a package of the project
    (`scenarios`, `sim`, `analysis`) would be imported instead of it when `pytest` runs
    without the checkout on sys.path, as CI runs it."""
    tests = Path(__file__).resolve().parent
    packages = {p.name for p in tests.parent.iterdir() if (p / "__init__.py").is_file()}
    shadows = sorted(p.name for p in tests.iterdir() if p.is_dir() and p.name in packages)
    assert not shadows, f"rename tests/{shadows[0]}: it shadows the package {shadows[0]}"
