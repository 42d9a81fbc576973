"""Pictures of PyTorch's moving parts, drawn from the real objects with matplotlib.

- ``layer_table`` / ``network_diagram``: what each layer receives and returns (forward hooks),
  and where a skip connection adds an earlier tensor back in.
- ``cnn_diagram``: a chain of layers as the tensors it makes, left to right (images as stacks
  of channels), with each layer's kernel, stride, padding and parameters (a BatchNorm2d with
  the channels it normalizes and its buffers).
- ``model_anatomy``: the source of a model class, each line coloured by the role it plays.
"""

from __future__ import annotations

import inspect
import linecache
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib as mpl
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
from matplotlib.path import Path
from torch import nn
from torch.overrides import TorchFunctionMode

from workshop_labs.plots import PALETTE, STYLE, figure, format_value, show

# ---------------------------------------------------------------------------------------------
# Layers and shapes
# ---------------------------------------------------------------------------------------------

ACTIVATION_MODULES = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.GELU,
    nn.SiLU,
    nn.ELU,
    nn.Softmax,
    nn.LogSoftmax,
    nn.Softplus,
    nn.Hardtanh,
)
RESHAPE_MODULES = (nn.Flatten, nn.Unflatten)
REGULARIZER_MODULES = (nn.Dropout, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)
# Functions called in forward() outside any layer that a diagram should show as a step.
FUNCTIONAL_STEPS = {
    "relu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "gelu",
    "silu",
    "elu",
    "softmax",
    "log_softmax",
    "flatten",
    "view",
    "reshape",
}
# Tensor additions in forward(): where a skip (residual) connection joins the main path.
MERGE_STEPS = {"add", "__add__", "__radd__", "__iadd__", "add_"}
KIND_COLOURS = {
    "layer": "#D6E4F5",
    "activation": "#FBE0C8",
    "regularizer": "#D9EED9",
    "reshape": "#E6E6E6",
    "function": "#FBE0C8",
    "merge": "#F3D3E8",
}
INPUT = -1  # the producer index of the model's own input


def _first_tensor(value: object) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, Sequence) and not isinstance(value, str):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(value, Mapping):
        return _first_tensor(list(value.values()))
    return None


def _shape(value: object) -> tuple[int, ...] | None:
    tensor = _first_tensor(value)
    return tuple(tensor.shape) if tensor is not None else None


def _kind(module: nn.Module | None) -> str:
    if module is None:
        return "function"
    if isinstance(module, ACTIVATION_MODULES):
        return "activation"
    if isinstance(module, RESHAPE_MODULES):
        return "reshape"
    if isinstance(module, REGULARIZER_MODULES):
        return "regularizer"
    return "layer"


@dataclass
class _Step:
    name: str
    type: str
    kind: str
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    params: int
    sample: torch.Tensor | None  # the output values of the first example in the batch
    # For an addition: the step whose output the skip connection brings back (INPUT for the
    # model's input), and that tensor's shape. None on the main path.
    skip_from: int | None = None
    skip_shape: tuple[int, ...] | None = None


class _Recorder:
    """The steps forward() runs, and which step produced each tensor (to find skips)."""

    def __init__(self):
        self.steps: list[_Step] = []
        self.depth = 0  # > 0 while inside a leaf layer, whose own operations are not steps
        self.producer: dict[int, int] = {}
        self._alive: list[torch.Tensor] = []  # keeps id()s unique while tracing

    def produced(self, value: object, index: int) -> None:
        tensor = _first_tensor(value)
        if tensor is not None:
            self._alive.append(tensor)
            self.producer[id(tensor)] = index

    def add(self, step: _Step, output: object) -> None:
        self.steps.append(step)
        self.produced(output, len(self.steps) - 1)

    def merge(self, operands: list[torch.Tensor], result: object) -> None:
        """An addition of two traced tensors: the later one is the main path, the earlier one
        arrives through a skip connection."""
        sources = [self.producer.get(id(t)) for t in operands]
        if None in sources:
            return
        main, skip = sorted(range(2), key=lambda i: sources[i], reverse=True)
        self.add(
            _Step(
                name="+",
                type="add",
                kind="merge",
                input_shape=tuple(operands[main].shape),
                output_shape=_shape(result),
                params=0,
                sample=_sample(result),
                skip_from=sources[skip],
                skip_shape=tuple(operands[skip].shape),
            ),
            result,
        )


