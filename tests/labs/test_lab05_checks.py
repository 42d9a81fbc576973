"""Lab 5's checks reject the typical wrong answers with a message naming the cause, accept the
solutions, and, run past an unsolved exercise, hand the lab a stand-in that works for the cells
below and is not the solution (the check refuses it), or the answer as it is where nothing
below uses it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.labs.solutions import assert_runs_past_with_a_stand_in, lab_namespace, solution, starter
from workshop_labs import checks, lab05
from workshop_labs.checks import ExerciseNotSolved


def lab_starter(name):
    """What lab 5's exercise cell defines as ``name`` before the attendee edits it."""
    return starter(5, name)


@pytest.fixture
def not_strict(monkeypatch):
    """As in an attendee's notebook: an unsolved exercise returns its stand-in, or the answer."""
    monkeypatch.setenv(checks.STRICT_ENV, "0")


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
        lab05.check_autograd_derivative(answer)


def test_autograd_derivative_accepts_solution(capsys):
    answer = derivative_with()
    assert lab05.check_autograd_derivative(answer) is answer
    assert "✅" in capsys.readouterr().out


def test_autograd_derivative_unsolved_goes_on_with_central_differences(monkeypatch, capsys):
    """Section 5 prints squareplus's derivative with it: the stand-in measures the slope
    without autograd, close enough to print, not close enough to pass the check."""
    unsolved = lab_starter("autograd_derivative")
    stand_in = assert_runs_past_with_a_stand_in(
        lab05.check_autograd_derivative, unsolved, (), monkeypatch, capsys
    )
    points = torch.tensor([-2.0, 0.0, 2.0])
    squareplus = lab_namespace(5, "squareplus")["squareplus"]
    assert torch.allclose(
        stand_in(squareplus, points), derivative_with()(squareplus, points), atol=1e-3
    )


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
        (norms_with(("model.zero_grad()", "")), "twice the norms.*zero_grad"),
        (norms_reversed, "reverse order"),
        (norms_of_every_parameter, "one per parameter"),
        (norms_with(("model.modules()", "model.children()")), "model.modules"),
    ],
    ids=["none", "without-zero-grad", "reversed", "every-parameter", "top-level-only"],
)
def test_layer_grad_norms_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab05.check_layer_grad_norms(answer)


def test_layer_grad_norms_accepts_solution(capsys):
    answer = norms_with()
    assert lab05.check_layer_grad_norms(answer) is answer
    assert "✅" in capsys.readouterr().out


def test_layer_grad_norms_unsolved_goes_on_with_the_walkthrough_lines(monkeypatch, capsys):
    """Section 4 measures fresh nn.Sequential networks with it: the walk-through's lines give
    what the solution gives there, and the check refuses them for a nested model."""
    unsolved = lab_starter("layer_grad_norms")
    stand_in = assert_runs_past_with_a_stand_in(
        lab05.check_layer_grad_norms, unsolved, (), monkeypatch, capsys
    )
    deep_mlp = lab_namespace(5, "deep_mlp")["deep_mlp"]
    x, y = torch.rand(16, 64), torch.randint(0, 10, (16,))
    torch.manual_seed(0)
    got = stand_in(deep_mlp(nn.ReLU, depth=4), x, y)
    torch.manual_seed(0)
    assert got == pytest.approx(norms_with()(deep_mlp(nn.ReLU, depth=4), x, y), rel=1e-5)


def test_layer_grad_norms_refuses_a_loop_over_a_nested_model():
    with pytest.raises(ExerciseNotSolved, match="loops over the model itself.*model.modules"):
        lab05.check_layer_grad_norms(lab05.walkthrough_layer_grad_norms)


# ---- exercise 3 · init_kaiming --------------------------------------------------------------

KAIMING = 'nn.init.kaiming_normal_(module.weight, nonlinearity="relu")'


