"""Lab 5 · Activation functions: the exercise checks, their stand-ins and the lab's own
figures."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from workshop_labs import plots
from workshop_labs.checks import (
    ExerciseNotSolved,
    exercise,
    expect,
    expect_names,
    expect_tensor,
    passed,
)

# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------


def _slope_range(derivative: torch.Tensor) -> str:
    """'slope 0 to 1': the smallest and largest value of a derivative, as measured."""
    return f"slope {derivative.min().item():.2g} to {derivative.max().item():.2g}"


def activation_curves(
    x: torch.Tensor, curves: Mapping[str, tuple[torch.Tensor, torch.Tensor]]
) -> Figure:
    """One panel per activation: f(x) as a solid line, its derivative f'(x) dashed; each panel's
    title gives the derivative's measured range."""
    columns = 3
    rows = math.ceil(len(curves) / columns)
    fig, axes = plots.figure(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    xs = x.detach().cpu()
    for ax, (name, (values, derivative)) in zip(axes.flat, curves.items(), strict=False):
        ax.axhline(0, color="0.75", linewidth=0.8)
        ax.axvline(0, color="0.75", linewidth=0.8)
        ax.plot(xs, values.detach().cpu(), linewidth=2.2, label="f(x)")
        ax.plot(xs, derivative.detach().cpu(), linewidth=2.2, linestyle="--", label="f′(x)")
        ax.set_title(f"{name}\n{_slope_range(derivative)}")
        ax.set_ylim(-1.6, 3.2)
        ax.set_xlabel("x")
        ax.legend(loc="upper left", fontsize=9)
    for ax in list(axes.flat)[len(curves) :]:
        ax.axis("off")
    fig.suptitle(
        f"Activation functions (solid) and their derivatives from autograd (dashed), "
        f"x from {xs.min().item():g} to {xs.max().item():g}",
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
    width = max(len(name) for name in norms)
    for name, values in norms.items():
        first, last, steps = values[0], values[-1], len(values) - 1
        growth = (last / first) ** (1 / steps)  # from one layer to the next, towards the loss
        trend = f"shrinks {growth:.1f}×" if growth >= 1 else f"grows {1 / growth:.1f}×"
        lines.append(
            f"{name:>{width}}: {_first_against_last(first, last, len(values))}; going back "
            f"towards the input, the gradient {trend} per layer on average"
        )
    return "\n".join(lines)


def _extremes_title(norms: Mapping[str, Sequence[float]]) -> str:
    """The measured first-to-last ratio of the series that loses most and of the one that loses
    least, e.g. 'Sigmoid: layer 1 gets 174,251,295× less than layer 11; Tanh: ... 17× less'."""
    ratio = {name: values[-1] / values[0] for name, values in norms.items() if values[0] > 0}
    if not ratio:
        return "Gradient norm per layer after one backward pass"
    worst, best = max(ratio, key=ratio.__getitem__), min(ratio, key=ratio.__getitem__)
    shown = [worst] if worst == best else [worst, best]
    return "; ".join(
        f"{name}: {_first_against_last(norms[name][0], norms[name][-1], len(norms[name]))}"
        for name in shown
    )


def _bars_per_layer(ax, values: Mapping[str, Sequence[float]]) -> None:
    """One group of bars per layer, one colour per series."""
    names = list(values)
    n_layers = len(next(iter(values.values())))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        positions = [layer + 1 + (i - (len(names) - 1) / 2) * width for layer in range(n_layers)]
        ax.bar(positions, values[name], width=width, label=name)
    ax.set_xticks(range(1, n_layers + 1))
    ax.set_xlabel("layer (1 = next to the input, last = next to the loss)")


def gradient_per_layer(norms: Mapping[str, Sequence[float]]) -> Figure:
    """Grouped bars (log scale): the gradient norm of each layer's weights, per activation; the
    title states the measured first-to-last ratio of the extremes."""
    fig, ax = plots.figure(figsize=(11, 4.6))
    _bars_per_layer(ax, norms)
    ax.set_yscale("log")
    tallest = max(max(values) for values in norms.values())
    ax.set_ylim(top=tallest * 30)  # room above the bars for the legend
    ax.set_ylabel("‖gradient of the layer's weights‖ (log scale)")
    ax.set_title(f"One backward pass · {_extremes_title(norms)}", fontsize=12)
    ax.legend(loc="upper left", ncols=len(norms))
    return plots.show(fig)


def signal_and_gradient_bars(
    output_stds: Mapping[str, Sequence[float]], gradient_norms: Mapping[str, Sequence[float]]
) -> Figure:
    """Two panels for the same networks: the size (std) of each layer's output on the way
    forward, and the gradient norm of each layer's weights on the way back (log scale)."""
    fig, (signal_ax, gradient_ax) = plots.figure(1, 2, figsize=(13, 4.6))
    _bars_per_layer(signal_ax, output_stds)
    signal_ax.set_ylabel("std of the layer's output")
    signal_ax.set_title("Forward: size of each layer's output")
    signal_ax.legend(loc="upper right")
    _bars_per_layer(gradient_ax, gradient_norms)
    gradient_ax.set_yscale("log")
    gradient_ax.set_ylabel("‖gradient of the layer's weights‖ (log scale)")
    gradient_ax.set_title("Backward: gradient reaching each layer")
    fig.suptitle(_extremes_title(gradient_norms), fontweight="bold")
    return plots.show(fig)


# ----------------------------------------------------------------------------------------------
# Exercise 1 · which networks can only draw a straight boundary
# ----------------------------------------------------------------------------------------------


def is_affine(model: nn.Module, inputs: int = 2) -> bool:
    """True when ``model(x)`` is ``W @ x + b`` for some W, b: then f(a + b) = f(a) + f(b) - f(0)
    at any points a, b (probed at random points, far enough apart to cross any ReLU kink)."""
    generator = torch.Generator().manual_seed(0)
    a, b = (3 * torch.randn(64, inputs, generator=generator) for _ in range(2))
    with torch.no_grad():
        zero = model(torch.zeros(1, inputs))
        return torch.allclose(model(a + b), model(a) + model(b) - zero, atol=1e-4)


@exercise()
def check_straight_only(straight_only: object, networks: Mapping[str, nn.Module]) -> None:
    """`straight_only`: the names of the ``networks`` that are one linear layer in disguise
    (measured on the networks themselves), which can only draw a straight boundary."""
    predicted = expect_names(straight_only, "straight_only")
    unknown = sorted(predicted - set(networks))
    expect(
        not unknown,
        f"{unknown} is not the name of a network: copy names from {sorted(networks)}",
    )
    linear = {name for name, model in networks.items() if is_affine(model)}
    for name in sorted(linear - predicted):
        parts = [m for m in networks[name].modules() if not list(m.children())]
        activations = [type(m).__name__ for m in parts if not isinstance(m, nn.Linear)]
        layers = sum(isinstance(m, nn.Linear) for m in parts)
        expect(
            layers == 1,
            f"'{name}' draws a straight boundary too: with no activation between them its "
            f"{layers} Linear layers are ONE linear layer in disguise (this section's first "
            "cell merged two)",
        )
        expect(
            False,
            f"'{name}' can only draw a straight boundary: one Linear layer is W @ x + b"
            + (f", and {activations} does not bend it" if activations else ""),
        )
    for name in sorted(predicted - linear):
        expect(
            False,
            f"'{name}' can bend its boundary: an activation between two Linear layers puts a "
            "kink in it, so the layers no longer merge into one",
        )
    passed(
        f"{sorted(linear)} are linear maps, so their boundaries are straight: no "
        "training changes that. The others can bend"
    )


# ----------------------------------------------------------------------------------------------
# Exercise 2 · derivatives with autograd
# ----------------------------------------------------------------------------------------------

_REFERENCE_DERIVATIVES: dict[str, tuple[Callable, Callable]] = {
    "torch.sigmoid": (torch.sigmoid, lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x))),
    "torch.tanh": (torch.tanh, lambda x: 1 - torch.tanh(x) ** 2),
    "F.elu": (F.elu, lambda x: torch.where(x > 0, torch.ones_like(x), torch.exp(x))),
    # a function no table of known derivatives holds: only autograd can answer for it
    "x³/3 - x": (lambda x: x**3 / 3 - x, lambda x: x**2 - 1),
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


def central_difference(activation: Callable, x: torch.Tensor, step: float = 1e-3) -> torch.Tensor:
    """What the cells below Exercise 2 use while it is unsolved: the slope measured between
    x - step and x + step, without autograd (autograd's way is the hidden solution). Close to
    f'(x) for a smooth f, and blurred within ``step`` of a corner."""
    x = x.detach()
    return (activation(x + step) - activation(x - step)) / (2 * step)


@exercise(
    stand_in=lambda: central_difference,
    stand_in_is="the slope measured by central differences, without autograd",
)
def check_autograd_derivative(autograd_derivative_fn: Callable) -> None:
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
                    "autograd is not tracking x: work on a copy of x, detached from the "
                    "caller's tensor, that requires gradients"
                ) from None
            raise
        got = expect_tensor(got, name=f"{fn_name}({name}, x)", shape=tuple(x.shape))
        got = got.detach().float()
        expect(
            not torch.equal(got, x),
            f"`{fn_name}({name}, x)` returned x itself: the derivative is in x.grad, the "
            "gradient autograd leaves in your copy of x after backward",
        )
        expect(
            not torch.allclose(got * len(x), reference(x), rtol=1e-4, atol=1e-5),
            f"`{fn_name}({name}, x)` is the derivative divided by {len(x)}, the number of "
            "points: y.mean() divides each output by that number. Call y.sum().backward(): "
            "each output depends only on its own input, so the gradient of the sum is f'(x)",
        )
        if torch.allclose(got, activation(x), atol=1e-5) and name != "F.elu":
            raise ExerciseNotSolved(
                f"`{fn_name}({name}, x)` returned the activation's values f(x), not its "
                "derivative f'(x): after backward, return the gradient autograd left in "
                "the .grad of your copy of x"
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
        "in .grad. Work on a fresh copy of x each time (detached from the caller's tensor, "
        "requiring gradients): its .grad starts empty",
    )
    expect(
        torch.allclose(second, first),
        "calling it twice with the same x gives different answers: work on a fresh copy of x "
        "each time, detached from the caller's tensor and requiring gradients",
    )
    passed("autograd computes every activation's derivative for you")


