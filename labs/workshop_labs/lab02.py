"""Lab 2 · Building neural networks: the exercise checks, their stand-ins and the
call-flow picture."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from workshop_labs import plots
from workshop_labs.checks import ExerciseNotSolved, exercise, expect, expect_tensor, passed

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
        raise


def _linear_input_guard(model: nn.Module):
    """Forward pre-hooks that stop a Linear layer fed the wrong last dimension, with a message
    naming the layer, instead of torch's ``mat1 and mat2 shapes cannot be multiplied``."""

    def guard(name: str):
        def check(layer: nn.Linear, args) -> None:
            shape = tuple(args[0].shape)
            if not shape or shape[-1] == layer.in_features:
                return
            flat = (shape[0], math.prod(shape[1:])) if len(shape) > 1 else shape
            fix = (
                f"flatten the input first (nn.Flatten() turns {shape} into {flat})"
                if len(shape) > 2 and flat[1] == layer.in_features
                else f"make its input end in {layer.in_features}, or use in_features={shape[-1]}"
            )
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
    except RuntimeError as error:
        raise ExerciseNotSolved(
            f"{name}(x) with x of shape {tuple(x.shape)} raised RuntimeError: {error}"
        ) from None
    finally:
        for handle in handles:
            handle.remove()


# ----------------------------------------------------------------------------------------------
# What the cells after an unsolved exercise use instead (never the solution: it is hidden until
# the instructor reveals it, and the attendee image ships no solution code)
# ----------------------------------------------------------------------------------------------


class PlainBlock(nn.Module):
    """ResidualNet's stand-in block while Exercise 4 is unsolved: a Linear and a ReLU, with no
    skip connection, so the network still builds, draws and trains."""

    def __init__(self, width):
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, x):
        return torch.relu(self.linear(x))


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


@exercise()
def check_deep_net(cls: object, depth: int = 3) -> None:
    """Exercise 1: DeepNet calls super().__init__() and registers its hidden layers
    (nn.ModuleList, not a list)."""
    model = _instantiate(cls, "DeepNet", depth)
    hidden = unregistered_modules(model)
    for attr, count in hidden.items():
        raise ExerciseNotSolved(
            f"`self.{attr}` is a plain Python {type(getattr(model, attr)).__name__}: its {count} "
            "layers are not registered, so parameters(), the optimizer, .to(device) and "
            f"state_dict() never see them. Wrap it: self.{attr} = nn.ModuleList([...])"
        )
    tensors = len(list(model.parameters()))
    expected = 2 * (depth + 2)
    expect(
        tensors == expected,
        f"DeepNet({depth}) registers {tensors} parameter tensors but its {depth + 2} Linear "
        f"layers have {expected} (a weight and a bias each)",
    )
    out = _run(model, torch.zeros(4, 64), "DeepNet()")
    expect_tensor(out, name="DeepNet()(x)", shape=(4, 10))
    passed(f"all {depth + 2} layers of DeepNet({depth}) are registered: {tensors} tensors")


