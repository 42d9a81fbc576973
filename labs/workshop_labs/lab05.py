"""Lab 5 · Activation functions: the exercise checks and the lab's own figures."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from workshop_labs import plots
from workshop_labs.checks import ExerciseNotSolved, expect, expect_tensor, passed

# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------


def activation_curves(
    x: torch.Tensor, curves: Mapping[str, tuple[torch.Tensor, torch.Tensor]]
) -> Figure:
    """One panel per activation: f(x) as a solid line, its derivative f'(x) dashed."""
    columns = 3
    rows = math.ceil(len(curves) / columns)
    fig, axes = plots.figure(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    xs = x.detach().cpu()
    for ax, (name, (values, derivative)) in zip(axes.flat, curves.items(), strict=False):
        ax.axhline(0, color="0.75", linewidth=0.8)
        ax.axvline(0, color="0.75", linewidth=0.8)
        ax.plot(xs, values.detach().cpu(), linewidth=2.2, label="f(x)")
        ax.plot(xs, derivative.detach().cpu(), linewidth=2.2, linestyle="--", label="f′(x)")
        ax.set_title(name)
        ax.set_ylim(-1.6, 3.2)
        ax.set_xlabel("x")
        ax.legend(loc="upper left", fontsize=9)
    for ax in list(axes.flat)[len(curves) :]:
        ax.axis("off")
    fig.suptitle(
        "Activation functions (solid) and their derivatives from autograd (dashed)",
        fontweight="bold",
    )
    return plots.show(fig)


def _first_against_last(first: float, last: float, n_layers: int) -> str:
    """'layer 1 gets 161× less than layer 11', or 'more' when the weights amplified it."""
    if first <= last:
        return f"layer 1 gets {last / first:,.0f}× less than layer {n_layers}"
    return f"layer 1 gets {first / last:,.1f}× more than layer {n_layers}"


def gradient_loss_summary(norms: Mapping[str, Sequence[float]]) -> str:
    """Per activation: the ratio between the first and the last layer, and the average factor
    per layer (geometric mean), so the text can point at numbers measured in this run."""
    lines = []
    for name, values in norms.items():
        first, last, steps = values[0], values[-1], len(values) - 1
        growth = (last / first) ** (1 / steps)  # from one layer to the next, towards the loss
        trend = f"shrinks {growth:.1f}×" if growth >= 1 else f"grows {1 / growth:.1f}×"
        lines.append(
            f"{name:>8}: {_first_against_last(first, last, len(values))}; going back "
            f"towards the input, the gradient {trend} per layer on average"
        )
    return "\n".join(lines)


def gradient_per_layer(norms: Mapping[str, Sequence[float]]) -> Figure:
    """Grouped bars (log scale): the gradient norm of each layer's weights, per activation."""
    names = list(norms)
    n_layers = len(next(iter(norms.values())))
    width = 0.8 / len(names)
    fig, ax = plots.figure(figsize=(11, 4.6))
    for i, name in enumerate(names):
        positions = [layer + 1 + (i - (len(names) - 1) / 2) * width for layer in range(n_layers)]
        ax.bar(positions, norms[name], width=width, label=name)
    ax.set_yscale("log")
    tallest = max(max(values) for values in norms.values())
    ax.set_ylim(top=tallest * 1e3)  # room above the bars for the labels and the legend
    ax.set_xticks(range(1, n_layers + 1))
    ax.set_xlabel("layer (1 = next to the input, last = next to the loss)")
    ax.set_ylabel("‖gradient of the layer's weights‖ (log scale)")
    ax.set_title("Vanishing gradients: how much signal reaches each layer after one backward pass")
    for name in names:
        first, last = norms[name][0], norms[name][-1]
        if first > 0:
            ax.annotate(
                f"{name}: {_first_against_last(first, last, n_layers)}",
                xy=(0.01, 0.97 - 0.07 * names.index(name)),
                xycoords="axes fraction",
                va="top",
                fontsize=10,
            )
    ax.legend(loc="upper right", ncols=len(names))
    return plots.show(fig)


# ----------------------------------------------------------------------------------------------
# Exercise 1 · derivatives with autograd
# ----------------------------------------------------------------------------------------------

_REFERENCE_DERIVATIVES: dict[str, tuple[Callable, Callable]] = {
    "torch.sigmoid": (torch.sigmoid, lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x))),
    "torch.tanh": (torch.tanh, lambda x: 1 - torch.tanh(x) ** 2),
    "F.elu": (F.elu, lambda x: torch.where(x > 0, torch.ones_like(x), torch.exp(x))),
}


