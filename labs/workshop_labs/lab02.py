"""Lab 2 · Building neural networks: the exercise checks, their stand-ins and the
call-flow picture."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable

import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from workshop_labs import plots
from workshop_labs.checks import (
    ExerciseNotSolved,
    calling,
    error_text,
    exercise,
    expect,
    expect_names,
    expect_tensor,
    passed,
)

# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------


def _call_expression(caller: str | None, callee: str) -> str:
    """How the caller's code calls the callee: ``model`` from your code, ``self.fc1`` from the
    model's ``forward``, ``self.blocks[0]`` for a layer kept in a list. Every arrow is such a
    call, never ``.forward(...)``: the call is what runs the hooks and then ``forward``."""
    if caller is None:
        return "model"
    if caller != "model" and callee.startswith(caller + "."):
        callee = callee[len(caller) + 1 :]
    path = "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in callee.split("."))
    return "self" + path


def call_flow(model: nn.Module, example_input: torch.Tensor) -> Figure:
    """A sequence diagram of what ``model(x)`` really runs, recorded with forward hooks: one
    lifeline per module, a call arrow into each ``forward`` and a return arrow with the shape."""
    modules = [("model", model)] + [(name, m) for name, m in model.named_modules() if name]
    column = {id(m): i for i, (_, m) in enumerate(modules)}
    events: list[tuple[str, int, tuple[int, ...]]] = []
    handles = []
    for _, module in modules:
        handles.append(
            module.register_forward_pre_hook(
                lambda m, args: events.append(("call", column[id(m)], tuple(args[0].shape)))
            )
        )
        handles.append(
            module.register_forward_hook(
                lambda m, args, out: events.append(("return", column[id(m)], tuple(out.shape)))
            )
        )
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()

    fig, ax = plots.figure(figsize=(max(7.0, 1.9 * (len(modules) + 1)), 1.6 + 0.42 * len(events)))
    ax.set_axis_off()
    ax.set_xlim(-1.2, len(modules) - 0.4)
    ax.set_ylim(len(events) + 0.6, -1.4)
    for i, (name, module) in enumerate(modules):
        ax.plot([i, i], [-0.5, len(events) + 0.3], color="#BBBBBB", linewidth=1, zorder=0)
        label = f"{name}\n{type(module).__name__}"
        ax.text(
            i,
            -0.9,
            label,
            ha="center",
            va="center",
            fontsize=10,
            family="monospace",
            bbox={"facecolor": "#D6E4F5", "edgecolor": "#555555", "boxstyle": "round"},
        )
    ax.text(-1.0, -0.9, "you", ha="center", va="center", fontsize=10, weight="bold")
    ax.plot([-1.0, -1.0], [-0.5, len(events) + 0.3], color="#BBBBBB", linewidth=1, zorder=0)
    stack = [-1]
    for row, (kind, col, shape) in enumerate(events):
        y = row + 0.3
        if kind == "call":
            call = _call_expression(
                modules[stack[-1]][0] if stack[-1] >= 0 else None, modules[col][0]
            )
            start, end, text, style = stack[-1], col, f"{call}(x)  x: {shape}", "-|>"
            stack.append(col)
        else:
            stack.pop()
            start, end, text, style = col, stack[-1], f"returns {shape}", "-|>"
        ax.add_patch(
            FancyArrowPatch(
                (start, y),
                (end, y),
                arrowstyle=style,
                mutation_scale=13,
                color="#C44E52" if kind == "call" else "#4C72B0",
                linestyle="-" if kind == "call" else "--",
                linewidth=1.4,
            )
        )
        ax.text(
            (start + end) / 2,
            y - 0.12,
            text,
            ha="center",
            va="bottom",
            fontsize=9,
            family="monospace",
        )
    first = tuple(example_input.shape)
    ax.set_title(
        f"What model(x) runs for x of shape {first}: each call goes through "
        "__call__ (hooks) into forward",
        loc="left",
        fontsize=12,
    )
    return plots.show(fig)


# ----------------------------------------------------------------------------------------------
# Running the attendee's class: errors a beginner meets become one line that names the cause
# ----------------------------------------------------------------------------------------------

SUPER_MISSING = "before Module.__init__() call"


def _instantiate(cls: object, name: str, *args) -> nn.Module:
    """``cls(*args)``, turning the errors a beginner meets into a message that names the cause."""
    expect(cls is not None, f"`{name}` is None: define the class")
    expect(
        isinstance(cls, type) and issubclass(cls, nn.Module),
        f"`{name}` must be a class that inherits from nn.Module: `class {name}(nn.Module):`",
    )
    try:
        return cls(*args)
    except AttributeError as error:
        if SUPER_MISSING in str(error):
            raise ExerciseNotSolved(
                f"{name}() failed with AttributeError: {error}. Call super().__init__() as the "
                "first line of __init__, before assigning any layer to self"
            ) from None
        failure = error
    except Exception as error:
        failure = error
    arguments = ", ".join(map(repr, args))
    raise ExerciseNotSolved(
        f"{name}({arguments}) raised {error_text(failure)}: the error is in __init__"
    ) from failure


def _linear_input_guard(model: nn.Module):
    """Forward pre-hooks that stop a Linear layer fed the wrong last dimension, with a message
    naming the layer, instead of torch's ``mat1 and mat2 shapes cannot be multiplied``."""

    def guard(name: str):
        def check(layer: nn.Linear, args) -> None:
            shape = tuple(args[0].shape)
            if not shape or shape[-1] == layer.in_features:
                return
            flat = (shape[0], math.prod(shape[1:])) if len(shape) > 1 else shape
            if len(shape) > 2 and flat[1] == layer.in_features:
                fix = f"flatten the input first (nn.Flatten() turns {shape} into {flat})"
            elif len(shape) == 1 and shape[0] % layer.in_features == 0:
                fix = (
                    "the batch dimension is gone: x.flatten() flattens every dimension; "
                    "nn.Flatten() or x.flatten(1) keeps the batch and flattens the rest"
                )
            else:
                fix = f"make its input end in {layer.in_features}, or use in_features={shape[-1]}"
            raise ExerciseNotSolved(
                f"layer `{name}` = nn.Linear(in_features={layer.in_features}, ...) receives x of "
                f"shape {shape}, whose last dimension is {shape[-1]}, not "
                f"{layer.in_features}: {fix}"
            )

        return check

    return [
        layer.register_forward_pre_hook(guard(name))
        for name, layer in model.named_modules()
        if isinstance(layer, nn.Linear)
    ]


