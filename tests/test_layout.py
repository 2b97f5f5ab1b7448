"""The package's layout is its architecture: rooms that import one way, down, and no cycles.

Every ``anymodal`` import in core counts, wherever it is written: at the top of a module, inside a
function, or under ``if TYPE_CHECKING:`` (a type-only import still ties two modules together).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "anymodal"

#: The rooms, lowest first. A module may import its own room and any room on a lower level; rooms on
#: one level do not import each other. ``anymodal`` is the public API (the package's __init__), a
#: facade over contract, files and preprocess that every room above it may use. serve, bind and data
#: are the rooms that the serving, binding and instruction-data tools land in.
LEVELS: tuple[tuple[str, ...], ...] = (
    ("contract",),
    ("files", "preprocess"),
    ("anymodal",),
    ("config",),
    ("encoders", "projectors"),
    ("runtime",),
    ("models", "train", "scaffold"),
    ("eval", "serve", "bind", "data"),
    ("demo",),
    ("testing",),
    ("cli",),
    ("__main__",),
)
LEVEL = {room: level for level, rooms in enumerate(LEVELS) for room in rooms}


def module_name(file: Path) -> str:
    parts = file.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "anymodal"


def imports_of(file: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import of anymodal in ``file``; ``from X import y`` yields
    ``X.y`` when that is a module of its own, else ``X``."""
    module = module_name(file)
    package = module if file.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [
                f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base for alias in node.names
            ]
        else:
            continue
        for name in names:
            if name == "anymodal" or name.startswith("anymodal."):
                yield node.lineno, name


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def core_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_room_has_a_level():
    rooms = {room_of(module_name(file)) for file in core_files()}
    assert rooms <= set(LEVEL), f"rooms missing from LEVELS: {sorted(rooms - set(LEVEL))}"


def test_imports_run_down_the_levels():
    wrong = []
    for file in core_files():
        source = room_of(module_name(file))
        for line, target in imports_of(file):
            to = room_of(target)
            if to != source and LEVEL[to] >= LEVEL[source]:
                wrong.append(f"{file.relative_to(ROOT)}:{line} ({source}) imports {target} ({to})")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_no_module_imports_itself_through_a_cycle():
    graph: dict[str, set[str]] = {}
    for file in core_files():
        module = module_name(file)
        # Importing a package module runs its parents' __init__ first; that edge is Python's, not ours.
        parents = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        graph[module] = {target for _, target in imports_of(file) if target != module} - parents
    cycles = _cycles(graph)
    assert not cycles, "modules that import each other, directly or round a loop:\n" + "\n".join(
        ", ".join(cycle) for cycle in cycles
    )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The modules of each strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


ROOM_DOC = re.compile(r"May import: ([^.]+)\.", re.DOTALL)
ROOMS = sorted({room_of(module_name(file)) for file in core_files()} - {"anymodal", "__main__"})


@pytest.mark.parametrize("room", ROOMS)
def test_each_room_says_what_it_holds_and_what_it_may_import(room: str):
    doc = ast.get_docstring(ast.parse((PACKAGE / room / "__init__.py").read_text())) or ""
    match = ROOM_DOC.search(doc)
    assert match, f"anymodal/{room}/__init__.py's docstring needs a sentence 'May import: ...'"
    stated = [name.strip() for name in match.group(1).replace("\n", " ").split(",")]
    expected = [r for r in sorted(LEVEL, key=lambda r: (LEVEL[r], r)) if LEVEL[r] < LEVEL[room]]
    expected = [r for r in expected if r != "__main__"] or ["nothing else in anymodal"]
    assert stated == expected, f"anymodal/{room} says it may import {stated}; LEVELS says {expected}"
    assert len(doc[: match.start()].strip()) > 40, f"say what anymodal/{room} holds before what it imports"


def distribution_files(kind: str) -> Iterator[Path]:
    for package in sorted((ROOT / kind).glob("*/anymodal_*")):
        yield from sorted(package.rglob("*.py"))


@pytest.mark.parametrize("kind", ["plugins", "bridges"])
def test_plugins_and_bridges_import_only_the_public_api(kind: str):
    wrong = []
    for file in distribution_files(kind):
        # A plugin's tests and its testing helpers may use the test kit too; its code only the public API.
        kit = "tests" in file.parts or file.name == "testing.py" or "testing" in file.parts
        for line, target in imports_of_anywhere(file):
            testing = target == "anymodal.testing" or target.startswith("anymodal.testing.")
            if target != "anymodal" and not (kit and testing):
                wrong.append(f"{file.relative_to(ROOT)}:{line} imports {target}")
    assert not wrong, (
        "plugins and bridges import only `anymodal` (tests: `anymodal.testing` too):\n" + "\n".join(wrong)
    )


def imports_of_anywhere(file: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        for name in names:
            if name == "anymodal" or name.startswith("anymodal."):
                yield node.lineno, name
