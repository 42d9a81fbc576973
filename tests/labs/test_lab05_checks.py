"""Lab 5's checks reject the typical wrong answers with a message naming the cause, and accept
the solutions."""

from __future__ import annotations

import pytest
import torch.nn.functional as F

from tests.labs.solutions import solution
from workshop_labs import lab05
from workshop_labs.checks import ExerciseNotSolved

# ---- exercise 1 · autograd_derivative ------------------------------------------------------


def derivative_with(*edits):
    """The lab's solution, with one typical mistake."""
    return solution(5, "autograd_derivative", edits=edits)


def derivative_wrong_below_zero(activation, x):
    return derivative_with()(activation, x) * (x > 0)  # as if every activation were ReLU-like


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda activation, x: None, "is None"),
        (derivative_with((".sum().backward()", ".backward()")), "y.sum"),
        (lambda activation, x: activation(x), "values f\\(x\\), not its derivative"),
        (derivative_wrong_below_zero, "wrong for x < 0"),
        (derivative_with(("x = x.detach().clone()", "x = x")), "twice the derivative.*accumulate"),
    ],
    ids=["none", "without-sum", "returns-values", "wrong-below-zero", "accumulating"],
)
def test_autograd_derivative_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab05.autograd_derivative(answer)


def test_autograd_derivative_accepts_solution(capsys):
    lab05.autograd_derivative(derivative_with())
    assert "✅" in capsys.readouterr().out


# ---- exercise 2 · layer_grad_norms ----------------------------------------------------------


def norms_with(*edits):
    """The lab's solution, with one typical mistake."""
    return solution(5, "layer_grad_norms", edits=edits)


def norms_reversed(model, x, y):
    return norms_with()(model, x, y)[::-1]


def norms_of_every_parameter(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [p.grad.norm().item() for p in model.parameters()]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda model, x, y: None, "returned None"),
        (norms_with(("model.zero_grad()", "")), "zero_grad"),
        (norms_reversed, "reverse order"),
        (norms_of_every_parameter, "one per parameter"),
        (norms_with(("model.modules()", "model.children()")), "model.modules"),
    ],
    ids=["none", "without-zero-grad", "reversed", "every-parameter", "top-level-only"],
)
def test_layer_grad_norms_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab05.layer_grad_norms(answer)


def test_layer_grad_norms_accepts_solution(capsys):
    lab05.layer_grad_norms(norms_with())
    assert "✅" in capsys.readouterr().out


# ---- exercise 3 · LearnableLeakyReLU --------------------------------------------------------


def leaky_with(*edits):
    """The lab's solution, with one typical mistake."""
    return solution(5, "LearnableLeakyReLU", edits=edits)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda x: x, "inherits from nn.Module"),
        (leaky_with(("super().__init__()", "")), "super\\(\\).__init__\\(\\)"),
        (leaky_with(("nn.Parameter(", "(")), "not a registered parameter"),
        (leaky_with(("self.slope * x", "0.01 * x")), "wrong for x < 0"),
        (leaky_with(("self.slope * x", "self.slope.item() * x")), "no gradient reaches `slope`"),
    ],
    ids=["not-a-module", "without-super", "plain-tensor", "wrong-negative", "detached"],
)
def test_learnable_leaky_relu_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab05.learnable_leaky_relu(answer)


def test_learnable_leaky_relu_accepts_solution(capsys):
    lab05.learnable_leaky_relu(leaky_with())
    assert "✅" in capsys.readouterr().out


# ---- exercise 4 · ELUFunction ---------------------------------------------------------------

ELU_LOCAL = "torch.where(x > 0, torch.ones_like(x), torch.exp(x))"


def elu_function_returning(gradient):
    """The lab's solution with ``gradient`` (an expression) as what backward returns."""
    return solution(
        5, "ELUFunction", edits=[(f"return grad_output * {ELU_LOCAL}", f"return {gradient}")]
    )


@pytest.mark.parametrize(
    ("gradient", "message"),
    [
        ("None", "returned None"),
        ("(grad_output * torch.exp(x)).sum()", "wrong shape"),
        ("grad_output", "wrong for x < 0: it should be exp\\(x\\)"),
        ("grad_output * torch.exp(x)", "wrong for x > 0: it should be 1"),
        (ELU_LOCAL, "ignores grad_output"),
        (f"grad_output * {ELU_LOCAL}, grad_output", "one gradient per input"),
    ],
)
def test_elu_function_rejects(gradient, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab05.elu_function(elu_function_returning(gradient))


def test_elu_function_rejects_a_plain_function():
    with pytest.raises(ExerciseNotSolved, match="torch.autograd.Function"):
        lab05.elu_function(F.elu)


def test_elu_function_accepts_solution(capsys):
    lab05.elu_function(solution(5, "ELUFunction"))
    assert "gradcheck" in capsys.readouterr().out


# ---- the vanishing-gradient figure and summary say what was measured ------------------------


def test_gradient_summary_and_figure_report_shrinking_and_growing_gradients():
    norms = {"Sigmoid": [1e-8, 1e-4, 1.0], "Amplified": [4.0, 2.0, 1.0]}
    summary = lab05.gradient_loss_summary(norms).splitlines()
    assert summary[0].endswith(
        "layer 1 gets 100,000,000× less than layer 3; going back "
        "towards the input, the gradient shrinks 10000.0× per layer on average"
    )
    assert "layer 1 gets 4.0× more than layer 3" in summary[1]
    assert "grows 2.0× per layer" in summary[1]
    fig = lab05.gradient_per_layer(norms)
    notes = [text.get_text() for text in fig.axes[0].texts]
    assert "Amplified: layer 1 gets 4.0× more than layer 3" in notes
