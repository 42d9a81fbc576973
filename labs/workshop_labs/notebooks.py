"""Lab sources → notebooks: build with jupytext, apply the solutions, execute with nbclient.

A lab is a jupytext percent-format ``.py`` file. ``build_notebook`` turns it into an
output-free notebook whose JSON is the same on every build (stable cell ids), so building the
notebooks at image build time never shows up as a change. ``apply_solutions`` fills every
exercise with its solution, for the runs that prove the solutions pass (the tests and the
image's smoke test). Running one solution on its own, for the checks' tests, is test-only
and lives in ``tests/labs/solutions.py``.

Attendees get the ``attendee_edition``: each solution is replaced by a cell that asks the
hub for it (``workshop_labs.solutions.show_solution``), which shows it once the instructor
reveals it. The hub gets the solutions themselves from ``solutions_catalog``.

Only jupytext and nbformat are needed here (not torch): the hub's image builds its
catalog of solutions with this module.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import nbformat

LABS_DIR_ENV = "WORKSHOP_LABS_DIR"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
SOLUTION_BLOCK = re.compile(r"```python[ \t]*\n(.*?)```", re.DOTALL)
# The check cell after a solution, `answer = lab01.check_batch(answer, ...)`: the exercise's
# name is the check's, as its progress reports name it (checks.exercise).
CHECK_NAME = re.compile(r"=\s*lab\d\d\.check_(\w+)\(")
# What a solution shows: its markdown without the <details> that collapses it in the source.
DETAILS_TAGS = re.compile(r"</?details>|<summary>.*?</summary>", re.DOTALL)
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


# A numbered section of a lab: "## 3 · Reshaping, indexing and combining tensors".
SECTION_HEADING = re.compile(r"^## (\d+) · (.+)$", re.MULTILINE)


def sections(nb: nbformat.NotebookNode) -> dict[str, list[nbformat.NotebookNode]]:
    """Each numbered section's cells ("§3 Reshaping, …"), from its heading to the next level
    two heading (the recap's ends the last one)."""
    found: dict[str, list[nbformat.NotebookNode]] = {}
    current = None
    for cell in nb.cells:
        if cell.cell_type == "markdown" and re.search(r"^## ", cell.source, re.MULTILINE):
            heading = SECTION_HEADING.search(cell.source)
            current = f"§{heading.group(1)} {heading.group(2)}" if heading else None
            if current:
                found[current] = []
        if current:
            found[current].append(cell)
    return found


def exercise_cells(cells: list[nbformat.NotebookNode]) -> list[nbformat.NotebookNode]:
    """The cells an attendee answers in: code cells tagged ``exercise``."""
    return [cell for cell in cells if "exercise" in tags(cell)]


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


def lab_number(nb: nbformat.NotebookNode) -> int:
    """2 for the notebook built from ``02_building_neural_networks.py``."""
    return int(lab_name(nb)[:2])


def exercise_names(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """(index of the solution cell, exercise name) for each solution, in the lab's order."""
    found = []
    for index, cell in enumerate(nb.cells):
        if "solution" not in tags(cell):
            continue
        check = nb.cells[index + 1] if index + 1 < len(nb.cells) else None
        named = CHECK_NAME.search(check.source) if check is not None else None
        if named is None:
            raise ValueError(
                f"{lab_name(nb)}: solution cell {index} ({cell.get('id')}) is not followed by "
                "its check, `answer = labNN.check_<exercise>(answer, ...)`"
            )
        found.append((index, named.group(1)))
    return found


def solution_markdown(cell: nbformat.NotebookNode) -> str:
    """A solution as the attendee sees it once revealed: open, not collapsed."""
    return DETAILS_TAGS.sub("", cell.source).strip() + "\n"


def solutions_catalog(sources: list[Path]) -> dict[str, list[dict[str, str]]]:
    """{"1": [{"exercise": "batch", "markdown": ...}, ...], ...}: every lab's solutions, in
    order, for the hub (which shows each to attendees once the instructor reveals it)."""
    catalog = {}
    for source in sources:
        nb = build_notebook(source)
        catalog[str(lab_number(nb))] = [
            {"exercise": name, "markdown": solution_markdown(nb.cells[index])}
            for index, name in exercise_names(nb)
        ]
    return catalog


def reveal_call(lab: int, exercise: str) -> str:
    return (
        "# The solution appears here once your instructor reveals it: run this cell then.\n"
        "from workshop_labs.solutions import show_solution\n\n"
        f"show_solution({lab}, {exercise!r})"
    )


def attendee_edition(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without its solutions: each becomes a code cell, tagged ``solution``,
    that shows the solution once the instructor reveals it (same cell id, so a rebuilt
    notebook stays stable)."""
    edition = copy.deepcopy(nb)
    lab = lab_number(nb)
    for index, name in exercise_names(nb):
        hidden = edition.cells[index]
        call = nbformat.v4.new_code_cell(reveal_call(lab, name), metadata={"tags": ["solution"]})
        call["id"] = hidden["id"]
        edition.cells[index] = call
    nbformat.validate(edition)
    return edition


def _error_text(cell: nbformat.NotebookNode) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            traceback = ANSI_ESCAPE.sub("", "\n".join(output.get("traceback", [])))
            lines = traceback.strip().splitlines()[-40:]
            return "\n".join([f"{output.get('ename')}: {output.get('evalue')}", *lines])
    return ""


PRINTED_TAIL_CHARS = 3000  # what a failing cell printed last: enough for a subprocess's error


def _printed_text(cell: nbformat.NotebookNode) -> str:
    """The end of what the failing cell printed (its own subprocesses' messages among it)."""
    printed = "".join(
        output.get("text", "")
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )
    return ANSI_ESCAPE.sub("", printed.strip())[-PRINTED_TAIL_CHARS:]


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
    it the lab runs past unsolved exercises on their stand-ins, as an attendee's does.

    Returns the executed notebook; raises ``LabFailed`` naming the lab, the failing cell's
    source and the error.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    from workshop_labs.modes import QUICK_ENV, STRICT_ENV

    executed = copy.deepcopy(nb)
    started: list[int] = []
    client = NotebookClient(
        executed,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd or Path.cwd())}},
        on_cell_execute=lambda cell, cell_index: started.append(cell_index),
    )
    env = {**os.environ, QUICK_ENV: "1" if quick else "0", STRICT_ENV: "1" if strict else "0"}
    try:
        client.execute(env=env)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        index = started[-1] if started else None
        cell = executed.cells[index] if index is not None else None
        where = f"cell {index}" if index is not None else "kernel start"
        details = _error_text(cell) if cell is not None else ""
        source = cell.source if cell is not None else ""
        printed = _printed_text(cell) if cell is not None else ""
        raise LabFailed(
            f"{lab_name(nb)} failed at {where} (quick mode {'on' if quick else 'off'}).\n"
            f"--- cell source ---\n{source}\n"
            + (f"--- printed ---\n{printed}\n" if printed else "")
            + f"--- error ---\n{details or ANSI_ESCAPE.sub('', str(error))[-4000:]}"
        ) from None
    return executed
