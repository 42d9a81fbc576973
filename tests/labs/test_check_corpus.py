"""Every lab's answer corpus (tests/labs/corpus_lab0N.py) against the lab's checks: each right
answer is accepted with a ✅, each wrong one refused with the reason that names the mistake,
and every exercise has each kind of answer."""

from __future__ import annotations

import importlib

import pytest

from tests.labs.corpus import REFERENCE, RIGHT, STARTER, WRONG, kinds_of
from workshop_labs.checks import ExerciseNotSolved

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
        with pytest.raises(ExerciseNotSolved, match=case.refused):
            run(check, case)


@pytest.mark.parametrize(("lab", "exercise"), EXERCISES)
def test_corpus_holds_every_kind_of_answer_for_each_exercise(lab, exercise):
    kinds = kinds_of(CORPORA[lab].CASES, exercise)
    assert kinds[STARTER] == 1
    assert kinds[REFERENCE] == 1
    assert kinds[WRONG] >= 2
    assert kinds[RIGHT] >= 1
