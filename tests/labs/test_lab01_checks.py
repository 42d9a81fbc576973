"""Lab 1's checks: each rejects a typical wrong answer with its specific message and accepts
the solution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.labs.solutions import solution, solution_namespace
from workshop_labs import lab01
from workshop_labs.checks import ExerciseNotSolved

CPU = torch.device("cpu")

# ----------------------------------------------------------------------------------------------
# Exercise 1: a batch with the right shape, dtype and device
# ----------------------------------------------------------------------------------------------


def test_batch_accepts_the_solution(capsys):
    lab01.check_batch(solution(1, "batch", device=CPU), CPU)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (None, r"`batch` is None: replace the None"),
        (torch.rand(64, 32), r"`batch` has shape \(64, 32\) but the exercise needs \(32, 64\)"),
        (torch.randint(0, 2, (32, 64)), r"dtype torch\.int64: pixels need a floating-point"),
        (torch.rand(32, 64, dtype=torch.float64), r"dtype torch\.float64 .* needs torch\.float32"),
        (torch.randn(32, 64), r"values outside \[0, 1\): torch\.randn .* torch\.rand"),
        (torch.zeros(32, 64), r"one repeated value"),
    ],
    ids=["none", "shape", "integer", "float64", "randn", "zeros"],
)
def test_batch_rejects_wrong_answers(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab01.check_batch(wrong, CPU)


def test_batch_rejects_the_wrong_device():
    """On a GPU machine a CPU tensor is the typical mistake (forgot device=device)."""
    with pytest.raises(
        ExerciseNotSolved, match=r"`batch` is on cpu but `device` is cuda: .*\.to\(device\)"
    ):
        lab01.check_batch(torch.rand(32, 64), torch.device("cuda"))


# ----------------------------------------------------------------------------------------------
# Exercise 2: broadcasting
# ----------------------------------------------------------------------------------------------

COUNTS = torch.tensor([[8, 1, 1, 0], [2, 5, 0, 1], [0, 0, 9, 3], [1, 4, 1, 8]])


def test_row_normalised_accepts_the_solution(capsys):
    lab01.check_row_normalised(COUNTS, solution(1, "probabilities", counts=COUNTS))
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (None, r"`probabilities` is None"),
        (COUNTS / COUNTS.sum(dim=1), r"each COLUMN was divided by a row total.*keepdim=True"),
        (COUNTS / COUNTS.sum(dim=0, keepdim=True), r"the columns sum to 1, not the rows"),
        (COUNTS // COUNTS.sum(dim=1, keepdim=True), r"use true division `/`, not `//`"),
        (COUNTS / COUNTS.sum(), r"the rows of `probabilities` sum to .* not 1"),
        ((COUNTS / COUNTS.sum(dim=1, keepdim=True))[:, :3], r"has shape \(4, 3\)"),
    ],
    ids=["none", "no-keepdim", "dim0", "floor-division", "grand-total", "shape"],
)
def test_row_normalised_rejects_wrong_answers(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab01.check_row_normalised(COUNTS, wrong)


# ----------------------------------------------------------------------------------------------
# Exercise 3: NumPy interop
# ----------------------------------------------------------------------------------------------


def test_shares_memory_accepts_from_numpy_and_as_tensor(capsys):
    image_np = np.arange(64, dtype=np.float32).reshape(8, 8)
    lab01.check_shares_memory(solution(1, "image", image_np=image_np), image_np)
    lab01.check_shares_memory(torch.as_tensor(image_np), image_np)
    assert capsys.readouterr().out.count("✅") == 2


@pytest.mark.parametrize(
    ("make_wrong", "message"),
    [
        (lambda a: torch.tensor(a), r"`image` is a copy .* torch\.tensor\(\.\.\.\) always copies"),
        (lambda a: torch.from_numpy(a).double(), r"is a copy .*changing the dtype"),
        (lambda a: None, r"`image` is None"),
        (lambda a: a, r"`image` is a ndarray, not a torch\.Tensor"),
    ],
    ids=["torch.tensor", "dtype-copy", "none", "still-numpy"],
)
def test_shares_memory_rejects_copies(make_wrong, message):
    image_np = np.arange(64, dtype=np.float32).reshape(8, 8)
    with pytest.raises(ExerciseNotSolved, match=message):
        lab01.check_shares_memory(make_wrong(image_np), image_np)


# ----------------------------------------------------------------------------------------------
# Exercise 4: autograd
# ----------------------------------------------------------------------------------------------

X = torch.tensor([1.0, 2.0, 3.0])
Y_TRUE = torch.tensor([2.0, 4.0, 6.0])


def _w(requires_grad: bool = True, backward_calls: int = 1) -> torch.Tensor:
    w = torch.tensor(0.5, requires_grad=requires_grad)
    for _ in range(backward_calls):
        ((w * X - Y_TRUE) ** 2).mean().backward()
    return w


def test_gradient_accepts_the_solution(capsys):
    solved = solution_namespace(1, "w")
    lab01.check_gradient(solved["w"], solved["x"], solved["y_true"])
    assert "w.grad = -14" in capsys.readouterr().out


def test_gradient_rejects_forgotten_requires_grad():
    with pytest.raises(ExerciseNotSolved, match=r"`w\.requires_grad` is False"):
        lab01.check_gradient(_w(requires_grad=False, backward_calls=0), X, Y_TRUE)


def test_gradient_rejects_forgotten_backward():
    with pytest.raises(ExerciseNotSolved, match=r"`w\.grad` is None: .*loss\.backward\(\)"):
        lab01.check_gradient(_w(backward_calls=0), X, Y_TRUE)


def test_gradient_detects_accumulated_gradients():
    with pytest.raises(ExerciseNotSolved, match=r"twice the right value .* ACCUMULATE"):
        lab01.check_gradient(_w(backward_calls=2), X, Y_TRUE)


def test_gradient_rejects_the_gradient_of_another_loss():
    w = torch.tensor(0.5, requires_grad=True)
    ((w * X - Y_TRUE) ** 2).sum().backward()  # sum instead of mean: 3× too large
    with pytest.raises(ExerciseNotSolved, match=r"3× the right value .* MEAN .* not their sum"):
        lab01.check_gradient(w, X, Y_TRUE)
    w = torch.tensor(0.5, requires_grad=True)
    (w * X - Y_TRUE).abs().mean().backward()
    with pytest.raises(ExerciseNotSolved, match=r"but d\(loss\)/dw is -14"):
        lab01.check_gradient(w, X, Y_TRUE)


# ----------------------------------------------------------------------------------------------
# Exercise 5: one training step
# ----------------------------------------------------------------------------------------------


def train_step_with(*edits):
    """The lab's solution with one typical mistake."""
    return solution(1, "train_step", edits=edits)


