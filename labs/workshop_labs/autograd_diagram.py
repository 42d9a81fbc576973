"""The graph ``backward()`` walks, drawn from ``grad_fn.next_functions`` with matplotlib.

Four kinds of box: the leaves autograd fills ``.grad`` for (blue; once ``backward()`` has run,
the box shows that ``.grad``), the constants an operation used without tracking them (grey:
tensors that do not require grad, and plain numbers such as the 2 of ``** 2``), one box per
operation with the shape it produced (orange), and the result (green).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Patch

from workshop_labs.plots import figure, show

COLOURS = {
    "leaf": "#D6E4F5",
    "constant": "#E6E6E6",
    "operation": "#FBE0C8",
    "result": "#D9EED9",
}
LEGEND = {
    "leaf": "leaf: requires_grad=True, gets a .grad",
    "constant": "constant: no grad, not tracked",
    "operation": "operation: its backward node",
    "result": "result: backward() starts here",
}
MAX_NODES = 60
MAX_VALUES = 4  # a tensor with more elements is described by its shape only
# The saved inputs of a backward node, by input position (MulBackward0 saves both factors).
SAVED_INPUTS = ("_saved_self", "_saved_other")
# Plain-number inputs a backward node keeps as attributes (the 2 of ``x ** 2``).
SAVED_NUMBERS = ("_saved_exponent", "_saved_self", "_saved_other")


@dataclass
class _Box:
    kind: str
    text: str
    feeds: list[_Box] = field(default_factory=list)  # the boxes this one's output flows into
    row: int = 0
    x: float = 0.0


def _shape_text(shape) -> str:
    dims = tuple(shape)
    return "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"


def _number(value: float) -> str:
    return f"{value:.4g}"


def _values_text(tensor: torch.Tensor) -> str | None:
    """A small tensor's values (``-14``, ``[1, 2, 3]``); None for a larger one."""
    values = tensor.detach().cpu()
    if values.numel() > MAX_VALUES:
        return None
    if values.dim() == 0:
        return _number(float(values))
    return "[" + ", ".join(_number(float(v)) for v in values.flatten()) + "]"


def _output_shape(node) -> tuple[int, ...] | None:
    """The shape of the tensor the operation produced, as its backward node recorded it."""
    try:
        return tuple(node._input_metadata[0].shape)
    except (AttributeError, IndexError, RuntimeError):
        return None


def _saved(node, attribute: str):
    """A value the backward node saved; None once backward() has freed it (or if absent)."""
    try:
        return getattr(node, attribute, None)
    except RuntimeError:
        return None


def _leaf_text(name: str | None, variable: torch.Tensor) -> str:
    grad = variable.grad
    if grad is None:
        grad_text = "None"
    else:
        grad_text = _values_text(grad) or f"shape {_shape_text(grad.shape)}"
    prefix = f"{name}." if name else ""
    return (
        f"{name or 'leaf tensor'}\nshape {_shape_text(variable.shape)}\n"
        f"requires_grad=True\n{prefix}grad = {grad_text}"
    )


def _constant_text(name: str | None, value: torch.Tensor | None) -> str:
    if value is None:
        return f"{name or 'constant'}\nno grad"
    values = _values_text(value)
    if name is None and value.dim() == 0:  # a Python number, as in 3 * x
        return f"{values}\na number"
    head = name or "constant"
    if values is not None:
        head = f"{head} = {values}"
    return f"{head}\nshape {_shape_text(value.shape)}, no grad"


def _operation_text(node, name: str | None, shape: tuple[int, ...] | None) -> str:
    lines = [node.name()] if name is None else [name, node.name()]
    if shape is not None:
        lines.append(f"out shape {_shape_text(shape)}")
    return "\n".join(lines)