def init_with(*edits):
    """The lab's solution, with one typical mistake."""
    return solution(5, "init_kaiming", edits=edits)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda module: None, "default weights.*Kaiming-normal"),
        (init_with(("isinstance(module, nn.Linear)", "True")), "only when it is an nn.Linear"),
        (
            init_with(("nn.init.zeros_(module.bias)", "nn.init.kaiming_normal_(module.bias)")),
            "not the bias vector.*nn.init.zeros_",
        ),
        (init_with(('nonlinearity="relu"', 'mode="fan_out"')), "fan_out.*mode='fan_in'"),
        (init_with((KAIMING, "nn.init.xavier_normal_(module.weight)")), "Xavier"),
        (init_with(('nonlinearity="relu"', 'nonlinearity="linear"')), "nonlinearity='relu'"),
        (
            init_with((KAIMING, "nn.init.normal_(module.weight)")),
            r"std is 0\.99\d but Kaiming for ReLU gives",
        ),
        (init_with(("nn.init.zeros_(module.bias)", "pass")), "bias keeps its default"),
        (
            init_with(("(module.weight, nonlinearity", "(module.weights, nonlinearity")),
            "no attribute 'weights'.*module.weight and module.bias",
        ),
        (
            init_with((KAIMING, "module.weight = torch.randn(module.weight.shape)")),
            "replaces the parameter.*in place",
        ),
    ],
    ids=[
        "untouched",
        "every-module",
        "kaiming-bias",
        "fan-out",
        "xavier",
        "linear-gain",
        "standard-normal",
        "default-bias",
        "misspelt-weight",
        "assigned-tensor",
    ],
)
def test_init_kaiming_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab05.check_init_kaiming(answer)


def test_init_kaiming_accepts_solution(capsys):
    answer = init_with()
    assert lab05.check_init_kaiming(answer) is answer
    assert "✅" in capsys.readouterr().out


def test_init_kaiming_unsolved_goes_on_with_default_weights_of_kaimings_size(monkeypatch, capsys):
    """Sections 4 and 6 build networks with it: the stand-in gives every weight matrix Kaiming's
    standard deviation, and keeps the default biases, which the check refuses."""
    unsolved = lab_starter("init_kaiming")
    stand_in = assert_runs_past_with_a_stand_in(
        lab05.check_init_kaiming, unsolved, (), monkeypatch, capsys
    )
    torch.manual_seed(0)
    model = lab_namespace(5, "deep_mlp")["deep_mlp"](nn.ReLU, depth=3, width=256)
    model.apply(stand_in)
    for layer in model[:-1:2]:
        fan_in = layer.weight.shape[1]
        assert layer.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.05)


# ---- exercise 4 · LearnableLeakyReLU --------------------------------------------------------


def leaky_with(*edits):
    """The lab's solution, with one typical mistake."""
    return solution(5, "LearnableLeakyReLU", edits=edits)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda x: x, "inherits from nn.Module"),
        (leaky_with(("super().__init__()", "")), "add super\\(\\).__init__\\(\\) as the first"),
        (leaky_with(("nn.Parameter(", "(")), "not a registered parameter"),
        (leaky_with(("self.slope * x", "0.01 * x")), "wrong for x < 0"),
        (leaky_with(("self.slope * x", "self.slope.item() * x")), "no gradient reaches `slope`"),
    ],
    ids=["not-a-module", "without-super", "plain-tensor", "wrong-negative", "detached"],
)
def test_learnable_leaky_relu_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab05.check_learnable_leaky_relu(answer)


def test_learnable_leaky_relu_starter_says_super_init_is_missing():
    """The starter's __init__ is only `pass`: one line about super().__init__(), not torch's
    AttributeError about '_parameters'."""
    with pytest.raises(ExerciseNotSolved, match="does not call super\\(\\).__init__\\(\\)"):
        lab05.check_learnable_leaky_relu(lab_starter("LearnableLeakyReLU"))


def test_learnable_leaky_relu_accepts_solution(capsys):
    answer = leaky_with()
    assert lab05.check_learnable_leaky_relu(answer) is answer
    assert "✅" in capsys.readouterr().out


def test_learnable_leaky_relu_unsolved_goes_on_as_it_is(not_strict, capsys):
    """Nothing below uses it but Exercise 7, whose check refuses a broken class."""
    unsolved = lab_starter("LearnableLeakyReLU")
    assert lab05.check_learnable_leaky_relu(unsolved) is unsolved
    assert "the cells below use your answer as it is" in capsys.readouterr().out


# ---- exercise 5 · ELUFunction ---------------------------------------------------------------

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
        lab05.check_elu_function(elu_function_returning(gradient))


def test_elu_function_rejects_a_plain_function():
    with pytest.raises(ExerciseNotSolved, match="torch.autograd.Function"):
        lab05.check_elu_function(F.elu)


