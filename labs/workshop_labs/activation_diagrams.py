"""Lab 5's pictures of where activations sit in a network, drawn from the live models.

- ``where_activations_go``: each model's layers in forward order, its activations drawn
  between them, and the loss it is trained with; says what the loss expects as input.
- ``decision_boundaries``: the class each trained 2-D classifier predicts at every point of
  the plane, with the boundary between the classes. The lab's cell does the training; this
  only draws.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from torch import nn

from workshop_labs.diagrams import ACTIVATION_MODULES, KIND_COLOURS, layer_table
from workshop_labs.plots import PALETTE, figure, show

# ---------------------------------------------------------------------------------------------
# Where activations go
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LossInput:
    """What a loss expects from the model's last layer."""

    name: str  # the module's name, also for the functional form
    takes: str  # what the last layer must hand it
    inside: str  # what the loss applies itself ("" when nothing)
    readout: str  # how to read probabilities at prediction time
    ends_with: type | None = None  # the activation the model itself must end with, if any
    instead: str = ""  # the better choice, where there is one


_CROSS_ENTROPY = _LossInput(
    "CrossEntropyLoss", "logits", "softmax", "probabilities: logits.softmax(dim=1)"
)
_BCE_WITH_LOGITS = _LossInput(
    "BCEWithLogitsLoss",
    "one logit",
    "sigmoid",
    "probability: torch.sigmoid(logit), the one place a sigmoid belongs",
)
LOSS_INPUTS = {
    "CrossEntropyLoss": _CROSS_ENTROPY,
    "cross_entropy": _CROSS_ENTROPY,
    "BCEWithLogitsLoss": _BCE_WITH_LOGITS,
    "binary_cross_entropy_with_logits": _BCE_WITH_LOGITS,
    "NLLLoss": _LossInput(
        "NLLLoss", "log-probabilities", "", "probabilities: output.exp()", nn.LogSoftmax
    ),
    "BCELoss": _LossInput(
        "BCELoss",
        "a probability",
        "",
        "probability: the output itself",
        nn.Sigmoid,
        "BCEWithLogitsLoss without the Sigmoid is the stable choice",
    ),
}
# Activations called as functions in forward() (diagrams.layer_table names them F.relu, ...).
_ACTIVATION_FUNCTIONS = {"relu", "leaky_relu", "sigmoid", "tanh", "gelu", "silu", "elu"}
_OK, _WRONG = PALETTE[2], PALETTE[3]


def _loss_input(loss_fn: nn.Module | Callable) -> tuple[str, _LossInput]:
    """The loss as the lab's code names it, and what it expects."""
    if isinstance(loss_fn, nn.Module):
        key, shown = type(loss_fn).__name__, f"nn.{type(loss_fn).__name__}()"
    else:
        key = getattr(loss_fn, "__name__", type(loss_fn).__name__)
        shown = f"F.{key}"
    if key not in LOSS_INPUTS:
        raise ValueError(
            f"cannot tell what {shown} expects: give one of {', '.join(sorted(LOSS_INPUTS))}"
        )
    return shown, LOSS_INPUTS[key]


@dataclass
class _Part:
    name: str  # the module's name in the model, or how forward() calls a function
    label: str  # the module's type, or the function call
    output_shape: tuple[int, ...] | None
    params: int
    is_activation: bool


def _parts(model: nn.Module, example_input: torch.Tensor) -> list[_Part]:
    modules = dict(model.named_modules())
    parts = []
    for row in layer_table(model, example_input):
        module = modules.get(row["name"])
        if module is None:  # a function called in forward(): "F.relu", "x.view()", ...
            label = row["name"]
            is_activation = label.split(".")[-1].strip("()") in _ACTIVATION_FUNCTIONS
        else:
            label, is_activation = row["type"], isinstance(module, ACTIVATION_MODULES)
        parts.append(_Part(row["name"], label, row["output shape"], row["params"], is_activation))
    return parts


def _verdicts(parts: list[_Part], loss: _LossInput) -> list[tuple[bool, str]]:
    """(right?, sentence) about each place an activation may go, read off the model."""
    layers = [i for i, part in enumerate(parts) if part.params]
    if not layers:
        raise ValueError("the model has no layer with weights")
    verdicts = []
    before = [p.label for p in parts[: layers[0]] if p.is_activation]
    if before:
        verdicts.append((False, f"{before[0]} before the first layer: it bends nothing yet"))
    gaps = list(zip(layers, layers[1:], strict=False))
    missing = [(a, b) for a, b in gaps if not any(p.is_activation for p in parts[a + 1 : b])]
    for a, b in missing:
        verdicts.append(
            (
                False,
                f"no activation between {parts[a].name} and {parts[b].name}: "
                "the two collapse into one linear layer",
            )
        )
    if gaps and not missing:
        verdicts.append((True, f"an activation between every two of the {len(layers)} layers"))
    after = [p for p in parts[layers[-1] + 1 :] if p.is_activation]
    inside = f" ({loss.inside} is inside it)" if loss.inside else ""
    if loss.ends_with is not None:
        wanted = loss.ends_with.__name__
        right = len(after) == 1 and after[0].label == wanted
        verdicts.append(
            (right, f"{loss.name} takes {loss.takes}: the model must end with {wanted}")
        )
        if loss.instead:
            verdicts.append((False, loss.instead))
    elif after:
        names = " and ".join(p.label for p in after)
        verdicts.append(
            (False, f"{names} after the last layer: {loss.name} takes {loss.takes}{inside}")
        )
    else:
        verdicts.append(
            (True, f"no activation after the last layer: {loss.name} takes {loss.takes}{inside}")
        )
    return verdicts