# ----------------------------------------------------------------------------------------------
# Exercise 3 · gradient norm per layer
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

    def weight_gradient_norms(self, x: torch.Tensor, y: torch.Tensor) -> list[float]:
        """What layer_grad_norms must give, known from how the net is built: its Linears are
        every other layer of the body, and torch.autograd.grad leaves no .grad behind."""
        weights = [self.body[index].weight for index in range(0, len(self.body), 2)]
        gradients = torch.autograd.grad(F.cross_entropy(self(x), y), weights)
        return [gradient.norm().item() for gradient in gradients]


def walkthrough_layer_grad_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """What the cells below Exercise 3 use while it is unsolved: the lines of the walk-through
    in section 3, as they are. They loop over the model itself, so they work for an
    nn.Sequential only, and assume a fresh model (nothing clears .grad first): both are what
    the exercise asks you to do better."""
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return [layer.weight.grad.norm().item() for layer in model if isinstance(layer, nn.Linear)]


@exercise(
    stand_in=lambda: walkthrough_layer_grad_norms,
    stand_in_is="the lines of section 3, which need an nn.Sequential and a fresh model",
)
def check_layer_grad_norms(layer_grad_norms_fn: Callable) -> None:
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
    want = model.weight_gradient_norms(x, y)
    try:
        got = layer_grad_norms_fn(model, x, y)
    except TypeError as error:
        if "not iterable" not in str(error):
            raise
        raise ExerciseNotSolved(
            f"`{fn_name}` loops over the model itself ({error}): only an nn.Sequential can be "
            "looped over. Walk model.modules(), which reaches the layers inside sub-modules too"
        ) from None
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
    weight_norms = [m.weight.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]
    expect(
        not close(got, weight_norms),
        "these are the norms of the weights themselves: the exercise wants the norm of their "
        "gradient, layer.weight.grad, which backward() fills",
    )
    if not close(got, want) and close(got[::-1], want):
        raise ExerciseNotSolved("the norms are in reverse order: list the first layer first")
    for index, (g, w) in enumerate(zip(got, want, strict=True)):
        expect(
            math.isclose(g, w, rel_tol=1e-3),
            f"layer {index + 1}: your norm is {g:.3g} but the weight gradient's norm is {w:.3g} "
            "(loss = F.cross_entropy(model(x), y); the norm of layer.weight.grad)",
        )
    again = [float(value) for value in layer_grad_norms_fn(model, x, y)]
    if not close(again, want) and close(again, [2 * w for w in want]):
        raise ExerciseNotSolved(
            "a second call on the same model gives twice the norms: gradients from the first "
            "backward were still in .grad. Call model.zero_grad() before backward()"
        )
    expect(
        close(again, want),
        "a second call on the same model gives different norms: gradients accumulate in .grad. "
        "Call model.zero_grad() before backward()",
    )
    passed(f"one gradient norm per layer; the first layer gets {want[-1] / want[0]:,.0f}× less")


