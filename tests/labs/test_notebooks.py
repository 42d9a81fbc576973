"""Every lab in labs/: it runs top to bottom with its solutions (quick mode), it builds into the
same output-free notebook every time, and it has the shape the course promises (exercises
with solution and check, figures, setup() first)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from tests.labs.solutions import solution
from workshop_labs.notebooks import (
    LabFailed,
    apply_solutions,
    attendee_edition,
    build_notebook,
    execute,
    exercise_cells,
    lab_sources,
    sections,
    solution_code,
    solutions_catalog,
    tags,
)

LAB_SOURCES = lab_sources(Path(__file__).resolve().parents[2] / "labs")


def lab_id(source: Path) -> str:
    """`lab02` for labs/02_building_neural_networks.py, so `pytest -k lab02` selects it."""
    return f"lab{source.name[:2]}"


labs = pytest.mark.parametrize("source", LAB_SOURCES, ids=lab_id)
# The one way every lab calls a check: the answer goes in, and what comes back (the attendee's
# answer, or its stand-in when it is not solved yet) is what later cells use.
CHECK_CALL = re.compile(r"[\w, ]+ = lab\d\d\.check_\w+\((?s:.*)\)")


def test_the_seven_labs_are_there():
    assert [source.name[:2] for source in LAB_SOURCES] == ["01", "02", "03", "04", "05", "06", "07"]


# Calls that draw a figure: the generic helpers, the drawing modules (`*_diagram(s)`), or a lab
# module's function whose name says so.
FIGURE_CALL = re.compile(
    r"\b(?:plots|diagrams|\w+_diagrams?)\.\w+\(|"
    r"\blab\d\d\.\w*(?:plot|draw|show|picture|diagram|figure|chart|curve|graph|tree|table|bars|grid|image)\w*\("
)


@functools.cache
def built(source: Path) -> nbformat.NotebookNode:
    return build_notebook(source)


def code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


@labs
@pytest.mark.timeout(900)
def test_lab_runs_with_solutions_in_quick_mode(source: Path, work_dir: Path, tmp_path: Path):
    failure = None
    try:
        executed = execute(apply_solutions(built(source)), quick=True, cwd=tmp_path)
    except LabFailed as error:
        failure = str(error)
    if failure:
        pytest.fail(failure, pytrace=False)
    images = [
        cell
        for cell in code_cells(executed)
        if any("image/png" in output.get("data", {}) for output in cell.outputs)
    ]
    assert len(images) >= 2, f"{source.name} displayed {len(images)} figures; a lab needs ≥ 2"


@labs
@pytest.mark.timeout(900)
def test_run_all_goes_past_every_unsolved_exercise(source: Path, work_dir: Path, tmp_path: Path):
    """An attendee's "Run All" before solving anything, in the notebook attendees get: every
    check says it is not solved yet, the lab goes on with its stand-ins, every figure
    still appears, and each solution cell says where solutions come from."""
    nb = attendee_edition(built(source))
    try:
        executed = execute(nb, quick=True, cwd=tmp_path, strict=False)
    except LabFailed as error:
        pytest.fail(f"Run All stopped on the unsolved lab:\n{error}", pytrace=False)
    cells = executed.cells
    for index, cell in enumerate(cells):
        if "exercise" not in tags(cell):
            continue
        asked = "".join(output.get("text", "") for output in cells[index + 1].outputs)
        assert "does not run on the workshop hub" in asked, (source.name, index, asked)
        shown = "".join(output.get("text", "") for output in cells[index + 2].outputs)
        assert "Not solved yet" in shown, (
            f"{source.name}: the check after exercise cell {index} did not report the starter "
            f"code as unsolved:\n{cells[index].source}\n--- it printed ---\n{shown}"
        )
    figures = sum(
        "image/png" in output.get("data", {})
        for cell in code_cells(executed)
        for output in cell.outputs
    )
    assert figures >= 2, f"{source.name} showed {figures} figures unsolved"


@labs
def test_built_notebook_has_no_outputs_and_does_not_drift(source: Path):
    first = build_notebook(source)
    for cell in code_cells(first):
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]
    assert nbformat.writes(first) == nbformat.writes(build_notebook(source)), (
        f"building {source.name} twice gave different notebooks"
    )


@labs
def test_the_attendee_edition_holds_no_solution_and_asks_for_each(source: Path):
    full = built(source)
    edition = attendee_edition(full)
    assert nbformat.writes(edition) == nbformat.writes(attendee_edition(build_notebook(source)))
    text = nbformat.writes(edition)
    catalog = solutions_catalog([source])[source.name[:2].lstrip("0")]
    assert len(catalog) == sum("exercise" in tags(cell) for cell in full.cells)
    for cell, asking, entry in zip(
        [c for c in full.cells if "solution" in tags(c)],
        [c for c in edition.cells if "solution" in tags(c)],
        catalog,
        strict=True,
    ):
        code = solution_code(cell).strip()
        assert code not in text, f"{source.name}: the attendee edition holds\n{code}"
        assert code in entry["markdown"] and "<details>" not in entry["markdown"]
        assert asking.cell_type == "code"
        call = f"show_solution({int(source.name[:2])}, {entry['exercise']!r})"
        assert call in asking.source, asking.source
        check = edition.cells[edition.cells.index(asking) + 1]
        assert f".check_{entry['exercise']}(" in check.source, check.source


def without_header(text: str) -> str:
    """The cells of a percent-format source, without the YAML header (jupytext adds its own
    version there, which must not make the test depend on the jupytext release)."""
    match = re.match(r"# ---\n.*?^# ---\n", text, flags=re.DOTALL | re.MULTILINE)
    return text[match.end() :] if match else text


@labs
def test_jupytext_round_trip_is_stable(source: Path):
    text = source.read_text(encoding="utf-8")
    again = jupytext.writes(jupytext.reads(text, fmt="py:percent"), fmt="py:percent")
    assert without_header(again) == without_header(text), (
        f"{source.name} changes when jupytext rewrites it: run `jupytext --to py:percent` on it"
    )


@labs
def test_first_code_cell_calls_setup(source: Path):
    first = code_cells(built(source))[0]
    assert re.search(r"\bsetup\(", first.source), f"first code cell:\n{first.source}"


@labs
def test_exercises_have_solution_then_check(source: Path):
    cells = built(source).cells
    exercises = [i for i, cell in enumerate(cells) if "exercise" in tags(cell)]
    assert len(exercises) >= 3, f"{source.name} has {len(exercises)} exercises; it needs ≥ 3"
    for index in exercises:
        where = f"{source.name}, exercise cell {index}:\n{cells[index].source}"
        assert cells[index].cell_type == "code", where
        assert index + 2 < len(cells), f"{where}\nneeds a solution and a check after it"
        solution, check = cells[index + 1], cells[index + 2]
        assert solution.cell_type == "markdown" and "solution" in tags(solution), where
        assert solution_code(solution).strip(), where
        assert "<details>" in solution.source, f"{where}\nthe solution must be collapsed"
        assert check.cell_type == "code" and not {"exercise", "solution"} & set(tags(check))
        assert CHECK_CALL.fullmatch(check.source.strip()), (
            f"{where}\nthe check cell must be `answer = lab{source.name[:2]}.check_<what>"
            f"(answer, ...)`, the one way every lab calls its checks, not:\n{check.source}"
        )
        assert check.source.strip(), f"{where}\nthe check cell is empty"


@labs
def test_every_section_gives_the_attendee_something_to_do(source: Path):
    """Reading alone teaches little: each numbered section holds at least one exercise."""
    found = sections(built(source))
    assert len(found) >= 3, f"{source.name}: no numbered sections ('## N · title') found"
    idle = [name for name, cells in found.items() if not exercise_cells(cells)]
    assert not idle, f"{source.name}: sections without an exercise: {idle}"


@labs
def test_exercises_for_fast_finishers_say_so(source: Path):
    """An exercise tagged `stretch` is for whoever has time left: its cell is an exercise, the
    text just above it says "if you have time", and the lab's minutes in the day do not count
    on it (its guide's plan leaves it out)."""
    cells = built(source).cells
    for index, cell in enumerate(cells):
        if "stretch" not in tags(cell):
            continue
        where = f"{source.name}, cell {index}:\n{cell.source[:200]}"
        assert "exercise" in tags(cell), f"{where}\na stretch cell must be an exercise"
        above = next(c for c in reversed(cells[:index]) if c.cell_type == "markdown")
        assert "if you have time" in above.source.lower(), (
            f"{where}\nthe markdown above a stretch exercise says 'if you have time'"
        )


def test_sections_are_split_at_their_headings():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Lab\n## 1 · One"),
        nbformat.v4.new_code_cell("x = None", metadata={"tags": ["exercise"]}),
        nbformat.v4.new_markdown_cell("## 2 · Two"),
        nbformat.v4.new_code_cell("print(1)"),
        nbformat.v4.new_markdown_cell("## Recap"),
        nbformat.v4.new_code_cell("y = None", metadata={"tags": ["exercise"]}),
    ]
    found = sections(nb)
    assert list(found) == ["§1 One", "§2 Two"]
    assert [len(cells) for cells in found.values()] == [2, 2]
    assert not exercise_cells(found["§2 Two"])


@labs
def test_lab_draws_at_least_two_figures(source: Path):
    calls = [m.group(0) for c in code_cells(built(source)) for m in FIGURE_CALL.finditer(c.source)]
    assert len(calls) >= 2, f"{source.name} calls {calls}; a lab needs ≥ 2 figure helpers"


def test_solution_edits_must_match_exactly_one_place():
    """A test's "solution with one mistake" fails loudly when the lab's solution changes."""
    wrong = solution(1, "train_step", edits=[("return loss.item()", "return loss")])
    assert wrong.__name__ == "train_step"
    with pytest.raises(ValueError, match=r"holds 'loss\.backward\(\)\.' 0 times"):
        solution(1, "train_step", edits=[("loss.backward().", "")])
    with pytest.raises(ValueError, match="0 solutions define 'no_such_name'"):
        solution(1, "no_such_name")