def where_activations_go(
    models: Mapping[str, tuple[nn.Module, nn.Module | Callable, torch.Tensor]],
) -> Figure:
    """One row per model: its layers with weights as boxes in the order forward() runs them,
    the activations (and every other weightless step) on the arrows between them, and the
    loss it is trained with, which says what it takes. Under each row, what is right or wrong
    about where the activations are, and how to read probabilities at prediction time.

    ``models`` maps a title to ``(model, loss, example_input)``; the loss is the module
    (``nn.CrossEntropyLoss()``) or the function (``F.cross_entropy``) the training calls.
    """
    rows = []
    for title, (model, loss_fn, example_input) in models.items():
        parts = _parts(model, example_input)
        shown_loss, loss = _loss_input(loss_fn)
        rows.append((title, example_input, parts, shown_loss, loss, _verdicts(parts, loss)))
    step, half = 2.7, 0.8  # distance between two boxes, half a box's width
    columns = max(2 + sum(1 for p in row[2] if p.params) for row in rows)
    row_heights = [2.3 + 0.36 * (len(row[5]) + 1) for row in rows]
    fig, ax = figure(figsize=(max(11.0, 0.95 * step * columns), 0.7 + 0.8 * sum(row_heights)))
    ax.set_axis_off()
    ax.grid(False)
    ax.set_xlim(-1.1, step * (columns - 1) + half + 0.5)
    ax.set_ylim(-sum(row_heights), 0.1)

    def box(x, y, text, colour, gid, wide=0.0):
        ax.add_patch(
            FancyBboxPatch(
                (x - half - wide, y - 0.36),
                2 * (half + wide),
                0.72,
                boxstyle="round,pad=0.02,rounding_size=0.1",
                facecolor=colour,
                edgecolor="#555555",
            )
        )
        ax.text(x, y, text, ha="center", va="center", fontsize=10, gid=gid)

    def arrow(x_from, x_to, y, label, colour):
        ax.add_patch(
            FancyArrowPatch(
                (x_from, y), (x_to, y), arrowstyle="-|>", mutation_scale=14, color="#555555"
            )
        )
        if label:
            ax.text(
                (x_from + x_to) / 2 - 0.05,
                y,
                label,
                ha="center",
                va="center",
                fontsize=9.5,
                gid="on arrow",
                bbox={"facecolor": colour, "edgecolor": "#777777", "boxstyle": "round,pad=0.25"},
            )

    def on_arrow(waiting: list[_Part], wrong: bool) -> tuple[str, str]:
        label = " · ".join(p.label for p in waiting)
        if wrong:
            return label, _WRONG
        activation = any(p.is_activation for p in waiting)
        return label, KIND_COLOURS["activation" if activation else "reshape"]

    top = 0.0
    for (title, example_input, parts, shown_loss, loss, verdicts), height in zip(
        rows, row_heights, strict=True
    ):
        y = top - 0.95
        ax.text(-1.05, top - 0.2, title, ha="left", va="center", fontsize=12, weight="bold")
        ax.text(-0.45, y, "input", ha="center", va="bottom", fontsize=10, weight="bold")
        ax.text(
            -0.45,
            y - 0.05,
            str(tuple(example_input.shape)),
            ha="center",
            va="top",
            fontsize=9,
            family="monospace",
        )
        x, x_from, waiting = -0.45, 0.05, []
        for part in parts:
            if not part.params:  # holds no weights: an operation on the arrow, not a block
                waiting.append(part)
                continue
            first = x < 0
            x += step
            arrow(x_from, x - half, y, *on_arrow(waiting, wrong=first and bool(waiting)))
            box(x, y, f"{part.name}: {part.label}", KIND_COLOURS["layer"], "layer")
            ax.text(
                x,
                y - 0.5,
                f"out {tuple(part.output_shape)}\n{part.params:,} parameters",
                ha="center",
                va="top",
                fontsize=8.5,
                color="#444444",
                linespacing=1.3,
            )
            x_from, waiting = x + half, []
        x += step
        ends_with_activation = any(p.is_activation for p in waiting)
        label, colour = on_arrow(
            waiting, wrong=ends_with_activation != (loss.ends_with is not None)
        )
        arrow(x_from, x - half, y, label, colour)
        out = parts[-1].output_shape
        ax.text(
            (x_from + x - half) / 2,
            y - 0.5,
            f"{loss.takes}\n{tuple(out)}",
            ha="center",
            va="top",
            fontsize=8.5,
            color="#444444",
            linespacing=1.3,
        )
        inside = f"{loss.inside} inside" if loss.inside else f"takes {loss.takes}"
        box(x + 0.2, y, f"{shown_loss}\n{inside}", "#FFF2CC", "loss", wide=0.2)
        notes = [(_OK if ok else _WRONG, f"{'✓' if ok else '✗'} {text}") for ok, text in verdicts]
        notes.append(("#444444", f"→ at prediction time, {loss.readout}"))
        for i, (colour, text) in enumerate(notes):
            ax.text(
                -1.05,
                y - 1.3 - 0.36 * i,
                text,
                ha="left",
                va="center",
                fontsize=10.5,
                color=colour,
                gid="verdict",
            )
        top -= height
    ax.set_title(
        "Where activations go: between layers with weights, never before a loss that takes logits",
        loc="left",
        fontsize=13,
        weight="bold",
    )
    return show(fig)