# ----------------------------------------------------------------------------------------------
# Exercise 4 · Kaiming initialisation with nn.init and model.apply
# ----------------------------------------------------------------------------------------------


def default_times_root_six(module: nn.Module) -> None:
    """What the cells below Exercise 4 use while it is unsolved: PyTorch's default weights,
    uniform within ±1/√fan_in (std 1/√(3·fan_in)), multiplied by √6, which gives them the
    standard deviation of Kaiming's rule, √(2/fan_in), as a uniform rather than a normal
    distribution. Biases keep their default values. (nn.init's way is the hidden solution.)"""
    weight = getattr(module, "weight", None)
    if isinstance(weight, nn.Parameter) and weight.dim() == 2:
        with torch.no_grad():
            weight.mul_(math.sqrt(6))


def _std_formula(std: float, fan_in: int, fan_out: int) -> str | None:
    """Name the usual initialisation whose weight std matches ``std``, if any."""
    formulas = {
        "√(2/fan_in)": math.sqrt(2 / fan_in),
        "√(2/fan_out)": math.sqrt(2 / fan_out),
        "√(2/(fan_in + fan_out))": math.sqrt(2 / (fan_in + fan_out)),
        "√(1/fan_in)": math.sqrt(1 / fan_in),
    }
    for formula, value in formulas.items():
        if math.isclose(std, value, rel_tol=0.08):
            return formula
    return None


