"""Lab 1 · Intro to PyTorch: the exercise checks (each with the stand-in later cells use when
the exercise is not solved yet) and the lab's own figures."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from workshop_labs import plots
from workshop_labs.checks import calling, exercise, expect, expect_tensor, passed

# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------

CELL = 0.55  # inches per tensor element in the grid pictures
_OPERATOR_NAMES = {"+": torch.add, "-": torch.sub, "*": torch.mul, "/": torch.div}


def _as_grid(tensor: torch.Tensor) -> torch.Tensor:
    """A 0-, 1- or 2-D tensor as rows × columns (1-D is one row, as broadcasting sees it)."""
    if tensor.dim() > 2:
        raise ValueError(f"the picture draws tensors with at most 2 dimensions, got {tensor.dim()}")
    return tensor.detach().cpu().reshape(1, -1) if tensor.dim() < 2 else tensor.detach().cpu()


def _number(value: float, is_float: bool) -> str:
    """Up to three decimals without trailing zeros, so a row of 0.125, 0.125, 0.25, 0.5 reads
    as the exact values that sum to 1 (two fixed decimals printed 0.12 and made it 0.99)."""
    if not is_float:
        return f"{int(value)}"
    if abs(value) >= 10:
        return f"{value:.3g}"
    text = f"{value:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text  # 1.0, not "1.": the cell holds a float


def _draw_grid(
    ax: Axes,
    values: torch.Tensor,
    *,
    color: str,
    is_float: bool,
    original: torch.Tensor | None = None,
) -> None:
    """Draw a 2-D grid of numbers; cells where ``original`` is False are faded stretched copies."""
    rows, cols = values.shape
    for r in range(rows):
        for c in range(cols):
            solid = original is None or bool(original[r, c])
            ax.add_patch(
                Rectangle(
                    (c, rows - 1 - r),
                    1,
                    1,
                    facecolor=color,
                    alpha=0.55 if solid else 0.15,
                    edgecolor="black" if solid else "0.55",
                    linestyle="-" if solid else "--",
                    linewidth=1.2,
                )
            )
            ax.text(
                c + 0.5,
                rows - 0.5 - r,
                _number(float(values[r, c]), is_float),
                ha="center",
                va="center",
                fontsize=10,
                color="black" if solid else "0.4",
            )
    ax.set_xlim(-0.05, cols + 0.05)
    ax.set_ylim(-0.05, rows + 0.05)
    ax.set_aspect("equal")
    ax.axis("off")


def _shape_text(tensor: torch.Tensor) -> str:
    dims = tuple(tensor.shape)
    return "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"


def tensor_grids(tensors: Mapping[str, torch.Tensor], *, title: str) -> Figure:
    """Each tensor (at most 2-D) as a grid of its numbers, titled with its shape and dtype."""
    grids = {name: _as_grid(t) for name, t in tensors.items()}
    widths = [max(grid.shape[1], 2) for grid in grids.values()]
    height = max(grid.shape[0] for grid in grids.values())
    fig, axes = plots.figure(
        1,
        len(grids),
        figsize=(max(6.0, CELL * sum(widths) + 1.2 * len(grids)), CELL * height + 1.6),
        squeeze=False,
        gridspec_kw={"width_ratios": widths},
    )
    for ax, (name, grid), (color, tensor) in zip(
        axes[0], grids.items(), zip(plots.PALETTE, tensors.values(), strict=False), strict=True
    ):
        _draw_grid(ax, grid, color=color, is_float=tensor.is_floating_point())
        ax.set_title(f"{name}\nshape {_shape_text(tensor)} · {tensor.dtype}", fontsize=11)
        ax.set_ylim(-0.05, height + 0.05)
    fig.suptitle(title, fontweight="bold")
    return plots.show(fig)


def _alignment_lines(names: list[str], tensors: list[torch.Tensor]) -> str:
    """Shapes written right-aligned, as broadcasting compares them (a missing dim is '·')."""
    ndim = max(t.dim() for t in tensors)
    label_width = max(len(name) for name in names)
    dim_width = max(len(str(d)) for t in tensors for d in t.shape)
    lines = []
    for name, tensor in zip(names, tensors, strict=True):
        dims = ["·"] * (ndim - tensor.dim()) + [str(d) for d in tensor.shape]
        lines.append(f"{name:>{label_width}} : " + "  ".join(d.rjust(dim_width) for d in dims))
    lines.insert(2, " " * (label_width + 3) + "─" * ((dim_width + 2) * ndim - 2))
    return "\n".join(lines)


def broadcast_picture(
    a: torch.Tensor, b: torch.Tensor, *, op: str = "+", names: tuple[str, str] = ("a", "b")
) -> Figure:
    """How ``a op b`` lines up the shapes and stretches size-1 (or missing) dimensions.

    Solid cells are the numbers stored in memory; faded dashed cells are the copies
    broadcasting pretends are there (no memory is used for them).
    """
    if op not in _OPERATOR_NAMES:
        raise ValueError(f"op={op!r}: choose one of {', '.join(_OPERATOR_NAMES)}")
    result = _OPERATOR_NAMES[op](a, b)
    grid_a, grid_b = _as_grid(a), _as_grid(b)
    wide_a, wide_b = torch.broadcast_tensors(grid_a, grid_b)
    rows, cols = _as_grid(result).shape
    stored_a = torch.zeros(rows, cols, dtype=torch.bool)
    stored_a[: grid_a.shape[0], : grid_a.shape[1]] = True
    stored_b = torch.zeros(rows, cols, dtype=torch.bool)
    stored_b[: grid_b.shape[0], : grid_b.shape[1]] = True

    name_a, name_b = names
    expression = f"{name_a} {op} {name_b}"
    text_width = 2.2 + 0.09 * len(expression)
    fig, axes = plots.figure(
        1,
        4,
        figsize=(text_width + 3 * (CELL * cols + 0.9), CELL * rows + 2.0),
        gridspec_kw={"width_ratios": [text_width / CELL, cols, cols, cols], "wspace": 0.12},
    )
    text_ax, ax_a, ax_b, ax_result = axes
    text_ax.axis("off")
    alignment = _alignment_lines([name_a, name_b, expression], [a, b, result])
    text_ax.text(
        0.0,
        0.62,
        "shapes, right-aligned:\n\n" + alignment,
        family="monospace",
        fontsize=11,
        va="center",
        transform=text_ax.transAxes,
    )
    text_ax.text(
        0.0,
        0.05,
        "each pair of dims must be\nequal, 1 or missing (·);\n1 and · are stretched",
        fontsize=9.5,
        color="0.3",
        va="bottom",
        transform=text_ax.transAxes,
    )
    is_float = result.is_floating_point()
    _draw_grid(ax_a, wide_a, color=plots.PALETTE[0], is_float=is_float, original=stored_a)
    _draw_grid(ax_b, wide_b, color=plots.PALETTE[1], is_float=is_float, original=stored_b)
    _draw_grid(ax_result, _as_grid(result), color=plots.PALETTE[2], is_float=is_float)
    ax_a.set_title(f"{name_a} {_shape_text(a)}\nstretched to ({rows}, {cols})", fontsize=11)
    ax_b.set_title(f"{name_b} {_shape_text(b)}\nstretched to ({rows}, {cols})", fontsize=11)
    ax_result.set_title(f"{expression}\nshape {_shape_text(result)}", fontsize=11)
    for left, symbol in ((ax_a, op), (ax_b, "=")):
        left.text(cols + 0.35, rows / 2, symbol, fontsize=20, ha="center", va="center")
    fig.suptitle(
        f"Broadcasting {expression}: solid cells are stored, faded cells are stretched copies",
        fontweight="bold",
    )
    return plots.show(fig)


def digit_grid(
    images: torch.Tensor,
    labels: torch.Tensor,
    predictions: torch.Tensor | None = None,
    *,
    title: str,
    columns: int = 8,
) -> Figure:
    """Flattened 8×8 digits as images, titled with the label (and the prediction, red if wrong)."""
    images = images.detach().cpu().reshape(-1, 8, 8)
    rows = math.ceil(len(images) / columns)
    fig, axes = plots.figure(rows, columns, figsize=(1.25 * columns, 1.45 * rows + 0.6))
    for i, ax in enumerate(np.atleast_1d(axes).flat):
        ax.axis("off")
        if i >= len(images):
            continue
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=1)
        if predictions is None:
            ax.set_title(f"label {int(labels[i])}", fontsize=10, fontweight="normal")
        else:
            right = int(predictions[i]) == int(labels[i])
            ax.set_title(
                f"guess {int(predictions[i])}" + ("" if right else f" (is {int(labels[i])})"),
                fontsize=10,
                fontweight="normal",
                color="black" if right else "#C44E52",
            )
    fig.suptitle(title, fontweight="bold")
    return plots.show(fig)


def weight_images(pictures: torch.Tensor) -> Figure:
    """One 8×8 picture per class score (the rows of a Linear(64, 10) weight, reshaped to
    (10, 8, 8) by the lab), in red and blue: what each class score looks for."""
    if pictures.dim() != 3:
        raise ValueError(
            f"weight_images draws (classes, height, width) pictures, got shape "
            f"{tuple(pictures.shape)}: reshape the weight to (10, 8, 8) first"
        )
    pictures = pictures.detach().cpu().numpy()
    limit = float(abs(pictures).max())
    fig, axes = plots.figure(1, len(pictures), figsize=(1.3 * len(pictures) + 0.8, 2.3))
    for digit, ax in enumerate(axes):
        image = ax.imshow(pictures[digit], cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"score {digit}", fontsize=10, fontweight="normal")
        ax.axis("off")
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="weight")
    fig.suptitle(
        "What the trained weights look for: red pixels raise a class score, blue lower it",
        fontweight="bold",
    )
    return plots.show(fig)


def confusion_picture(confusion: torch.Tensor, *, title: str) -> Figure:
    """A confusion matrix as a grid of counts: row = the true class, column = the guess. The
    diagonal (right guesses) is green, a mistake red, the redder the more often it happened."""
    counts = confusion.detach().cpu()
    if counts.dim() != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(
            f"a confusion matrix is square (classes × classes), got shape {tuple(counts.shape)}"
        )
    classes = counts.shape[0]
    off_diagonal = counts.clone()
    off_diagonal.fill_diagonal_(0)
    worst = max(int(off_diagonal.max()), 1)
    fig, ax = plots.figure(figsize=(0.62 * classes + 2.2, 0.55 * classes + 1.6))
    for row in range(classes):
        for col in range(classes):
            count = int(counts[row, col])
            if row == col:
                color, alpha = plots.PALETTE[2], 0.55
            else:
                color, alpha = plots.PALETTE[3], (0.15 + 0.65 * count / worst) if count else 0
            ax.add_patch(
                Rectangle(
                    (col, classes - 1 - row), 1, 1, facecolor=color, alpha=alpha, edgecolor="white"
                )
            )
            ax.text(
                col + 0.5,
                classes - 0.5 - row,
                str(count),
                ha="center",
                va="center",
                fontsize=9,
                color="black" if count else "0.6",
            )
    ax.set_xlim(0, classes)
    ax.set_ylim(0, classes)
    ax.set_aspect("equal")
    ax.grid(False)
    ax.set_xticks([c + 0.5 for c in range(classes)], [str(c) for c in range(classes)])
    ax.set_yticks([classes - 0.5 - r for r in range(classes)], [str(r) for r in range(classes)])
    ax.tick_params(length=0)
    ax.set_xlabel("the model's guess (column)")
    ax.set_ylabel("the true class (row)")
    ax.set_title(title, fontsize=11)
    return plots.show(fig)


# ----------------------------------------------------------------------------------------------
# Exercise 1 · shape, dtype, device
# ----------------------------------------------------------------------------------------------


@exercise()
def check_batch(batch: object, device: torch.device | str) -> None:
    """`batch`: random float32 numbers in [0, 1) with shape (32, 64) on the lab's device."""
    batch = expect_tensor(batch, name="batch", shape=(32, 64))
    expect(
        batch.is_floating_point(),
        f"`batch` has dtype {batch.dtype}: pixels need a floating-point dtype, "
        "make it with torch.rand (which gives float32)",
    )
    expect(
        batch.dtype == torch.float32,
        f"`batch` has dtype {batch.dtype} but the exercise needs torch.float32, the default "
        "dtype of neural networks: drop dtype=... or pass dtype=torch.float32",
    )
    expect(
        bool(((batch >= 0) & (batch < 1)).all()),
        "`batch` has values outside [0, 1): torch.randn draws from a bell curve around 0; "
        "torch.rand draws uniformly from [0, 1)",
    )
    expect(
        batch.unique().numel() > 1,
        "`batch` holds one repeated value: the exercise needs random numbers (torch.rand)",
    )
    expect(
        not bool((batch == batch[:1]).all()),
        "every row of `batch` is the same image: one random row was repeated 32 times (expand "
        "or repeat). Draw all 32 × 64 numbers at once: torch.rand(32, 64)",
    )
    wanted = torch.device(device)
    expect(
        batch.device.type == wanted.type,
        f"`batch` is on {batch.device.type} but `device` is {wanted.type}: create it there with "
        "torch.rand(..., device=device), or move it with .to(device)",
    )
    passed(f"`batch` is a float32 tensor of shape (32, 64) on {torch.device(device).type}")


