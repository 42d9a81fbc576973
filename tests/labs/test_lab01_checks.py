"""Lab 1's checks: each rejects a typical wrong answer with its specific message, accepts the
solution, and outside strict mode runs past the starter answer with a reference that works;
and lab 1's figures, drawn from real tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.labs.solutions import solution, solution_namespace, starter
from workshop_labs import autograd_diagram, checks, lab01
from workshop_labs.checks import ExerciseNotSolved

CPU = torch.device("cpu")
RUN_PAST = "↪ Not solved yet"


@pytest.fixture
def lenient(monkeypatch):
    """As in a notebook: a check runs past an unsolved exercise instead of raising."""
    monkeypatch.setenv(checks.STRICT_ENV, "0")


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


def test_unsolved_batch_runs_past_with_the_answer_as_it_is(lenient, capsys):
    assert lab01.check_batch(None, CPU) is None  # nothing later uses `batch`
    out = capsys.readouterr().out
    assert "`batch` is None" in out and "your answer as it is" in out


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
    lab01.check_row_normalised(solution(1, "probabilities", counts=COUNTS), COUNTS)
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
        lab01.check_row_normalised(wrong, COUNTS)


def test_unsolved_row_normalised_runs_past_with_the_answer_as_it_is(lenient, capsys):
    wrong = COUNTS / COUNTS.sum(dim=1)
    assert lab01.check_row_normalised(wrong, COUNTS) is wrong
    out = capsys.readouterr().out
    assert "each COLUMN was divided" in out and RUN_PAST in out


# ----------------------------------------------------------------------------------------------
# Exercise 3: a batch of pictures (stack, unsqueeze)
# ----------------------------------------------------------------------------------------------

PICTURES = [torch.arange(64.0).reshape(8, 8) + 100 * i for i in range(4)]  # told apart by value


def test_digit_batch_accepts_the_solution_and_equivalent_answers(capsys):
    lab01.check_digit_batch(solution(1, "digit_batch", pictures=PICTURES), PICTURES)
    lab01.check_digit_batch(torch.cat(PICTURES).reshape(4, 1, 8, 8), PICTURES)
    lab01.check_digit_batch(torch.stack([p.unsqueeze(0) for p in PICTURES]), PICTURES)
    assert capsys.readouterr().out.count("✅") == 3


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (None, r"`digit_batch` is None"),
        (PICTURES, r"still a Python list: torch\.stack\(pictures\)"),
        (torch.cat(PICTURES), r"shape \(32, 8\): torch\.cat joined .* torch\.stack puts them"),
        (torch.cat(PICTURES).unsqueeze(1), r"shape \(32, 1, 8\): torch\.cat joined"),
        (torch.stack(PICTURES), r"channel dimension is missing.*\.unsqueeze\(1\)"),
        (torch.stack(PICTURES).unsqueeze(0), r"unsqueeze\(0\) put the new dimension in FRONT"),
        (torch.stack(PICTURES).unsqueeze(-1), r"channels LAST .* \(N, C, H, W\): \.unsqueeze\(1\)"),
        (
            torch.stack(PICTURES).unsqueeze(2),
            r"\(4, 8, 1, 8\) but the exercise needs \(4, 1, 8, 8\)",
        ),
        (torch.stack(PICTURES, dim=1).unsqueeze(1), r"\(8, 1, 4, 8\) .* along dim=0"),
        (torch.stack(PICTURES, dim=1).reshape(4, 1, 8, 8), r"the pixels are scrambled"),
    ],
    ids=[
        "none",
        "list",
        "cat",
        "cat-unsqueeze",
        "no-channel",
        "unsqueeze-0",
        "channels-last",
        "unsqueeze-2",
        "stack-dim-1",
        "stack-dim-1-reshaped",
    ],
)
def test_digit_batch_rejects_wrong_answers(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab01.check_digit_batch(wrong, PICTURES)


def test_unsolved_digit_batch_runs_past_with_a_stand_in_that_is_right(lenient, capsys):
    stand_in = lab01.check_digit_batch(None, PICTURES)
    assert "a stand-in (the pictures copied one by one" in capsys.readouterr().out
    lab01.check_digit_batch.unchecked(stand_in, PICTURES)
    assert torch.equal(stand_in.flatten(start_dim=1), torch.stack(PICTURES).flatten(1))


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


def test_unsolved_shares_memory_runs_past_with_the_answer_as_it_is(lenient, capsys):
    image_np = np.zeros((8, 8))
    assert lab01.check_shares_memory(None, image_np) is None
    assert RUN_PAST in capsys.readouterr().out


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


def test_unsolved_gradient_runs_past_with_the_answer_as_it_is(lenient, capsys):
    starter = _w(requires_grad=False, backward_calls=0)
    assert lab01.check_gradient(starter, X, Y_TRUE) is starter
    assert "`w.requires_grad` is False" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# Exercise 5: one training step
# ----------------------------------------------------------------------------------------------


def train_step_with(*edits):
    """The lab's solution with one typical mistake."""
    return solution(1, "train_step", edits=edits)


