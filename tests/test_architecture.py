"""The house rules of docs/ARCHITECTURE.md: layers only look down, generation never loads training."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "stoichgen"

# room -> layer; a module may import only from rooms of its own layer or below (and not sideways into
# training from inference)
LAYERS = {
    "errors": 0,
    "io": 1,
    "schema": 1,
    "chem": 1,
    "data": 1,
    "space": 2,
    "models": 2,
    "run": 2,
    "nearest": 2,
    "options": 3,
    "train": 3,
    "predict": 3,
    "discover": 4,
    "evaluate": 4,
    "screen": 4,
    "verify": 4,
    "paper": 5,
    "web": 5,
    "cli": 6,
}
TRAINING = {"stoichgen.train", "stoichgen.options", "stoichgen.models.fast"}


def _room(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stoichgen"):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("stoichgen")]
    return found


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name != "stoichgen":
            yield name, path


@pytest.mark.parametrize(("module", "path"), list(_modules()), ids=lambda v: str(v))
def test_layers_only_look_down(module, path):
    own = LAYERS[_room(module)]
    for imported in _imports(path):
        if imported == "stoichgen":
            continue
        assert LAYERS[_room(imported)] <= own, f"{module} (layer {own}) imports {imported}"
        if _room(module) in ("predict", "discover", "evaluate", "run", "models", "screen", "web", "verify"):
            assert not any(imported.startswith(t) for t in TRAINING) or module.startswith(
                "stoichgen.models.fast"
            ), f"{module} is used for inference but imports {imported}"


def test_generating_and_evaluating_never_load_training():
    code = (
        "import sys, stoichgen, stoichgen.discover.pipeline, stoichgen.evaluate.runs, stoichgen.predict;"
        "stoichgen.Generator.default().generate(-2.0, n=2);"
        "print(sorted(m for m in sys.modules if m.startswith('stoichgen.')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for module in TRAINING:
        assert f"'{module}'" not in loaded and f"'{module}." not in loaded


def test_no_module_is_a_room_of_many_jobs():
    paths = list(PACKAGE.rglob("*.py"))
    sizes = {str(path.relative_to(PACKAGE)): len(path.read_text().splitlines()) for path in paths}
    assert len(sizes) == len(paths)  # keyed by path: same-named modules all count
    assert max(sizes.values()) <= 500, {name: size for name, size in sizes.items() if size > 500}


CONSUMERS = ("discover", "screen", "evaluate", "verify")


@pytest.mark.parametrize(("module", "path"), [m for m in _modules() if _room(m[0]) in CONSUMERS],
                         ids=lambda v: str(v))  # fmt: skip
def test_the_candidate_space_consumers_do_not_import_each_other(module, path):
    """discover/, screen/ and evaluate/ share the candidate space (space/) and lower rooms only."""
    for imported in _imports(path):
        other = _room(imported)
        assert other == _room(module) or other not in CONSUMERS, f"{module} imports {imported}"


def _all_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    found |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    return found


def test_io_and_the_candidate_space_need_no_torch():
    """Everything io, schema and space import, followed through the package, is free of torch."""
    paths = dict(_modules())
    todo, seen = ["stoichgen.io", "stoichgen.schema", "stoichgen.space"], set()
    while todo:
        module = todo.pop()
        if module in seen or module not in paths:
            continue
        seen.add(module)
        imported = _all_imports(paths[module])
        assert not any(name.split(".")[0] == "torch" for name in imported), module
        todo += [name for name in imported if name.startswith("stoichgen.")]
    assert "stoichgen.space.formulas" in seen and "stoichgen.chem.validity" in seen


def test_no_method_imports_the_judge():
    """The discovery benchmark's judge is used by no method: nothing outside evaluate/ imports it."""
    for module, path in _modules():
        if module.startswith(("stoichgen.evaluate", "stoichgen.cli")):
            continue
        assert "stoichgen.evaluate.judge" not in _imports(path), module