# ----------------------------------------------------------------------------------------------
# Exercise 2 · broadcasting
# ----------------------------------------------------------------------------------------------


@exercise()
def check_row_normalised(probabilities: object, counts: torch.Tensor) -> None:
    """`probabilities`: `counts` divided by each row's total, so that every row sums to 1."""
    probabilities = expect_tensor(probabilities, name="probabilities", shape=tuple(counts.shape))
    expect(
        probabilities.is_floating_point(),
        f"`probabilities` has dtype {probabilities.dtype}: use true division `/`, not `//`, "
        "so the fractions are kept",
    )
    counts = counts.to(probabilities.device, torch.float32)
    probabilities = probabilities.float()
    right = counts / counts.sum(dim=1, keepdim=True)
    if torch.allclose(probabilities, counts / counts.sum(dim=1)):
        raise_message = (
            "each COLUMN was divided by a row total: counts.sum(dim=1) has shape "
            f"({len(counts)},), and broadcasting lines it up with the LAST dimension (the "
            "columns). Keep the summed dimension: counts.sum(dim=1, keepdim=True) has shape "
            f"({len(counts)}, 1) and stretches across each row"
        )
        expect(False, raise_message)
    expect(
        not torch.allclose(probabilities, counts / counts.sum(dim=0, keepdim=True)),
        "the columns sum to 1, not the rows: dim=0 sums down each column; "
        "sum across each row with dim=1",
    )
    row_sums = probabilities.sum(dim=1)
    expect(
        torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-4),
        f"the rows of `probabilities` sum to {[round(float(s), 3) for s in row_sums]}, "
        "not 1: divide every count by the total of its own row",
    )
    expect(
        not torch.allclose(probabilities, torch.softmax(counts, dim=1), atol=1e-5),
        "that is a softmax: it makes every row sum to 1 too, but from exp(count), so the "
        "fractions are not count / row total. Divide: counts / counts.sum(dim=1, keepdim=True)",
    )
    expect(
        torch.allclose(probabilities, right, atol=1e-5),
        "each row sums to 1 but the fractions are not counts / row total",
    )
    passed("every row of `probabilities` sums to 1: the (4, 1) row totals stretched across")


