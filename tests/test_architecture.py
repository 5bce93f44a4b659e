"""The package's layers, checked on its source: a module never imports a layer above its own (not even
lazily inside a function or for type hints), and no import that runs closes a circle (a lazy import
inside a function included).

docs/ARCHITECTURE.md draws the same map; this test is what keeps the two true.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"

# low to high; a module may import its own layer and those below it
LAYERS = [
    ("foundation", {"errors", "redact", "plain_text", "file_modes"}),
    ("llm", {"llm", "testing"}),
    ("engine", {"engine"}),
    ("optim", {"optim"}),
    ("records", {"records"}),
    ("training", {"training"}),
    ("tasks", {"tasks"}),
    ("ui", {"ui"}),
    ("cli", {"cli"}),
    ("facade", {"__init__", "__main__"}),
]
LEVEL = {top: i for i, (_, tops) in enumerate(LAYERS) for top in tops}
DATA_PACKAGES = {"_widgets", "_sample_data"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top not in LEVEL:
        raise AssertionError(f"{module}: its folder {top!r} has no layer in tests/test_architecture.py")
    return LEVEL[top]


def imports_of(path: Path, *, runtime_only: bool) -> list[tuple[int, str]]:
    """(line, absolute module) of every import of a workbench module in `path`; `runtime_only` leaves
    out the imports under `if TYPE_CHECKING:` (they never run)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path)
    is_pkg = path.name == "__init__.py"
    base = here.split(".") if is_pkg else here.split(".")[:-1]
    type_only = {id(n) for block in ast.walk(tree)
                 if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
                 for stmt in block.body for n in ast.walk(stmt)}
    nodes = [n for n in ast.walk(tree) if not (runtime_only and id(n) in type_only)]
    found: list[tuple[int, str]] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "workbench"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                stem = base[:len(base) - (node.level - 1)]
                target = ".".join(stem + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "workbench":
                continue
            # `from . import results` names a module; `from .x import Name` names the module x
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if _is_module(sub):
                    found.append((node.lineno, sub))
                else:
                    found.append((node.lineno, target))
    return found


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if not set(p.relative_to(PACKAGE).parts) & DATA_PACKAGES)


def test_every_folder_has_a_layer():
    for path in SOURCES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_upward_import(path: Path):
    here = module_name(path)
    mine = layer_of(here)
    upward = [f"line {line}: {target} ({LAYERS[layer_of(target)][0]})"
              for line, target in imports_of(path, runtime_only=False)
              if target.split(".")[1:2] and layer_of(target) > mine]
    assert not upward, f"{here} ({LAYERS[mine][0]}) imports a higher layer: " + "; ".join(upward)


def test_no_import_circle():
    graph: dict[str, set[str]] = {}
    for path in SOURCES:
        here = module_name(path)
        graph[here] = {t for _, t in imports_of(path, runtime_only=True) if t != here}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


MAX_LINES = 400
# modules another change is splitting; each must shrink below MAX_LINES there, then leave this list
KNOWN_LONG: set[str] = set()  # (engine/backward.py was split by issue #16: backward, backward_rules, backward_prompts)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_400_lines(path: Path):
    """A module that long holds more than one concept: put the new one in a module named for it."""
    name = str(path.relative_to(PACKAGE))
    lines = len(path.read_text(encoding="utf-8").splitlines())
    if name in KNOWN_LONG:
        return
    assert lines <= MAX_LINES, f"workbench/{name} has {lines} lines (at most {MAX_LINES}): split it by concept"


def test_the_known_long_modules_are_still_long():
    """An exception that no longer applies is removed from KNOWN_LONG, so it cannot hide a new long module."""
    for name in KNOWN_LONG:
        path = PACKAGE / name
        assert path.is_file() and len(path.read_text(encoding="utf-8").splitlines()) > MAX_LINES, name


TRAINING = PACKAGE / "training"


def private_reads_of_others(source: str, where: str) -> list[str]:
    """`x._name` where `x` is not `self` or `cls`: one object reaching into another's private fields."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_part_of_the_trainer_reads_another_parts_private_attributes():
    """The trainer's parts get what they need in their constructors; none reaches into another's `_fields`
    (as the mixins and checkpoint.py once did with `trainer._proposal_counter`)."""
    found = [hit for path in sorted(TRAINING.rglob("*.py"))
             for hit in private_reads_of_others(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))]
    assert found == []


def test_the_private_read_check_finds_one():
    source = "def f(trainer, self):\n    self._x = trainer.state()._proposal_counter + self.__class__.y\n"
    assert private_reads_of_others(source, "m.py") == ["m.py:2: trainer.state()._proposal_counter"]