class _FunctionalSteps(TorchFunctionMode):
    """Records activation, reshape and add functions that forward() calls outside any layer."""

    def __init__(self, recorder: _Recorder):
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "")
        if self.recorder.depth > 0:
            return result
        operands = [a for a in args[:2] if isinstance(a, torch.Tensor)]
        if name in MERGE_STEPS and len(operands) == 2:
            self.recorder.merge(operands, result)
        elif name in FUNCTIONAL_STEPS:
            self.recorder.add(
                _Step(
                    name=_function_label(func),
                    type="function",
                    kind="reshape" if name in {"flatten", "view", "reshape"} else "function",
                    input_shape=_shape(args[0] if args else None),
                    output_shape=_shape(result),
                    params=0,
                    sample=_sample(result),
                ),
                result,
            )
        return result


def _function_label(func) -> str:
    """How the call reads in forward(): ``x.view()``, ``F.relu`` or ``torch.flatten``."""
    name = func.__name__
    if getattr(func, "__qualname__", "").startswith(("Tensor.", "TensorBase.")):
        return f"x.{name}()"
    if "functional" in (getattr(func, "__module__", None) or ""):
        return f"F.{name}"
    return f"torch.{name}"


def _sample(output: object) -> torch.Tensor | None:
    tensor = _first_tensor(output)
    if tensor is None or tensor.dim() == 0:
        return None
    return tensor[0].detach().float().flatten().cpu() if tensor.dim() > 1 else None


def _trace(model: nn.Module, example_input: object) -> list[_Step]:
    recorder = _Recorder()
    handles = []

    def before(module, args):
        recorder.depth += 1

    def after(module, args, output):
        step = _Step(
            name=names[module],
            type=type(module).__name__,
            kind=_kind(module),
            input_shape=_shape(args),
            output_shape=_shape(output),
            params=sum(p.numel() for p in module.parameters(recurse=False)),
            sample=_sample(output),  # its tensor operations are no steps of forward()
        )
        recorder.depth -= 1
        recorder.add(step, output)

    names = {}
    for name, module in model.named_modules():
        if next(module.children(), None) is None and module is not model:
            names[module] = name
            handles.append(module.register_forward_pre_hook(before))
            handles.append(module.register_forward_hook(after))
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    for value in inputs:
        recorder.produced(value, INPUT)
    try:
        with torch.no_grad(), _FunctionalSteps(recorder):
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return recorder.steps


def layer_table(model: nn.Module, example_input: object) -> list[dict]:
    """One row per layer call, in the order forward() runs them: name, type, input shape,
    output shape and the layer's own parameter count. Shapes come from forward hooks."""
    return [
        {
            "name": step.name,
            "type": step.type,
            "input shape": step.input_shape,
            "output shape": step.output_shape,
            "params": step.params,
        }
        for step in _trace(model, example_input)
    ]


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "?" if shape is None else str(tuple(shape))


def _describe(module_type: str, step: _Step, steps: list[_Step]) -> str:
    if step.kind == "merge":
        if step.skip_from == INPUT:
            source = "the input"
        else:
            origin = steps[step.skip_from]
            source = "the + above" if origin.kind == "merge" else origin.name
        return f"add: main path + skip from {source}"
    if step.kind == "function":
        return "function call in forward()"
    if step.params:
        return f"{module_type} · {step.params:,} parameters"
    return f"{module_type} · no parameters"


def _skip_lanes(steps: list[_Step]) -> dict[int, int]:
    """For each addition with a skip, its lane to the left of the boxes: 1 is the nearest; a
    skip that spans another skip runs outside it."""
    spans = sorted(
        ((i, step.skip_from) for i, step in enumerate(steps) if step.skip_from is not None),
        key=lambda span: span[0] - span[1],
    )
    lanes: dict[int, int] = {}
    for end, start in spans:
        inside = [lanes[e] for e, s in spans if e in lanes and start <= s and e <= end]
        lanes[end] = 1 + max(inside, default=0)
    return lanes