# ----------------------------------------------------------------------------------------------
# Exercise 3 · stack, unsqueeze: a batch of pictures in the (N, C, H, W) layout
# ----------------------------------------------------------------------------------------------


def filled_digit_batch(pictures: list[torch.Tensor]) -> torch.Tensor:
    """The (N, 1, H, W) batch the cells below Exercise 3 use while it is not solved: filled in
    picture by picture (the exercise's way, in one line, is its hidden solution)."""
    height, width = pictures[0].shape
    batch = pictures[0].new_zeros((len(pictures), 1, height, width))
    for index, picture in enumerate(pictures):
        batch[index, 0] = picture
    return batch


@exercise(stand_in=filled_digit_batch, stand_in_is="the pictures copied one by one into a batch")
def check_digit_batch(digit_batch: object, pictures: list[torch.Tensor]) -> None:
    """`digit_batch`: the pictures stacked into one (N, 1, H, W) tensor, each picture whole."""
    count = len(pictures)
    height, width = pictures[0].shape
    wanted = (count, 1, height, width)
    expect(
        not isinstance(digit_batch, list | tuple),
        f"`digit_batch` is still a Python {type(digit_batch).__name__}: torch.stack(pictures) "
        "turns a list of equal-shaped tensors into one tensor with a new first dimension",
    )
    digit_batch = expect_tensor(digit_batch, name="digit_batch")
    shape = tuple(digit_batch.shape)
    expect(
        shape[:1] != (count * height,),
        f"`digit_batch` has shape {shape}: torch.cat joined the {count} pictures along their "
        f"EXISTING first dimension ({count} × {height} rows). torch.stack puts them in a NEW "
        f"first dimension: torch.stack(pictures) has shape ({count}, {height}, {width})",
    )
    expect(
        shape != (count, height, width),
        f"`digit_batch` has shape {shape}: the batch is there but the channel dimension is "
        f"missing. Add one of size 1 at position 1 with .unsqueeze(1) → {wanted}",
    )
    expect(
        shape != (1, count, height, width),
        f"`digit_batch` has shape {shape}: unsqueeze(0) put the new dimension in FRONT of the "
        f"batch, which reads as 1 picture with {count} channels. The channel comes after the "
        f"batch: .unsqueeze(1) → {wanted}",
    )
    expect(
        shape != (count, height, width, 1),
        f"`digit_batch` has shape {shape}: that is channels LAST (N, H, W, C), how image files "
        "store pixels. PyTorch's image layers want channels first (N, C, H, W): .unsqueeze(1), "
        "not .unsqueeze(-1)",
    )
    expect(
        shape == wanted,
        f"`digit_batch` has shape {shape} but the exercise needs {wanted}: stack the pictures "
        "along dim=0 (the default), then .unsqueeze(1) inserts the channel at position 1",
    )
    on_device = [picture.to(digit_batch.device).float() for picture in pictures]
    for index in range(count):
        got = digit_batch[index, 0].float()
        if torch.allclose(got, on_device[index]):
            continue
        other = [j for j, picture in enumerate(on_device) if torch.allclose(got, picture)]
        expect(
            not other,
            f"digit_batch[{index}, 0] is pictures[{other[0] if other else 0}], not "
            f"pictures[{index}]: keep every picture, in order, stacking the list itself: "
            "torch.stack(pictures)",
        )
    expect(
        all(
            torch.allclose(digit_batch[index, 0].float(), on_device[index])
            for index in range(count)
        ),
        "the shape is right but the pixels are scrambled: digit_batch[i, 0] is not pictures[i]. "
        "Stack along dim=0 (the default) so every picture stays whole; reshape and view only "
        "regroup the numbers in the order they lie in memory, they cannot undo a stack along "
        "another dimension",
    )
    passed(f"`digit_batch` has shape {wanted}: {count} pictures, 1 channel, {height}×{width}")