def _run(model: nn.Module, x: torch.Tensor, name: str) -> torch.Tensor:
    handles = _linear_input_guard(model)
    try:
        return model(x)
    except ExerciseNotSolved:
        raise
    except Exception as error:
        raise ExerciseNotSolved(
            f"{name}(x) with x of shape {tuple(x.shape)} raised {error_text(error)}"
        ) from error
    finally:
        for handle in handles:
            handle.remove()


# ----------------------------------------------------------------------------------------------
# What the cells after an unsolved exercise use instead (never the solution: it is hidden until
# the instructor reveals it, and the attendee image ships no solution code)
# ----------------------------------------------------------------------------------------------


class PlainBlock(nn.Module):
    """ResidualNet's stand-in block while Exercise 7 is unsolved: a Linear and a ReLU, with no
    skip connection, so the network still builds, draws and trains."""

    def __init__(self, width):
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, x):
        return torch.relu(self.linear(x))


def unused_layers(model: nn.Module, x: torch.Tensor, name: str) -> list[str]:
    """The registered layers holding parameters that ``model(x)`` never calls: registered in
    ``__init__`` but left out of ``forward``."""
    called: set[str] = set()
    layers = {
        layer_name: layer
        for layer_name, layer in model.named_modules()
        if layer_name and not list(layer.children()) and list(layer.parameters())
    }
    handles = [
        layer.register_forward_hook(
            lambda module, args, out, layer_name=layer_name: called.add(layer_name)
        )
        for layer_name, layer in layers.items()
    ]
    try:
        _run(model, x, name)
    finally:
        for handle in handles:
            handle.remove()
    return [layer_name for layer_name in layers if layer_name not in called]


def _expect_every_layer_used(model: nn.Module, x: torch.Tensor, name: str) -> None:
    unused = unused_layers(model, x, name)
    expect(
        not unused,
        f"{name}(x) never calls {', '.join(f'self.{u}' for u in unused)}: registered in "
        "__init__ but left out of forward, so it never learns. Call every layer in forward",
    )


def _repeated_layers(model: nn.Module) -> dict[str, int]:
    """Layers registered under several names (``[layer] * depth``): first name → how often."""
    names: dict[int, list[str]] = {}
    for layer_name, layer in model.named_modules(remove_duplicate=False):
        if layer_name and list(layer.parameters(recurse=False)):
            names.setdefault(id(layer), []).append(layer_name)
    return {found[0]: len(found) for found in names.values() if len(found) > 1}


def unregistered_modules(model: nn.Module) -> dict[str, int]:
    """Attributes holding modules inside a plain list, tuple or dict: name → number of layers."""
    found = {}
    for attr, value in vars(model).items():
        if attr.startswith("_"):  # nn.Module's own registries
            continue
        items = value.values() if isinstance(value, dict) else value
        if isinstance(value, list | tuple | dict):
            count = sum(isinstance(item, nn.Module) for item in items)
            if count:
                found[attr] = count
    return found


# ----------------------------------------------------------------------------------------------
# §2 · a first class: lab 1's model as an nn.Module
# ----------------------------------------------------------------------------------------------


@exercise()
def check_linear_digits(cls: object) -> None:
    """Exercise 2: LinearDigits() registers one Linear(64, 10) and forward returns its
    output."""
    model = _instantiate(cls, "LinearDigits")
    expect(
        list(model.parameters()),
        "LinearDigits() registers no parameters: create the layer in __init__ and assign it to "
        "self (a layer made inside forward is a new, untrained one at every call)",
    )
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    expect(
        [(m.in_features, m.out_features) for m in layers] == [(64, 10)],
        "LinearDigits needs exactly one nn.Linear(64, 10): 64 pixels in, 10 scores out; it has "
        + (", ".join(f"Linear({m.in_features}, {m.out_features})" for m in layers) or "none"),
    )
    x = torch.rand(5, 64, generator=torch.Generator().manual_seed(2))
    out = _run(model, x, "LinearDigits()")
    expect(out is not None, "forward returned None: end it with `return` and the scores")
    expect(
        not isinstance(out, nn.Module),
        f"forward returned the layer ({type(out).__name__}), not scores: call it on the input, "
        "self.<layer>(x)",
    )
    expect_tensor(out, name="LinearDigits()(x) for x of shape (5, 64)", shape=(5, 10))
    with torch.no_grad():
        expect(
            torch.allclose(out, layers[0](x), atol=1e-6),
            "forward's scores are not the registered layer's output: return self.<layer>(x)",
        )
    passed("LinearDigits: super().__init__(), one registered Linear(64, 10), and a forward")


