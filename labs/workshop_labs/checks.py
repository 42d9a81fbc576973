"""The exercise-check framework: a check says *what* is wrong, in one line.

Checks raise ``ExerciseNotSolved`` with a message that names the problem and the fix. In a
notebook, ``setup()`` makes that exception print as a single red line instead of a traceback;
the cell still fails, so running a whole notebook (tests, CI) stops at an unsolved exercise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

RED = "\x1b[1;31m"
RESET = "\x1b[0m"


class ExerciseNotSolved(AssertionError):
    """An exercise check failed; the message says what is wrong and how to fix it."""


def expect(condition: bool, message: str) -> None:
    """Raise ``ExerciseNotSolved(message)`` unless ``condition`` holds."""
    if not condition:
        raise ExerciseNotSolved(message)


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


def _show_unsolved(shell, etype, value, tb, tb_offset=None) -> list[str]:
    """IPython handler: one red line instead of a traceback; the cell still counts as failed."""
    lines = [f"{RED}✗ {value}{RESET}"]
    shell._showtraceback(etype, value, lines)
    return lines


def install_notebook_handler() -> bool:
    """Show ``ExerciseNotSolved`` as one red line in IPython; False outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc((ExerciseNotSolved,), _show_unsolved)
    return True