# ----------------------------------------------------------------------------------------------
# Exercise 4 · NumPy interop
# ----------------------------------------------------------------------------------------------


@exercise()
def check_shares_memory(image: object, image_np: np.ndarray) -> None:
    """`image`: a tensor that uses the same memory as the NumPy array `image_np` (no copy)."""
    image = expect_tensor(image, name="image", shape=image_np.shape)
    expect(
        image.device.type == "cpu",
        f"`image` is on {image.device.type}: NumPy arrays live in CPU memory, so a tensor that "
        "shares their memory must stay on the CPU",
    )
    expect(
        image.data_ptr() == image_np.ctypes.data,
        "`image` is a copy of `image_np`, not a view of the same memory: torch.tensor(...) "
        "always copies (and so does changing the dtype); torch.from_numpy(image_np) wraps the "
        "same memory",
    )
    expect(
        torch.equal(image, torch.from_numpy(image_np)),
        "`image` uses the memory of `image_np` but shows other numbers (transposed, or read in "
        "another order): wrap the array as it is, torch.from_numpy(image_np)",
    )
    passed("`image` and `image_np` share memory: a change to one shows up in the other")


# ----------------------------------------------------------------------------------------------
# Exercise 5 · autograd
# ----------------------------------------------------------------------------------------------