DEPTHS_TRIED = (1, 4)  # besides the lab's: a count written where `depth` belongs shows


@exercise()
def check_deep_net(cls: object, depth: int = 3) -> None:
    """Exercise 3: DeepNet calls super().__init__(), registers its hidden layers (nn.ModuleList,
    not a list), makes `depth` of them and calls every one in forward."""
    for tried in (depth, *(d for d in DEPTHS_TRIED if d != depth)):
        model = _instantiate(cls, "DeepNet", tried)
        for attr, count in unregistered_modules(model).items():
            raise ExerciseNotSolved(
                f"`self.{attr}` is a plain Python {type(getattr(model, attr)).__name__}: its "
                f"{count} layers are not registered, so parameters(), the optimizer, .to(device) "
                f"and state_dict() never see them. Wrap it: self.{attr} = nn.ModuleList([...])"
            )
        for layer_name, count in _repeated_layers(model).items():
            raise ExerciseNotSolved(
                f"DeepNet({tried}) holds ONE layer ({layer_name}) {count} times: [layer] * depth "
                "repeats the same object, so they share one set of weights. Make a new layer "
                "each time: [nn.Linear(32, 32) for _ in range(depth)]"
            )
        hidden = [
            m
            for m in model.modules()
            if isinstance(m, nn.Linear) and m.in_features == m.out_features == 32
        ]
        expect(
            len(hidden) == tried,
            f"DeepNet({tried}) has {len(hidden)} hidden Linear(32, 32) layers, not {tried}: make "
            "one per depth, `for _ in range(depth)`",
        )
        tensors = len(list(model.parameters()))
        expected = 2 * (tried + 2)
        expect(
            tensors == expected,
            f"DeepNet({tried}) registers {tensors} parameter tensors but its {tried + 2} Linear "
            f"layers have {expected} (a weight and a bias each)",
        )
        x = torch.randn(4, 64, generator=torch.Generator().manual_seed(tried))
        out = _run(model, x, f"DeepNet({tried})")
        expect_tensor(out, name=f"DeepNet({tried})(x)", shape=(4, 10))
        _expect_every_layer_used(model, x, f"DeepNet({tried})")
    passed(f"all {depth + 2} layers of DeepNet({depth}) are registered and used")


def _own_reference(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """What ImageClassifier's own layers compute from x, right and with the usual slips;
    None when the starter's layer names are gone."""
    fc1, fc2 = getattr(model, "fc1", None), getattr(model, "fc2", None)
    if not (isinstance(fc1, nn.Linear) and isinstance(fc2, nn.Linear)):
        return None
    flat = x.reshape(len(x), -1)
    return {
        "right": fc2(torch.relu(fc1(flat))),
        "no activation": fc2(fc1(flat)),
    }


@exercise()
def check_image_classifier(cls: object) -> None:
    """Exercise 4: forward takes images (batch, 8, 8) and returns logits (batch, 10), each
    computed from its own image through fc1, the activation and fc2."""
    model = _instantiate(cls, "ImageClassifier")
    for batch in (16, 3):
        # Random images, each different: zeros would hide a forward that mixes the samples.
        x = torch.rand(batch, 8, 8, generator=torch.Generator().manual_seed(batch))
        out = _run(model, x, "ImageClassifier()")
        expect(out is not None, "forward returned None: end it with `return` and the logits")
        expect_tensor(
            out, name=f"ImageClassifier()(x) for x of shape ({batch}, 8, 8)", shape=(batch, 10)
        )
        _expect_every_layer_used(model, x, "ImageClassifier()")
        with torch.no_grad():
            reference = _own_reference(model, x)
        if reference is None:
            continue
        expect(
            not torch.allclose(out, reference["no activation"], atol=1e-5),
            "forward goes from fc1 straight to fc2: the activation is left out, and two Linear "
            "layers in a row are no better than one. Call self.act between them",
        )
        expect(
            torch.allclose(out, reference["right"], atol=1e-5),
            "the logits of image i do not come from image i through fc1, the activation and "
            "fc2: flatten each image on its own, keeping the batch dimension first "
            "(self.flatten(x), i.e. nn.Flatten())",
        )
    passed("ImageClassifier turns (batch, 8, 8) images into (batch, 10) logits, for any batch")


# Two small problems whose right loss is known: raw logits in, like every model of this lab.
# The binary logits include 40 and -35, where a sigmoid rounds to exactly 1.0 or 0.0.
BINARY_LOGITS = torch.tensor([-2.0, 0.5, 3.0, -0.7, 40.0, -35.0])
BINARY_TARGETS = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0, 1.0])
LOSS_PROBLEMS = {
    "binary": "one logit per sample, targets 0.0 or 1.0",
    "10 classes": "10 logits per sample, targets 0..9",
}


def _class_problem() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    logits = 3 * torch.randn(6, 10, generator=generator)
    return logits, torch.randint(0, 10, (6,), generator=generator)


