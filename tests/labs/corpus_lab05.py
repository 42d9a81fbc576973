"""Lab 5's answers, kept as test data: for every exercise the starter, the reference (the
published solution), wrong answers a beginner writes, each with the words its refusal must
hold, and other right answers, which must pass."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tests.labs.corpus import answer_then_context, case
from tests.labs.solutions import lab_namespace, solution, starter

EXERCISES = (
    "straight_only",
    "autograd_derivative",
    "layer_grad_norms",
    "init_kaiming",
    "learnable_leaky_relu",
    "elu_function",
    "my_activation",
)
DEFINES = {
    "straight_only": "straight_only",
    "autograd_derivative": "autograd_derivative",
    "layer_grad_norms": "layer_grad_norms",
    "init_kaiming": "init_kaiming",
    "learnable_leaky_relu": "LearnableLeakyReLU",
    "elu_function": "ELUFunction",
    "my_activation": "my_activation",
}


def with_edits(exercise, *edits):
    """The published solution of ``exercise`` with each (old, new) text replaced."""
    return solution(5, DEFINES[exercise], edits=edits)


# ---- straight_only ---------------------------------------------------------------------------

STRAIGHT = ("0 hidden layers", "2 hidden layers, no activation")
BENT = ("1 hidden layer, ReLU", "2 hidden layers, ReLU")


def boundary_networks() -> dict[str, nn.Module]:
    """The four untrained networks of section 1, built by the lab's own `moons_net`."""
    moons_net = lab_namespace(5, "moons_net")["moons_net"]
    layers = {STRAIGHT[0]: (0, None), BENT[0]: (1, nn.ReLU), BENT[1]: (2, nn.ReLU)}
    layers[STRAIGHT[1]] = (2, None)
    return {name: moons_net(*spec) for name, spec in layers.items()}


NETWORKS = boundary_networks()


# ---- autograd_derivative --------------------------------------------------------------------


def derivative_by_autograd_grad(activation, x):
    x = x.detach().requires_grad_(True)
    (slope,) = torch.autograd.grad(activation(x).sum(), x)
    return slope


def derivative_with_ones_upstream(activation, x):
    x = x.clone().detach().requires_grad_(True)
    y = activation(x)
    y.backward(torch.ones_like(y))
    return x.grad


def derivative_returns_the_input(activation, x):
    x = x.detach().clone().requires_grad_(True)
    activation(x).sum().backward()
    return x


KNOWN_DERIVATIVES = {
    torch.sigmoid: lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x)),
    torch.tanh: lambda x: 1 - torch.tanh(x) ** 2,
    F.elu: lambda x: torch.where(x > 0, torch.ones_like(x), torch.exp(x)),
}


def derivative_from_a_table(activation, x):
    """Looks the derivative up in formulas written by hand, instead of asking autograd."""
    return KNOWN_DERIVATIVES.get(activation, lambda x: torch.zeros_like(x))(x)


# ---- layer_grad_norms -----------------------------------------------------------------------


def norms_by_autograd_grad(model, x, y):
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    gradients = torch.autograd.grad(F.cross_entropy(model(x), y), weights)
    return [gradient.norm().item() for gradient in gradients]


def norms_after_clearing_each_grad(model, x, y):
    for parameter in model.parameters():
        parameter.grad = None
    F.cross_entropy(model(x), y).backward()
    linears = [m for m in model.modules() if type(m) is nn.Linear]
    return [float(torch.linalg.vector_norm(m.weight.grad)) for m in linears]


# ---- LearnableLeakyReLU ---------------------------------------------------------------------


class LeakyReLUWithRegisterParameter(nn.Module):
    def __init__(self, initial_slope=0.1):
        super().__init__()
        self.register_parameter("slope", nn.Parameter(torch.tensor([float(initial_slope)])))

    def forward(self, x):
        return F.relu(x) - self.slope * F.relu(-x)


class LeakyReLUThatIgnoresItsSlope(nn.Module):
    """The parameter is registered, but forward uses a fixed number."""

    def __init__(self, initial_slope=0.1):
        super().__init__()
        self.slope = nn.Parameter(torch.tensor(float(initial_slope)))
        self.initial_slope = initial_slope

    def forward(self, x):
        return F.leaky_relu(x, negative_slope=self.initial_slope)


# ---- ELUFunction ----------------------------------------------------------------------------


class ELUFromItsOutput(torch.autograd.Function):
    """ELU's slope below zero is exp(x) = ELU(x) + 1: saving the output is enough."""

    @staticmethod
    def forward(ctx, x):
        out = torch.where(x > 0, x, torch.expm1(x))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        return grad_output * torch.where(out > 0, torch.ones_like(out), out + 1)


