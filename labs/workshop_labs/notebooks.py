"""Lab sources → notebooks: build with jupytext, apply the solutions, execute with nbclient.

A lab is a jupytext percent-format ``.py`` file. ``build_notebook`` turns it into an
output-free notebook whose JSON is the same on every build (stable cell ids), so building the
notebooks at image build time never shows up as a change. ``solution`` runs one published
solution on its own, so that the tests of a check use the solution the attendees see.
"""

from __future__ import annotations

import ast
import copy
import functools
import itertools
import os
import re
import sys
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nbformat

LABS_DIR_ENV = "WORKSHOP_LABS_DIR"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
SOLUTION_BLOCK = re.compile(r"```python[ \t]*\n(.*?)```", re.DOTALL)
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
DEFINITION = (ast.FunctionDef, ast.ClassDef)


class LabFailed(RuntimeError):
    """A lab notebook stopped with an error; the message shows the cell and the error."""


def default_labs_dir() -> Path:
    """``labs/`` of this checkout (the package's parent), or WORKSHOP_LABS_DIR when set."""
    return Path(os.environ.get(LABS_DIR_ENV) or Path(__file__).resolve().parent.parent)


def lab_sources(labs_dir: Path | str | None = None) -> list[Path]:
    """Every lab source ``0*_*.py`` in ``labs_dir``, in lab order."""
    folder = Path(labs_dir) if labs_dir is not None else default_labs_dir()
    return sorted(folder.glob("0*_*.py"))


def tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def build_notebook(source: Path | str) -> nbformat.NotebookNode:
    """The notebook of a lab source: no outputs, python3 kernel, stable cell ids."""
    import jupytext

    source = Path(source)
    try:
        nb = jupytext.read(source, fmt="py:percent")
    except Exception as error:
        raise ValueError(f"{source.name}: jupytext cannot parse it: {error}") from error
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["workshop"] = {"lab": source.name}
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"{source.stem[:40]}-{index:03d}"
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.validate(nb)
    return nb


def lab_name(nb: nbformat.NotebookNode) -> str:
    return nb.metadata.get("workshop", {}).get("lab", "notebook")


def solution_code(cell: nbformat.NotebookNode) -> str:
    """The single python block of a ``solution`` markdown cell."""
    blocks = SOLUTION_BLOCK.findall(cell.source)
    if len(blocks) != 1:
        raise ValueError(
            f"solution cell {cell.get('id')!r} has {len(blocks)} ```python blocks: it needs one"
        )
    return blocks[0].rstrip() + "\n"


def apply_solutions(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` where each ``exercise`` cell holds the code of the ``solution`` after it."""
    solved = copy.deepcopy(nb)
    cells = solved.cells
    for index, cell in enumerate(cells):
        if "exercise" not in tags(cell):
            continue
        following = cells[index + 1] if index + 1 < len(cells) else None
        if following is None or "solution" not in tags(following):
            raise ValueError(
                f"{lab_name(nb)}: exercise cell {index} ({cell.get('id')}) is not followed by "
                "a markdown cell tagged `solution`"
            )
        cell.source = solution_code(following)
    return solved


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
    namespace = lab_namespace(number, *needs, **given)
    _run(ast.parse(code).body, namespace, f"{source.name} (solution defining {name})")
    return namespace


def solution(number: int, name: str, **options: Any) -> Any:
    """What lab ``number``'s published solution defines as ``name``; ``options`` as for
    ``solution_namespace`` (``edits``, ``needs`` and the given values)."""
    return solution_namespace(number, name, **options)[name]


def _error_text(cell: nbformat.NotebookNode) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            traceback = ANSI_ESCAPE.sub("", "\n".join(output.get("traceback", [])))
            lines = traceback.strip().splitlines()[-40:]
            return "\n".join([f"{output.get('ename')}: {output.get('evalue')}", *lines])
    return ""


def execute(
    nb: nbformat.NotebookNode,
    *,
    quick: bool = True,
    timeout: int = 600,
    cwd: Path | str | None = None,
) -> nbformat.NotebookNode:
    """Run every cell in a fresh python3 kernel (WORKSHOP_QUICK=1 when ``quick``).

    Returns the executed notebook; raises ``LabFailed`` naming the lab, the failing cell's
    source and the error.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    executed = copy.deepcopy(nb)
    started: list[int] = []
    client = NotebookClient(
        executed,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd or Path.cwd())}},
        on_cell_execute=lambda cell, cell_index: started.append(cell_index),
    )
    env = dict(os.environ, WORKSHOP_QUICK="1" if quick else "0")
    try:
        client.execute(env=env)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        index = started[-1] if started else None
        cell = executed.cells[index] if index is not None else None
        where = f"cell {index}" if index is not None else "kernel start"
        details = _error_text(cell) if cell is not None else ""
        source = cell.source if cell is not None else ""
        raise LabFailed(
            f"{lab_name(nb)} failed at {where} (quick mode {'on' if quick else 'off'}).\n"
            f"--- cell source ---\n{source}\n"
            f"--- error ---\n{details or ANSI_ESCAPE.sub('', str(error))[-4000:]}"
        ) from None
    return executed
