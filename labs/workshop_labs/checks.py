"""The exercise-check framework: a check says *what* is wrong, in one line.

Every lab calls its checks the same way, ``answer = labNN.check_name(answer, ...)``. A check
function raises ``ExerciseNotSolved`` with a message that names the problem and the fix; the
``exercise`` decorator turns that into what the attendee sees:

* solved: a green line, and the attendee's own answer is returned;
* not solved: the red reason, then one line saying what the cells below go on with: the
  attendee's answer as it is where nothing below needs it, else a *stand-in*, which is
  returned, so "Run All" goes past an unsolved exercise and every later figure still
  appears. A stand-in is never the solution (the attendee image ships no solution code
  before the instructor reveals it): it is a value, or a simpler way the lab has shown, and
  the line says which;
* strict mode (``WORKSHOP_STRICT_CHECKS=1``: the tests and the image's smoke test, which run
  every lab with its solutions applied): the exception propagates and the run fails, so a
  broken solution or a broken check can never pass unnoticed.

A check runs the attendee's code (their class, their function, their loss), which may raise
anything. That is an unsolved exercise too, never a traceback: ``calling("model(x)")`` turns
what a named call raises into ``ExerciseNotSolved`` with a line that names the call, and the
decorator does the same, naming the attendee's function that raised, for anything else.

In a notebook, ``setup()`` makes a propagated ``ExerciseNotSolved`` print as a single red line
instead of a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sysconfig
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from workshop_labs import progress
from workshop_labs.modes import STRICT_ENV

RED = "\x1b[1;31m"
YELLOW = "\x1b[33m"
RESET = "\x1b[0m"


class ExerciseNotSolved(AssertionError):
    """An exercise check failed; the message says what is wrong and how to fix it."""


class NotEnoughMemory(RuntimeError):
    """A cell would not fit in this JupyterLab's memory; the message says what to close."""


def expect(condition: bool, message: str) -> None:
    """Raise ``ExerciseNotSolved(message)`` unless ``condition`` holds."""
    if not condition:
        raise ExerciseNotSolved(message)


def expect_names(answer: object, what: str) -> set[str]:
    """A set, list or tuple of names as a set (a lone string is one name, not its letters)."""
    expect(answer is not None, f"`{what}` is None: write a set of names")
    if isinstance(answer, str):
        answer = {answer}
    expect(
        isinstance(answer, set | list | tuple | frozenset)
        and all(isinstance(name, str) for name in answer),
        f"`{what}` is a {type(answer).__name__}: write a set of names (strings)",
    )
    assert isinstance(answer, set | list | tuple | frozenset)
    return set(answer)


def error_text(error: BaseException) -> str:
    """``TypeError: the first line of its message``: one line, however long the message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


@contextlib.contextmanager
def calling(call: str) -> Iterator[None]:
    """Run the attendee's code; whatever it raises becomes one line naming ``call``, the
    expression as the attendee would write it (``model(x)``, ``dataset[7]``)."""
    try:
        yield
    except ExerciseNotSolved:
        raise
    except Exception as error:
        raise ExerciseNotSolved(f"your `{call}` raised {error_text(error)}") from error


# Code that is not the attendee's, besides installed libraries (a path through site- or
# dist-packages) and Python's frozen modules: this package and Python's standard library.
NOT_THE_ANSWER = (
    Path(__file__).resolve().parent,
    Path(sysconfig.get_paths()["stdlib"]).resolve(),
)


def _answer_frame(error: BaseException, check: Callable) -> str | None:
    """The name of the innermost function of the attendee's own code in the traceback: code
    that is neither the check nor in NOT_THE_ANSWER nor an installed library."""
    names = [
        frame.f_code.co_name
        for frame, _ in traceback.walk_tb(error.__traceback__)
        if frame.f_code is not check.__code__
        and not any(
            Path(frame.f_code.co_filename).resolve().is_relative_to(place)
            for place in NOT_THE_ANSWER
        )
        and "-packages" not in frame.f_code.co_filename
        and not frame.f_code.co_filename.startswith("<frozen")
        and frame.f_code.co_name != "<module>"
    ]
    return names[-1] if names else None


def _unexpected(error: Exception, check: Callable) -> ExerciseNotSolved:
    """What the attendee reads when their answer made a check fail in a way it did not name."""
    where = _answer_frame(error, check)
    if where is not None:
        return ExerciseNotSolved(f"your `{where}` raised {error_text(error)}")
    return ExerciseNotSolved(
        f"the check could not use your answer: it raised {error_text(error)}; "
        "check the answer's type and shape against the exercise"
    )


def _shape_text(shape: Sequence[int | None]) -> str:
    dims = ["any" if dim is None else str(dim) for dim in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def expect_tensor(
    value: object,
    *,
    name: str,
    shape: Sequence[int | None] | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Check that ``value`` is a tensor with the given shape (None = any size), dtype and device.

    Returns the tensor so a check can go on testing its values.
    """
    expect(value is not None, f"`{name}` is None: replace the None with your answer")
    expect(
        isinstance(value, torch.Tensor),
        f"`{name}` is a {type(value).__name__}, not a torch.Tensor",
    )
    assert isinstance(value, torch.Tensor)
    if shape is not None:
        actual = tuple(value.shape)
        matches = len(actual) == len(shape) and all(
            want is None or got == want for got, want in zip(actual, shape, strict=True)
        )
        expect(
            matches,
            f"`{name}` has shape {_shape_text(actual)} but the exercise needs {_shape_text(shape)}",
        )
    if dtype is not None:
        expect(
            value.dtype == dtype,
            f"`{name}` has dtype {value.dtype} but the exercise needs {dtype}",
        )
    if device is not None:
        wanted = torch.device(device)
        expect(
            value.device.type == wanted.type,
            f"`{name}` is on {value.device.type} but the exercise needs it on {wanted.type}",
        )
    return value