def train_step_starter(model, optimizer, loss_fn, xb, yb):
    return None


def test_train_step_accepts_the_solution(capsys):
    lab01.check_train_step(solution(1, "train_step"))
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (
            train_step_with(("optimizer.zero_grad()", "")),
            r"gradients ACCUMULATE.*optimizer\.zero_grad\(\)",
        ),
        (
            train_step_with(("loss.backward()", "")),
            r"no gradients were computed: call loss\.backward\(\)",
        ),
        (
            train_step_with(("optimizer.step()", "")),
            r"parameters did not change: call optimizer\.step\(\) AFTER",
        ),
        (
            train_step_with(
                ("optimizer.zero_grad()", ""),
                ("optimizer.step()", "optimizer.zero_grad(); optimizer.step()"),
            ),
            r"gradients were wiped before the update",
        ),
        (
            train_step_with(
                ("optimizer.step()", ""), ("loss.backward()", "optimizer.step(); loss.backward()")
            ),
            r"parameters did not change: .*AFTER loss\.backward",
        ),
        (
            train_step_with(("return loss.item()", "return loss")),
            r"returned Tensor, not a Python number: .*loss\.item\(\)",
        ),
        (train_step_starter, r"no gradients were computed"),
        ("not a function", r"`train_step` is not a function"),
    ],
    ids=[
        "no-zero-grad",
        "no-backward",
        "no-step",
        "zero-grad-late",
        "step-before-backward",
        "returns-tensor",
        "starter",
        "not-callable",
    ],
)
def test_train_step_rejects_wrong_answers(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab01.check_train_step(wrong)


# ----------------------------------------------------------------------------------------------
# Figures: drawn from real tensors, and clear errors for what they cannot draw
# ----------------------------------------------------------------------------------------------


def test_broadcast_picture_draws_shapes_and_rejects_3d_tensors():
    fig = lab01.broadcast_picture(
        torch.arange(3).reshape(3, 1), torch.arange(4), op="+", names=("column", "row")
    )
    titles = [ax.get_title() for ax in fig.axes]
    assert "column (3, 1)\nstretched to (3, 4)" in titles
    assert "column + row\nshape (3, 4)" in titles
    with pytest.raises(ValueError, match="at most 2 dimensions"):
        lab01.broadcast_picture(torch.zeros(2, 2, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="op='@'"):
        lab01.broadcast_picture(torch.zeros(2), torch.zeros(2), op="@")


def test_grid_cells_show_exact_values_so_a_normalised_row_sums_to_one():
    scores = torch.tensor([[1.0, 1.0, 2.0, 4.0]])
    fig = lab01.broadcast_picture(
        scores, scores.sum(dim=1, keepdim=True), op="/", names=("scores", "totals")
    )
    (result,) = [ax for ax in fig.axes if ax.get_title().startswith("scores / totals")]
    cells = [text.get_text() for text in result.texts]
    assert cells == ["0.125", "0.125", "0.25", "0.5"]
    assert sum(float(cell) for cell in cells) == 1.0