@exercise()
def check_image_classifier(cls: object) -> None:
    """Exercise 2: forward takes images (batch, 8, 8) and returns logits (batch, 10)."""
    model = _instantiate(cls, "ImageClassifier")
    for batch in (16, 3):
        out = _run(model, torch.zeros(batch, 8, 8), "ImageClassifier()")
        expect(out is not None, "forward returned None: end it with `return` and the logits")
        expect_tensor(
            out, name=f"ImageClassifier()(x) for x of shape ({batch}, 8, 8)", shape=(batch, 10)
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
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        return f"it returned {type(value).__name__}, not a single-number tensor"
    return float(value)


@exercise()
def check_loss_choice(loss_fns: object) -> None:
    """Exercise 3: BCEWithLogitsLoss for one logit and a 0/1 target, CrossEntropyLoss for
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


@exercise(stand_in=lambda: PlainBlock, stand_in_is="a plain block without the skip connection")
def check_residual_block(cls: object, width: int = 8) -> None:
    """Exercise 4: ResidualBlock(width) returns x + ReLU(Linear(x)), its layers registered."""
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
        + ", ".join(f"Linear({m.in_features}, {m.out_features})" for m in linears),
    )
    x = torch.randn(5, width, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = _run(model, x, f"ResidualBlock({width})")
        expect(out is not None, "forward returned None: it must return the block's output")
        expect_tensor(out, name=f"ResidualBlock({width})(x)", shape=(5, width))
        linear = linears[0](x)
        mistakes = {
            "forward returns x unchanged: the block must add its layers' output to its input": x,
            "forward returns only self.layer(x): the skip connection is missing, add the "
            "input x to it": torch.relu(linear),
            "there is no ReLU after the Linear: self.layer must be an nn.Sequential of the "
            "Linear then an nn.ReLU()": x + linear,
            "the ReLU comes after the addition: this block must add x to ReLU(Linear(x)), "
            "which self.layer computes": torch.relu(x + linear),
        }
        for message, value in mistakes.items():
            expect(not torch.allclose(out, value, atol=1e-5), message)
        expect(
            torch.allclose(out, x + torch.relu(linear), atol=1e-5),
            "ResidualBlock(x) is not x + ReLU(Linear(x)): add the input to self.layer's output",
        )
    passed(f"ResidualBlock({width}) adds its input to self.layer's output: the skip connection")


@exercise()
def check_digit_images(cls: object, features: torch.Tensor, labels: torch.Tensor) -> None:
    """Exercise 5: a Dataset whose items are (8×8 float image, int64 label)."""
    expect(cls is not None, "`DigitImages` is None: define the class")
    dataset = cls(features[:100], labels[:100])
    try:
        length = len(dataset)
    except TypeError as error:
        raise ExerciseNotSolved(
            f"len(dataset) failed ({error}): __len__ must return the number of samples as an int"
        ) from None
    expect(
        length == 100,
        f"len(dataset) is {length} but 100 samples were given: __len__ must return "
        "the number of samples, e.g. len(self.labels)",
    )
    item = dataset[7]
    expect(
        isinstance(item, tuple) and len(item) == 2,
        f"dataset[7] returned {type(item).__name__}"
        + (f" of {len(item)} items" if isinstance(item, tuple) else "")
        + ": __getitem__ must return a pair (image, label)",
    )
    image, label = item
    expect_tensor(image, name="dataset[7][0] (the image)", shape=(8, 8), dtype=torch.float32)
    expect(
        torch.equal(image.flatten(), features[7]),
        "dataset[7]'s image is not sample 7: index the features with `index`, then .view(8, 8)",
    )
    expect(
        int(label) == int(labels[7]),
        f"dataset[7]'s label is {int(label)} but sample 7 is a {int(labels[7])}: "
        "return self.labels[index]",
    )
    images, targets = next(iter(DataLoader(dataset, batch_size=10)))
    expect_tensor(images, name="a batch of images from a DataLoader", shape=(10, 8, 8))
    expect_tensor(targets, name="a batch of labels", shape=(10,), dtype=torch.int64)
    passed("DigitImages has the right length and items; a DataLoader batches it to (10, 8, 8)")


@exercise()
def check_train_epoch(train_epoch: Callable) -> None:
    """Exercise 6: one pass over a loader, one step per batch, gradients reset each step."""
    expect(callable(train_epoch), "`train_epoch` is not a function: define it with def")
    generator = torch.Generator().manual_seed(2)
    xs = torch.randn(40, 6, generator=generator)
    ys = torch.randint(0, 3, (40,), generator=generator)
    loader = DataLoader(TensorDataset(xs, ys), batch_size=10)
    model = nn.Linear(6, 3)
    loss_fn = nn.CrossEntropyLoss()
    # lr=0 keeps the weights fixed, so every batch's gradient can be computed in advance.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    fresh = []
    batch_losses = []
    for xb, yb in loader:
        batch_loss = loss_fn(model(xb), yb)
        fresh.append(torch.autograd.grad(batch_loss, model.weight)[0])
        batch_losses.append(batch_loss.item())
    seen: list[torch.Tensor | None] = []
    optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: seen.append(
            None if model.weight.grad is None else model.weight.grad.clone()
        )
    )
    returned = train_epoch(model, loader, optimizer, loss_fn)

    expect(seen, "optimizer.step() was never called: take one step per batch, inside the loop")
    expect(
        len(seen) == len(loader),
        f"optimizer.step() ran {len(seen)} time(s) but the loader has {len(loader)} batches: "
        "call it once per batch, inside the for loop",
    )
    expect(
        all(grad is not None for grad in seen),
        "optimizer.step() found no gradients: call loss.backward() before optimizer.step()",
    )
    for k, grad in enumerate(seen):
        if torch.allclose(grad, fresh[k], atol=1e-6):
            continue
        expect(
            not torch.allclose(grad, sum(fresh[: k + 1]), atol=1e-6),
            f"at batch {k} the gradient was the SUM of the gradients of batches 0..{k}: "
            ".grad accumulates until you reset it. Call optimizer.zero_grad() at the start "
            "of every step",
        )
        raise ExerciseNotSolved(
            f"the gradient at batch {k} is not the gradient of that batch's loss: compute "
            "loss_fn(model(xb), yb) for the current batch, then loss.backward()"
        )
    mean_loss = sum(batch_losses) / len(batch_losses)
    expect(
        isinstance(returned, int | float) and not isinstance(returned, bool),
        f"train_epoch returned {type(returned).__name__}: return the mean batch loss as a float",
    )
    expect(
        math.isclose(float(returned), mean_loss, rel_tol=1e-4),
        f"train_epoch returned {returned:.4f} but the mean of the batch losses is "
        f"{mean_loss:.4f}: add up loss.item() for every batch and divide by len(loader)",
    )
    passed(f"{len(seen)} steps, fresh gradients at every step, mean loss {mean_loss:.3f}")