def test_elu_function_accepts_solution(capsys):
    answer = solution(5, "ELUFunction")
    assert lab05.check_elu_function(answer) is answer
    assert "gradcheck" in capsys.readouterr().out


def test_elu_function_unsolved_runs_on_with_the_starter(not_strict, capsys):
    """Nothing later uses ELUFunction, so the lab goes on with the attendee's class as it is."""
    answer = lab_starter("ELUFunction")
    assert lab05.check_elu_function(answer) is answer
    assert "✗" in capsys.readouterr().out


# ---- exercise 6 · my_activation -------------------------------------------------------------


class Doubling(nn.Module):
    def forward(self, x):
        return 2 * x


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (None, "is None"),
        (nn.ELU(), "instance.*ELU without the brackets"),
        (torch.relu, "not a module class.*Squareplus"),
        (lab05.central_difference, "not a module class"),
        (torch.autograd.Function, "not an nn.Module"),
        (nn.Threshold, "no arguments"),
        (nn.Softmax, "not elementwise"),
        (nn.Identity, "linear"),
        (Doubling, "linear"),
    ],
    ids=[
        "none",
        "instance",
        "function",
        "python-function",
        "autograd-function",
        "needs-arguments",
        "softmax",
        "identity",
        "scaling",
    ],
)
def test_my_activation_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab05.check_my_activation(answer)


@pytest.mark.parametrize(
    "answer", [nn.ELU, nn.Mish, nn.LeakyReLU, solution(5, "LearnableLeakyReLU")]
)
def test_my_activation_accepts_activation_classes(answer, capsys):
    assert lab05.check_my_activation(answer) is answer
    assert "joins the race" in capsys.readouterr().out


def test_my_activation_accepts_solution():
    answer = solution(5, "my_activation", LearnableLeakyReLU=solution(5, "LearnableLeakyReLU"))
    assert lab05.check_my_activation(answer) is answer


def test_my_activation_unsolved_races_nn_elu(not_strict, capsys):
    """Any activation class is a right answer here; the solution picks LearnableLeakyReLU."""
    stand_in = lab05.check_my_activation(lab_starter("my_activation"))
    assert stand_in is nn.ELU
    assert "a stand-in (nn.ELU), not the solution" in capsys.readouterr().out


# ---- the figures and the summary say what was measured --------------------------------------


def test_gradient_summary_and_figure_report_shrinking_and_growing_gradients():
    norms = {"Sigmoid": [1e-8, 1e-4, 1.0], "Amplified": [4.0, 2.0, 1.0]}
    summary = lab05.gradient_loss_summary(norms).splitlines()
    assert summary[0].endswith(
        "layer 1 gets 100,000,000× less than layer 3; going back "
        "towards the input, the gradient shrinks 10000.0× per layer on average"
    )
    assert "layer 1 gets 4.0× more than layer 3" in summary[1]
    assert "grows 2.0× per layer" in summary[1]
    title = lab05.gradient_per_layer(norms).axes[0].get_title()
    assert "Sigmoid: layer 1 gets 100,000,000× less than layer 3" in title
    assert "Amplified: layer 1 gets 4.0× more than layer 3" in title


def test_init_figure_title_names_the_measured_extremes():
    fig = lab05.signal_and_gradient_bars(
        {"default init": [0.3, 0.1, 0.08], "Kaiming init": [0.6, 0.7, 0.5]},
        {"default init": [1e-4, 1e-3, 1e-2], "Kaiming init": [0.5, 0.4, 0.25]},
    )
    assert fig.get_suptitle() == (
        "default init: layer 1 gets 100× less than layer 3; "
        "Kaiming init: layer 1 gets 2.0× more than layer 3"
    )


def test_activation_panels_state_the_measured_slope_range():
    x = torch.linspace(-4, 4, 81)
    fig = lab05.activation_curves(x, {"Sigmoid": (torch.sigmoid(x), torch.sigmoid(x) / 4)})
    assert fig.axes[0].get_title() == "Sigmoid\nslope 0.0045 to 0.25"


def test_is_affine_tells_stacked_linear_layers_from_ones_with_an_activation():
    torch.manual_seed(0)
    assert lab05.is_affine(nn.Sequential(nn.Linear(2, 16), nn.Linear(16, 16), nn.Linear(16, 1)))
    assert not lab05.is_affine(nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1)))
    assert not lab05.is_affine(nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1)))