def autograd_graph(tensor: torch.Tensor, names: Mapping[str, torch.Tensor] | None = None) -> Figure:
    """The graph autograd recorded while computing ``tensor``, leaves and constants at the top,
    one box per operation's backward node, the result at the bottom.

    ``names`` labels tensors: leaves (``w``), intermediates (``prediction``) and constants
    (``x``). A constant is found by identity where its operation saved it; an operation that
    did not save it (``a - y_true``), or a graph whose saved values ``backward()`` has freed,
    gets the named constants not found otherwise, in the order the expression uses them (so name
    them in that order).
    """
    if tensor.grad_fn is None:
        raise ValueError(
            "this tensor has no grad_fn: it was not computed from a tensor with "
            "requires_grad=True, so autograd recorded nothing"
        )
    names = dict(names or {})
    leaf_names = {id(t): name for name, t in names.items() if t.requires_grad and t.is_leaf}
    intermediate_names = {t.grad_fn: name for name, t in names.items() if t.grad_fn is not None}
    constant_names = {id(t): name for name, t in names.items() if not t.requires_grad}

    # Walk from the result towards the leaves; depth = the longest path from the result.
    depth: dict[object, int] = {tensor.grad_fn: 0}
    edges: dict[tuple[object, object], None] = {}  # ordered set: a longer path walks a node again
    frontier = [tensor.grad_fn]
    while frontier:
        node = frontier.pop(0)
        for child, _ in node.next_functions:
            if child is None:
                continue
            edges[child, node] = None
            if depth.get(child, -1) < depth[node] + 1:
                depth[child] = depth[node] + 1
                frontier.append(child)
        if len(depth) > MAX_NODES:
            raise ValueError(
                f"the graph has more than {MAX_NODES} nodes: draw a smaller expression"
            )
    levels = max(depth.values())

    boxes: dict[object, _Box] = {}
    for node in depth:
        variable = getattr(node, "variable", None)
        if variable is not None:
            boxes[node] = _Box("leaf", _leaf_text(leaf_names.get(id(variable)), variable))
        elif node is tensor.grad_fn:
            value = _values_text(tensor)
            text = _operation_text(node, intermediate_names.get(node), tuple(tensor.shape))
            boxes[node] = _Box("result", text + (f"\nvalue {value}" if value else ""))
        else:
            text = _operation_text(node, intermediate_names.get(node), _output_shape(node))
            boxes[node] = _Box("operation", text)
        boxes[node].row = levels - depth[node]
    for child, parent in edges:
        boxes[child].feeds.append(boxes[parent])

    # Constants: the inputs autograd did not track (a None in next_functions), and plain numbers.
    constants: list[_Box] = []
    unnamed_slots: list[tuple[_Box, torch.Tensor | None]] = []
    used: set[int] = set()
    in_forward_order = sorted(
        (n for n in depth if getattr(n, "variable", None) is None), key=lambda n: n._sequence_nr()
    )
    for node in in_forward_order:
        for slot, (child, _) in enumerate(node.next_functions):
            if child is not None:
                continue
            value = _saved(node, SAVED_INPUTS[slot]) if slot < len(SAVED_INPUTS) else None
            value = value if isinstance(value, torch.Tensor) else None
            box = _Box("constant", "", feeds=[boxes[node]], row=boxes[node].row - 1)
            constants.append(box)
            if value is not None and id(value) in constant_names:
                used.add(id(value))
                box.text = _constant_text(constant_names[id(value)], value)
            else:
                unnamed_slots.append((box, value))
        for attribute in SAVED_NUMBERS:
            number = _saved(node, attribute)
            if isinstance(number, int | float) and not isinstance(number, bool):
                text = f"{_number(number)}\na number"
                constants.append(_Box("constant", text, [boxes[node]], boxes[node].row - 1))
    unused = [t for t in names.values() if id(t) in constant_names and id(t) not in used]
    if len(unused) != len(unnamed_slots):
        unused = [None] * len(unnamed_slots)  # cannot tell which is which: say "constant"
    for (box, value), named in zip(unnamed_slots, unused, strict=True):
        name = None if named is None else constant_names[id(named)]
        shown = value if value is not None else named
        box.text = _constant_text(name, shown)

    every_box = list(boxes.values()) + constants
    top = min(box.row for box in every_box)
    rows: dict[int, list[_Box]] = {}
    for box in every_box:
        box.row -= top
        rows.setdefault(box.row, []).append(box)
    widest = max(len(r) for r in rows.values())
    # From the result upwards, order each row by where its boxes flow to: fewer crossings.
    for row in sorted(rows, reverse=True):
        members = rows[row]
        members.sort(key=lambda b: sum(f.x for f in b.feeds) / len(b.feeds) if b.feeds else 0.0)
        offset = (widest - len(members)) / 2
        for k, box in enumerate(members):
            box.x = offset + k

    height = max(rows) + 1
    fig, ax = figure(figsize=(max(7.5, 2.9 * widest), 1.4 + 1.1 * height))
    ax.set_axis_off()
    ax.set_xlim(-0.6, widest - 0.4)
    ax.set_ylim(height - 0.5, -0.5)
    artists = {}
    for box in every_box:
        artists[id(box)] = ax.text(
            box.x,
            box.row,
            box.text,
            ha="center",
            va="center",
            fontsize=9.5,
            family="monospace",
            bbox={
                "facecolor": COLOURS[box.kind],
                "edgecolor": "#555555" if box.kind != "constant" else "#999999",
                "linestyle": "-" if box.kind != "constant" else "--",
                "boxstyle": "round,pad=0.4",
            },
        )
    for box in every_box:
        for target in box.feeds:
            ax.add_patch(
                FancyArrowPatch(
                    (box.x, box.row),
                    (target.x, target.row),
                    arrowstyle="-|>",
                    mutation_scale=14,
                    color="#999999" if box.kind == "constant" else "#666666",
                    linestyle="--" if box.kind == "constant" else "-",
                    patchA=artists[id(box)].get_bbox_patch(),
                    patchB=artists[id(target)].get_bbox_patch(),
                    zorder=4,  # after the boxes, whose outlines clip it, are laid out
                )
            )
    leaves = [getattr(n, "variable", None) for n in depth]
    filled = [v.grad is not None for v in leaves if v is not None]
    if all(filled):
        state = "every leaf shows the .grad that backward() stored"
    elif any(filled):
        state = "some leaves have a .grad, others not yet"
    else:
        state = "no backward() yet: every leaf's .grad is None"
    ax.set_title(
        f"Autograd graph: forward runs top → bottom, backward() walks it bottom → top\n{state}",
        loc="left",
        fontsize=12,
    )
    kinds = [kind for kind in COLOURS if any(box.kind == kind for box in every_box)]
    ax.legend(
        handles=[Patch(facecolor=COLOURS[k], edgecolor="#555555", label=LEGEND[k]) for k in kinds],
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=2,
        fontsize=9,
        frameon=False,
    )
    return show(fig)