def _region_error(got: torch.Tensor, want: torch.Tensor, x: torch.Tensor) -> str | None:
    """Which side of zero a derivative is wrong on, or None when it is right everywhere."""
    wrong = ~torch.isclose(got, want, rtol=1e-4, atol=1e-5)
    if not wrong.any():
        return None
    negative, positive = bool(wrong[x < 0].any()), bool(wrong[x > 0].any())
    if negative and positive:
        return "for both x < 0 and x > 0"
    return "for x < 0" if negative else "for x > 0"


def autograd_derivative(autograd_derivative_fn: Callable) -> None:
    """Check exercise 1: ``autograd_derivative(activation, x)`` returns f'(x) via autograd."""
    fn_name = "autograd_derivative"
    expect(
        callable(autograd_derivative_fn),
        f"`{fn_name}` is not a function: define it with `def {fn_name}(activation, x):`",
    )
    x = torch.linspace(-4, 4, 33)
    for name, (activation, reference) in _REFERENCE_DERIVATIVES.items():
        try:
            got = autograd_derivative_fn(activation, x.clone())
        except RuntimeError as error:
            if "scalar outputs" in str(error):
                raise ExerciseNotSolved(
                    "backward() needs a single number: call y.sum().backward() (each output "
                    "depends only on its own input, so the gradient of the sum is f'(x))"
                ) from None
            if "does not require grad" in str(error):
                raise ExerciseNotSolved(
                    "autograd is not tracking x: make a copy that requires gradients first, "
                    "x = x.detach().clone().requires_grad_(True)"
                ) from None
            raise
        got = expect_tensor(got, name=f"{fn_name}({name}, x)", shape=tuple(x.shape))
        got = got.detach().float()
        if torch.allclose(got, activation(x), atol=1e-5) and name != "F.elu":
            raise ExerciseNotSolved(
                f"`{fn_name}({name}, x)` returned the activation's values f(x), not its "
                "derivative f'(x): call backward and return x.grad"
            )
        region = _region_error(got, reference(x), x)
        expect(
            region is None,
            f"`{fn_name}({name}, x)` is wrong {region}: it should be the slope of {name} at x",
        )
    shared = torch.linspace(-4, 4, 33)
    first = autograd_derivative_fn(torch.tanh, shared).detach().clone()
    second = autograd_derivative_fn(torch.tanh, shared).detach()
    expect(
        not torch.allclose(second, 2 * first),
        "calling it twice with the same x returns twice the derivative: gradients accumulate "
        "in x.grad. Work on a fresh copy each time: x = x.detach().clone().requires_grad_(True)",
    )
    expect(
        torch.allclose(second, first),
        "calling it twice with the same x gives different answers: work on a fresh copy, "
        "x = x.detach().clone().requires_grad_(True)",
    )
    passed("autograd computes every activation's derivative for you")


# ----------------------------------------------------------------------------------------------
# Exercise 2 · gradient norm per layer
# ----------------------------------------------------------------------------------------------


def _deep_sigmoid_net(depth: int = 6, width: int = 16) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    size = 64
    for _ in range(depth):
        layers += [nn.Linear(size, width), nn.Sigmoid()]
        size = width
    layers.append(nn.Linear(size, 10))
    return nn.Sequential(*layers)


