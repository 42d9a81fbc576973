"""The instructor's guide of every lab (labs/guide/labNN.toml, workshop_hub.console.guide) is
true to its lab: a plan that fills the lab's minutes in the day, a word for each of its
pictures, and notes for every exercise the lab has. That every wrong answer of the corpus
meets one of the notes is checked where the corpus runs (test_check_corpus.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.labs.test_notebooks import FIGURE_CALL
from workshop_hub.console.guide import load_guide
from workshop_labs import course
from workshop_labs.notebooks import build_notebook, lab_sources, solutions_catalog

LABS_DIR = Path(__file__).resolve().parents[2] / "labs"
GUIDES = load_guide(LABS_DIR / "guide")
SOURCES = {int(source.name[:2]): source for source in lab_sources(LABS_DIR)}
labs = pytest.mark.parametrize("lab", sorted(SOURCES), ids=lambda lab: f"lab{lab:02d}")


def test_every_lab_has_its_guide():
    assert sorted(GUIDES) == sorted(SOURCES)


@labs
def test_the_plan_fills_the_labs_minutes(lab):
    assert GUIDES[lab].minutes == course.MINUTES_IN_THE_DAY[lab], GUIDES[lab].plan


@labs
def test_the_guide_has_notes_for_every_exercise_and_only_those(lab):
    exercises = [entry["exercise"] for entry in solutions_catalog([SOURCES[lab]])[str(lab)]]
    guide = GUIDES[lab]
    assert list(guide.exercises) == exercises, "the guide lists the lab's exercises in order"
    for name, notes in guide.exercises.items():
        assert len(notes.mistakes) >= 2, f"lab {lab} · {name}: at least two mistakes explained"


@labs
def test_the_guide_says_something_at_the_labs_pictures(lab):
    figures = {
        match.group(0)
        for cell in build_notebook(SOURCES[lab]).cells
        if cell.cell_type == "code"
        for match in FIGURE_CALL.finditer(cell.source)
    }
    assert len(GUIDES[lab].pictures) >= min(len(figures), 3), figures