@exercise()
def check_gradient(w: object, x: torch.Tensor, y_true: torch.Tensor) -> None:
    """`w.grad`: d/dw of the mean squared error ((w * x - y_true) ** 2).mean()."""
    w = expect_tensor(w, name="w", shape=())
    expect(
        w.requires_grad,
        "`w.requires_grad` is False, so autograd recorded nothing and there is nothing to "
        "differentiate: create it with torch.tensor(0.5, requires_grad=True)",
    )
    expect(
        w.is_leaf,
        f"`w` was made by an operation (grad_fn={type(w.grad_fn).__name__}), so it is not a "
        "leaf and autograd does not keep its .grad: create it in one call, "
        "torch.tensor(0.5, requires_grad=True) (add device=... there, not a .to() after)",
    )
    expect(
        w.grad is not None,
        "`w.grad` is None: autograd only fills .grad when you call loss.backward()",
    )
    probe = w.detach().clone().requires_grad_(True)
    ((probe * x - y_true) ** 2).mean().backward()
    expected = float(probe.grad)
    got = float(w.grad)
    expect(
        not math.isclose(got, 2 * expected, rel_tol=1e-4),
        f"`w.grad` is {got:g}, twice the right value {expected:g}: backward() ran twice and "
        "gradients ACCUMULATE (they are added to .grad). Reset with w.grad = None (an "
        "optimizer does it with zero_grad()), or create w again before the backward pass",
    )
    expect(
        not math.isclose(got, len(x) * expected, rel_tol=1e-4),
        f"`w.grad` is {got:g}, {len(x)}× the right value {expected:g}: the loss is the MEAN of "
        f"the squared errors (.mean()), not their sum (or backward() ran {len(x)} times: "
        "gradients accumulate)",
    )
    expect(
        math.isclose(got, expected, rel_tol=1e-4),
        f"`w.grad` is {got:g} but d(loss)/dw is {expected:g}: compute "
        "loss = ((w * x - y_true) ** 2).mean() from this `w`, then call loss.backward()",
    )
    direction = "grows" if got < 0 else "shrinks"
    passed(f"w.grad = {got:g}: the loss falls if w {direction}, and gradient descent moves it so")