_WRONG_STD_FIX = {
    "√(2/fan_out)": "that is mode='fan_out'; keep the default mode='fan_in', which keeps the "
    "forward signal's size",
    "√(2/(fan_in + fan_out))": "that is Xavier (Glorot) initialisation, made for tanh and "
    "sigmoid; for ReLU use nn.init's Kaiming-normal function, with the ReLU nonlinearity",
    "√(1/fan_in)": "the gain of a linear layer; pass nonlinearity='relu', whose gain √2 makes up "
    "for the half of the units that ReLU sets to zero",
}


def _apply_init(model: nn.Module, init_fn: Callable) -> None:
    """``model.apply(init_fn)``, with PyTorch's errors rephrased as what to change."""
    name = "init_kaiming"
    try:
        model.apply(init_fn)
    except AttributeError as error:
        text = str(error)
        if "has no attribute" not in text:
            raise
        if "'Linear'" in text:
            raise ExerciseNotSolved(
                f"{text}: an nn.Linear's parameters are module.weight and module.bias"
            ) from None
        raise ExerciseNotSolved(
            f"model.apply calls {name} on every module, the ReLUs and the Sequentials too, "
            "and they have no weight: change a module only when it is an nn.Linear "
            "(isinstance tells)"
        ) from None
    except ValueError as error:
        if "fewer than 2 dimensions" in str(error):
            raise ExerciseNotSolved(
                "Kaiming initialisation needs a weight matrix (it counts the layer's inputs), not "
                "the bias vector: set the bias to zero with nn.init.zeros_ instead"
            ) from None
        raise
    except TypeError as error:
        if "cannot assign" in str(error):
            raise ExerciseNotSolved(
                "module.weight = ... replaces the parameter with a plain tensor: fill the "
                "weight in place with nn.init's Kaiming-normal function (its name ends in _)"
            ) from None
        raise


