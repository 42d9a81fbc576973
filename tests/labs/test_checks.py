"""Whatever an answer does inside its check (raises, returns None, is of the wrong type), the
attendee reads one red line saying what is wrong and the lab runs on; strict mode still fails.
For every lab, through the ``exercise`` decorator; and for every check of labs 1 and 2, with
answers that raise at every touch."""

from __future__ import annotations

import importlib
import re

import pytest
import torch

from tests.labs import corpus_lab01, corpus_lab02
from workshop_labs import checks, progress
from workshop_labs.checks import ExerciseNotSolved

LABS = range(1, 8)


@pytest.fixture
def reports(monkeypatch):
    """What the checks report to the instructor's console: (lab, exercise, passed, reason)."""
    sent = []
    monkeypatch.setattr(
        progress,
        "report",
        lambda lab, exercise, *, passed, reason="": sent.append((lab, exercise, passed, reason)),
    )
    return sent


def check_of_lab(lab: int, *, stand_in=None):
    """A check as lab ``lab`` defines one: it calls the answer and uses what comes back."""

    def check_answer(answer, offset):
        result = answer(offset)
        checks.expect(result + offset > 0, "the result must be positive")

    check_answer.__module__ = f"workshop_labs.lab{lab:02d}"
    options = {} if stand_in is None else {"stand_in": stand_in, "stand_in_is": "the number 1"}
    return checks.exercise(**options)(check_answer)


def divides_by_zero(offset):
    return offset / 0


def returns_nothing(offset):
    pass


def fails_deep_inside(offset):
    return torch.zeros(2) @ torch.zeros(3)


ANSWERS = {
    "raises": (
        divides_by_zero,
        r"your `divides_by_zero` raised ZeroDivisionError: division by zero",
    ),
    "returns-none": (
        returns_nothing,
        r"the check could not use your answer: it raised TypeError: unsupported operand",
    ),
    "raises-in-torch": (fails_deep_inside, r"your `fails_deep_inside` raised RuntimeError: "),
    "not-callable": (42, r"the check could not use your answer: it raised TypeError: 'int'"),
}


@pytest.mark.parametrize("lab", LABS)
@pytest.mark.parametrize("answer", ANSWERS)
def test_an_answer_that_breaks_the_check_is_one_red_line_and_the_lab_runs_on(
    lab, answer, monkeypatch, capsys, reports
):
    monkeypatch.setenv(checks.STRICT_ENV, "0")
    given, reason = ANSWERS[answer]
    assert check_of_lab(lab, stand_in=lambda offset: 1)(given, 3) == 1
    shown = capsys.readouterr().out.splitlines()
    assert len(shown) == 2 and "Traceback" not in "\n".join(shown)
    red, goes_on = shown
    assert red.startswith(f"{checks.RED}✗ ") and re.search(reason, red)
    assert "the cells below go on with a stand-in (the number 1)" in goes_on
    ((reported_lab, exercise, passed, why),) = reports
    assert (reported_lab, exercise, passed) == (lab, "answer", False) and why in red


@pytest.mark.parametrize("lab", LABS)
@pytest.mark.parametrize("answer", ANSWERS)
def test_strict_mode_fails_on_an_answer_that_breaks_the_check(lab, answer, reports):
    given, reason = ANSWERS[answer]
    with pytest.raises(ExerciseNotSolved, match=reason) as refused:
        check_of_lab(lab)(given, 3)
    assert refused.value.__cause__ is not None  # the real error stays, for whoever debugs


def test_an_interrupt_is_not_an_answer(monkeypatch):
    """Stopping the kernel stops the check: it is not reported as a wrong answer."""
    monkeypatch.setenv(checks.STRICT_ENV, "0")

    def interrupted(offset):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        check_of_lab(1)(interrupted, 3)


# ----------------------------------------------------------------------------------------------
# Every check of labs 1 and 2, with answers that raise whatever the check does with them
# ----------------------------------------------------------------------------------------------


class Explodes:
    """An answer that raises at every touch: called, indexed, measured, converted, compared."""

    def _explode(self, *args, **kwargs):
        raise RuntimeError("the answer broke")

    __call__ = __getitem__ = __len__ = __iter__ = __float__ = __int__ = __bool__ = _explode
    __add__ = __sub__ = __mul__ = __truediv__ = __matmul__ = __eq__ = __lt__ = _explode
    __hash__ = object.__hash__


def explodes(*args, **kwargs):
    raise RuntimeError("the answer broke")


class ExplodingModule(torch.nn.Module):
    def __init__(self, *args):
        super().__init__()
        self.fc = torch.nn.Linear(1, 1)

    def forward(self, *args):
        raise RuntimeError("the answer broke")


EVERY_CHECK = [
    (lab, exercise, context)
    for lab, corpus in ((1, corpus_lab01), (2, corpus_lab02))
    for exercise, context in corpus.CONTEXT.items()
]
HOSTILE = {
    "object": Explodes,
    "function": lambda: explodes,
    "module-class": lambda: ExplodingModule,
    "dict": lambda: {"binary": explodes, "10 classes": Explodes()},
}


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize(
    ("lab", "exercise", "context"), EVERY_CHECK, ids=[f"{n}-{e}" for n, e, _ in EVERY_CHECK]
)
def test_every_check_of_labs_1_and_2_meets_a_raising_answer_with_one_line(
    lab, exercise, context, hostile, monkeypatch, capsys
):
    check = getattr(importlib.import_module(f"workshop_labs.lab{lab:02d}"), f"check_{exercise}")
    monkeypatch.setenv(checks.STRICT_ENV, "0")
    check(HOSTILE[hostile](), *context)
    shown = capsys.readouterr().out
    assert shown.count(f"{checks.RED}✗ ") == 1 and "Traceback" not in shown
    assert "↪ Not solved yet" in shown
