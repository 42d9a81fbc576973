"""Lab sources → notebooks: build with jupytext, apply the solutions, execute with nbclient.

A lab is a jupytext percent-format ``.py`` file. ``build_notebook`` turns it into an
output-free notebook whose JSON is the same on every build (stable cell ids), so building the
notebooks at image build time never shows up as a change. ``apply_solutions`` fills every
exercise with its solution, for the runs that prove the solutions pass (the tests and the
image's smoke test). Running one solution on its own, for the checks' tests, is test-only
and lives in ``tests/labs/solutions.py``.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import nbformat

from workshop_labs import checks

LABS_DIR_ENV = "WORKSHOP_LABS_DIR"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
SOLUTION_BLOCK = re.compile(r"```python[ \t]*\n(.*?)```", re.DOTALL)
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


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
    strict: bool = True,
) -> nbformat.NotebookNode:
    """Run every cell in a fresh python3 kernel (WORKSHOP_QUICK=1 when ``quick``).

    ``strict`` (the default, for solved labs) makes an unsolved exercise fail the run; without
    it the lab runs past unsolved exercises on their reference answers, as an attendee's does.

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
    env[checks.STRICT_ENV] = "1" if strict else "0"
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