@exercise(
    stand_in=lambda: default_times_root_six,
    stand_in_is="PyTorch's default weights scaled by √6 to Kaiming's size, biases unchanged",
)
def check_init_kaiming(init_fn: Callable) -> None:
    """Check exercise 3: ``model.apply(init_kaiming)`` gives every nn.Linear Kaiming weights."""
    name = "init_kaiming"
    expect(callable(init_fn), f"`{name}` is not a function: define it with `def {name}(module):`")
    with torch.random.fork_rng(devices=[]):  # leave the attendee's random numbers as they were
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Linear(256, 64),
            nn.ReLU(),
            nn.Sequential(nn.Linear(64, 128), nn.ReLU()),
            nn.Linear(128, 10),
        )
        linears = [model[0], model[2][0], model[3]]  # the nn.Linear layers, first to last
        defaults = [layer.weight.detach().clone() for layer in linears]
        _apply_init(model, init_fn)
    for index, (layer, default) in enumerate(zip(linears, defaults, strict=True), start=1):
        weight = layer.weight.detach()
        fan_out, fan_in = weight.shape
        where = f"In a test model, layer {index} (nn.Linear({fan_in}, {fan_out}))"
        expect(
            not torch.equal(weight, default),
            f"{where} still has PyTorch's default weights: fill the weight of every "
            "nn.Linear with nn.init's Kaiming-normal function, for ReLU",
        )
        std, want = weight.std().item(), math.sqrt(2 / fan_in)
        if not math.isclose(std, want, rel_tol=0.08):
            formula = _std_formula(std, fan_in, fan_out)
            fix = _WRONG_STD_FIX.get(formula, "use nn.init's Kaiming-normal function, for ReLU")
            shown = f" = {formula}" if formula else ""
            raise ExerciseNotSolved(
                f"{where}: weight std is {std:.3f}{shown} but Kaiming for ReLU gives "
                f"√(2/fan_in) = {want:.3f}: {fix}"
            )
        expect(
            abs(weight.mean().item()) < 0.1 * want,
            f"{where}: the weights' mean is {weight.mean().item():.3f}; Kaiming weights are "
            "centred on 0",
        )
        expect(
            layer.bias is None or not layer.bias.detach().any(),
            f"{where}: the bias keeps its default random values: set it to zero with "
            "nn.init.zeros_",
        )
    passed(f"model.apply({name}) gives every nn.Linear weights with std √(2/fan_in), biases 0")


# ----------------------------------------------------------------------------------------------
# Exercise 5 · a custom activation as an nn.Module with a learnable parameter
# ----------------------------------------------------------------------------------------------


_MISSING_SUPER = (
    "`{name}.__init__` does not call super().__init__(), so nn.Module never set up the "
    "storage for parameters: add super().__init__() as the first line of __init__"
)