def _wrong_losses(problem: str) -> list[tuple[Callable, str]]:
    """The pairings a beginner picks by mistake, each with the message that explains it."""
    bce_with_logits = "use nn.BCEWithLogitsLoss() on the raw logits"
    if problem == "binary":
        return [
            (
                lambda z, y: nn.BCELoss()(torch.sigmoid(z), y),
                "Sigmoid then BCELoss saturates: sigmoid(40) is exactly 1.0 in float32, BCELoss "
                f"clips log(0) to -100 and the loss is wrong; {bce_with_logits} (it is "
                "computed safely from the logit itself)",
            ),
            (
                nn.BCEWithLogitsLoss(reduction="sum"),
                "this is the SUM of the per-sample losses (reduction='sum'); keep the default "
                "reduction='mean' so the loss does not grow with the batch size",
            ),
            (
                nn.MSELoss(),
                f"MSELoss measures a distance between numbers (regression); for a yes/no "
                f"target {bce_with_logits}",
            ),
            (
                nn.L1Loss(),
                f"L1Loss measures a distance between numbers (regression); for a yes/no "
                f"target {bce_with_logits}",
            ),
            (
                nn.CrossEntropyLoss(),
                "CrossEntropyLoss needs one logit per class (here it read the batch as 6 "
                f"classes); with a single logit per sample {bce_with_logits}",
            ),
        ]
    cross_entropy = "use nn.CrossEntropyLoss() on the raw logits"
    return [
        (
            lambda z, y: nn.CrossEntropyLoss()(torch.softmax(z, dim=1), y),
            "softmax before CrossEntropyLoss applies softmax twice (CrossEntropyLoss already "
            f"does log-softmax inside), so the loss is wrong and learns slowly; {cross_entropy}",
        ),
        (
            nn.NLLLoss(),
            "NLLLoss expects log-probabilities, not raw logits: put nn.LogSoftmax(dim=1) first, "
            f"or simply {cross_entropy}",
        ),
        (
            nn.CrossEntropyLoss(reduction="sum"),
            "this is the SUM of the per-sample losses (reduction='sum'); keep the default "
            "reduction='mean' so the loss does not grow with the batch size",
        ),
    ]


def _loss_value(loss_fn: Callable, logits: torch.Tensor, targets: torch.Tensor) -> float | str:
    """The loss as a float, or the error it raised as text."""
    try:
        with warnings.catch_warnings():  # MSELoss warns before it fails on mismatched shapes
            warnings.simplefilter("ignore")
            value = loss_fn(logits, targets)
    except Exception as error:  # the attendee's loss may raise anything: it is a wrong pick
        return error_text(error)
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        return f"it returned {type(value).__name__}, not a single-number tensor"
    return float(value)


@exercise()
def check_loss_choice(loss_fns: object) -> None:
    """Exercise 6: BCEWithLogitsLoss for one logit and a 0/1 target, CrossEntropyLoss for
    10 logits and a class index (LogSoftmax + NLLLoss is the same, and accepted)."""
    expect(
        isinstance(loss_fns, dict) and set(loss_fns) == set(LOSS_PROBLEMS),
        f"`loss_fns` must be a dict with the keys {list(LOSS_PROBLEMS)}",
    )
    assert isinstance(loss_fns, dict)
    problems = {
        "binary": (BINARY_LOGITS, BINARY_TARGETS, nn.BCEWithLogitsLoss()),
        "10 classes": (*_class_problem(), nn.CrossEntropyLoss()),
    }
    for problem, (logits, targets, right) in problems.items():
        loss_fn = loss_fns[problem]
        where = f'loss_fns["{problem}"] ({LOSS_PROBLEMS[problem]})'
        expect(
            loss_fn is not None,
            f"{where} is None: replace the None with a loss, e.g. nn.SomethingLoss()",
        )
        expect(callable(loss_fn), f"{where} is not callable: give a loss module such as nn.…()")
        expect(
            not isinstance(loss_fn, type),
            f"{where} is the class {getattr(loss_fn, '__name__', '')} itself: create the loss "
            f"with parentheses, nn.{getattr(loss_fn, '__name__', '')}()",
        )
        want = float(right(logits, targets))
        got = _loss_value(loss_fn, logits, targets)
        if isinstance(got, float) and math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-5):
            continue
        for wrong, message in _wrong_losses(problem):
            mistake = _loss_value(wrong, logits, targets)
            if isinstance(got, float) and isinstance(mistake, float):
                same = math.isclose(got, mistake, rel_tol=1e-4, abs_tol=1e-5)
            else:
                same = got == mistake
            expect(not same, f"{where}: {message}")
        if isinstance(got, str):
            hint = {
                "binary": "for one logit and a 0/1 target use nn.BCEWithLogitsLoss()",
                "10 classes": "for 10 logits and a class index use nn.CrossEntropyLoss()",
            }[problem]
            if "between 0 and 1" in got:
                hint = "BCELoss expects probabilities, the model gives raw logits: " + hint
            raise ExerciseNotSolved(f"{where} raised {got}: {hint}")
        raise ExerciseNotSolved(
            f"{where} gives {got:.4f} on the check's batch, but the right loss gives {want:.4f}: "
            "the model outputs raw logits, so no activation goes before the loss"
        )
    passed(
        "BCEWithLogitsLoss for one logit and a 0/1 target, cross-entropy for 10 logits and a "
        "class index: both take the raw logits"
    )


