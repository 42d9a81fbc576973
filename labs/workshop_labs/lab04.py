"""Lab 4 · Automatic mixed precision: the exercise checks and the lab's own figures."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from torch import nn

from workshop_labs import plots
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


def verdict(
    device: torch.device, speedup: float, memory_ratio: float, memory: str = "memory"
) -> str:
    """A sentence, generated from the measurements, saying what AMP did on this hardware."""
    where = "GPU" if device.type == "cuda" else "CPU"
    pace = "faster" if speedup > 1.1 else ("slower" if speedup < 0.9 else "about as fast")
    text = (
        f"On this {where} a training step with AMP was {speedup:.2f}× as fast as float32 "
        f"({pace}) and needed {memory_ratio:.2f}× the {memory}. "
    )
    if device.type == "cuda":
        if speedup > 1.1:
            return text + "The tensor cores did the matrix math in low precision."
        return text + "The model is too small to keep the tensor cores busy: overhead dominates."
    if speedup > 1.1:
        return text + "This CPU has bfloat16 units, so the big matrix multiplies got cheaper."
    if cpu_bf16_units() is False:
        return text + "This CPU has no bfloat16 units: every cast costs and nothing gets faster."
    return text + "Casting costs as much as the lower precision saves here."


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
# Exercise 1: inference under autocast
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
# Exercise 2: a bfloat16 training step, no scaler
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
# Exercise 3: a float16 training step with GradScaler
# ----------------------------------------------------------------------------------------------


def float32_step(model, optimizer, scaler, loss_fn, inputs, targets, max_norm=None):
    """What the cells below Exercises 3 and 4 train with while they are unsolved: section 3's
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
# Exercise 4: a float16 training step that clips its gradients
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


def speedup_bars(
    speedups: Mapping[str, float],
    *,
    title: str,
    spread: Mapping[str, tuple[float, float]] | None = None,
) -> Figure:
    """Bars of AMP's speed-up per case: green a real gain, red a loss, grey within ±10 %.

    ``spread`` gives each bar's (low, high) range, e.g. from the quartiles of the timings.
    """
    fig, ax = plots.figure(figsize=(max(6.0, 2.2 * len(speedups) + 1), 4.5))
    names = list(speedups)
    values = [speedups[name] for name in names]
    colors = [
        plots.PALETTE[2] if v > 1.1 else plots.PALETTE[3] if v < 0.9 else plots.PALETTE[7]
        for v in values
    ]
    rects = ax.bar(names, values, color=colors, width=0.6)
    if spread:
        lows = [
            v - spread[n][0] if n in spread else 0.0 for n, v in zip(names, values, strict=True)
        ]
        highs = [
            spread[n][1] - v if n in spread else 0.0 for n, v in zip(names, values, strict=True)
        ]
        ax.errorbar(names, values, yerr=[lows, highs], fmt="none", ecolor="#333333", capsize=5)
    ax.bar_label(rects, labels=[f"{v:.2f}×" for v in values], padding=3)
    ax.axhline(1.0, color="0.3", linestyle="--", label="1× = no gain")
    ax.legend(loc="upper right")
    ax.margins(y=0.2)
    ax.grid(axis="x", visible=False)
    ax.set(title=title, ylabel="AMP speed-up (× float32 speed)")
    return plots.show(fig)