# ---------------------------------------------------------------------------------------------
# Decision boundaries
# ---------------------------------------------------------------------------------------------


def _architecture(model: nn.Module) -> str:
    """The model's leaf modules in order, e.g. ``Linear(2→16) · ReLU · Linear(16→1)``."""
    names = []
    for leaf in model.modules():
        if next(leaf.children(), None) is not None:
            continue
        if isinstance(leaf, nn.Linear):
            names.append(f"Linear({leaf.in_features}→{leaf.out_features})")
        else:
            names.append(type(leaf).__name__)
    lines = [" · ".join(names[i : i + 3]) for i in range(0, len(names), 3)]
    return " ·\n".join(lines)


def _predicted(model: nn.Module, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The predicted class of each point, and the score whose zero is the boundary (one logit;
    for several outputs the top logit minus the runner-up)."""
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(points.to(device)).float().cpu()
    if logits.dim() == 1 or logits.shape[1] == 1:
        score = logits.reshape(-1)
        return (score > 0).long(), score
    top = logits.topk(2, dim=1).values
    return logits.argmax(dim=1), top[:, 0] - top[:, 1]


def decision_boundaries(
    models: Mapping[str, nn.Module],
    points: torch.Tensor,
    labels: torch.Tensor,
    *,
    resolution: int = 200,
) -> Figure:
    """One panel per trained 2-D classifier: the class it predicts at every point of the plane
    (shaded), the boundary where its prediction changes (black line), and the training points.
    A panel's title gives the model's layers and its accuracy on ``points``."""
    points, labels = points.detach().float().cpu(), labels.detach().long().cpu().reshape(-1)
    low, high = points.min(dim=0).values, points.max(dim=0).values
    margin = 0.15 * (high - low)
    low, high = low - margin, high + margin
    xs = torch.linspace(float(low[0]), float(high[0]), resolution)
    ys = torch.linspace(float(low[1]), float(high[1]), resolution)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    plane = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1)
    classes = int(labels.max()) + 1
    shades = ListedColormap(["#C9DAF8", "#F9D5B8", "#D9EAD3", "#E8E1F5"][: max(classes, 2)])
    fig, axes = figure(1, len(models), figsize=(3.9 * len(models), 4.5), squeeze=False)
    for ax, (name, model) in zip(axes[0], models.items(), strict=True):
        predicted, score = _predicted(model, plane)
        predicted = predicted.reshape(resolution, resolution)
        image = ax.imshow(
            predicted.numpy(),
            origin="lower",
            extent=(float(low[0]), float(high[0]), float(low[1]), float(high[1])),
            cmap=shades,
            vmin=0,
            vmax=max(classes, 2) - 1,
            aspect="auto",
            interpolation="nearest",
        )
        image.set_gid("predicted class")
        ax.contour(
            grid_x.numpy(),
            grid_y.numpy(),
            score.reshape(resolution, resolution).numpy(),
            levels=[0.0],
            colors="black",
            linewidths=1.6,
        )
        for label in range(classes):
            chosen = labels == label
            ax.scatter(
                points[chosen, 0].numpy(),
                points[chosen, 1].numpy(),
                s=9,
                color=PALETTE[label],
                edgecolors="white",
                linewidths=0.3,
                label=f"class {label}",
            )
        accuracy = (_predicted(model, points)[0] == labels).float().mean().item()
        ax.set_title(f"{name}\naccuracy {accuracy:.0%}", fontsize=11.5)
        ax.set_xlabel(_architecture(model), fontsize=8.5)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    axes[0][0].legend(loc="lower left", fontsize=8.5, framealpha=0.9)
    fig.suptitle(
        "What each trained network predicts at every point (black line: where its class changes)",
        fontsize=12.5,
        weight="bold",
    )
    return show(fig)


__all__ = ["LOSS_INPUTS", "decision_boundaries", "where_activations_go"]