RESIDUAL_WIDTHS = (8, 3)  # the lab's width, and another: a width written in as a number shows


@exercise(stand_in=lambda: PlainBlock, stand_in_is="a plain block without the skip connection")
def check_residual_block(cls: object, width: int = 8) -> None:
    """Exercise 7: ResidualBlock(width) returns x + ReLU(Linear(x)), its layers registered,
    leaving its input as it was and letting gradients flow back."""
    for tried in (width, *(w for w in RESIDUAL_WIDTHS if w != width)):
        _check_residual_block(cls, tried)
    passed(f"ResidualBlock({width}) adds its input to self.layer's output: the skip connection")


def _check_residual_block(cls: object, width: int) -> None:
    model = _instantiate(cls, "ResidualBlock", width)
    for attr, count in unregistered_modules(model).items():
        raise ExerciseNotSolved(
            f"`self.{attr}` is a plain Python {type(getattr(model, attr)).__name__}: its {count} "
            "layer(s) are not registered. Use nn.Sequential(...) instead"
        )
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    expect(
        linears,
        f"ResidualBlock({width}) has no nn.Linear: in __init__ assign self.layer an "
        f"nn.Sequential of nn.Linear({width}, {width}) then nn.ReLU()",
    )
    expect(
        len(linears) == 1 and linears[0].in_features == linears[0].out_features == width,
        f"ResidualBlock({width}) should hold one nn.Linear({width}, {width}), not "
        + ", ".join(f"Linear({m.in_features}, {m.out_features})" for m in linears)
        + ": use `width`, the argument, for both sizes",
    )
    # The input comes out of an earlier layer, as in ResidualNet: a tensor autograd needs later.
    raw = torch.randn(5, width, generator=torch.Generator().manual_seed(3), requires_grad=True)
    x = raw.clone()
    given = x.detach().clone()
    out = _run(model, x, f"ResidualBlock({width})")
    expect(out is not None, "forward returned None: it must return the block's output")
    expect_tensor(out, name=f"ResidualBlock({width})(x)", shape=(5, width))
    expect(
        torch.equal(x.detach(), given),
        "forward changed its input x in place (x += ..., or x.add_(...)): the layers before the "
        "block may still need it for backward. Return a new tensor: x + self.layer(x)",
    )
    with torch.no_grad():
        linear = linears[0](given)
        mistakes = {
            "forward returns x unchanged: the block must add its layers' output to its "
            "input": given,
            "forward returns only self.layer(x): the skip connection is missing, add the "
            "input x to it": torch.relu(linear),
            "there is no ReLU after the Linear: self.layer must be an nn.Sequential of the "
            "Linear then an nn.ReLU()": given + linear,
            "the ReLU comes after the addition: this block must add x to ReLU(Linear(x)), "
            "which self.layer computes": torch.relu(given + linear),
        }
        for message, value in mistakes.items():
            expect(not torch.allclose(out, value, atol=1e-5), message)
        expect(
            torch.allclose(out, given + torch.relu(linear), atol=1e-5),
            "ResidualBlock(x) is not x + ReLU(Linear(x)): add the input to self.layer's output",
        )
    with calling(f"ResidualBlock({width})(x).sum().backward()"):
        out.sum().backward()
    expect(
        raw.grad is not None and linears[0].weight.grad is not None,
        "no gradient reached the input or the Linear: forward must not detach x or its output",
    )


