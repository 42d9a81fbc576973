"""Lab 4 · Automatic mixed precision: the exercise checks and the lab's own figures."""

from __future__ import annotations

import math
import numbers
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from torch import nn

from workshop_labs import plots, runtime, timing
from workshop_labs.checks import exercise, expect, passed

DTYPE_COLORS = {
    torch.float32: plots.PALETTE[0],
    torch.bfloat16: plots.PALETTE[2],
    torch.float16: plots.PALETTE[1],
}

# ----------------------------------------------------------------------------------------------
# The hardware
# ----------------------------------------------------------------------------------------------


def cpu_bf16_units() -> bool | None:
    """Whether this CPU has bfloat16 arithmetic (AVX-512 BF16 or AMX); None when unknown."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return None
    flags = cpuinfo.read_text(errors="ignore").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


# Section 6's network, (width, batch) per device. On a GPU each matrix multiplication must be
# big enough to keep the tensor cores busy (sides in multiples of 64, thousands wide): with
# width 2048 and batch 512 an H200 ran float16 training at 0.65× of float32, launch and cast
# overheads outweighing the math. The largest that fits the attendee's memory is taken.
GPU_SIZES = ((8192, 8192), (8192, 4096), (4096, 4096), (4096, 2048), (2048, 2048), (1024, 1024))
GPU_QUICK_SIZES = ((4096, 2048), (2048, 2048), (1024, 1024))
# On the CPU, sizes that keep the lab's run short on two cores.
CPU_SIZES, CPU_QUICK_SIZES = (2048, 512), (256, 128)


def training_bytes(width: int, batch: int) -> int:
    """A generous estimate of the memory section 6 needs for its network at these sizes: the
    float32 weights, their gradients and AMP's 16-bit copies (10 bytes a weight), and a dozen
    float32 batch × width tensors (outputs, what autograd saves, their gradients)."""
    weights = width * width + (64 + 10 + 1) * width + 10
    return 10 * weights + 12 * 4 * batch * width


def mlp_sizes(device_type: str, usable_bytes: float | None, *, quick: bool) -> tuple[int, int]:
    """(width, batch) for section 6's network on a device of type ``device_type`` ("cuda",
    "cpu") whose attendee may use ``usable_bytes`` of its memory (None: unknown, no limit).

    On a GPU: the largest of GPU_SIZES (GPU_QUICK_SIZES in quick mode) whose estimate needs at
    most half of ``usable_bytes``, the rest left for the memory measurements and what the lab
    already holds; the smallest when none fits. On the CPU: the small sizes, whatever the
    memory."""
    if device_type != "cuda":
        return CPU_QUICK_SIZES if quick else CPU_SIZES
    candidates = GPU_QUICK_SIZES if quick else GPU_SIZES
    for width, batch in candidates:
        if usable_bytes is None or 2 * training_bytes(width, batch) <= usable_bytes:
            return width, batch
    return candidates[-1]


def usable_gpu_memory(device: torch.device) -> float | None:
    """Bytes of GPU memory this attendee may still allocate: the free memory, capped by their
    share (WORKSHOP_GPU_MEMORY_FRACTION, which setup() applied) less what PyTorch already holds.
    None on the CPU."""
    if device.type != "cuda":
        return None
    free, total = torch.cuda.mem_get_info(device)
    share = runtime.gpu_memory_fraction()
    if share is None:
        return float(free)
    return float(min(free, share * total - torch.cuda.memory_reserved(device)))


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------

FORMATS = {torch.float32: (8, 23), torch.float16: (5, 10), torch.bfloat16: (8, 7)}


def number_formats() -> Figure:
    """The bits of float32, float16 and bfloat16, with the range and precision they give."""
    fig, ax = plots.figure(figsize=(11, 3.8))
    for row, (dtype, (exponent, mantissa)) in enumerate(FORMATS.items()):
        y = 2 - row
        parts = [("sign", 1, "0.35"), ("exponent", exponent, plots.PALETTE[3])]
        parts.append(("mantissa", mantissa, plots.PALETTE[0]))
        x = 0
        for label, bits, color in parts:
            ax.barh(y, bits, left=x, height=0.6, color=color, edgecolor="white")
            if bits > 1:
                text = f"{label} {bits}" if bits > 5 else f"exp. {bits}"
                ax.text(x + bits / 2, y, text, ha="center", va="center", color="white")
            x += bits
        info = torch.finfo(dtype)
        ax.text(
            33,
            y,
            f"max {info.max:.1e} · smallest normal {info.smallest_normal:.1e} · "
            f"precision ≈ {-math.log10(info.eps):.1f} digits",
            va="center",
        )
    names = [str(dtype).removeprefix("torch.") for dtype in FORMATS]
    ax.set_yticks([2, 1, 0], names)
    ax.set_xlim(0, 70)
    ax.set_xticks([0, 8, 16, 24, 32])
    ax.set_xlabel("bits")
    ax.grid(False)
    ax.set_title("Exponent bits give range, mantissa bits give precision")
    return plots.show(fig)


def gradient_underflow(grads: torch.Tensor, scale: float) -> Figure:
    """Histogram of gradient magnitudes against float16's floor, unscaled and scaled."""
    values = grads.detach().abs().float().flatten().cpu()
    values = values[values > 0]
    tiny = torch.finfo(torch.float16).smallest_normal
    floor = 2.0**-24  # float16's smallest subnormal: anything below rounds to 0
    fig, axes = plots.figure(1, 2, figsize=(12, 4.2), sharey=True)
    for ax, factor, name in ((axes[0], 1.0, "as computed"), (axes[1], scale, f"× {scale:,.0f}")):
        logs = torch.log10(values * factor).numpy()
        bins = np.linspace(-14, 6, 81)
        ax.hist(logs, bins=bins, color=plots.PALETTE[0])
        lost = float((values * factor < floor / 2).float().mean())
        coarse = float((values * factor < tiny).float().mean())
        ax.axvspan(-14, math.log10(floor), color=plots.PALETTE[3], alpha=0.2)
        ax.axvline(math.log10(floor), color=plots.PALETTE[3], linestyle="--")
        ax.axvline(math.log10(tiny), color=plots.PALETTE[1], linestyle=":")
        ax.set_title(f"gradients {name}\n{lost:.2%} become 0 · {coarse:.1%} lose digits in fp16")
        ax.set_xlabel("log10 |gradient|")
    axes[0].set_ylabel("number of gradient values")
    axes[0].text(
        -13.6, axes[0].get_ylim()[1] * 0.85, "fp16 rounds\nthese to 0", color=plots.PALETTE[3]
    )
    return plots.show(fig)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _reason(op: str, dtype_in: torch.dtype, dtype_out: torch.dtype) -> str:
    if dtype_out == torch.float32 and dtype_in != torch.float32:
        return "on this device's float32 list: autocast upcasts it"
    if op in {"Linear", "Conv2d", "matmul"}:
        if dtype_out == torch.float32:
            return "input arrives fp32, autocast casts it down inside"
        return "matrix math: the fast low-precision units are built for this"
    if dtype_out == dtype_in:
        return "not on this device's lists: runs in whatever dtype comes in"
    return "autocast casts it"


