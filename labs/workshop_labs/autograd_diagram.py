"""The graph ``backward()`` walks, drawn from ``grad_fn.next_functions`` with matplotlib."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

from workshop_labs.plots import figure, show


def _shape_text(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))


def autograd_graph(tensor: torch.Tensor, names: Mapping[str, torch.Tensor] | None = None) -> Figure:
    """The graph autograd recorded while computing ``tensor``: leaf tensors at the top, one box
    per operation's backward node, the result at the bottom. ``names`` labels leaf tensors."""
    if tensor.grad_fn is None:
        raise ValueError(
            "this tensor has no grad_fn: it was not computed from a tensor with "
            "requires_grad=True, so autograd recorded nothing"
        )
    labels_by_id = {id(t): name for name, t in (names or {}).items()}
    depth: dict[object, int] = {tensor.grad_fn: 0}
    edges: list[tuple[object, object]] = []
    order = [tensor.grad_fn]
    frontier = [tensor.grad_fn]
    while frontier:
        node = frontier.pop(0)
        for child, _ in node.next_functions:
            if child is None:
                continue
            edges.append((child, node))
            if child not in depth:
                order.append(child)
            if depth.get(child, -1) < depth[node] + 1:
                depth[child] = depth[node] + 1
                frontier.append(child)
        if len(order) > 60:
            raise ValueError("the graph has more than 60 nodes: draw a smaller expression")
    levels = max(depth.values())
    rows: dict[int, list[object]] = {}
    for node in order:
        rows.setdefault(levels - depth[node], []).append(node)
    widest = max(len(r) for r in rows.values())
    fig, ax = figure(figsize=(max(6.5, 2.6 * widest), 1.0 + 1.2 * (levels + 1)))
    ax.set_axis_off()
    ax.set_xlim(-0.6, widest - 0.4)
    ax.set_ylim(levels + 0.5, -0.5)
    position = {}
    for level, nodes in rows.items():
        offset = (widest - len(nodes)) / 2
        for k, node in enumerate(nodes):
            position[node] = (offset + k, level)
    for child, parent in edges:
        ax.add_patch(
            FancyArrowPatch(
                position[child],
                position[parent],
                arrowstyle="-|>",
                mutation_scale=14,
                color="#666666",
                shrinkA=24,
                shrinkB=24,
            )
        )
    for node, (x, y) in position.items():
        variable = getattr(node, "variable", None)
        if variable is not None:
            name = labels_by_id.get(id(variable), "leaf tensor")
            text = f"{name}\nshape {_shape_text(tuple(variable.shape))}\nrequires_grad=True"
            colour = "#D6E4F5"
        elif node is tensor.grad_fn:
            text = f"{type(node).__name__}\n→ result, shape {_shape_text(tuple(tensor.shape))}"
            colour = "#D9EED9"
        else:
            text = type(node).__name__
            colour = "#FBE0C8"
        ax.text(
            x,
            y,
            text,
            ha="center",
            va="center",
            fontsize=10.5,
            family="monospace",
            bbox={"facecolor": colour, "edgecolor": "#555555", "boxstyle": "round,pad=0.4"},
        )
    ax.set_title(
        "Autograd graph: forward runs top → bottom, backward() walks it bottom → top",
        loc="left",
        fontsize=12,
    )
    return show(fig)
