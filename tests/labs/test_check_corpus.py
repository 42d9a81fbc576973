"""Every lab's answer corpus (tests/labs/corpus_lab0N.py) against the lab's checks: each right
answer is accepted with a ✅, each wrong one refused with the reason that names the mistake,
every exercise has each kind of answer, and the instructor's guide explains each refusal."""

from __future__ import annotations

import importlib

import pytest

from tests.labs.corpus import REFERENCE, RIGHT, STARTER, WRONG, kinds_of
from tests.labs.test_lab_guides import GUIDES
from workshop_labs.checks import ExerciseNotSolved
from workshop_labs.notebooks import lab_sources, solutions_catalog

LABS = range(1, 8)
CORPORA = {lab: importlib.import_module(f"tests.labs.corpus_lab{lab:02d}") for lab in LABS}
ANSWERS = [
    pytest.param(
        lab,
        case,
        id=f"lab{lab:02d}-{case.exercise}-{case.kind}-{case.name}",
        marks=getattr(corpus, "MARKS", ()),
    )
    for lab, corpus in CORPORA.items()
    for case in corpus.CASES
]
EXERCISES = [
    pytest.param(lab, exercise, id=f"lab{lab:02d}-{exercise}")
    for lab, corpus in CORPORA.items()
    for exercise in corpus.EXERCISES
]


@pytest.mark.parametrize(("lab", "case"), ANSWERS)
def test_corpus_answer_gets_its_verdict(lab, case, capsys):
    lab_module = importlib.import_module(f"workshop_labs.lab{lab:02d}")
    check = getattr(lab_module, f"check_{case.exercise}")
    run = CORPORA[lab].run
    if case.refused is None:
        run(check, case)
        assert "✅" in capsys.readouterr().out
    else:
        with pytest.raises(ExerciseNotSolved, match=case.refused) as refused:
            run(check, case)
        # The instructor's guide explains this mistake: the help queue shows the note beside
        # a hand whose last failing check said it.
        assert GUIDES[lab].note_for(case.exercise, str(refused.value)) is not None, (
            f"labs/guide/lab{lab:02d}.toml has no mistake of {case.exercise} whose 'when' "
            f"matches the refusal:\n{refused.value}"
        )


@pytest.mark.parametrize(("lab", "exercise"), EXERCISES)
def test_corpus_holds_every_kind_of_answer_for_each_exercise(lab, exercise):
    kinds = kinds_of(CORPORA[lab].CASES, exercise)
    assert kinds[STARTER] == 1
    assert kinds[REFERENCE] == 1
    assert kinds[WRONG] >= 2
    assert kinds[RIGHT] >= 1


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: f"lab{lab:02d}")
def test_the_corpus_covers_every_exercise_of_its_lab(lab):
    source = next(s for s in lab_sources() if s.name.startswith(f"{lab:02d}_"))
    exercises = [entry["exercise"] for entry in solutions_catalog([source])[str(lab)]]
    assert sorted(CORPORA[lab].EXERCISES) == sorted(exercises)
