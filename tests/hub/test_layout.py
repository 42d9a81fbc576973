"""The hub's package shows its architecture: four parts that lean on each other in one
direction only, the settings and the hub's own addresses beneath them, no import circle, and
tests that mirror the package.

    organizer → console → room → access → settings, services

Every import inside the package counts, a lazy one in a function too: a circle hidden in a
function body still means that neither module can be understood without the other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "hub" / "workshop_hub"
TESTS = ROOT / "tests" / "hub"
# Lower first: a module may import from its own part and from the parts below it.
PARTS = ("access", "room", "console", "organizer")
BENEATH_ALL = ("settings", "services")
# Modules without a test file of their own, and where they are tested: what needs the real hub
# or Docker end to end, and the preflight's parts as the one command they make up.
TESTED_ELSEWHERE = {
    "access.sessions": "tests/hub/console/test_instructor_actions.py",
    "room.attendee_removal": "tests/e2e/test_console.py",
    "room.workshop": "tests/e2e/test_hub.py",  # the hub's start, with every e2e stack
    "organizer.preflight.facts": "tests/hub/organizer/test_preflight.py",
    "organizer.preflight.host": "tests/hub/organizer/test_preflight.py",
    "organizer.preflight.images": "tests/hub/organizer/test_preflight.py",
    "organizer.preflight.rules": "tests/hub/organizer/test_preflight.py",
    "organizer.preflight.tls": "tests/hub/organizer/test_preflight.py",
}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """hub/workshop_hub/room/disks.py -> "room.disks"; a package's __init__ is the package."""
    parts = path.relative_to(package).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str], package: Path = PACKAGE) -> set[str]:
    """The package's own modules that a file imports, relative and absolute imports alike."""
    name = module_name(path, package)
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == package.name:
                target = node.module.split(".")[1:]
            else:
                continue
            candidates = [".".join(target)] + [".".join([*target, a.name]) for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [
                a.name.removeprefix(f"{package.name}.")
                for a in node.names
                if a.name.startswith(f"{package.name}.")
            ]
        else:
            continue
        found.update(c for c in candidates if c and c in modules and c != name)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    files = {module_name(path, package): path for path in package.rglob("*.py")}
    modules = set(files)
    return {name: imported_modules(path, modules, package) for name, path in files.items()}


def rank(module: str) -> int:
    """0 for what lies beneath all, then 1 + the part's place in PARTS."""
    top = module.split(".")[0]
    if top in BENEATH_ALL or top == "":
        return 0
    return 1 + PARTS.index(top)


def against_the_direction(graph: Mapping[str, Iterable[str]]) -> list[str]:
    return sorted(
        f"{module} imports {target}: {module.split('.')[0] or 'the package'} may not lean on "
        f"{target.split('.')[0]}"
        for module, targets in graph.items()
        for target in targets
        if rank(target) > rank(module)
    )


def circles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Each import circle once, as the path that closes it (a depth-first search)."""
    found, state = [], {}  # state: 1 on the current path, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                found.append(path[path.index(target) :] + [module, target])
            elif target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    return found


def test_every_module_lives_in_one_of_the_four_parts_or_beneath_them_all():
    loose = [
        name for name in import_graph() if name and name.split(".")[0] not in PARTS + BENEATH_ALL
    ]
    assert not loose, f"{loose}: put each in the part it serves ({', '.join(PARTS)})"


@pytest.mark.parametrize("part", PARTS)
def test_each_part_says_what_it_is_for(part):
    docstring = ast.get_docstring(ast.parse((PACKAGE / part / "__init__.py").read_text()))
    assert docstring, f"workshop_hub/{part}/__init__.py: say in one sentence what it is for"


def test_imports_point_one_way_only():
    assert against_the_direction(import_graph()) == []


def test_no_import_circle():
    assert circles(import_graph()) == []


def test_the_checks_catch_a_wrong_way_import_and_a_circle(tmp_path):
    # A made-up package: the room reaching up into the console, and two modules that need
    # each other through a lazy import.
    package = tmp_path / "workshop_hub"
    for part in ("", "room", "console"):
        (package / part).mkdir(parents=True, exist_ok=True)
        (package / part / "__init__.py").write_text("")
    (package / "settings.py").write_text("")
    (package / "room" / "spawner.py").write_text(
        "from ..console import service\nfrom .. import settings\n"
    )
    (package / "console" / "service.py").write_text("from workshop_hub.console.view import x\n")
    (package / "console" / "view.py").write_text(
        "def later():\n    from . import service\n\nx = 1\n"
    )
    graph = import_graph(package)
    assert graph["room.spawner"] == {"console", "console.service", "settings"}
    assert against_the_direction(graph) == [
        "room.spawner imports console.service: room may not lean on console",
        "room.spawner imports console: room may not lean on console",
    ]
    assert circles(graph) == [["console.service", "console.view", "console.service"]]


def module_under_test(path: Path) -> str:
    """tests/hub/room/test_disks.py -> "room.disks"."""
    return ".".join([*path.relative_to(TESTS).parent.parts, path.stem.removeprefix("test_")])


def test_the_tests_mirror_the_package():
    """tests/hub/<part>/test_<module>.py for workshop_hub/<part>/<module>.py."""
    modules = set(import_graph())
    test_files = [path for path in TESTS.rglob("test_*.py") if path.name != Path(__file__).name]
    orphans = [str(path) for path in test_files if module_under_test(path) not in modules]
    assert not orphans, f"{orphans}: name each test file after the module it tests"
    tested = {module_under_test(path) for path in test_files}
    untested = sorted(
        name
        for name in modules
        if name not in tested and name not in TESTED_ELSEWHERE and name not in ("", *PARTS)
    )
    assert not untested, f"{untested}: give each its tests/hub/<part>/test_<module>.py"
    for name, where in TESTED_ELSEWHERE.items():
        assert name not in tested, f"{name} has its own test file now: drop it from the list"
        assert (ROOT / where).is_file(), f"{name}: {where} is gone; where is it tested now?"