def with_reasons(rows: list[dict]) -> list[dict[str, str]]:
    """The rows a lab cell recorded (step, op, input and output dtype), with the dtypes named
    and a column saying why autocast ran each op in that dtype."""
    return [
        {
            "step": row["step"],
            "op": row["op"],
            "input": _dtype_name(row["input"]),
            "output": _dtype_name(row["output"]),
            "why": _reason(row["op"], row["input"], row["output"]),
        }
        for row in rows
    ]


def dtype_picture(rows: list[dict[str, str]], *, title: str) -> Figure:
    """One box per op, left to right, coloured by the dtype it produced; the input first."""
    colors = {_dtype_name(dtype): color for dtype, color in DTYPE_COLORS.items()}
    boxes = [{"op": "input", "output": rows[0]["input"], "step": "the data"}, *rows]
    fig, ax = plots.figure(figsize=(1.55 * len(boxes) + 0.5, 3.2))
    for i, row in enumerate(boxes):
        left = i * 1.6 + 0.1
        color = colors.get(row["output"], "0.6")
        ax.add_patch(FancyBboxPatch((left, 0.5), 1.3, 1.1, boxstyle="round,pad=0.05", color=color))
        ax.text(
            left + 0.65,
            1.22,
            row["op"],
            ha="center",
            va="center",
            color="white",
            fontweight="bold",
            fontsize=10,
        )
        ax.text(left + 0.65, 0.85, row["output"], ha="center", va="center", color="white")
        ax.text(
            left + 0.65,
            0.3,
            row["step"].replace(" → ", "\n→ "),
            ha="center",
            va="center",
            fontsize=9,
        )
        if i:
            ax.annotate(
                "",
                xy=(left - 0.02, 1.05),
                xytext=(left - 0.28, 1.05),
                arrowprops={"arrowstyle": "->", "color": "0.4"},
            )
    ax.set_xlim(0, 1.6 * len(boxes))
    ax.set_ylim(-0.1, 1.8)
    ax.axis("off")
    ax.set_title(title)
    handles = [FancyBboxPatch((0, 0), 1, 1, color=color) for color in colors.values()]
    fig.legend(handles, list(colors), loc="outside lower center", ncols=3, frameon=False)
    return plots.show(fig)


# ----------------------------------------------------------------------------------------------
# Measuring memory
# ----------------------------------------------------------------------------------------------


# Autograd nodes that only cast or re-view a tensor: walking up through them from a saved
# tensor and reaching a parameter means autocast saved a cast copy of that weight.
_CAST_OR_VIEW = {"ToCopyBackward0", "TBackward0", "TransposeBackward0", "ViewBackward0"}


def is_weight_copy(tensor: torch.Tensor) -> bool:
    """Whether a tensor autograd saved is a cast copy of a parameter (autocast's low-precision
    weight), found by walking its graph up through casts and views to a parameter."""
    node = tensor.grad_fn
    while node is not None and node.name() in _CAST_OR_VIEW:
        parents = [parent for parent, _ in node.next_functions if parent is not None]
        if len(parents) != 1:
            return False
        node = parents[0]
    return node is not None and node.name() == "torch::autograd::AccumulateGrad"


def verdict(device: torch.device, training: timing.Speedup, inference: timing.Speedup) -> str:
    """A sentence saying what AMP did to speed on this hardware, and why, from the Speedups of
    section 6's repeated runs (lab 3's rule: it says only what the middle halves allow)."""
    where = "GPU" if device.type == "cuda" else "CPU"
    text = f"On this {where} AMP was {training} for a training step and {inference} for inference. "
    if training.direction == timing.FASTER:
        if device.type == "cuda":
            return text + "The tensor cores did the matrix math in low precision."
        units = "This CPU has bfloat16 units, so " if cpu_bf16_units() else ""
        return text + units + "the big matrix multiplies got cheaper in bfloat16."
    if training.direction == timing.WITHIN_THE_NOISE:
        return text + (
            "No difference beyond the noise: what the low precision saves, the casts cost here "
            "(or the machine was too busy to tell; run the cell again)."
        )
    if device.type == "cuda":
        return text + "The model is too small to keep the tensor cores busy: overhead dominates."
    if cpu_bf16_units() is False:
        return text + "This CPU has no bfloat16 units: every cast costs, and the math saves none."
    return text + "Casting costs more than the lower precision saves at these sizes."