def network_diagram(model: nn.Module, example_input: object) -> Figure:
    """Boxes for every layer forward() runs, top to bottom: name, type, input → output shape,
    parameter count, and a strip showing the values that come out for the first example.
    A skip connection (``x + self.layer(x)``) is an arrow around the boxes it skips, from the
    tensor it carries into the addition, labelled with that tensor's shape."""
    steps = _trace(model, example_input)
    if not steps:
        raise ValueError("the model ran no layers: is forward() using registered submodules?")
    n = len(steps)
    row_h = 1.0
    lanes = _skip_lanes(steps)
    left = 0.4 * max(lanes.values(), default=0)
    fig, ax = figure(figsize=(11.0 + left, 1.2 + 0.78 * (n + 2)))
    ax.set_axis_off()
    ax.set_xlim(-left, 11)
    ax.set_ylim(-(n + 1.1) * row_h, 0.9)
    cmap = mpl.colormaps["RdBu_r"]

    def arrow(y_from: float, y_to: float) -> None:
        ax.add_patch(
            FancyArrowPatch(
                (3.0, y_from), (3.0, y_to), arrowstyle="-|>", mutation_scale=14, color="#555555"
            )
        )

    def top_of(i: int) -> float:
        return -(i + 0.25) * row_h

    def below(i: int) -> float:
        """The height of the arrow that leaves step i (INPUT: the model's input)."""
        return 0.0 if i == INPUT else top_of(i) - 0.8 * row_h

    input_shape = _shape(example_input)
    ax.text(
        3.0,
        0.45,
        f"input {_shape_text(input_shape)}",
        ha="center",
        va="center",
        fontsize=11,
        weight="bold",
    )
    ax.text(
        8.4,
        0.45,
        "values for the first example\n(blue < 0 < red)",
        ha="center",
        va="center",
        fontsize=9.5,
        color="#444444",
    )
    arrow(0.2, -0.22)
    for i, step in enumerate(steps):
        top = top_of(i)
        box = FancyBboxPatch(
            (0.2, top - 0.62),
            5.6,
            0.62,
            boxstyle="round,pad=0.02,rounding_size=0.1",
            facecolor=KIND_COLOURS[step.kind],
            edgecolor="#555555",
            linewidth=1.2,
        )
        ax.add_patch(box)
        ax.text(
            0.4,
            top - 0.2,
            step.name,
            ha="left",
            va="center",
            fontsize=11.5,
            weight="bold",
            family="monospace",
        )
        ax.text(
            5.6,
            top - 0.2,
            _describe(step.type, step, steps),
            ha="right",
            va="center",
            fontsize=9.5,
            color="#333333",
        )
        ax.text(
            0.4,
            top - 0.46,
            f"in {_shape_text(step.input_shape)}  →  out {_shape_text(step.output_shape)}",
            ha="left",
            va="center",
            fontsize=10.5,
            family="monospace",
        )
        if step.sample is not None and step.sample.numel():
            values = step.sample[:64]
            limit = float(values.abs().max()) or 1.0
            width = 4.4 / len(values)
            for j, value in enumerate(values.tolist()):
                ax.add_patch(
                    Rectangle(
                        (6.2 + j * width, top - 0.56),
                        width,
                        0.5,
                        facecolor=cmap(0.5 + 0.5 * value / limit),
                        edgecolor="white",
                        linewidth=0.3,
                    )
                )
            shown = (
                f"first {len(values)} of {step.sample.numel()}"
                if step.sample.numel() > len(values)
                else f"{len(values)} values"
            )
            ax.text(
                10.7,
                top - 0.31,
                shown,
                ha="left",
                va="center",
                fontsize=8.5,
                color="#555555",
                rotation=90,
            )
        arrow(top - 0.64, top - 0.64 - 0.34 * row_h)
    for end, lane in lanes.items():
        start, x = steps[end].skip_from, 0.2 - 0.4 * lane
        y_from, y_to = below(start), top_of(end) - 0.31
        skip = FancyArrowPatch(
            path=Path([(3.0, y_from), (x, y_from), (x, y_to), (0.2, y_to)]),
            arrowstyle="-|>",
            mutation_scale=14,
            color=PALETTE[3],
            linewidth=1.6,
        )
        skip.set_gid("skip")
        ax.add_patch(skip)
        ax.text(
            x - 0.05,
            (y_from + y_to) / 2,
            f"skip {_shape_text(steps[end].skip_shape)}",
            ha="right",
            va="center",
            rotation=90,
            fontsize=9,
            color=PALETTE[3],
            family="monospace",
            gid="skip label",
        )
    ax.text(
        3.0,
        -(n + 0.3) * row_h,
        f"output {_shape_text(steps[-1].output_shape)}",
        ha="center",
        va="center",
        fontsize=11,
        weight="bold",
    )
    kinds = {
        "layer": "layer with weights",
        "activation": "activation",
        "regularizer": "normalization / dropout",
        "reshape": "reshape",
    }
    if lanes:
        kinds["merge"] = "add (skip connection)"
    handles = [
        Rectangle((0, 0), 1, 1, facecolor=KIND_COLOURS[kind], edgecolor="#555555") for kind in kinds
    ]
    ax.legend(
        handles,
        list(kinds.values()),
        loc="lower center",
        ncols=len(kinds),
        frameon=False,
        bbox_to_anchor=(0.5, -0.02),
        fontsize=9.5,
    )
    total = sum(p.numel() for p in model.parameters())
    calls = sum(step.kind != "merge" for step in steps)
    skips = f", {len(lanes)} skip connection{'s' if len(lanes) != 1 else ''}" if lanes else ""
    ax.set_title(
        f"{type(model).__name__}: {calls} layer calls{skips}, {total:,} parameters", loc="left"
    )
    return show(fig)