train_step_starter = starter(1, "train_step")  # the exercise cell as shipped


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
            r"returned Tensor, not a Python number: return the loss as a plain Python float",
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


def test_unsolved_train_step_runs_past_with_a_stand_in_that_trains(lenient, capsys):
    stand_in = lab01.check_train_step(train_step_starter)
    out = capsys.readouterr().out
    assert "no gradients were computed" in out and "a stand-in (the five lines" in out
    lab01.check_train_step.unchecked(stand_in)
    assert "✅" in capsys.readouterr().out


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


def test_weight_images_wants_pictures_the_lab_reshaped():
    fig = lab01.weight_images(torch.randn(10, 64).reshape(10, 8, 8))
    assert [ax.get_title() for ax in fig.axes[:2]] == ["score 0", "score 1"]
    with pytest.raises(ValueError, match=r"reshape the weight to \(10, 8, 8\)"):
        lab01.weight_images(torch.randn(10, 64))


def box_texts(fig) -> list[str]:
    return [text.get_text() for text in fig.axes[0].texts]


def test_autograd_graph_shows_constants_shapes_and_then_the_gradients():
    w = torch.tensor(0.5, requires_grad=True)
    loss = ((w * X - Y_TRUE) ** 2).mean()
    names = {"w": w, "x": X, "y_true": Y_TRUE}
    before = autograd_diagram.autograd_graph(loss, names=names)
    texts = box_texts(before)
    assert "w\nshape ()\nrequires_grad=True\nw.grad = None" in texts
    assert "x = [1, 2, 3]\nshape (3,), no grad" in texts  # saved by the multiplication
    assert "y_true = [2, 4, 6]\nshape (3,), no grad" in texts  # the subtraction saves nothing
    assert "2\na number" in texts  # the exponent of ** 2
    assert "MulBackward0\nout shape (3,)" in texts
    assert "PowBackward0\nout shape (3,)" in texts
    assert "MeanBackward0\nout shape ()\nvalue 10.5" in texts
    assert "every leaf's .grad is None" in before.axes[0].get_title(loc="left")

    loss.backward()  # frees the saved tensors: the constants are still named, by order of use
    after = autograd_diagram.autograd_graph(loss, names=names)
    texts = box_texts(after)
    assert "w\nshape ()\nrequires_grad=True\nw.grad = -14" in texts
    assert "x = [1, 2, 3]\nshape (3,), no grad" in texts
    assert "y_true = [2, 4, 6]\nshape (3,), no grad" in texts
    assert "every leaf shows the .grad that backward() stored" in after.axes[0].get_title(
        loc="left"
    )


def test_autograd_graph_labels_numbers_intermediates_and_unnamed_constants():
    x = torch.tensor(2.0, requires_grad=True)
    texts = box_texts(autograd_diagram.autograd_graph(x**2 + 3 * x, names={"x": x}))
    assert {"2\na number", "3\na number"} <= set(texts)

    w = torch.tensor(0.5, requires_grad=True)
    prediction = w * X
    loss = ((prediction - Y_TRUE) ** 2).mean()
    texts = box_texts(autograd_diagram.autograd_graph(loss, names={"prediction": prediction}))
    assert "prediction\nMulBackward0\nout shape (3,)" in texts
    assert "leaf tensor\nshape ()\nrequires_grad=True\ngrad = None" in texts
    assert "constant\nno grad" in texts  # y_true: not saved, not named
    assert "constant = [1, 2, 3]\nshape (3,), no grad" in texts  # X: saved, not named

    loss.backward()  # x named, y_true not: which unnamed slot is x cannot be told any more
    texts = box_texts(autograd_diagram.autograd_graph(loss, names={"x": X}))
    assert texts.count("constant\nno grad") == 2


def test_autograd_graph_draws_one_arrow_per_input_however_the_node_is_reached():
    w = torch.tensor(2.0, requires_grad=True)
    fig = autograd_diagram.autograd_graph((w * w + w).sum(), names={"w": w})
    assert len(fig.axes[0].patches) == 4  # w → Mul, w → Add, Mul → Add, Add → Sum