# ----------------------------------------------------------------------------------------------
# Spies used by the checks: they record what the attendee's code did
# ----------------------------------------------------------------------------------------------


def _check_model(device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).to(device)


def _check_batch(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    inputs = torch.rand(16, 64, generator=generator).to(device)
    targets = torch.randint(0, 10, (16,), generator=generator).to(device)
    return inputs, targets


class _ForwardSpy:
    """Records, for each Linear layer call, whether autocast was on and the output dtype."""

    def __init__(self, model: nn.Module, device: torch.device):
        self.device_type = device.type
        self.linear_dtypes: list[torch.dtype] = []
        self.grad_enabled: list[bool] = []
        linears = [layer for layer in model.modules() if isinstance(layer, nn.Linear)]
        for layer in linears:
            layer.register_forward_hook(self.hook)

    def hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self.linear_dtypes.append(output.dtype)
        self.grad_enabled.append(torch.is_grad_enabled())


def _autocast_on() -> bool:
    """Whether the code running now is inside an autocast block, for either device type (a
    step that names the wrong one is told so by the forward's dtype, before this matters)."""
    return torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")


class _AutocastWatch:
    """Remembers which of the training step's calls ran inside an autocast block, and logs
    the backward pass: a hook on the loss fires when backward() reaches it, in the state
    (autocast on or off) of the code that called backward()."""

    def __init__(self, log: list[str]):
        self.log = log
        self.inside: list[str] = []

    def note(self, call: str) -> None:
        if _autocast_on() and call not in self.inside:
            self.inside.append(call)

    def watch_backward(self, loss: torch.Tensor) -> None:
        if loss.requires_grad:
            loss.register_hook(self._backward_reached)

    def _backward_reached(self, grad: torch.Tensor) -> None:
        self.log.append("backward")
        self.note("backward()")


class _LossSpy:
    """A cross-entropy loss that remembers whether it ran inside autocast, and watches the
    backward pass that starts from it."""

    def __init__(self, device: torch.device, watch: _AutocastWatch | None = None):
        self.device_type = device.type
        self.watch = watch
        self.autocast_on: list[bool] = []

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        self.autocast_on.append(torch.is_autocast_enabled(self.device_type))
        loss = nn.functional.cross_entropy(logits, targets)
        if self.watch is not None:
            self.watch.watch_backward(loss)
        return loss


def _gradient_norm(optimizer: torch.optim.Optimizer) -> float:
    """The norm of all gradients an optimizer holds, as clip_grad_norm_ computes it."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"]]
    norms = [g.detach().float().norm() for g in grads if g is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


class _OptimizerSpy:
    """Wraps an optimizer's ``step`` and ``zero_grad`` to log when they are called, and keeps
    the norm of the gradients each step used."""

    def __init__(self, optimizer: torch.optim.Optimizer, log: list[str], watch: _AutocastWatch):
        self.log = log
        self.inside_scaler_step = False
        self.step_norms: list[float] = []
        self.step_largest: list[float] = []
        self.step_grad_dtypes: set[torch.dtype] = set()
        step, zero_grad = optimizer.step, optimizer.zero_grad

        def logged_step(*args, **kwargs):
            self.log.append(
                "scaler→optimizer.step" if self.inside_scaler_step else "optimizer.step"
            )
            if not self.inside_scaler_step:
                watch.note("optimizer.step()")
            self.step_norms.append(_gradient_norm(optimizer))
            grads = [p.grad for group in optimizer.param_groups for p in group["params"]]
            grads = [grad for grad in grads if grad is not None]
            self.step_grad_dtypes.update(grad.dtype for grad in grads)
            self.step_largest.append(max((float(g.abs().max()) for g in grads), default=0.0))
            return step(*args, **kwargs)

        def logged_zero_grad(*args, **kwargs):
            self.log.append("zero_grad")
            return zero_grad(*args, **kwargs)

        optimizer.step = logged_step
        optimizer.zero_grad = logged_zero_grad


class _ScalerSpy(torch.amp.GradScaler):
    """A real GradScaler that logs scale / backward-through-scaled-loss / unscale_ / step /
    update, and the gradient norm each of the attendee's ``unscale_`` calls found."""

    def __init__(
        self,
        device: torch.device,
        log: list[str],
        optimizer_spy: _OptimizerSpy,
        watch: _AutocastWatch,
    ):
        super().__init__(device.type, init_scale=2.0**10)
        self.log = log
        self.optimizer_spy = optimizer_spy
        self.watch = watch
        self.norms_before_unscale: list[float] = []

    def scale(self, outputs):
        scaled = super().scale(outputs)
        self.log.append("scale")
        if isinstance(scaled, torch.Tensor) and scaled.requires_grad:
            scaled.register_hook(lambda grad: self.log.append("backward(scaled)"))
        return scaled

    def unscale_(self, optimizer):
        if not self.optimizer_spy.inside_scaler_step:  # step() unscales by itself when needed
            self.log.append("unscale_")
            self.norms_before_unscale.append(_gradient_norm(optimizer))
        return super().unscale_(optimizer)

    def step(self, optimizer, *args, **kwargs):
        self.log.append("scaler.step")
        self.watch.note("scaler.step(optimizer)")
        self.optimizer_spy.inside_scaler_step = True
        try:
            return super().step(optimizer, *args, **kwargs)
        finally:
            self.optimizer_spy.inside_scaler_step = False

    def update(self, new_scale=None):
        self.log.append("update")
        self.watch.note("scaler.update()")
        return super().update(new_scale)


def _expect_function(fn: object, name: str, signature: str) -> None:
    expect(fn is not None, f"`{name}` is None: define the function")
    expect(callable(fn), f"`{name}` must be a function: def {name}({signature})")


def _call(fn: Callable, *args: object) -> tuple[object, Exception | None]:
    """Run the attendee's function; an error is kept so the log can explain it first."""
    try:
        return fn(*args), None
    except Exception as error:  # reported after the diagnosis, which names the cause
        return None, error


def _expect_no_error(error: Exception | None, name: str) -> None:
    expect(error is None, f"{name} raised {type(error).__name__}: {error}")


def _expect_model_ran_or_no_error(spy: _ForwardSpy, error: Exception | None, name: str) -> None:
    """An error raised before the model ran is the whole story (e.g. autocast without its
    device_type): report it rather than "the model was never called"."""
    if not spy.linear_dtypes:
        _expect_no_error(error, name)


def _expect_fp32_weights(model: nn.Module) -> None:
    dtypes = {p.dtype for p in model.parameters()}
    expect(
        dtypes == {torch.float32},
        f"the model's weights are now {', '.join(sorted(map(_dtype_name, dtypes)))}: do not "
        "convert the model (.half(), .to(dtype)); autocast keeps the weights in float32 and "
        "casts per operation",
    )


def _expect_linear_dtype(spy: _ForwardSpy, wanted: torch.dtype, device: torch.device) -> None:
    expect(spy.linear_dtypes, "the model was never called: run model(inputs)")
    got = spy.linear_dtypes[0]
    expect(
        got != torch.float32,
        f"Linear ran in float32: run the forward inside `with torch.autocast(device_type="
        f"{device.type!r}, dtype=torch.{_dtype_name(wanted)}):` (device_type must be the "
        "device the tensors are on)",
    )
    expect(
        got == wanted,
        f"Linear ran in {_dtype_name(got)} but this exercise needs {_dtype_name(wanted)} on "
        f"{device.type}: pass dtype=torch.{_dtype_name(wanted)} to torch.autocast",
    )


# ----------------------------------------------------------------------------------------------
# Exercise 1: what a 16-bit type stores
# ----------------------------------------------------------------------------------------------

# Three numbers a network meets: a large activation, a tiny gradient, a weight after an update
# of 0.001. Each shows what one 16-bit type gives up (range, range, precision).
STORED_VALUES = (70000.0, 1e-8, 1.001)
SIXTEEN_BITS = (torch.float16, torch.bfloat16)


def _stored(value: float, dtype: torch.dtype) -> float:
    """The number ``dtype`` keeps of the float32 ``value``, back as a Python float."""
    return float(torch.full((1,), value, dtype=torch.float32).to(dtype)[0])


def _same_number(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@exercise()
def check_stored_as(stored_as: Callable) -> None:
    """``stored_as(value, dtype)`` gives back, as a Python float, the number ``dtype`` stores for
    ``value``: float16 overflows 70,000 to inf and flushes 1e-8 to 0, bfloat16 rounds 1.001 to
    1.0. Nothing later uses it, so an unsolved one is returned as it is."""
    _expect_function(stored_as, "stored_as", "value, dtype")
    for dtype in SIXTEEN_BITS:
        other = SIXTEEN_BITS[1 - SIXTEEN_BITS.index(dtype)]
        for value in STORED_VALUES:
            call = f"stored_as({value:g}, torch.{_dtype_name(dtype)})"
            got, error = _call(stored_as, value, dtype)
            _expect_no_error(error, call)
            expect(
                not isinstance(got, torch.Tensor),
                f"{call} returned a tensor: give back a Python number with .item()",
            )
            expect(
                isinstance(got, float | int) and not isinstance(got, bool),
                f"{call} returned a {type(got).__name__}: give back a Python float (.item())",
            )
            want = _stored(value, dtype)
            if _same_number(got, want):
                continue
            expect(
                not _same_number(got, _stored(value, other)),
                f"{call} returned {got:g}, what {_dtype_name(other)} stores: convert to the "
                f"dtype you were given (.to(dtype)), not always to {_dtype_name(other)}",
            )
            expect(
                not _same_number(got, _stored(value, torch.float32)),
                f"{call} returned {got:g}, the float32 value: make a tensor of the value, "
                "convert it with .to(dtype), then read it back with .item()",
            )
            expect(False, f"{call} returned {got:g}, but {_dtype_name(dtype)} stores {want:g}")
    fp16, bf16 = ([_stored(value, dtype) for value in STORED_VALUES] for dtype in SIXTEEN_BITS)
    passed(
        f"float16 stores 70,000 as {fp16[0]:g} and 1e-8 as {fp16[1]:g}; bfloat16 keeps their "
        f"range ({bf16[0]:,.0f} and {bf16[1]:.4g}) but stores 1.001 as {bf16[2]:g}"
    )


# ----------------------------------------------------------------------------------------------
# Exercise 2: inference under autocast
# ----------------------------------------------------------------------------------------------


@exercise()
def check_predict_amp(predict_amp: Callable, device: torch.device, dtype: torch.dtype) -> None:
    """``predict_amp(model, inputs)`` predicts under autocast in ``dtype``, without autograd,
    with float32 weights. Nothing later uses it, so an unsolved one is returned as it is."""
    _expect_function(predict_amp, "predict_amp", "model, inputs")
    model = _check_model(device)
    spy = _ForwardSpy(model, device)
    inputs, _ = _check_batch(device)
    scores, error = _call(predict_amp, model, inputs)
    _expect_model_ran_or_no_error(spy, error, "predict_amp")
    _expect_fp32_weights(model)
    _expect_linear_dtype(spy, dtype, device)
    expect(
        not any(spy.grad_enabled),
        "autograd recorded the forward pass: predict inside `with torch.inference_mode():` "
        "(there is no backward pass when you only predict)",
    )
    _expect_no_error(error, "predict_amp")
    expect(
        isinstance(scores, torch.Tensor) and tuple(scores.shape) == (len(inputs), 10),
        "predict_amp must return the model's output: a (batch, 10) tensor of class scores",
    )
    passed(f"Linear ran in {_dtype_name(spy.linear_dtypes[0])}, no graph recorded, fp32 weights")


class _SpiedStep:
    """A model, optimizer and loss whose every use a training-step check can inspect."""

    def __init__(self, device: torch.device):
        self.device = device
        self.model = _check_model(device)
        self.forward = _ForwardSpy(self.model, device)
        self.log: list[str] = []
        self.autocast_watch = _AutocastWatch(self.log)
        self.loss_fn = _LossSpy(device, self.autocast_watch)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.optimizer_spy = _OptimizerSpy(self.optimizer, self.log, self.autocast_watch)

    def scaler(self) -> _ScalerSpy:
        """A GradScaler that logs into this step's log."""
        return _ScalerSpy(self.device, self.log, self.optimizer_spy, self.autocast_watch)

    def run(
        self,
        train_step: Callable,
        name: str,
        *,
        scaler: _ScalerSpy | None = None,
        max_norm: float | None = None,
    ) -> Exception | None:
        """Call the attendee's step on the check's batch; the error it raised, if any."""
        inputs, targets = _check_batch(self.device)
        args = [self.model, self.optimizer, scaler, self.loss_fn, inputs, targets, max_norm]
        if scaler is None:
            args.remove(None)
        if max_norm is None:
            args.pop()
        _, error = _call(train_step, *args)
        _expect_model_ran_or_no_error(self.forward, error, name)
        return error

    def expect_autocast(self, dtype: torch.dtype, loss_dtype_reason: str) -> None:
        """fp32 weights, Linear in `dtype`, and the loss computed inside autocast."""
        _expect_fp32_weights(self.model)
        _expect_linear_dtype(self.forward, dtype, self.device)
        expect(
            self.loss_fn.autocast_on,
            "loss_fn was never called: compute loss_fn(outputs, targets)",
        )
        expect(
            all(self.loss_fn.autocast_on),
            "the loss was computed outside the autocast block: compute it inside, so autocast "
            + loss_dtype_reason,
        )
        inside = self.autocast_watch.inside
        expect(
            not inside,
            f"{' and '.join(inside)} ran inside the autocast block: autocast is for the "
            "forward pass and the loss only. End the `with` block after the loss and call "
            "backward() and the step below it (autograd already runs each op's backward in "
            "the dtype its forward used)",
        )


# ----------------------------------------------------------------------------------------------
# Exercise 3: a bfloat16 training step, no scaler
# ----------------------------------------------------------------------------------------------


@exercise()
def check_train_step_bf16(train_step_bf16: Callable, device: torch.device) -> None:
    """bfloat16 forward and loss under autocast, fp32 weights and gradients, a real update.
    Nothing later uses it, so an unsolved one is returned as it is."""
    _expect_function(
        train_step_bf16, "train_step_bf16", "model, optimizer, loss_fn, inputs, targets"
    )
    step = _SpiedStep(device)
    model, log = step.model, step.log
    before = [p.detach().clone() for p in model.parameters()]
    error = step.run(train_step_bf16, "train_step_bf16")

    step.expect_autocast(torch.bfloat16, "picks float32 for it")
    _expect_no_error(error, "train_step_bf16")
    expect("backward" in log, "backward() never reached the loss: call loss.backward()")
    expect("zero_grad" in log, "optimizer.zero_grad() was never called: gradients add up")
    expect("optimizer.step" in log, "optimizer.step() was never called: the weights did not change")
    backward, step_at = log.index("backward"), log.index("optimizer.step")
    expect(
        step_at > backward,
        "optimizer.step() ran before loss.backward(): the step found no gradients. Call "
        "backward() first, then step()",
    )
    expect(
        "zero_grad" not in log[backward:step_at],
        "optimizer.zero_grad() ran between backward() and step(): it wiped the gradients "
        "before the step. Call it before the forward pass (or right after the step)",
    )
    # what the step saw: a step may zero the gradients after using them
    grad_dtypes = step.optimizer_spy.step_grad_dtypes
    expect(grad_dtypes, "optimizer.step() found no gradients: call loss.backward() before it")
    expect(
        grad_dtypes == {torch.float32},
        "the gradients are not float32: keep the weights in float32 and let autocast cast",
    )
    changed = any(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    expect(changed, "the weights did not change: call optimizer.step() after backward()")
    passed("bf16 forward and fp32 loss under autocast, fp32 weights updated, no scaler needed")


# ----------------------------------------------------------------------------------------------
# Exercise 4: a float16 training step with GradScaler
# ----------------------------------------------------------------------------------------------


def float32_step(model, optimizer, scaler, loss_fn, inputs, targets, max_norm=None):
    """What the cells below Exercises 4 and 5 train with while they are unsolved: section 3's
    plain float32 step, without autocast. float32 gradients do not underflow, so the scaler is
    left alone (its scale stays where it is), and nothing is clipped (``max_norm`` is unused).
    The float16 recipe is the exercises' hidden solution."""
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss


def _expect_scaled_backward(step: _SpiedStep) -> None:
    """What every float16 step needs before the optimizer step: autocast, zero_grad, and
    backward through the scaled loss, and no direct optimizer.step()."""
    log = step.log
    step.expect_autocast(torch.float16, "runs it in float32 (a loss in float16 loses precision)")
    expect("zero_grad" in log, "optimizer.zero_grad() was never called: gradients add up")
    expect(
        "scale" in log,
        "scaler.scale(loss) was never called: without scaling, small float16 gradients "
        "underflow to 0. Use scaler.scale(loss).backward()",
    )
    expect(
        "backward(scaled)" in log,
        "backward() ran on the unscaled loss: call scaler.scale(loss).backward(), not "
        "loss.backward()",
    )
    backward = log.index("backward(scaled)")
    step_at = log.index("scaler.step") if "scaler.step" in log else len(log)
    expect(
        not any(backward < i < step_at for i, entry in enumerate(log) if entry == "zero_grad"),
        "optimizer.zero_grad() ran after backward(): it wiped the gradients before the step. "
        "Call it before the forward pass (or right after the step)",
    )
    expect(
        "optimizer.step" not in log,
        "optimizer.step() was called directly: call scaler.step(optimizer), which unscales "
        "the gradients first and skips the step when they contain inf or NaN",
    )


def _expect_step_then_update(log: list[str]) -> None:
    if "update" in log:
        expect(
            "scaler.step" in log and log.index("update") > log.index("scaler.step"),
            "scaler.update() ran before scaler.step(optimizer): step first, then update the "
            "scale for the next iteration",
        )
    expect("scaler.step" in log, "scaler.step(optimizer) was never called: no weight update")
    expect(
        "update" in log,
        "scaler.update() was never called: without it the scale never adapts (it must grow "
        "while steps succeed and shrink after an overflow)",
    )


@exercise(
    stand_in=lambda device: float32_step,
    stand_in_is="a float32 step without autocast, which leaves the scaler alone",
)
def check_train_step_fp16(train_step_fp16: Callable, device: torch.device) -> None:
    """The order and targets of scale / backward / step / update, and autocast coverage."""
    _expect_function(
        train_step_fp16, "train_step_fp16", "model, optimizer, scaler, loss_fn, inputs, targets"
    )
    step = _SpiedStep(device)
    error = step.run(train_step_fp16, "train_step_fp16", scaler=step.scaler())
    _expect_scaled_backward(step)
    _expect_step_then_update(step.log)
    _expect_no_error(error, "train_step_fp16")
    passed(
        "fp16 step in the right order: zero_grad → scaler.scale(loss).backward() → "
        "scaler.step(optimizer) → scaler.update()"
    )


# ----------------------------------------------------------------------------------------------
# Exercise 5: a float16 training step that clips its gradients
# ----------------------------------------------------------------------------------------------


def _unclipped_norm(device: torch.device, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """The gradient norm of the check's model on the check's batch, in float32."""
    model = _check_model(device)
    nn.functional.cross_entropy(model(inputs), targets).backward()
    return float(torch.stack([p.grad.norm() for p in model.parameters()]).norm())


@exercise(
    stand_in=lambda device: float32_step,
    stand_in_is="a float32 step without autocast or clipping, which leaves the scaler alone",
)
def check_train_step_fp16_clipped(train_step: Callable, device: torch.device) -> None:
    """A float16 step that unscales once, then clips the true gradients, then steps."""
    name = "train_step_fp16_clipped"
    _expect_function(
        train_step, name, "model, optimizer, scaler, loss_fn, inputs, targets, max_norm"
    )
    step = _SpiedStep(device)
    log, scaler = step.log, step.scaler()
    # a quarter of the true norm: clipping must change the gradients, visibly
    max_norm = _unclipped_norm(device, *_check_batch(device)) / 4
    error = step.run(train_step, name, scaler=scaler, max_norm=max_norm)
    _expect_scaled_backward(step)
    expect(
        log.count("unscale_") <= 1,
        "scaler.unscale_(optimizer) was called twice in one step: the second call raises, "
        "because the gradients are unscaled already. Call it once, right after backward()",
    )
    if "unscale_" in log and "scaler.step" in log:
        expect(
            log.index("unscale_") < log.index("scaler.step"),
            "scaler.unscale_(optimizer) ran after scaler.step(optimizer): unscale, then clip, "
            "then step",
        )
    if scaler.norms_before_unscale:
        expect(
            scaler.norms_before_unscale[0] > 2 * max_norm,
            "you clipped before scaler.unscale_(optimizer): clip_grad_norm_ saw the gradients "
            "still multiplied by the scale and cut them far too much. Call "
            "scaler.unscale_(optimizer) first, then clip",
        )
    _expect_step_then_update(log)
    _expect_no_error(error, name)
    expect(step.optimizer_spy.step_norms, "scaler.step(optimizer) skipped the step: no update")
    used = step.optimizer_spy.step_norms[-1]
    expect(
        used > max_norm / 10 or "unscale_" in log,
        f"the step used gradients of norm {used:.2g}, far below max_norm={max_norm:.2g}: "
        "clip_grad_norm_ clipped the scaled gradients. Call scaler.unscale_(optimizer) after "
        "backward() and before clipping",
    )
    largest = step.optimizer_spy.step_largest[-1]
    expect(
        used < 1.05 * max_norm or largest > 1.0001 * max_norm,
        f"the step used gradients of norm {used:.3g}, above max_norm={max_norm:.3g}, though "
        f"none is larger than {largest:.3g}: clip_grad_value_ cut each number to ±max_norm "
        "instead of the norm. Clip with torch.nn.utils.clip_grad_norm_(model.parameters(), "
        "max_norm)",
    )
    expect(
        used < 1.05 * max_norm,
        f"the step used gradients of norm {used:.3g}, above max_norm={max_norm:.3g}: they "
        "were not clipped. After scaler.unscale_(optimizer), call "
        "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)",
    )
    expect(
        used > 0.95 * max_norm,
        f"the step used gradients of norm {used:.3g}, not max_norm={max_norm:.3g}: clip with "
        "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm), after "
        "scaler.unscale_(optimizer)",
    )
    passed(
        f"unscale_ → clip to max_norm → scaler.step: the step used gradients of norm {used:.3g} "
        f"(max_norm {max_norm:.3g})"
    )


# ----------------------------------------------------------------------------------------------
# Exercise 6: time both sides with lab 3's rule
# ----------------------------------------------------------------------------------------------

# A side needs this many timed runs for its middle half to mean anything.
MIN_RUNS = 5


class _Sleeper:
    """A function for the check to time: each call sleeps ``ms`` milliseconds, the first one
    ``first_ms`` (the one-off cost a first call pays: allocation, kernel selection). It counts
    its calls, so the check knows how many runs can be real."""

    def __init__(self, ms: float, first_ms: float):
        self.ms, self.first_ms, self.calls = ms, first_ms, 0

    def __call__(self) -> None:
        self.calls += 1
        time.sleep((self.first_ms if self.calls == 1 else self.ms) / 1000)


def _expect_runs(runs: object, side: str, sleeper: _Sleeper) -> list[float]:
    """The runs of one side, as milliseconds the check can believe."""
    expect(
        not isinstance(runs, timing.Measurement),
        f"{side} is a Measurement: return its .runs, every timed run in milliseconds",
    )
    expect(
        isinstance(runs, Sequence | np.ndarray) and not isinstance(runs, str),
        f"{side} is a {type(runs).__name__}, not the list of runs: return every timed run "
        "(timing.measure(...).runs); a mean or a median alone cannot say whether the middle "
        "halves overlap",
    )
    expect(
        all(isinstance(run, numbers.Real) and not isinstance(run, bool) for run in runs),
        f"{side} must hold numbers (milliseconds), one per timed run",
    )
    runs = [float(run) for run in runs]
    expect(
        len(runs) >= MIN_RUNS,
        f"{side} holds {len(runs)} run(s): a verdict needs repeated runs. Time each side at "
        f"least {MIN_RUNS} times (timing.measure's repeats)",
    )
    expect(
        sleeper.calls > 0,
        f"{side} holds runs of a function that never ran: time the function you were given",
    )
    expect(
        max(runs) >= 0.1 * sleeper.ms,
        f"{side}: each call takes {sleeper.ms:g} ms or more, but the runs are all below "
        f"{max(runs):.3g}: they are in seconds. Give milliseconds, as timing.measure does "
        "(or multiply seconds by 1000)",
    )
    return [float(run) for run in runs]


@exercise()
def check_time_both(time_both: Callable) -> None:
    """``time_both(before, after)`` returns ``(before_runs, after_runs)``: every timed run of
    each function, in milliseconds, after a warm-up. The check hands it two functions that
    sleep (6 ms and 2 ms, longer on their first call) and believes only runs those calls can
    have taken. Nothing later uses it, so an unsolved one is returned as it is."""
    _expect_function(time_both, "time_both", "before, after")
    before, after = _Sleeper(ms=6, first_ms=30), _Sleeper(ms=2, first_ms=30)
    start = time.perf_counter()
    result, error = _call(time_both, before, after)
    elapsed_ms = (time.perf_counter() - start) * 1000
    _expect_no_error(error, "time_both")
    expect(result is not None, "time_both returned None: return (before_runs, after_runs)")
    expect(
        isinstance(result, tuple | list) and len(result) == 2,
        "time_both must return two things, (before_runs, after_runs)",
    )
    sides = {"before_runs": (result[0], before), "after_runs": (result[1], after)}
    runs = {name: _expect_runs(got, name, sleeper) for name, (got, sleeper) in sides.items()}
    expect(
        statistics.median(runs["before_runs"]) >= 0.9 * before.ms
        or statistics.median(runs["after_runs"]) < 0.9 * before.ms,
        "before_runs holds after()'s times: return the runs in the order of the arguments, "
        "(before_runs, after_runs)",
    )
    for name, (_, sleeper) in sides.items():
        expect(
            min(runs[name]) >= 0.9 * sleeper.ms,
            f"{name} holds runs shorter than a call takes ({min(runs[name]):.3g} ms, a call "
            f"sleeps {sleeper.ms:g} ms): time each call from just before it to just after it",
        )
        expect(
            sleeper.calls >= len(runs[name]) and sum(runs[name]) <= elapsed_ms,
            f"{name} holds {len(runs[name])} runs adding up to {sum(runs[name]):.0f} ms, but "
            f"the function ran {sleeper.calls} times and time_both took {elapsed_ms:.0f} ms: "
            "time real calls, never write the numbers yourself",
        )
        expect(
            sleeper.calls > len(runs[name]),
            f"{name}: every call was timed, the first one too, which pays one-off costs (here "
            f"{sleeper.first_ms:g} ms instead of {sleeper.ms:g}): warm up first, untimed "
            "(timing.measure(..., warmup=3))",
        )
    speedup = timing.speedup(runs["before_runs"], runs["after_runs"])
    passed(
        f"{len(runs['before_runs'])} and {len(runs['after_runs'])} timed runs after a warm-up: "
        f"after() (2 ms) against before() (6 ms): {speedup}"
    )


# ----------------------------------------------------------------------------------------------
# Exercise 7: which cases AMP sped up
# ----------------------------------------------------------------------------------------------

# Made-up runs (milliseconds, float32 then AMP), each case a way of judging speed going wrong.
GAIN, NOISE, OUTLIER, LOSS = (
    "AMP clearly faster",
    "medians 1.3× apart, middle halves overlapping",
    "one slow float32 run",
    "AMP clearly slower",
)
JUDGED_CASES = {
    GAIN: ((10.0, 10.2, 10.4, 10.1, 10.3, 9.9), (5.0, 5.1, 5.2, 4.9, 5.0, 5.1)),
    NOISE: ((8.0, 9.0, 12.0, 13.0, 14.0, 16.0), (7.0, 8.0, 9.0, 10.0, 11.0, 13.0)),
    OUTLIER: ((5.0, 5.0, 5.1, 4.9, 5.0, 60.0), (5.1, 5.0, 4.9, 5.0, 5.1, 5.0)),
    LOSS: ((5.0, 5.1, 4.9, 5.0, 5.2, 5.0), (10.0, 10.1, 9.9, 10.2, 10.0, 10.3)),
}


def _expect_case_names(found: object, cases: Mapping[str, object]) -> set[str]:
    expect(found is not None, "amp_gains returned None: return the names of the cases")
    expect(
        isinstance(found, list | tuple | set) and all(isinstance(name, str) for name in found),
        f"amp_gains returned a {type(found).__name__}: return a list of case names (the keys "
        "of the dict it was given)",
    )
    unknown = [name for name in found if name not in cases]
    expect(not unknown, f"amp_gains returned names it was not given: {unknown}")
    return set(found)


@exercise()
def check_amp_gains(amp_gains: Callable, cases: Mapping[str, tuple]) -> None:
    """``amp_gains(cases)`` names the cases, of ``{name: (float32_runs, amp_runs)}``, in which
    AMP was faster beyond the noise (lab 3's rule). It is judged on made-up cases that each
    catch one wrong way of judging, then on the lab's own measured ``cases``. Nothing later
    uses it, so an unsolved one is returned as it is."""
    _expect_function(amp_gains, "amp_gains", "cases")
    found, error = _call(amp_gains, dict(JUDGED_CASES))
    _expect_no_error(error, "amp_gains")
    found = _expect_case_names(found, JUDGED_CASES)
    expect(
        not (LOSS in found and GAIN not in found),
        f"amp_gains counted {LOSS!r} and not {GAIN!r}: the runs are the wrong way round. "
        "timing.speedup(before, after) takes float32's runs first, then AMP's",
    )
    expect(
        LOSS not in found,
        f"amp_gains counted {LOSS!r}: a speed-up below 1 (direction 'slower') is no gain",
    )
    expect(
        OUTLIER not in found,
        f"amp_gains counted {OUTLIER!r}: one slow run pulls float32's mean up, the middle "
        "halves are the same. Compare with timing.speedup (medians and quartiles), not means",
    )
    expect(
        NOISE not in found,
        f"amp_gains counted {NOISE!r}: its median ratio is 1.32×, but the middle halves of "
        "the runs overlap, so it is within the noise, not a gain. Judge with "
        "timing.speedup(...).direction, not the ratio",
    )
    expect(GAIN in found, f"amp_gains missed {GAIN!r}: AMP was faster beyond the noise there")
    measured, error = _call(amp_gains, dict(cases))
    _expect_no_error(error, "amp_gains")
    measured = _expect_case_names(measured, cases)
    truth = {
        name for name, runs in cases.items() if timing.speedup(*runs).direction == timing.FASTER
    }
    expect(
        measured == truth,
        f"on the lab's measurements amp_gains named {sorted(measured)}, but AMP was faster "
        f"beyond the noise in {sorted(truth)}",
    )
    passed(
        "only the clear gain counts; on this machine AMP was faster beyond the noise in: "
        + (", ".join(sorted(truth)) or "none of the cases")
    )


# Each verdict's colour: green faster, red slower, a neutral grey for "within the noise".
DIRECTION_COLORS = {
    timing.FASTER: plots.PALETTE[2],
    timing.WITHIN_THE_NOISE: plots.PALETTE[7],
    timing.SLOWER: plots.PALETTE[3],
}


def directions_count(speedups: Mapping[str, timing.Speedup]) -> str:
    """ "faster in 1, within the noise in 1, slower in 1 of 3 cases": how many cases got each
    verdict, in that order, leaving out a verdict no case got."""
    counts = Counter(speedup.direction for speedup in speedups.values())
    parts = [f"{direction} in {counts[direction]}" for direction in DIRECTION_COLORS]
    kept = [
        part for part, direction in zip(parts, DIRECTION_COLORS, strict=True) if counts[direction]
    ]
    return f"{', '.join(kept)} of {len(speedups)} cases"


def speedup_bars(speedups: Mapping[str, timing.Speedup], *, title: str) -> Figure:
    """Bars of AMP's speed-up per case (the ratio of the median runs), each whisker spanning
    the range the quartiles allow, each bar coloured by its verdict (lab 3's rule); the title
    ends with how many cases got each verdict, so it always agrees with the colours.

    The scale is logarithmic and each bar starts at 1×: up for faster, down for slower, so 2×
    faster and 2× slower are as long, and a case 100× slower still shows."""
    fig, ax = plots.figure(figsize=(max(6.0, 2.2 * len(speedups) + 1), 4.5))
    names = list(speedups)
    values = [speedups[name].ratio for name in names]
    colors = [DIRECTION_COLORS[speedups[name].direction] for name in names]
    ax.set_yscale("log")
    rects = ax.bar(names, [v - 1 for v in values], bottom=1, color=colors, width=0.6)
    lows = [value - speedups[name].low for name, value in zip(names, values, strict=True)]
    highs = [speedups[name].high - value for name, value in zip(names, values, strict=True)]
    ax.errorbar(names, values, yerr=[lows, highs], fmt="none", ecolor="#333333", capsize=5)
    ax.bar_label(rects, labels=[f"{v:.3g}×" for v in values], padding=3)
    no_difference = ax.axhline(1.0, color="0.3", linestyle="--")
    handles = [FancyBboxPatch((0, 0), 1, 1, color=color) for color in DIRECTION_COLORS.values()]
    handles.append(no_difference)
    labels = [*DIRECTION_COLORS, "1× = no difference"]
    ax.legend(handles, labels, loc="best")
    ends = [speedup.low for speedup in speedups.values()] + [s.high for s in speedups.values()]
    ax.set_ylim(min(0.5, *ends) / 2, max(2.0, *ends) * 2)
    ax.yaxis.set_major_formatter(lambda value, _: f"{value:g}×")
    ax.grid(axis="x", visible=False)
    ax.set(
        title=f"{title}\nAMP was {directions_count(speedups)}",
        ylabel="AMP speed-up (× float32 speed, log scale)",
    )
    return plots.show(fig)
