"""What every lab's answer corpus (``corpus_lab01.py`` … ``corpus_lab07.py``) is made of, and how
``test_check_corpus.py`` puts its answers to the lab's checks.

A lab's corpus module holds:

- ``CASES``: every ``Case`` of the lab, for every exercise the starter, the published solution,
  wrong answers a beginner writes (each with the reason its check must give) and other right
  answers;
- ``EXERCISES``: the exercises it covers, each with every kind of answer;
- ``run(check, case)``: how the lab's cell calls ``check_<exercise>`` with the case's answer,
  most often ``answer_then_context(...)``;
- ``MARKS`` (optional): pytest marks every case of the lab runs under."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

STARTER, REFERENCE, WRONG, RIGHT = "starter", "reference", "wrong", "right"
KINDS = (STARTER, REFERENCE, WRONG, RIGHT)


@dataclass(frozen=True)
class Case:
    """One answer to ``check_<exercise>``: ``answer()`` builds it afresh for each run (what it
    holds is the lab's ``run`` to say); ``refused`` is a regex the check's refusal must match,
    or None for an answer the check must accept."""

    exercise: str
    kind: str
    name: str
    answer: Callable[[], object]
    refused: str | None = None


def case(exercise: str, label: str, answer: object, refused: str | None) -> Case:
    """A Case of ``check_<exercise>`` from a label "kind-name" (or just the kind), whose
    ``answer()`` gives ``answer`` itself."""
    kind, _, name = label.partition("-")
    return Case(exercise, kind, name or kind, lambda: answer, refused)


def answer_then_context(
    context: Mapping[str, tuple] | None = None, *, returns_answer: bool = False
) -> Callable[[Callable, Case], None]:
    """The usual call of a check: the answer, then what the lab's cell passes with it for that
    exercise (``context``, nothing where it names none). With ``returns_answer`` the check
    must hand back the very answer it accepted, as the lab's cells use what it returns."""
    context = context or {}

    def run(check: Callable, case: Case) -> None:
        answer = case.answer()
        returned = check(answer, *context.get(case.exercise, ()))
        if returns_answer and returned is not answer:
            raise AssertionError(f"check_{case.exercise} did not return the answer it accepted")

    return run


def kinds_of(cases: list[Case], exercise: str) -> dict[str, int]:
    """How many answers of each kind the corpus holds for ``exercise``."""
    kinds = [case.kind for case in cases if case.exercise == exercise]
    return {kind: kinds.count(kind) for kind in KINDS}