# ----------------------------------------------------------------------------------------------
# Exercise 6 · one training step
# ----------------------------------------------------------------------------------------------


def _probe_problem() -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random numbers alone
        model = nn.Linear(6, 3)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    xb = torch.randn(16, 6, generator=generator)
    yb = torch.randint(0, 3, (16,), generator=generator)
    return model, xb, yb


def _fresh_gradients(model: nn.Module, loss_fn, xb, yb) -> list[torch.Tensor]:
    params = list(model.parameters())
    return list(torch.autograd.grad(loss_fn(model(xb), yb), params))


def walkthrough_train_step(model, optimizer, loss_fn, xb, yb) -> float:
    """The training step the loop uses while Exercise 6 is not solved: the five lines exactly
    as the walk-through above the exercise shows them."""
    optimizer.zero_grad()
    logits = model(xb)
    loss = loss_fn(logits, yb)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _steps_back(
    before: list[torch.Tensor], after: list[torch.Tensor], gradients: list[torch.Tensor], lr: float
) -> bool:
    """True when every parameter went from ``before`` to ``after`` by ``-lr × gradient``."""
    return all(
        torch.allclose(a, b - lr * g, atol=1e-5)
        for b, a, g in zip(before, after, gradients, strict=True)
    )


def _parameters(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


@exercise(
    stand_in=lambda: walkthrough_train_step,
    stand_in_is="the five lines of the walk-through above, as they are",
)
def check_train_step(train_step: Callable) -> None:
    """`train_step(model, optimizer, loss_fn, xb, yb)`: zero_grad, forward, loss, backward, step.

    Judged by what the parameters do over two calls, so every order that resets the gradients
    once per step passes (zero_grad first, or last as older tutorials wrote it)."""
    expect(callable(train_step), "`train_step` is not a function: define it with def")
    model, xb, yb = _probe_problem()
    loss_fn = nn.CrossEntropyLoss()
    learning_rate = 0.1
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    params = list(model.parameters())
    before = _parameters(model)
    with torch.no_grad():
        expected_loss = loss_fn(model(xb), yb).item()
    first_grads = _fresh_gradients(model, loss_fn, xb, yb)
    backward_ran = []
    hooks = [p.register_hook(lambda grad: backward_ran.append(True)) for p in params]
    with calling("train_step(model, optimizer, loss_fn, xb, yb)"):
        returned = train_step(model, optimizer, loss_fn, xb, yb)
    for hook in hooks:
        hook.remove()
    after_first = _parameters(model)

    expect(
        backward_ran,
        "no gradients were computed: call loss.backward() after computing the loss",
    )
    moved = any(not torch.equal(b, a) for b, a in zip(before, after_first, strict=True))
    grads_present = all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params)
    expect(
        moved or grads_present,
        "the gradients were wiped before the update: optimizer.zero_grad() goes at the "
        "START of the step (or after optimizer.step()), never between loss.backward() and "
        "optimizer.step()",
    )
    expect(
        moved,
        "the parameters did not change: call optimizer.step() AFTER loss.backward() "
        "(a step before backward has no gradients to use yet)",
    )
    expect(
        not _steps_back(before, after_first, first_grads, 2 * learning_rate),
        "the parameters moved twice as far as one step: optimizer.step() ran twice (or "
        "loss.backward() did, before one step). Call each once per training step",
    )
    expect(
        _steps_back(before, after_first, first_grads, learning_rate),
        "the parameters moved, but not by -lr × gradient of this batch's loss: compute the "
        "loss of model(xb) against yb, call loss.backward(), then optimizer.step() once",
    )
    expect(
        isinstance(returned, int | float) and not isinstance(returned, bool),
        f"train_step returned {type(returned).__name__}, not a Python number: "
        "return the loss as a plain Python float (.item()), which you can store and plot",
    )
    expect(
        math.isclose(float(returned), expected_loss, rel_tol=1e-4),
        f"train_step returned {returned:g} but this batch's loss was {expected_loss:g}: "
        "return the .item() of the very loss you called backward() on, computed before the step",
    )

    # A second step shows whether the first step's gradient was still in .grad.
    second_grads = _fresh_gradients(model, loss_fn, xb, yb)
    with calling("train_step(model, optimizer, loss_fn, xb, yb)"):
        train_step(model, optimizer, loss_fn, xb, yb)
    after_second = _parameters(model)
    summed = [g1 + g2 for g1, g2 in zip(first_grads, second_grads, strict=True)]
    expect(
        not _steps_back(after_first, after_second, summed, learning_rate),
        "gradients ACCUMULATE: the second step used this batch's gradient PLUS the previous "
        "one, still in .grad. Call optimizer.zero_grad() once per step (at its start)",
    )
    expect(
        _steps_back(after_first, after_second, second_grads, learning_rate),
        "the second step did not move the parameters by -lr × that batch's gradient alone: "
        "zero_grad(), forward, loss, backward(), step(), once each per call",
    )
    passed("train_step: zero_grad → forward → loss → backward → step, and returns the loss")


