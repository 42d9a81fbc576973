"""Run one published solution of a lab on its own, so the tests of a check use the very
solution the attendees see (test-only: this does not ship in the attendee image)."""

from __future__ import annotations

import ast
import functools
import itertools
import sys
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workshop_labs.notebooks import build_notebook, lab_sources, solution_code, tags

DEFINITION = (ast.FunctionDef, ast.ClassDef)


def lab_source(number: int, labs_dir: Path | str | None = None) -> Path:
    """The source of lab ``number``: 2 → ``02_building_neural_networks.py``."""
    matches = [s for s in lab_sources(labs_dir) if s.name.startswith(f"{number:02d}_")]
    if len(matches) != 1:
        raise ValueError(f"lab {number}: expected one source {number:02d}_*.py, found {matches}")
    return matches[0]


_built_notebook = functools.cache(build_notebook)
_namespace_ids = itertools.count()


@functools.cache
def _lab_statements(source: Path) -> tuple[ast.stmt, ...]:
    """The top-level statements of every code cell that is plain Python (not an exercise)."""
    statements: list[ast.stmt] = []
    for cell in _built_notebook(source).cells:
        if cell.cell_type != "code" or "exercise" in tags(cell):
            continue
        try:
            statements.extend(ast.parse(cell.source).body)
        except SyntaxError:  # an IPython magic: it defines nothing a solution uses
            continue
    return tuple(statements)


def _defines(statement: ast.stmt, name: str) -> bool:
    if isinstance(statement, DEFINITION):
        return statement.name == name
    if isinstance(statement, ast.Assign):
        return any(
            isinstance(node, ast.Name) and node.id == name
            for target in statement.targets
            for node in ast.walk(target)
        )
    return False


def _run(statements: list[ast.stmt], namespace: dict[str, Any], filename: str) -> None:
    exec(compile(ast.Module(statements, type_ignores=[]), filename, "exec"), namespace)


def lab_namespace(number: int, *definitions: str, **given: Any) -> dict[str, Any]:
    """A namespace as lab ``number`` has it, limited to what is asked for.

    It holds every import of the lab, then ``given`` (values a test supplies instead of the
    lab's, such as a small model), then the lab's top-level functions and classes named in
    ``definitions``, run from the lab's own code. It is the dict of a module in sys.modules,
    as a notebook's ``__main__`` is, so that torch.save can pickle the classes it defines.
    """
    source = lab_source(number)
    statements = _lab_statements(source)
    module = types.ModuleType(f"workshop_lab{number:02d}_{next(_namespace_ids)}")
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    imports = [s for s in statements if isinstance(s, ast.Import | ast.ImportFrom)]
    _run(imports, namespace, str(source))
    namespace.update(given)
    for name in definitions:
        found = [s for s in statements if isinstance(s, DEFINITION) and s.name == name]
        if not found:
            raise ValueError(f"{source.name} defines no top-level function or class {name!r}")
        _run(found[-1:], namespace, str(source))
    return namespace


def solution_namespace(
    number: int,
    name: str,
    *,
    edits: Iterable[tuple[str, str]] = (),
    needs: Iterable[str] = (),
    **given: Any,
) -> dict[str, Any]:
    """The namespace after running lab ``number``'s published solution that defines ``name``.

    The solution runs in ``lab_namespace(number, *needs, **given)``. Each ``(old, new)`` in
    ``edits`` replaces text that occurs exactly once in the solution before it runs: the
    solution with one typical mistake.
    """
    code = solution_source(number, name, edits=edits)
    namespace = lab_namespace(number, *needs, **given)
    filename = f"{lab_source(number).name} (solution defining {name})"
    _run(ast.parse(code).body, namespace, filename)
    return namespace


def solution_source(number: int, name: str, *, edits: Iterable[tuple[str, str]] = ()) -> str:
    """The code of lab ``number``'s published solution that defines ``name``, with ``edits``
    applied as ``solution_namespace`` says."""
    source = lab_source(number)
    blocks = [
        solution_code(cell)
        for cell in _built_notebook(source).cells
        if "solution" in tags(cell)
        and any(_defines(s, name) for s in ast.parse(solution_code(cell)).body)
    ]
    if len(blocks) != 1:
        raise ValueError(f"{source.name}: {len(blocks)} solutions define {name!r}, expected one")
    code = blocks[0]
    for old, new in edits:
        if code.count(old) != 1:
            raise ValueError(
                f"{source.name}: the solution defining {name!r} holds {old!r} "
                f"{code.count(old)} times; an edit needs exactly one\n{code}"
            )
        code = code.replace(old, new)
    return code


def lab_constant(number: int, name: str) -> Any:
    """The literal that lab ``number`` assigns to ``name`` at the top level of a cell."""
    source = lab_source(number)
    found = [
        s.value
        for s in _lab_statements(source)
        if isinstance(s, ast.Assign) and _defines(s, name) and len(s.targets) == 1
    ]
    if len(found) != 1:
        raise ValueError(f"{source.name}: {len(found)} cells assign {name!r}, expected one")
    return ast.literal_eval(found[0])


def solution(number: int, name: str, **options: Any) -> Any:
    """What lab ``number``'s published solution defines as ``name``; ``options`` as for
    ``solution_namespace`` (``edits``, ``needs`` and the given values)."""
    return solution_namespace(number, name, **options)[name]


def starter(number: int, name: str, **given: Any) -> Any:
    """What lab ``number``'s exercise cell defines as ``name`` before the attendee edits it,
    run in ``lab_namespace(number, **given)``: the tests of "run past an unsolved exercise"
    use the very starter code the attendees get."""
    source = lab_source(number)
    cells = [
        cell.source
        for cell in _built_notebook(source).cells
        if "exercise" in tags(cell)
        and any(_defines(statement, name) for statement in ast.parse(cell.source).body)
    ]
    if len(cells) != 1:
        raise ValueError(
            f"{source.name}: {len(cells)} exercise cells define {name!r}, expected one"
        )
    namespace = lab_namespace(number, **given)
    _run(ast.parse(cells[0]).body, namespace, f"{source.name} (starter defining {name})")
    return namespace[name]


def assert_runs_past_with_a_stand_in(
    check: Any, unsolved: Any, context: tuple, monkeypatch: Any, capsys: Any
) -> Any:
    """The starter answer fails ``check`` in strict mode; in a notebook it comes back as a
    stand-in, announced as one, that the check itself refuses: the cells below run on it, yet
    it is not the solution. Returns it, for the test to show that the cells below run."""
    from workshop_labs.checks import STRICT_ENV, ExerciseNotSolved

    try:
        check(unsolved, *context)
    except ExerciseNotSolved:
        pass
    else:
        raise AssertionError("the starter code passed its check: it is not an exercise")
    monkeypatch.setenv(STRICT_ENV, "0")
    stand_in = check(unsolved, *context)
    assert stand_in is not unsolved
    shown = capsys.readouterr().out
    assert "the cells below go on with a stand-in" in shown and "not the solution" in shown
    try:
        check.unchecked(stand_in, *context)
    except ExerciseNotSolved:
        return stand_in
    raise AssertionError("the check accepts the stand-in: it would be a solution in the image")
