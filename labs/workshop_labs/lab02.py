"""Lab 2 · Building neural networks: the exercise checks and the call-flow picture."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from workshop_labs import plots
from workshop_labs.checks import ExerciseNotSolved, expect, expect_tensor, passed

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
# Checks
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


def _run(model: nn.Module, x: torch.Tensor, name: str) -> torch.Tensor:
    try:
        return model(x)
    except RuntimeError as error:
        raise ExerciseNotSolved(
            f"{name}(x) with x of shape {tuple(x.shape)} raised RuntimeError: {error}"
        ) from None


def check_two_layer_net(cls: object) -> None:
    """Exercise 1: TwoLayerNet = Linear(64, 32) → ReLU → Linear(32, 10), with super().__init__()."""
    model = _instantiate(cls, "TwoLayerNet")
    n_params = sum(p.numel() for p in model.parameters())
    expected = 64 * 32 + 32 + 32 * 10 + 10
    expect(
        n_params == expected,
        f"TwoLayerNet has {n_params:,} parameters but Linear(64, 32) + Linear(32, 10) have "
        f"{expected:,}: assign both layers to self in __init__",
    )
    out = _run(model, torch.zeros(5, 64), "TwoLayerNet()")
    expect_tensor(out, name="TwoLayerNet()(x)", shape=(5, 10))
    passed("TwoLayerNet calls super().__init__(), registers its 2 layers and returns (batch, 10)")


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


def check_deep_net(cls: object, depth: int = 3) -> None:
    """Exercise 2: DeepNet's hidden layers must be registered (nn.ModuleList, not a list)."""
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


def check_image_classifier(cls: object) -> None:
    """Exercise 3: forward takes images (batch, 8, 8) and returns logits (batch, 10)."""
    model = _instantiate(cls, "ImageClassifier")
    for batch in (16, 3):
        out = _run(model, torch.zeros(batch, 8, 8), "ImageClassifier()")
        expect(out is not None, "forward returned None: end it with `return` and the logits")
        expect_tensor(
            out, name=f"ImageClassifier()(x) for x of shape ({batch}, 8, 8)", shape=(batch, 10)
        )
    passed("ImageClassifier turns (batch, 8, 8) images into (batch, 10) logits, for any batch")


def check_digit_images(cls: object, features: torch.Tensor, labels: torch.Tensor) -> None:
    """Exercise 4: a Dataset whose items are (8×8 float image, int64 label)."""
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


def check_train_epoch(train_epoch: Callable) -> None:
    """Exercise 5: one pass over a loader, one step per batch, gradients reset each step."""
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
        loss = loss_fn(model(xb), yb)
        fresh.append(torch.autograd.grad(loss, model.weight)[0])
        batch_losses.append(loss.item())
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