class ELUInPlace(torch.autograd.Function):
    """Overwrites the caller's tensor with ELU(x)."""

    @staticmethod
    def forward(ctx, x):
        negative = x <= 0
        x[negative] = torch.exp(x[negative]) - 1
        ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * torch.where(x > 0, torch.ones_like(x), x + 1)


# ---- my_activation --------------------------------------------------------------------------


class ReLUResultDiscarded(nn.Module):
    """Computes the ReLU and returns its input."""

    def forward(self, x):
        torch.relu(x)
        return x


class SoftmaxOverTheBatch(nn.Module):
    """A softmax taken over dim=0: each feature is shared out among the samples."""

    def forward(self, x):
        return torch.softmax(x, dim=0)


def cases():
    """Every answer of the lab's corpus."""
    kaiming = 'nn.init.kaiming_normal_(module.weight, nonlinearity="relu")'
    leaky = solution(5, "LearnableLeakyReLU")
    return [
        # straight_only
        case("straight_only", "starter", starter(5, "straight_only"), "is None"),
        case("straight_only", "reference", with_edits("straight_only"), None),
        case("straight_only", "right-list", [STRAIGHT[1], STRAIGHT[0]], None),
        case(
            "straight_only",
            "wrong-no-hidden-layer-only",
            {STRAIGHT[0]},
            r"'2 hidden layers, no activation' draws a straight boundary too: .*3 Linear layers "
            r"are ONE linear layer in disguise",
        ),
        case(
            "straight_only",
            "wrong-all-four",
            set(STRAIGHT + BENT),
            r"'1 hidden layer, ReLU' can bend its boundary",
        ),
        case(
            "straight_only",
            "wrong-one-relu-layer-too",
            {*STRAIGHT, BENT[0]},
            r"'1 hidden layer, ReLU' can bend",
        ),
        case(
            "straight_only",
            "wrong-only-the-deep-linear",
            {STRAIGHT[1]},
            r"'0 hidden layers' can only draw a straight boundary: one Linear layer",
        ),
        case(
            "straight_only",
            "wrong-name",
            {"no hidden layer", STRAIGHT[1]},
            r"\['no hidden layer'\] is not the name of a network",
        ),
        # autograd_derivative
        case("autograd_derivative", "starter", starter(5, "autograd_derivative"), "is None"),
        case("autograd_derivative", "reference", with_edits("autograd_derivative"), None),
        case("autograd_derivative", "right-autograd-grad", derivative_by_autograd_grad, None),
        case("autograd_derivative", "right-ones-upstream", derivative_with_ones_upstream, None),
        case(
            "autograd_derivative",
            "wrong-mean",
            with_edits("autograd_derivative", (".sum()", ".mean()")),
            r"divided by 33.*y\.mean\(\) divides.*y\.sum\(\)\.backward",
        ),
        case(
            "autograd_derivative",
            "wrong-returns-x",
            derivative_returns_the_input,
            r"returned x itself: the derivative is in x\.grad",
        ),
        case(
            "autograd_derivative",
            "wrong-table-of-formulas",
            derivative_from_a_table,
            r"x³/3 - x, x\)` is wrong for both",
        ),
        case(
            "autograd_derivative",
            "wrong-accumulates",
            with_edits("autograd_derivative", ("x = x.detach().clone()", "x = x")),
            "twice the derivative",
        ),
        # layer_grad_norms
        case("layer_grad_norms", "starter", starter(5, "layer_grad_norms"), "returned None"),
        case("layer_grad_norms", "reference", with_edits("layer_grad_norms"), None),
        case("layer_grad_norms", "right-autograd-grad", norms_by_autograd_grad, None),
        case("layer_grad_norms", "right-grad-none", norms_after_clearing_each_grad, None),
        case(
            "layer_grad_norms",
            "wrong-weight-not-grad",
            with_edits("layer_grad_norms", ("module.weight.grad.norm()", "module.weight.norm()")),
            r"norms of the weights themselves.*\.grad",
        ),
        case(
            "layer_grad_norms",
            "wrong-sum-as-loss",
            with_edits("layer_grad_norms", ("F.cross_entropy(model(x), y)", "model(x).sum()")),
            r"F\.cross_entropy\(model\(x\), y\)",
        ),
        case(
            "layer_grad_norms",
            "wrong-no-zero-grad",
            with_edits("layer_grad_norms", ("model.zero_grad()", "")),
            "zero_grad",
        ),
        # init_kaiming
        case("init_kaiming", "starter", starter(5, "init_kaiming"), "default weights"),
        case("init_kaiming", "reference", with_edits("init_kaiming"), None),
        case(
            "init_kaiming",
            "right-default-gain",
            with_edits("init_kaiming", (kaiming, "nn.init.kaiming_normal_(module.weight)")),
            None,
        ),
        case(
            "init_kaiming",
            "right-by-hand",
            with_edits(
                "init_kaiming",
                (kaiming, "nn.init.normal_(module.weight, std=(2 / module.in_features) ** 0.5)"),
                ("nn.init.zeros_(module.bias)", "module.bias.data.zero_()"),
            ),
            None,
        ),
        case(
            "init_kaiming",
            "wrong-xavier",
            with_edits("init_kaiming", (kaiming, "nn.init.xavier_normal_(module.weight)")),
            "Xavier",
        ),
        case(
            "init_kaiming",
            "wrong-every-module",
            with_edits("init_kaiming", ("isinstance(module, nn.Linear)", "True")),
            "only when it is an nn.Linear",
        ),
        case(
            "init_kaiming",
            "wrong-default-bias",
            with_edits("init_kaiming", ("nn.init.zeros_(module.bias)", "pass")),
            "bias keeps its default",
        ),
        # LearnableLeakyReLU
        case(
            "learnable_leaky_relu",
            "starter",
            starter(5, "LearnableLeakyReLU"),
            r"does not call super\(\)",
        ),
        case("learnable_leaky_relu", "reference", leaky, None),
        case("learnable_leaky_relu", "right-relu-difference", LeakyReLUWithRegisterParameter, None),
        case(
            "learnable_leaky_relu",
            "wrong-slope-unused",
            LeakyReLUThatIgnoresItsSlope,
            r"no gradient reaches `slope`.*parameter itself in forward",
        ),
        case(
            "learnable_leaky_relu",
            "wrong-fixed-start",
            with_edits("learnable_leaky_relu", ("float(initial_slope)", "0.1")),
            "should start at initial_slope",
        ),
        case(
            "learnable_leaky_relu",
            "wrong-frozen-slope",
            with_edits(
                "learnable_leaky_relu",
                (
                    "torch.tensor(float(initial_slope)))",
                    "torch.tensor(float(initial_slope)), False)",
                ),
            ),
            r"requires_grad=False",
        ),
        case(
            "learnable_leaky_relu",
            "wrong-plain-tensor",
            with_edits("learnable_leaky_relu", ("nn.Parameter(", "(")),
            "not a registered parameter",
        ),
        # ELUFunction
        case("elu_function", "starter", starter(5, "ELUFunction"), "returned None"),
        case("elu_function", "reference", with_edits("elu_function"), None),
        case("elu_function", "right-from-output", ELUFromItsOutput, None),
        case("elu_function", "wrong-in-place", ELUInPlace, r"changed its input x in place"),
        case(
            "elu_function",
            "wrong-slope-is-value",
            with_edits("elu_function", ("torch.exp(x))", "torch.exp(x) - 1)")),
            r"wrong for x < 0: it should be exp\(x\)",
        ),
        case(
            "elu_function",
            "wrong-no-chain-rule",
            with_edits("elu_function", ("return grad_output * ", "return ")),
            "ignores grad_output",
        ),
        # my_activation
        case("my_activation", "starter", starter(5, "my_activation"), "is None"),
        case(
            "my_activation",
            "reference",
            solution(5, "my_activation", LearnableLeakyReLU=leaky),
            None,
        ),
        case("my_activation", "right-gelu", nn.GELU, None),
        case(
            "my_activation",
            "right-squareplus",
            lab_namespace(5, "squareplus", "Squareplus")["Squareplus"],
            None,
        ),
        case("my_activation", "right-tanh", nn.Tanh, None),
        case(
            "my_activation",
            "wrong-dropout",
            nn.Dropout,
            r"Dropout gives a different output each time.*random",
        ),
        case("my_activation", "wrong-result-discarded", ReLUResultDiscarded, "linear"),
        case("my_activation", "wrong-softmax-over-batch", SoftmaxOverTheBatch, "not elementwise"),
        case("my_activation", "wrong-log-softmax", nn.LogSoftmax, "not elementwise"),
        case("my_activation", "wrong-function", F.gelu, "not a module class"),
    ]


run = answer_then_context({"straight_only": (NETWORKS,)}, returns_answer=True)
CASES = cases()