# ----------------------------------------------------------------------------------------------
# Exercise 7 · precision and recall from the confusion matrix
# ----------------------------------------------------------------------------------------------


def _per_class(value: object, name: str, classes: int) -> torch.Tensor:
    """``value`` as a 1-D tensor of one number per class (a list or an array is fine too)."""
    expect(value is not None, f"`{name}` is None: replace the None with your answer")
    if not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError):
            expect(False, f"`{name}` is a {type(value).__name__}, not a tensor of numbers")
    assert isinstance(value, torch.Tensor)
    expect(
        value.dim() == 1,
        f"`{name}` has shape {tuple(value.shape)}: it needs one number per class, shape "
        f"({classes},)",
    )
    expect(
        len(value) != classes - 1,
        f"`{name}` has {classes - 1} values, one short: the classes are 0 to {classes - 1}, "
        f"{classes} of them (range({classes}) starts at 0)",
    )
    expect(
        len(value) == classes,
        f"`{name}` has {len(value)} values but there are {classes} classes: one per class",
    )
    expect(
        value.is_floating_point(),
        f"`{name}` has dtype {value.dtype}: `//` (or an integer dtype) rounds every fraction "
        "down to 0 or 1. Divide with `/`",
    )
    return value.detach().cpu().double()


def _same(got: torch.Tensor, want: torch.Tensor) -> bool:
    return torch.allclose(got, want, atol=1e-4, equal_nan=True)