class _WrappedNet(nn.Module):
    """A model that is not an nn.Sequential: its layers sit inside a sub-module."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _deep_sigmoid_net()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _reference_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    norms = [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]
    model.zero_grad()
    return norms


def layer_grad_norms(layer_grad_norms_fn: Callable) -> None:
    """Check exercise 2: one gradient norm per nn.Linear weight, first layer first, repeatable."""
    fn_name = "layer_grad_norms"
    expect(
        callable(layer_grad_norms_fn),
        f"`{fn_name}` is not a function: define it with `def {fn_name}(model, x, y):`",
    )
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(32, 64, generator=generator)
    y = torch.randint(0, 10, (32,), generator=generator)
    model = _WrappedNet()
    want = _reference_norms(model, x, y)
    got = layer_grad_norms_fn(model, x, y)
    expect(got is not None, f"`{fn_name}` returned None: return a list with one norm per layer")
    try:
        got = [float(value) for value in got]
    except (TypeError, ValueError, RuntimeError):
        raise ExerciseNotSolved(
            f"`{fn_name}` must return a list of numbers (one per nn.Linear), e.g. "
            "[layer.weight.grad.norm().item() for ...]"
        ) from None
    n_linear = len(want)
    if len(got) == 2 * n_linear:
        raise ExerciseNotSolved(
            f"you returned {len(got)} values, one per parameter (weights and biases): the "
            f"exercise wants one per nn.Linear weight ({n_linear})"
        )
    expect(
        len(got) == n_linear,
        f"you returned {len(got)} values but the model has {n_linear} nn.Linear layers "
        "(some sit inside sub-modules: walk model.modules())",
    )
    close = lambda a, b: all(math.isclose(p, q, rel_tol=1e-3) for p, q in zip(a, b, strict=True))  # noqa: E731
    if not close(got, want) and close(got[::-1], want):
        raise ExerciseNotSolved("the norms are in reverse order: list the first layer first")
    if not close(got, want) and close(got, [2 * w for w in want]):
        raise ExerciseNotSolved(
            "the norms are twice too large: gradients from an earlier backward were still in "
            ".grad. Call model.zero_grad() before backward()"
        )
    for index, (g, w) in enumerate(zip(got, want, strict=True)):
        expect(
            math.isclose(g, w, rel_tol=1e-3),
            f"layer {index + 1}: your norm is {g:.3g} but the weight gradient's norm is {w:.3g} "
            "(loss = F.cross_entropy(model(x), y); the norm of layer.weight.grad)",
        )
    again = [float(value) for value in layer_grad_norms_fn(model, x, y)]
    expect(
        close(again, want),
        "a second call on the same model gives different norms: gradients accumulate in .grad. "
        "Call model.zero_grad() before backward()",
    )
    passed(f"one gradient norm per layer; the first layer gets {want[-1] / want[0]:,.0f}× less")


# ----------------------------------------------------------------------------------------------
# Exercise 3 · a custom activation as an nn.Module with a learnable parameter
# ----------------------------------------------------------------------------------------------


def learnable_leaky_relu(module_class: type) -> None:
    """Check exercise 3: ``LearnableLeakyReLU(initial_slope)`` with a registered ``slope``."""
    name = "LearnableLeakyReLU"
    expect(
        isinstance(module_class, type) and issubclass(module_class, nn.Module),
        f"`{name}` must be a class that inherits from nn.Module: class {name}(nn.Module):",
    )
    try:
        module = module_class(initial_slope=0.25)
    except AttributeError as error:
        if "before Module.__init__() call" in str(error):
            raise ExerciseNotSolved(
                "PyTorch refused to store a parameter: call super().__init__() first in __init__"
            ) from None
        raise
    parameters = dict(module.named_parameters())
    expect(
        "slope" in parameters,
        "`slope` is not a registered parameter (model.parameters() does not list it, so the "
        "optimizer would never learn it): self.slope = nn.Parameter(torch.tensor(initial_slope))",
    )
    slope = parameters["slope"]
    expect(
        slope.numel() == 1 and math.isclose(slope.item(), 0.25, rel_tol=1e-6),
        f"`slope` starts at {slope.detach().flatten()[:3].tolist()} but it should start at "
        "initial_slope (0.25 here)",
    )
    x = torch.linspace(-3, 3, 13)
    out = expect_tensor(module(x), name=f"{name}(x)", shape=tuple(x.shape))
    positive, negative = x > 0, x < 0
    expect(
        torch.allclose(out[positive], x[positive]),
        "wrong for x > 0: a leaky ReLU lets positive inputs through unchanged",
    )
    expect(
        torch.allclose(out[negative], 0.25 * x[negative]),
        "wrong for x < 0: the output should be slope * x (with slope = 0.25 here)",
    )
    module.zero_grad()
    module(x.clone().requires_grad_(True)).sum().backward()
    expect(
        slope.grad is not None and slope.grad.abs().item() > 0,
        "no gradient reaches `slope`: use the parameter itself in forward (no .item() or float())",
    )
    passed(f"{name} is a proper nn.Module with a learnable slope")


# ----------------------------------------------------------------------------------------------
# Exercise 4 · a custom torch.autograd.Function with a hand-written backward
# ----------------------------------------------------------------------------------------------


def _backward_with(function: type, x: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    """Run the Function forward and backward; rephrase autograd's errors for beginners."""
    leaf = x.detach().clone().requires_grad_(True)
    try:
        function.apply(leaf).backward(upstream)
    except RuntimeError as error:
        text = str(error)
        if "invalid gradient" in text:
            raise ExerciseNotSolved(
                f"backward returns a gradient of the wrong shape: autograd says '{text}'. "
                f"Return one value per element of x, shape {tuple(x.shape)}"
            ) from None
        if "incorrect number of gradients" in text:
            raise ExerciseNotSolved(
                "backward must return exactly one gradient per input of forward (here: x only)"
            ) from None
        raise
    except TypeError as error:
        if "NoneType" in str(error) or "None" in str(error):
            raise ExerciseNotSolved(
                "backward returned None: return grad_output times the derivative"
            ) from None
        raise
    expect(
        leaf.grad is not None,
        "backward returned None: return grad_output multiplied by the derivative of ELU at x",
    )
    return leaf.grad