def passed(message: str) -> None:
    """Tell the attendee the exercise is solved."""
    print(f"✅ {message}")


def strict() -> bool:
    """True when an unsolved exercise must fail the run (tests, smoke test), not run past."""
    return os.environ.get(STRICT_ENV, "") == "1"


def _lab_number(check: Callable) -> int:
    """7 for a check defined in workshop_labs.lab07 (the lab its progress counts for)."""
    digits = check.__module__.rpartition(".")[2].removeprefix("lab")
    return int(digits) if digits.isdigit() else 0


def exercise(stand_in: Callable[..., Any] | None = None, *, stand_in_is: str = ""):
    """Decorate a check ``check(answer, *context)`` so a lab can run past an unsolved exercise.

    ``stand_in(*context)`` builds what later cells use instead of an answer that fails (a
    tensor, a function, a class), never the exercise's solution; ``stand_in_is`` says in a few
    words what it is, for the line the attendee reads. Without a stand-in, the attendee's
    answer is returned either way (nothing later depends on it).
    """
    if stand_in is not None and not stand_in_is:
        raise ValueError("a stand-in needs stand_in_is: the attendee is told what it is")

    def decorate(check: Callable[..., None]) -> Callable[..., Any]:
        lab = _lab_number(check)
        exercise_name = check.__name__.removeprefix("check_")
        goes_on = (
            "the cells below use your answer as it is"
            if stand_in is None
            else f"the cells below go on with a stand-in ({stand_in_is}), not the solution"
        )

        @functools.wraps(check)
        def run(answer: Any, *context: Any, **options: Any) -> Any:
            try:
                try:
                    check(answer, *context, **options)
                except ExerciseNotSolved:
                    raise
                except Exception as error:
                    raise _unexpected(error, check) from error
            except ExerciseNotSolved as reason:
                progress.report(lab, exercise_name, passed=False, reason=str(reason))
                if strict():
                    raise
                print(f"{RED}✗ {reason}{RESET}")
                print(
                    f"{YELLOW}↪ Not solved yet: {goes_on}, so the rest of the lab runs. Fix "
                    f"the exercise cell, run it, then run this check again.{RESET}"
                )
                return answer if stand_in is None else stand_in(*context)
            progress.report(lab, exercise_name, passed=True)
            return answer

        run.unchecked = check  # the bare check, which always raises: for the checks' own tests
        return run

    return decorate


def _show_unsolved(shell, etype, value, tb, tb_offset=None) -> list[str]:
    """IPython handler: one red line instead of a traceback; the cell still counts as failed."""
    lines = [f"{RED}✗ {value}{RESET}"]
    shell._showtraceback(etype, value, lines)
    return lines


def install_notebook_handler() -> bool:
    """Show ``ExerciseNotSolved`` and ``NotEnoughMemory`` as one red line in IPython; False
    outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc((ExerciseNotSolved, NotEnoughMemory), _show_unsolved)
    return True