# ---------------------------------------------------------------------------------------------
# Convolutional networks: feature maps, left to right
# ---------------------------------------------------------------------------------------------

_AXES_NAMES = {4: "N × C × H × W", 3: "N × C × L", 2: "N × features"}


def _on_arrow(step: _Step) -> bool:
    """A step that holds no weights and keeps the shape (ReLU, Dropout) only changes values:
    it is drawn on the arrow between two tensors, not as a tensor of its own."""
    return step.params == 0 and step.input_shape == step.output_shape


def _operation_label(step: _Step, module: nn.Module | None) -> str:
    if isinstance(module, nn.Dropout):
        return f"{step.type}(p={module.p})"
    return step.name if module is None else step.type


def _pair(value: object, *, square: bool = False) -> str:
    """A layer's size setting as it reads: ``3×3`` for a kernel, ``1`` for a stride of 1."""
    values = tuple(value) if isinstance(value, tuple | list) else (value, value)
    if len(set(values)) == 1 and not square:
        return str(values[0])
    return "×".join(str(v) for v in values)


def _settings(layer: nn.Module | None) -> list[str]:
    """What decides a layer's output size, as the layer holds it."""
    if isinstance(layer, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
        return [
            f"kernel {_pair(layer.kernel_size, square=True)}",
            f"stride {_pair(layer.stride)} · padding {_pair(layer.padding)}",
        ]
    if isinstance(layer, nn.Linear):
        return [f"{layer.in_features} → {layer.out_features}"]
    if isinstance(layer, nn.BatchNorm2d):
        return [f"normalizes {layer.num_features} channels", "+ running mean, var (buffers)"]
    if isinstance(layer, nn.Unflatten):
        return [f"dim {layer.dim} → {_shape_text(layer.unflattened_size)}"]
    if isinstance(layer, nn.Flatten):
        return [f"start_dim={layer.start_dim}, end_dim={layer.end_dim}"]
    return []


def cnn_diagram(model: nn.Module, example_input: torch.Tensor) -> Figure:
    """The tensors a batch becomes, left to right, as forward() runs: images as stacks of
    channels, vectors as bars, each with its full shape (batch dimension N first). Under each
    tensor, the layer that made it: its kernel, stride and padding where it has them, and its
    parameter count. Steps that hold no weights and keep the shape (ReLU, Dropout) are drawn on
    the arrows: they change values, not the data's layout."""
    steps = _trace(model, example_input)
    if any(step.kind == "merge" for step in steps):
        raise ValueError("cnn_diagram draws a chain of layers: use network_diagram for skips")
    if not steps:
        raise ValueError("the model ran no layers: is forward() using registered submodules?")
    modules = dict(model.named_modules())
    columns: list[tuple[_Step | None, tuple[int, ...], list[str]]] = [
        (None, _shape(example_input), [])
    ]
    for step in steps:
        if _on_arrow(step):
            columns[-1][2].append(_operation_label(step, modules.get(step.name)))
        else:
            columns.append((step, step.output_shape, []))
    gap = 2.3
    fig, ax = figure(figsize=(gap * len(columns) + 0.3, 5.2))
    ax.set_axis_off()
    ax.grid(False)
    ax.set_xlim(-1.15, gap * (len(columns) - 1) + 1.15)
    ax.set_ylim(-2.9, 1.75)
    largest_side = max((shape[-1] for _, shape, _ in columns if len(shape) == 4), default=1)
    for index, (step, shape, operations) in enumerate(columns):
        centre = index * gap
        module = None if step is None else modules.get(step.name)
        if len(shape) == 4:
            channels, height, width = shape[1:]
            side = 0.45 + 0.65 * height / largest_side
            sheets = min(channels, 8)
            for sheet in range(sheets):
                offset = 0.05 * (sheets - 1 - sheet)
                ax.add_patch(
                    Rectangle(
                        (centre - side / 2 + offset - 0.15, -side / 2 + offset),
                        side * width / height,
                        side,
                        facecolor=PALETTE[0],
                        edgecolor="white",
                        alpha=0.5 + 0.5 * (sheet + 1) / sheets,
                    )
                )
            drawn = f"{channels} channel{'s' if channels != 1 else ''} of {height}×{width}"
        else:
            size = shape[-1]
            bar = 0.35 + 0.12 * max(size, 1).bit_length()
            ax.add_patch(Rectangle((centre - 0.1, -bar / 2), 0.2, bar, facecolor=PALETTE[1]))
            drawn = f"{size:,} values"
        if step is None:
            name, kind = "input", "the batch"
        else:
            name, kind = step.name, step.type
        ax.text(
            centre,
            1.55,
            name,
            ha="center",
            va="center",
            fontsize=11,
            weight="bold",
            family="monospace",
        )
        ax.text(
            centre,
            1.25,
            kind,
            ha="center",
            va="center",
            fontsize=10,
            bbox={
                "facecolor": KIND_COLOURS["layer" if step and step.params else "reshape"],
                "edgecolor": "#777777",
                "boxstyle": "round,pad=0.25",
            },
        )
        lines = [_shape_text(shape), _AXES_NAMES.get(len(shape), ""), drawn]
        ax.text(
            centre,
            -0.9,
            "\n".join(lines),
            ha="center",
            va="top",
            fontsize=9.5,
            linespacing=1.35,
            gid="shape",
        )
        if step is not None:
            details = [
                *_settings(module),
                f"{step.params:,} parameters" if step.params else "no parameters",
            ]
            ax.text(
                centre,
                -1.85,
                "\n".join(details),
                ha="center",
                va="top",
                fontsize=9.5,
                color="#333333",
                linespacing=1.35,
                gid="layer",
            )
        if index + 1 < len(columns):
            ax.add_patch(
                FancyArrowPatch(
                    (centre + 0.8, 0),
                    (centre + gap - 0.75, 0),
                    arrowstyle="-|>",
                    mutation_scale=14,
                    color="#555555",
                )
            )
            if operations:
                ax.text(
                    centre + gap / 2 - 0.05,
                    0.28,
                    "\n".join(operations),
                    ha="center",
                    va="bottom",
                    fontsize=9.5,
                    gid="operation",
                    bbox={
                        "facecolor": KIND_COLOURS["activation"],
                        "edgecolor": "#777777",
                        "boxstyle": "round,pad=0.25",
                    },
                )
    total = sum(p.numel() for p in model.parameters())
    batch = columns[0][1][0]
    ax.set_title(
        f"{type(model).__name__}: a batch of N={batch} through every layer, {total:,} parameters"
        "\n(on an arrow: a step that holds no weights and changes values, not the shape)",
        loc="left",
        fontsize=12.5,
        weight="bold",
    )
    return show(fig)


# ---------------------------------------------------------------------------------------------
# Model class anatomy
# ---------------------------------------------------------------------------------------------

ROLES = {
    "class": ("#C9DAF8", "class Name(nn.Module): inherit nn.Module's machinery"),
    "init": ("#E8E1F5", "__init__: build the parts once"),
    "super": ("#F4C7C3", "super().__init__(): set up nn.Module first"),
    "register": ("#D9EAD3", "self.name = nn.Layer(…): register a layer"),
    "unregistered": ("#F6B26B", "plain list/dict: NOT registered"),
    "forward": ("#FFF2CC", "forward: the computation, run by model(x)"),
    "other": ("#FFFFFF", ""),
}
_REGISTER = re.compile(r"^\s*self\.\w+\s*=\s*(?:torch\.)?(?:nn\.|[A-Z]\w*\()")
_UNREGISTERED = re.compile(r"^\s*self\.\w+\s*=\s*[\[\{(]")


def _line_roles(lines: list[str]) -> list[str]:
    roles = []
    method = None
    continuing = None
    depth = 0
    for line in lines:
        stripped = line.strip()
        if continuing is not None:
            role = continuing
        elif not stripped:
            role = "other"
        elif stripped.startswith("class "):
            role, method = "class", None
        elif stripped.startswith("def "):
            method = stripped[4:].split("(")[0]
            role = {"__init__": "init", "forward": "forward"}.get(method, "other")
        elif method == "__init__" and "super(" in stripped and "__init__(" in stripped:
            role = "super"
        elif method == "__init__" and _REGISTER.match(line):
            role = "register"
        elif method == "__init__" and _UNREGISTERED.match(line) and "nn." in line:
            role = "unregistered"
        elif method == "__init__":
            role = "init"
        elif method == "forward":
            role = "forward"
        else:
            role = "other"
        depth += line.count("(") + line.count("[") + line.count("{")
        depth -= line.count(")") + line.count("]") + line.count("}")
        continuing = role if depth > 0 else None
        roles.append(role)
    return roles


def _class_source(cls: type) -> list[str]:
    """The source lines of ``cls``. Classes defined in a notebook cell have no module file, so
    their source is found through a method's code object, which knows its cell."""
    try:
        return textwrap.dedent(inspect.getsource(cls)).rstrip().splitlines()
    except (OSError, TypeError):
        pass
    methods = [f for f in vars(cls).values() if inspect.isfunction(f)]
    if not methods:
        raise ValueError(f"cannot find the source code of {cls.__name__}")
    code = methods[0].__code__
    lines = linecache.getlines(code.co_filename)
    header = re.compile(rf"^(\s*)class\s+{re.escape(cls.__name__)}\b")
    start = next(
        (i for i in range(code.co_firstlineno - 1, -1, -1) if header.match(lines[i])), None
    )
    if start is None:
        raise ValueError(f"cannot find the source code of {cls.__name__}")
    indent = len(header.match(lines[start]).group(1))
    end = start + 1
    while end < len(lines) and (
        not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
    ):
        end += 1
    return textwrap.dedent("".join(lines[start:end])).rstrip().splitlines()


def model_anatomy(model_class: type) -> Figure:
    """The source code of a model class with every line coloured by its role: the class line,
    ``__init__``, the ``super().__init__()`` call, layer registration and ``forward``."""
    source = _class_source(model_class)
    roles = _line_roles(source)
    n = len(source)
    # Fixed geometry (no automatic layout): one x unit is one inch, so the monospace code
    # (0.0875 in per character at 10.5 pt) always fits inside its coloured bands.
    code_w = 0.0875 * max(40, max(len(line) for line in source)) + 0.35
    label_w, line_h, title_h = 4.4, 0.25, 0.5
    height = title_h + line_h * (n + 0.6)
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(code_w + label_w, height))
    ax = fig.add_axes((0, 0, 1, 1 - title_h / height))
    ax.set_axis_off()
    ax.set_xlim(0, code_w + label_w)
    ax.set_ylim(n - 0.2, -0.8)
    for i, (line, role) in enumerate(zip(source, roles, strict=True)):
        colour = ROLES[role][0]
        ax.add_patch(Rectangle((0, i - 0.5), code_w, 1.0, facecolor=colour, edgecolor="none"))
        ax.text(0.1, i, line or " ", ha="left", va="center", family="monospace", fontsize=10.5)
    # One label per contiguous region, to the right of the code.
    start = 0
    for i in range(1, n + 1):
        if i == n or roles[i] != roles[start]:
            role = roles[start]
            if role != "other":
                colour, label = ROLES[role]
                mid = (start + i - 1) / 2
                ax.add_patch(
                    Rectangle(
                        (code_w + 0.1, start - 0.45),
                        0.08,
                        i - start - 0.1,
                        facecolor="#555555",
                        edgecolor="none",
                    )
                )
                ax.text(
                    code_w + 0.3,
                    mid,
                    label,
                    ha="left",
                    va="center",
                    fontsize=10,
                    bbox={
                        "facecolor": colour,
                        "edgecolor": "#777777",
                        "boxstyle": "round,pad=0.25",
                    },
                )
            start = i
    fig.text(
        0.01,
        1 - 0.25 / height,
        f"Anatomy of {model_class.__name__}: each line's role",
        fontsize=13,
        weight="bold",
        va="center",
    )
    return show(fig)


__all__ = [
    "cnn_diagram",
    "layer_table",
    "model_anatomy",
    "network_diagram",
    "PALETTE",
    "format_value",
]