@exercise()
def check_digit_images(cls: object, features: torch.Tensor, labels: torch.Tensor) -> None:
    """Exercise 9: a Dataset whose item i is (the 8×8 float image of sample i, its int64 label),
    checked at several indices of samples that do not start at the notebook's first."""
    expect(cls is not None, "`DigitImages` is None: define the class")
    # Every other sample from 100 on: an answer that reads the notebook's own `features`, or
    # ignores `index`, gives other samples than these.
    chosen = torch.arange(100, 300, 2)
    given_features, given_labels = features[chosen], labels[chosen]
    with calling("DigitImages(features, labels)"):
        dataset = cls(given_features, given_labels)
    try:
        length = len(dataset)
    except TypeError as error:
        raise ExerciseNotSolved(
            f"len(dataset) failed ({error}): __len__ must return the number of samples as an int"
        ) from None
    expect(
        length == len(chosen),
        f"len(dataset) is {length} but {len(chosen)} samples were given: __len__ must return "
        "the number of samples, e.g. len(self.labels)",
    )
    for index in (0, 1, 7, len(chosen) // 2, len(chosen) - 1):
        with calling(f"dataset[{index}]"):
            item = dataset[index]
        _expect_sample(item, index, given_features, given_labels, features)
    with calling("next(iter(DataLoader(dataset, batch_size=10)))"):
        images, targets = next(iter(DataLoader(dataset, batch_size=10)))
    expect_tensor(images, name="a batch of images from a DataLoader", shape=(10, 8, 8))
    expect_tensor(targets, name="a batch of labels", shape=(10,), dtype=torch.int64)
    passed("DigitImages has the right length and items; a DataLoader batches it to (10, 8, 8)")


def _expect_sample(
    item: object,
    index: int,
    given_features: torch.Tensor,
    given_labels: torch.Tensor,
    notebook_features: torch.Tensor,
) -> None:
    """dataset[index] is (the 8×8 image of given sample `index`, its label), or a line that
    names which sample it gave instead."""
    expect(
        isinstance(item, tuple | list) and len(item) == 2,
        f"dataset[{index}] returned {type(item).__name__}"
        + (f" of {len(item)} items" if isinstance(item, tuple | list) else "")
        + ": __getitem__ must return a pair (image, label)",
    )
    image, label = item
    expect(
        not (isinstance(label, torch.Tensor) and label.numel() == 64),
        f"dataset[{index}] is (label, image): return the image first, then the label",
    )
    expect_tensor(image, name=f"dataset[{index}][0] (the image)", shape=(8, 8), dtype=torch.float32)
    pixels = image.flatten()
    if not torch.equal(pixels, given_features[index]):
        same = [j for j, row in enumerate(given_features) if torch.equal(pixels, row)]
        expect(
            not same,
            f"dataset[{index}]'s image is sample {same[0] if same else 0}, not sample {index}: "
            "index self.features with the `index` __getitem__ receives, as it is",
        )
        expect(
            not torch.equal(pixels, notebook_features[index]),
            f"dataset[{index}]'s image is sample {index} of the notebook's `features`, not of "
            "the features this dataset was given: use self.features, not a global",
        )
        raise ExerciseNotSolved(
            f"dataset[{index}]'s image is not sample {index}: return "
            "self.features[index] shaped as an 8×8 image"
        )
    expect(
        not (
            isinstance(label, float)
            or (isinstance(label, torch.Tensor) and label.is_floating_point())
        ),
        f"dataset[{index}]'s label is a float: class labels are int64 indices, which "
        "CrossEntropyLoss needs. Return self.labels[index] as it is",
    )
    with calling(f"int(dataset[{index}][1])"):
        got = int(label)
    expect(
        got == int(given_labels[index]),
        f"dataset[{index}]'s label is {got} but sample {index} is a "
        f"{int(given_labels[index])}: return self.labels[index]",
    )


def _fresh_gradient(
    model: nn.Linear, loss_fn: Callable, xb: torch.Tensor, yb: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """The gradient of this batch's loss at the model's current weights, and the loss, without
    touching .grad."""
    batch_loss = loss_fn(model(xb), yb)
    return torch.autograd.grad(batch_loss, model.weight)[0], batch_loss.item()


@exercise()
def check_train_epoch(train_epoch: Callable) -> None:
    """Exercise 10: one pass over a loader, one step per batch with the optimizer it is given,
    gradients reset each step, and the mean batch loss returned."""
    expect(callable(train_epoch), "`train_epoch` is not a function: define it with def")
    generator = torch.Generator().manual_seed(2)
    xs = torch.randn(40, 6, generator=generator)
    ys = torch.randint(0, 3, (40,), generator=generator)
    loader = DataLoader(TensorDataset(xs, ys), batch_size=10)
    batches = list(loader)  # no shuffling: batch k is the same in every pass
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random numbers alone
        torch.manual_seed(2)
        model = nn.Linear(6, 3)
    start = model.weight.detach().clone()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    backward_passes: list[None] = []  # one entry each time backward() fills weight.grad
    model.weight.register_post_accumulate_grad_hook(lambda weight: backward_passes.append(None))
    # At each step: the .grad the optimizer is about to use, the right one, the batch's loss,
    # and how many backward passes ran so far.
    steps: list[tuple[torch.Tensor | None, torch.Tensor, float, int]] = []

    def before_step(opt, args, kwargs) -> None:
        xb, yb = batches[min(len(steps), len(batches) - 1)]
        grad = model.weight.grad
        fresh, loss = _fresh_gradient(model, loss_fn, xb, yb)
        steps.append((None if grad is None else grad.clone(), fresh, loss, len(backward_passes)))

    optimizer.register_step_pre_hook(before_step)
    with calling("train_epoch(model, loader, optimizer, loss_fn)"):
        returned = train_epoch(model, loader, optimizer, loss_fn)

    moved = not torch.equal(start, model.weight.detach())
    expect(
        steps or not moved,
        "the weights changed, but not through the optimizer train_epoch was given: use that "
        "`optimizer`, do not create a new one inside the function",
    )
    expect(steps, "optimizer.step() was never called: take one step per batch, inside the loop")
    expect(
        len(steps) == len(loader),
        f"optimizer.step() ran {len(steps)} time(s) but the loader has {len(loader)} batches: "
        "call it once per batch, inside the for loop",
    )
    previous_backwards = 0
    previous_grad = torch.zeros_like(start)
    for k, (grad, fresh, _, backwards) in enumerate(steps):
        if grad is None:
            expect(
                backwards == previous_backwards,
                f"at batch {k} loss.backward() ran, but the gradients were gone at "
                "optimizer.step(): zero_grad() between backward() and step() wipes them. "
                "Call optimizer.zero_grad() at the start of the step",
            )
            raise ExerciseNotSolved(
                "optimizer.step() found no gradients: call loss.backward() before optimizer.step()"
            )
        previous_backwards = backwards
        if not torch.allclose(grad, fresh, atol=1e-6):
            expect(
                not torch.allclose(grad, previous_grad + fresh, atol=1e-6),
                f"at batch {k} the gradient was this batch's PLUS the previous ones: .grad "
                "accumulates until you reset it. Call optimizer.zero_grad() at the start of "
                "every step",
            )
            raise ExerciseNotSolved(
                f"the gradient at batch {k} is not the gradient of that batch's loss: compute "
                "loss_fn(model(xb), yb) for the current batch, then loss.backward()"
            )
        previous_grad = grad
    _expect_mean_loss(returned, [loss for _, _, loss, _ in steps], len(xs))
    passed(f"{len(steps)} steps, fresh gradients at every step, mean loss {returned:.3f}")


def _expect_mean_loss(returned: object, losses: list[float], samples: int) -> None:
    expect(
        isinstance(returned, int | float) and not isinstance(returned, bool),
        f"train_epoch returned {type(returned).__name__}: return the mean batch loss as a float",
    )
    assert isinstance(returned, int | float)
    total, batches = sum(losses), len(losses)
    slips = {
        "the SUM of the batch losses: divide it by len(loader), the number of batches": total,
        f"the total divided by {batches - 1}, one less than the number of batches: divide by "
        "len(loader) (enumerate counts from 0, so its last index is not the count)": total
        / (batches - 1),
        f"the total divided by the number of samples ({samples}), but each loss is already a "
        f"batch's mean: divide by len(loader), the number of batches ({batches})": total / samples,
        "the last batch's loss only: add up loss.item() over the loop, then divide by "
        "len(loader)": losses[-1],
    }
    for slip, value in slips.items():
        expect(
            not math.isclose(float(returned), value, rel_tol=1e-4),
            f"train_epoch returned {returned:.4f}, {slip}",
        )
    mean_loss = total / batches
    expect(
        math.isclose(float(returned), mean_loss, rel_tol=1e-4),
        f"train_epoch returned {returned:.4f} but the mean of the batch losses is "
        f"{mean_loss:.4f}: add up loss.item() for every batch and divide by len(loader)",
    )


# ----------------------------------------------------------------------------------------------
# §1 · a function's parameters are yours to list
# ----------------------------------------------------------------------------------------------


@exercise()
def check_optimizer_by_hand(optimizer: object, *parameters: torch.Tensor) -> None:
    """`optimizer`: any torch optimizer given exactly ``parameters`` (w1, b1, w2, b2), the very
    tensors, not copies."""
    expect(optimizer is not None, "`optimizer_by_hand` is None: create an optimizer, e.g. SGD")
    expect(
        isinstance(optimizer, torch.optim.Optimizer),
        f"`optimizer_by_hand` is a {type(optimizer).__name__}, not an optimizer: "
        "torch.optim.SGD([...], lr=0.1)",
    )
    assert isinstance(optimizer, torch.optim.Optimizer)
    given = [p for group in optimizer.param_groups for p in group["params"]]
    names = ("w1", "b1", "w2", "b2")
    wanted = dict(zip(names, parameters, strict=True))
    copies = [
        name
        for name, tensor in wanted.items()
        if not any(p is tensor for p in given)
        and any(p.shape == tensor.shape and torch.equal(p.detach(), tensor.detach()) for p in given)
    ]
    expect(
        not copies,
        f"the optimizer holds copies of {', '.join(copies)} (.clone(), .detach(), "
        "torch.tensor(...)): it would update the copies and predict() would never change. "
        "List the tensors themselves",
    )
    missing = [name for name, tensor in wanted.items() if not any(p is tensor for p in given)]
    expect(
        not missing,
        f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing from the list: "
        "the optimizer would never change "
        f"{'it' if len(missing) == 1 else 'them'}. With a function, listing every learnable "
        "tensor is your job",
    )
    extra = len(given) - len(wanted)
    expect(
        extra == 0,
        f"the optimizer holds {extra} tensor(s) besides w1, b1, w2, b2: data such as `features` "
        "is not learned; list the four parameters only",
    )
    passed(
        "the optimizer holds w1, b1, w2 and b2, listed by you: nn.Module's parameters() will "
        "do this bookkeeping for you"
    )


# ----------------------------------------------------------------------------------------------
# §5 · which parameters backward() reaches
# ----------------------------------------------------------------------------------------------


@exercise()
def check_have_grad(have_grad: object, model: nn.Module, x: torch.Tensor) -> None:
    """`have_grad`: the names of the parameters of ``model`` whose .grad is filled by one
    backward pass of a loss on ``model(x)``; measured on a copy of the model."""
    predicted = expect_names(have_grad, "have_grad")
    probe = copy.deepcopy(model)
    probe.zero_grad(set_to_none=True)
    probe(x).square().mean().backward()
    parameters = dict(probe.named_parameters())
    reached = {name for name, p in parameters.items() if p.grad is not None}
    modules = {name.rpartition(".")[0] for name in parameters}
    expect(
        not predicted & modules,
        f"{sorted(predicted & modules)} name layers, not parameters: name each tensor as "
        f"named_parameters() does, e.g. {sorted(parameters)[0]!r}",
    )
    unknown = predicted - set(parameters)
    expect(
        not unknown,
        f"the model has no parameter {sorted(unknown)}: its parameters are {sorted(parameters)}",
    )
    never = sorted(predicted - reached)
    expect(
        not never,
        f"{never} are registered, but forward() never uses them, so backward() never reaches "
        "them and their .grad stays None: registering a layer is not using it",
    )
    forgotten = sorted(reached - predicted)
    biases = [name for name in forgotten if name.endswith("bias")]
    expect(
        not forgotten or biases != forgotten,
        f"{biases} get a gradient too: a bias is a parameter like the weight, and backward() "
        "fills the .grad of every parameter the loss depends on",
    )
    expect(
        not forgotten,
        f"{forgotten} also get a gradient: forward() uses them, so the loss depends on them",
    )
    passed(
        f"{', '.join(sorted(reached))} get a gradient; "
        f"{', '.join(sorted(set(parameters) - reached)) or 'none'} stay None: "
        "backward() reaches only what forward() used"
    )


# ----------------------------------------------------------------------------------------------
# §8 · guesses in eval mode, then back to training
# ----------------------------------------------------------------------------------------------


def _dropout_problem() -> tuple[nn.Module, torch.Tensor]:
    """A small model with Dropout, in training mode, and a batch; seeded, so the same each time."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 5))
        x = torch.randn(64, 12)
    return model.train(), x


@exercise()
def check_guess_classes(guess_classes: object) -> None:
    """`guess_classes(model, xb)`: the class guesses (argmax) with Dropout off, the model back in
    training mode afterwards."""
    expect(callable(guess_classes), "`guess_classes` is not a function: define it with def")
    assert callable(guess_classes)
    model, x = _dropout_problem()
    with torch.no_grad():
        want = model.eval()(x).argmax(dim=1)
    model.train()
    with torch.random.fork_rng(devices=[]), calling("guess_classes(model, xb)"):
        torch.manual_seed(0)  # the same Dropout mask every time the check runs
        guess = guess_classes(model, x)
    guess = expect_tensor(guess, name="guess_classes(model, xb)")
    expect(
        guess.dim() != 2,
        f"guess_classes returned shape {tuple(guess.shape)}: those are the scores; return one "
        "class per sample, .argmax(dim=1)",
    )
    expect(
        tuple(guess.shape) == (len(x),),
        f"guess_classes returned shape {tuple(guess.shape)}, but a batch of {len(x)} needs "
        f"{len(x)} guesses: .argmax(dim=1)",
    )
    expect(
        torch.equal(guess.long().cpu(), want),
        "the guesses are not those of the model with Dropout off: Dropout still zeroed values. "
        "Call model.eval() (with the parentheses) before the forward pass",
    )
    expect(
        all(part.training for part in model.modules()),
        "after guess_classes the model is still in eval mode: training would go on with Dropout "
        "switched off. Call model.train() before returning",
    )
    passed("guess_classes: Dropout off for the guesses, and the model back in training mode")


# ----------------------------------------------------------------------------------------------
# §10 · momentum by hand
# ----------------------------------------------------------------------------------------------

MOMENTUM_START, MOMENTUM_LR, MOMENTUM = 1.0, 0.1, 0.9


def _momentum_steps(steps: int) -> list[float]:
    """The weight after each of ``steps`` steps of SGD with momentum on the loss ``w`` (whose
    gradient is always 1), measured with torch.optim.SGD itself."""
    w = torch.tensor(MOMENTUM_START, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=MOMENTUM_LR, momentum=MOMENTUM)
    values = []
    for _ in range(steps):
        optimizer.zero_grad()
        w.backward()
        optimizer.step()
        values.append(w.item())
    return values


@exercise()
def check_momentum_steps(w_after_two_steps: object) -> None:
    """`w_after_two_steps`: w after two SGD steps with momentum 0.9, lr 0.1, gradient 1."""
    expect(
        w_after_two_steps is not None,
        "`w_after_two_steps` is None: write the number you predict",
    )
    expect(
        not isinstance(w_after_two_steps, str),
        f"`w_after_two_steps` is the text {w_after_two_steps!r}: write the number, no quotes",
    )
    try:
        got = float(w_after_two_steps)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ExerciseNotSolved(
            f"`w_after_two_steps` is a {type(w_after_two_steps).__name__}: write a number"
        ) from None
    first, second = _momentum_steps(2)
    plain = MOMENTUM_START - 2 * MOMENTUM_LR

    def near(value: float) -> bool:
        return math.isclose(got, value, abs_tol=1e-3)

    expect(
        not near(plain),
        f"{got:g} is plain SGD: two steps of lr × gradient. Momentum keeps the buffer: the "
        f"second step uses buffer = {MOMENTUM} × 1 + 1",
    )
    expect(
        not near(MOMENTUM_START + (MOMENTUM_START - second)),
        f"{got:g} moved w UP: a step goes against the gradient, w ← w − lr × buffer",
    )
    expect(
        not near(first - MOMENTUM * MOMENTUM_LR),
        f"{got:g}: the second step is not {MOMENTUM} × the first. The buffer ADDS the new "
        f"gradient to {MOMENTUM} × the old buffer: {MOMENTUM} × 1 + 1",
    )
    expect(
        not near(first),
        f"{got:g} is w after ONE step: the exercise asks for two",
    )
    expect(
        near(second),
        f"w after two steps is not {got:g}: step 1 uses buffer = 1, step 2 buffer = "
        f"{MOMENTUM} × 1 + 1; each step subtracts lr × buffer",
    )
    passed(
        f"w = {MOMENTUM_START:g} → {first:.2f} → {second:.2f}: the second step is "
        f"{(first - second) / (MOMENTUM_START - first):.1f}× the first, as the gradients agree"
    )