def elu_function(function: type) -> None:
    """Check exercise 4: ``ELUFunction`` has a correct backward, verified with gradcheck."""
    name = "ELUFunction"
    expect(
        isinstance(function, type) and issubclass(function, torch.autograd.Function),
        f"`{name}` must be a class that inherits from torch.autograd.Function",
    )
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, dtype=torch.float64, generator=generator) * 2
    x = torch.where(x.abs() < 1e-3, x + 0.1, x)
    out = expect_tensor(function.apply(x), name=f"{name}.apply(x)", shape=(5, 7))
    expect(
        torch.allclose(out, F.elu(x)),
        "forward is wrong: ELU is x for x > 0 and exp(x) - 1 otherwise",
    )
    ones = torch.ones_like(x)
    local = torch.where(x > 0, ones, torch.exp(x))
    got = _backward_with(function, x, ones)
    expect(
        tuple(got.shape) == tuple(x.shape),
        f"backward returns shape {tuple(got.shape)} but x has shape {tuple(x.shape)}",
    )
    region = _region_error(got, local, x)
    expected = {
        "for x < 0": "exp(x)",
        "for x > 0": "1",
        "for both x < 0 and x > 0": "1 for x > 0 and exp(x) for x < 0",
    }
    expect(
        region is None,
        f"the derivative in backward is wrong {region}: it should be {expected.get(region, '')}",
    )
    upstream = torch.rand(5, 7, dtype=torch.float64, generator=generator) + 0.5
    got = _backward_with(function, x, upstream)
    expect(
        not torch.allclose(got, local),
        "backward ignores grad_output: multiply the derivative by grad_output (the chain rule)",
    )
    expect(
        torch.allclose(got, upstream * local),
        "backward must return grad_output * derivative, elementwise",
    )
    leaf = x.detach().clone().requires_grad_(True)
    expect(
        torch.autograd.gradcheck(function.apply, (leaf,), raise_exception=False),
        "torch.autograd.gradcheck disagrees with your backward (numerical vs analytical)",
    )
    passed(f"{name}.backward matches the numerical gradient (gradcheck in float64)")