def _explain_per_class(
    got: torch.Tensor, name: str, confusion: torch.Tensor, right: torch.Tensor, swapped_name: str
) -> None:
    """Raise the reason ``got`` is not ``right``: the mistakes a beginner makes."""
    correct = confusion.diagonal()
    other = correct / confusion.sum(dim=1 if name == "precision" else 0)
    divides_by = "COLUMN" if name == "precision" else "ROW"
    of_what = "everything guessed k" if name == "precision" else "every digit that is k"
    expect(
        not _same(got, other),
        f"`{name}` holds the {swapped_name}: rows are the TRUE class, columns the GUESS. "
        f"{name.capitalize()} of class k divides the diagonal by its {divides_by} total "
        f"({of_what})",
    )
    expect(
        not _same(got, correct / confusion.sum()),
        f"`{name}` divides by the number of ALL digits: that only splits the accuracy across "
        f"the classes. Divide each diagonal count by its {divides_by} total ({of_what})",
    )
    expect(
        not _same(got, right * 100),
        f"`{name}` is in percent: give fractions between 0 and 1",
    )
    expect(
        not any(_same(got, right.roll(shift)) for shift in (1, -1)),
        f"`{name}` is shifted by one class: {name}[k] must be class k's, and the classes "
        "count from 0",
    )
    expect(
        _same(got, right),
        f"`{name}` is not the diagonal count divided by the {divides_by} total ({of_what})",
    )


@exercise()
def check_precision_recall(answer: object, confusion: torch.Tensor) -> None:
    """`(precision, recall)`: per class, the diagonal of `confusion` divided by the column
    totals (everything guessed k) and by the row totals (every true k)."""
    expect(
        isinstance(answer, tuple) and len(answer) == 2,
        "pass the two answers as (precision, recall)",
    )
    confusion = confusion.detach().cpu().double()
    classes = len(confusion)
    correct = confusion.diagonal()
    right_precision = correct / confusion.sum(dim=0)
    right_recall = correct / confusion.sum(dim=1)
    precision, recall = (
        _per_class(value, name, classes)
        for value, name in zip(answer, ("precision", "recall"), strict=True)
    )
    if not _same(precision, right_precision):
        _explain_per_class(precision, "precision", confusion, right_precision, "recall")
    if not _same(recall, right_recall):
        _explain_per_class(recall, "recall", confusion, right_recall, "precision")
    lowest = int(right_recall.nan_to_num(nan=2.0).argmin())
    passed(
        f"precision and recall per class; the lowest recall is class {lowest}'s "
        f"({right_recall[lowest]:.2f}): its row shows what it was taken for"
    )
