"""Lab 5's checks reject the typical wrong answers with a message naming the cause, and accept
the solutions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workshop_labs import lab05
from workshop_labs.checks import ExerciseNotSolved

# ---- exercise 1 · autograd_derivative ------------------------------------------------------


def derivative_solution(activation, x):
    x = x.detach().clone().requires_grad_(True)
    activation(x).sum().backward()
    return x.grad


def derivative_accumulating(activation, x):
    x.requires_grad_(True)
    activation(x).sum().backward()
    return x.grad


def derivative_without_sum(activation, x):
    x = x.detach().clone().requires_grad_(True)
    activation(x).backward()
    return x.grad


def derivative_returns_values(activation, x):
    return activation(x)


def derivative_wrong_below_zero(activation, x):
    return derivative_solution(activation, x) * (x > 0)  # as if every activation were ReLU-like


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda activation, x: None, "is None"),
        (derivative_without_sum, "y.sum"),
        (derivative_returns_values, "values f\\(x\\), not its derivative"),
        (derivative_wrong_below_zero, "wrong for x < 0"),
        (derivative_accumulating, "twice the derivative.*accumulate"),
    ],
)
def test_autograd_derivative_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab05.autograd_derivative(answer)


def test_autograd_derivative_accepts_solution(capsys):
    lab05.autograd_derivative(derivative_solution)
    assert "✅" in capsys.readouterr().out


# ---- exercise 2 · layer_grad_norms ----------------------------------------------------------


def linear_layers(model):
    return [module for module in model.modules() if isinstance(module, nn.Linear)]


def norms_solution(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [layer.weight.grad.norm().item() for layer in linear_layers(model)]


def norms_without_zero_grad(model, x, y):
    F.cross_entropy(model(x), y).backward()
    return [layer.weight.grad.norm().item() for layer in linear_layers(model)]


def norms_reversed(model, x, y):
    return norms_solution(model, x, y)[::-1]


def norms_of_every_parameter(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [p.grad.norm().item() for p in model.parameters()]


def norms_of_top_level_only(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.children() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda model, x, y: None, "returned None"),
        (norms_without_zero_grad, "zero_grad"),
        (norms_reversed, "reverse order"),
        (norms_of_every_parameter, "one per parameter"),
        (norms_of_top_level_only, "model.modules"),
    ],
)
def test_layer_grad_norms_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab05.layer_grad_norms(answer)


def test_layer_grad_norms_accepts_solution(capsys):
    lab05.layer_grad_norms(norms_solution)
    assert "✅" in capsys.readouterr().out


# ---- exercise 3 · LearnableLeakyReLU --------------------------------------------------------


class LeakySolution(nn.Module):
    def __init__(self, initial_slope=0.1):
        super().__init__()
        self.slope = nn.Parameter(torch.tensor(float(initial_slope)))

    def forward(self, x):
        return torch.where(x >= 0, x, self.slope * x)


class LeakyWithoutSuper(nn.Module):
    def __init__(self, initial_slope=0.1):
        self.slope = nn.Parameter(torch.tensor(float(initial_slope)))

    def forward(self, x):
        return torch.where(x >= 0, x, self.slope * x)


class LeakyPlainTensor(LeakySolution):
    def __init__(self, initial_slope=0.1):
        nn.Module.__init__(self)
        self.slope = torch.tensor(float(initial_slope))


class LeakyWrongNegative(LeakySolution):
    def forward(self, x):
        return torch.where(x >= 0, x, 0.01 * x)


class LeakyDetached(LeakySolution):
    def forward(self, x):
        return torch.where(x >= 0, x, self.slope.item() * x)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda x: x, "inherits from nn.Module"),
        (LeakyWithoutSuper, "super\\(\\).__init__\\(\\)"),
        (LeakyPlainTensor, "not a registered parameter"),
        (LeakyWrongNegative, "wrong for x < 0"),
        (LeakyDetached, "no gradient reaches `slope`"),
    ],
)
def test_learnable_leaky_relu_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab05.learnable_leaky_relu(answer)


def test_learnable_leaky_relu_accepts_solution(capsys):
    lab05.learnable_leaky_relu(LeakySolution)
    assert "✅" in capsys.readouterr().out


# ---- exercise 4 · ELUFunction ---------------------------------------------------------------


def elu_function_with(backward):
    class ELUFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.where(x > 0, x, torch.exp(x) - 1)

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return backward(x, grad_output)

    return ELUFunction


def ELU_LOCAL(x):  # noqa: N802 (reads like the constant it is)
    return torch.where(x > 0, torch.ones_like(x), torch.exp(x))


ELU_SOLUTION = elu_function_with(lambda x, g: g * ELU_LOCAL(x))


@pytest.mark.parametrize(
    ("backward", "message"),
    [
        (lambda x, g: None, "returned None"),
        (lambda x, g: (g * torch.exp(x)).sum(), "wrong shape"),
        (lambda x, g: g, "wrong for x < 0: it should be exp\\(x\\)"),
        (lambda x, g: g * torch.exp(x), "wrong for x > 0: it should be 1"),
        (lambda x, g: ELU_LOCAL(x), "ignores grad_output"),
        (lambda x, g: (ELU_LOCAL(x) * g, g), "one gradient per input"),
    ],
)
def test_elu_function_rejects(backward, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab05.elu_function(elu_function_with(backward))


def test_elu_function_rejects_a_plain_function():
    with pytest.raises(ExerciseNotSolved, match="torch.autograd.Function"):
        lab05.elu_function(F.elu)


def test_elu_function_accepts_solution(capsys):
    lab05.elu_function(ELU_SOLUTION)
    assert "gradcheck" in capsys.readouterr().out
