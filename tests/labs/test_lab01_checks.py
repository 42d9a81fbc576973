"""Lab 1's checks beyond its answer corpus (corpus_lab01.py, run by test_check_corpus.py):
outside strict mode the lab runs past the starter answers; and lab 1's figures, drawn from
real tensors."""

from __future__ import annotations

import pytest
import torch

from tests.labs import corpus_lab01
from tests.labs.conftest import keep_figure
from tests.labs.corpus_lab01 import CONFUSION, COUNTS, PICTURES, Y_TRUE, X
from tests.labs.solutions import starter
from workshop_labs import autograd_diagram, checks, lab01
from workshop_labs.checks import ExerciseNotSolved

CPU = torch.device("cpu")
RUN_PAST = "↪ Not solved yet"


@pytest.fixture
def lenient(monkeypatch):
    """As in a notebook: a check runs past an unsolved exercise instead of raising."""
    monkeypatch.setenv(checks.STRICT_ENV, "0")


def test_batch_rejects_the_wrong_device():
    """On a GPU machine a CPU tensor is the typical mistake (forgot device=device)."""
    with pytest.raises(
        ExerciseNotSolved, match=r"`batch` is on cpu but `device` is cuda: .*\.to\(device\)"
    ):
        lab01.check_batch(torch.rand(32, 64), torch.device("cuda"))


# ----------------------------------------------------------------------------------------------
# Run past an unsolved exercise
# ----------------------------------------------------------------------------------------------


def test_unsolved_batch_runs_past_with_the_answer_as_it_is(lenient, capsys):
    assert lab01.check_batch(None, CPU) is None  # nothing later uses `batch`
    out = capsys.readouterr().out
    assert "`batch` is None" in out and "your answer as it is" in out


def test_unsolved_row_normalised_runs_past_with_the_answer_as_it_is(lenient, capsys):
    wrong = COUNTS / COUNTS.sum(dim=1)
    assert lab01.check_row_normalised(wrong, COUNTS) is wrong
    out = capsys.readouterr().out
    assert "each COLUMN was divided" in out and RUN_PAST in out


def test_unsolved_digit_batch_runs_past_with_a_stand_in_that_is_right(lenient, capsys):
    stand_in = lab01.check_digit_batch(None, PICTURES)
    assert "a stand-in (the pictures copied one by one" in capsys.readouterr().out
    lab01.check_digit_batch.unchecked(stand_in, PICTURES)
    assert torch.equal(stand_in.flatten(start_dim=1), torch.stack(PICTURES).flatten(1))


def test_unsolved_shares_memory_runs_past_with_the_answer_as_it_is(lenient, capsys):
    image_np = corpus_lab01.IMAGE_NP
    assert lab01.check_shares_memory(None, image_np) is None
    assert RUN_PAST in capsys.readouterr().out


def test_unsolved_gradient_runs_past_with_the_answer_as_it_is(lenient, capsys):
    unsolved = starter(1, "w")
    assert lab01.check_gradient(unsolved, X, Y_TRUE) is unsolved
    assert "`w.requires_grad` is False" in capsys.readouterr().out


def test_unsolved_train_step_runs_past_with_a_stand_in_that_trains(lenient, capsys):
    stand_in = lab01.check_train_step(starter(1, "train_step"))
    out = capsys.readouterr().out
    assert "no gradients were computed" in out and "a stand-in (the five lines" in out
    lab01.check_train_step.unchecked(stand_in)
    assert "✅" in capsys.readouterr().out


def test_a_train_step_that_raises_is_one_red_line_and_the_lab_runs_on(lenient, capsys):
    """The answer's exception never reaches the attendee as a traceback."""
    stand_in = lab01.check_train_step(corpus_lab01.step_under_no_grad)
    out = capsys.readouterr().out
    assert "✗ your `train_step(model, optimizer, loss_fn, xb, yb)` raised RuntimeError" in out
    assert "Traceback" not in out and stand_in is lab01.walkthrough_train_step


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


def test_confusion_picture_shows_every_count_with_true_rows_and_guessed_columns():
    fig = lab01.confusion_picture(CONFUSION, title="a confusion matrix")
    keep_figure(fig, "lab01_confusion_matrix")
    (ax,) = fig.axes
    assert [text.get_text() for text in ax.texts] == [str(int(n)) for n in CONFUSION.flatten()]
    assert ax.get_ylabel() == "the true class (row)"
    assert ax.get_xlabel() == "the model's guess (column)"
    with pytest.raises(ValueError, match=r"square .* got shape \(4, 3\)"):
        lab01.confusion_picture(CONFUSION[:, :3], title="not square")


def test_unsolved_precision_recall_runs_past_with_the_answer_as_it_is(lenient, capsys):
    unsolved = (None, None)
    assert lab01.check_precision_recall(unsolved, CONFUSION) is unsolved
    assert "`precision` is None" in capsys.readouterr().out


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