@exercise()
def check_learnable_leaky_relu(module_class: type) -> None:
    """Check exercise 4: ``LearnableLeakyReLU(initial_slope)`` with a registered ``slope``."""
    name = "LearnableLeakyReLU"
    expect(
        isinstance(module_class, type) and issubclass(module_class, nn.Module),
        f"`{name}` must be a class that inherits from nn.Module: class {name}(nn.Module):",
    )
    try:
        module = module_class(initial_slope=0.25)
    except AttributeError as error:
        if "before Module.__init__() call" in str(error) or "_parameters" in str(error):
            raise ExerciseNotSolved(_MISSING_SUPER.format(name=name)) from None
        raise
    expect("_parameters" in vars(module), _MISSING_SUPER.format(name=name))
    parameters = dict(module.named_parameters())
    expect(
        "slope" in parameters,
        "`slope` is not a registered parameter (model.parameters() does not list it, so the "
        "optimizer would never learn it): wrap the starting value in nn.Parameter and assign "
        "it to self.slope",
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
    expect(
        slope.requires_grad,
        "`slope` has requires_grad=False, so it never learns: nn.Parameter(value) requires "
        "gradients by default; drop requires_grad=False",
    )
    module.zero_grad()
    module(x.clone().requires_grad_(True)).sum().backward()
    expect(
        slope.grad is not None and slope.grad.abs().item() > 0,
        "no gradient reaches `slope`: use the parameter itself in forward (no .item() or float())",
    )
    passed(f"{name} is a proper nn.Module with a learnable slope")


# ----------------------------------------------------------------------------------------------
# Exercise 6 · a custom torch.autograd.Function with a hand-written backward
# ----------------------------------------------------------------------------------------------


def _backward_with(function: type, x: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    """Run the Function forward and backward; rephrase autograd's errors for beginners."""
    leaf = x.clone().requires_grad_()  # x is the check's own tensor, outside any graph
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


@exercise()
def check_elu_function(function: type) -> None:
    """Check exercise 5: ``ELUFunction`` has a correct backward, verified with gradcheck."""
    name = "ELUFunction"
    expect(
        isinstance(function, type) and issubclass(function, torch.autograd.Function),
        f"`{name}` must be a class that inherits from torch.autograd.Function",
    )
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, dtype=torch.float64, generator=generator) * 2
    x = torch.where(x.abs() < 1e-3, x + 0.1, x)
    given = x.clone()
    out = expect_tensor(function.apply(x), name=f"{name}.apply(x)", shape=(5, 7))
    expect(
        torch.equal(x, given),
        "forward changed its input x in place (x[...] = ... overwrites the caller's tensor): "
        "compute a new tensor, e.g. with torch.where, and return it",
    )
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
    leaf = x.clone().requires_grad_()  # x is the check's own tensor, outside any graph
    expect(
        torch.autograd.gradcheck(function.apply, (leaf,), raise_exception=False),
        "torch.autograd.gradcheck disagrees with your backward (numerical vs analytical)",
    )
    passed(f"{name}.backward matches the numerical gradient (gradcheck in float64)")


# ----------------------------------------------------------------------------------------------
# Exercise 7 · your contender in the training race
# ----------------------------------------------------------------------------------------------


@exercise(stand_in=lambda: nn.ELU, stand_in_is="nn.ELU")
def check_my_activation(activation_class: object) -> None:
    """Check exercise 6: ``my_activation`` is an elementwise, non-linear nn.Module class that
    ``deep_mlp`` can create with no arguments."""
    name = "my_activation"
    expect(
        activation_class is not None,
        f"`{name}` is None: pick an activation class, e.g. nn.ELU, nn.Mish or your "
        "LearnableLeakyReLU",
    )
    if isinstance(activation_class, nn.Module):
        kind = type(activation_class).__name__
        raise ExerciseNotSolved(
            f"`{name}` is a module instance, {kind}(...), but deep_mlp creates a new one for "
            f"every layer: give the class itself, {kind} without the brackets"
        )
    if not isinstance(activation_class, type):
        raise ExerciseNotSolved(
            f"`{name}` is a {type(activation_class).__name__}, not a module class: "
            "nn.Sequential holds modules. Pick a class such as nn.ELU, or wrap your function in "
            "an nn.Module as Squareplus does"
        )
    kind = activation_class.__name__
    expect(
        issubclass(activation_class, nn.Module),
        f"`{name}` is {kind}, which is not an nn.Module (nn.Sequential holds modules): pick a "
        "class such as nn.ELU, or call it from an nn.Module's forward as Squareplus does",
    )
    try:
        module = activation_class()
    except TypeError as error:
        raise ExerciseNotSolved(
            f"{kind}() fails ({error}): deep_mlp creates it with no arguments, so pick a class "
            "whose arguments all have defaults"
        ) from None
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, 16, generator=generator)
    other = torch.randn(8, 16, generator=generator)
    nudged = x.clone()
    nudged[0, 0] += 1.0  # one input of one sample: every other output must stay as it was
    others = torch.ones_like(x, dtype=torch.bool)
    others[0, 0] = False
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nn.Softmax() warns about its implicit dimension
        out = expect_tensor(module(x), name=f"{kind}()(x)", shape=tuple(x.shape))
        expect(
            torch.equal(module(x), out),
            f"{kind} gives a different output each time for the same input: it is random "
            "(as Dropout is in training mode), not an activation. Pick a fixed function of x, "
            "e.g. nn.ELU",
        )
        expect(
            torch.allclose(module(nudged)[others], out[others]),
            f"{kind} is not elementwise: changing one input changed other outputs (softmax "
            "mixes a row, and over dim=0 the samples of a batch). Between layers every unit "
            "needs its own f(x): pick an elementwise activation (F.cross_entropy already "
            "applies the softmax)",
        )
        linear = torch.allclose(module(x + other), out + module(other), atol=1e-5) and (
            torch.allclose(module(-x), -out, atol=1e-5)
        )
    expect(
        not linear,
        f"{kind} is linear: with it the stacked layers collapse into one linear layer (§1). "
        "Pick a function with a bend, e.g. nn.ELU",
    )
    passed(f"{kind} joins the race")
