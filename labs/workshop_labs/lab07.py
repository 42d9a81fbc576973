"""Lab 7 · Advanced training techniques: the exercise checks and the lab's own figures."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader, TensorDataset

from workshop_labs import plots
from workshop_labs.checks import expect, passed

# ----------------------------------------------------------------------------------------------
# Learning-rate schedules
# ----------------------------------------------------------------------------------------------


def lr_trace(
    make_scheduler: Callable[[torch.optim.Optimizer], LRScheduler], steps: int, *, lr: float
) -> list[float]:
    """The learning rate each of ``steps`` optimizer steps uses, stepping the scheduler per step.

    Uses a throw-away one-number parameter, so drawing a schedule trains nothing.
    """
    parameter = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=lr)
    scheduler = make_scheduler(optimizer)
    used = []
    for _ in range(steps):
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return used


def lr_schedule_curves(schedules: Mapping[str, Sequence[float]], *, steps_per_epoch: int) -> Figure:
    """One small panel per scheduler: the learning rate at every optimizer step."""
    columns = min(3, len(schedules))
    rows = math.ceil(len(schedules) / columns)
    fig, axes = plots.figure(
        rows, columns, figsize=(4.3 * columns, 2.9 * rows + 0.5), squeeze=False, sharey=True
    )
    peak = max(max(lrs) for lrs in schedules.values())
    for index, (ax, (name, lrs)) in enumerate(zip(axes.flat, schedules.items(), strict=False)):
        ax.plot(range(len(lrs)), lrs, color=plots.PALETTE[index % len(plots.PALETTE)], lw=2.2)
        ax.fill_between(range(len(lrs)), lrs, color=plots.PALETTE[index % 8], alpha=0.12)
        ax.set_title(name, fontsize=12)
        ax.set_ylim(0, peak * 1.12)
        ax.set_xlim(0, len(lrs))
        if index % columns == 0:
            ax.set_ylabel("learning rate")
        ax.set_xlabel(f"optimizer step ({steps_per_epoch} per epoch)")
    for ax in list(axes.flat)[len(schedules) :]:
        ax.axis("off")
    fig.suptitle("The learning rate at every optimizer step, per scheduler", fontweight="bold")
    return plots.show(fig)


# ----------------------------------------------------------------------------------------------
# Gradient clipping
# ----------------------------------------------------------------------------------------------


def clipping_picture(gradient: torch.Tensor, *, max_norm: float, clip_value: float) -> Figure:
    """A 2-number gradient before and after ``clip_grad_norm_`` and ``clip_grad_value_``.

    The clipped arrows come from the real functions, applied to a parameter with that gradient.
    """
    parameter = nn.Parameter(torch.zeros(2))
    parameter.grad = gradient.detach().clone().float()
    nn.utils.clip_grad_norm_([parameter], max_norm)
    by_norm = parameter.grad.clone()
    parameter.grad = gradient.detach().clone().float()
    nn.utils.clip_grad_value_([parameter], clip_value)
    by_value = parameter.grad.clone()

    fig, ax = plots.figure(figsize=(6.8, 6.0))
    ax.add_patch(
        Circle((0, 0), max_norm, fill=False, ls="--", lw=1.5, color=plots.PALETTE[1], alpha=0.8)
    )
    ax.add_patch(
        Rectangle(
            (-clip_value, -clip_value),
            2 * clip_value,
            2 * clip_value,
            fill=False,
            ls=":",
            lw=1.5,
            color=plots.PALETTE[2],
        )
    )
    arrows = [
        (gradient, "original gradient", "0.25"),
        (by_norm, "clip_grad_norm_: shorter, SAME direction", plots.PALETTE[1]),
        (by_value, "clip_grad_value_: each number clamped, NEW direction", plots.PALETTE[2]),
    ]
    for vector, label, color in arrows:
        x, y = (float(v) for v in vector)
        ax.annotate(
            "",
            xy=(x, y),
            xytext=(0, 0),
            arrowprops={"arrowstyle": "-|>", "lw": 2.5, "color": color},
        )
        ax.plot([], [], color=color, lw=2.5, label=f"{label}  ({x:.2f}, {y:.2f})")
    reach = float(gradient.abs().max()) * 1.15
    ax.set_xlim(-0.3 * reach, reach)
    ax.set_ylim(-0.3 * reach, reach)
    ax.set_aspect("equal")
    ax.set_xlabel("gradient of parameter 1")
    ax.set_ylabel("gradient of parameter 2")
    ax.text(
        max_norm * math.cos(1.2),
        max_norm * math.sin(1.2) + 0.05,
        f"‖g‖ = {max_norm:g}",
        color=plots.PALETTE[1],
    )
    ax.text(clip_value * 1.03, clip_value * 1.03, f"±{clip_value:g}", color=plots.PALETTE[2])
    ax.legend(loc="upper left", fontsize=9.5)
    ax.set_title("Clipping by norm vs by value")
    return plots.show(fig)


def clipping_curves(
    grad_norms: Mapping[str, Sequence[float]], losses: Mapping[str, Sequence[float]]
) -> Figure:
    """Left: the gradient norm at every step (log scale). Right: the training loss per step.

    The loss curves take the colours of the first and the last gradient-norm curve: the run
    without clipping, and the clipped run's norm after clipping.
    """
    fig, (ax_norm, ax_loss) = plots.figure(1, 2, figsize=(13, 4.6))
    colours = plots.PALETTE[: len(grad_norms)]
    for colour, (name, norms) in zip(colours, grad_norms.items(), strict=True):
        ax_norm.plot(range(1, len(norms) + 1), norms, lw=1.8, color=colour, label=name)
    ax_norm.set_yscale("log")
    ax_norm.set(title="Gradient norm at every step", xlabel="step", ylabel="‖gradient‖ (log scale)")
    ax_norm.legend(fontsize=9.5)
    for colour, (name, values) in zip((colours[0], colours[-1]), losses.items(), strict=True):
        ax_loss.plot(range(1, len(values) + 1), values, lw=1.8, color=colour, label=name)
    ax_loss.set_yscale("log")
    ax_loss.set(
        title="Training loss at every step", xlabel="step", ylabel="cross-entropy loss (log scale)"
    )
    ax_loss.axhline(math.log(10), color="0.5", ls=":", lw=1.2)
    ax_loss.text(1, math.log(10) * 1.03, "guessing (ln 10)", color="0.4", fontsize=9.5, va="bottom")
    ax_loss.legend(fontsize=9.5)
    fig.suptitle("Exploding gradients: unscaled pixels (0…16) and lr = 0.1", fontweight="bold")
    return plots.show(fig)


# ----------------------------------------------------------------------------------------------
# Early stopping
# ----------------------------------------------------------------------------------------------


def early_stopping_picture(
    history: Mapping[str, Sequence[float]], *, patience: int, title: str
) -> Figure:
    """Training and validation loss per epoch, the best epoch and the patience window after it.

    ``history`` needs "training loss" and "validation loss" lists of equal length.
    """
    train, val = history["training loss"], history["validation loss"]
    epochs = np.arange(1, len(val) + 1)
    best = int(np.argmin(val)) + 1
    waited = len(val) - best
    fig, ax = plots.figure(figsize=(9, 4.8))
    ax.plot(epochs, train, lw=2, marker="o", ms=3.5, label="training loss")
    ax.plot(epochs, val, lw=2, marker="o", ms=3.5, label="validation loss")
    ax.scatter(
        [best],
        [val[best - 1]],
        s=170,
        zorder=5,
        color=plots.PALETTE[2],
        edgecolor="black",
        label=f"best epoch {best}: checkpoint saved",
    )
    if waited:
        ax.axvspan(
            best + 0.5,
            len(val) + 0.5,
            color=plots.PALETTE[3],
            alpha=0.13,
            label=f"{waited} epoch(s) without a new best (patience {patience})",
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0.5, len(val) + 0.5)
    outcome = (
        f"stopped after epoch {len(val)}: {patience} epochs in a row without a new best"
        if waited >= patience
        else f"ran all {len(val)} epochs: early stopping never triggered"
    )
    ax.set_title(f"{title}\n{outcome}")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="epoch", ylabel="cross-entropy loss (log scale)")
    ax.legend(loc="upper right")
    return plots.show(fig)


# ----------------------------------------------------------------------------------------------
# Exercise 1 · linear warm-up, then cosine
# ----------------------------------------------------------------------------------------------


def check_warmup_cosine(warmup_cosine: Callable) -> None:
    """`warmup_cosine(optimizer, warmup_steps, total_steps)` returns a scheduler whose learning
    rate rises linearly to the optimizer's lr over warmup_steps, then falls along a cosine to
    about 0 at total_steps."""
    expect(callable(warmup_cosine), "`warmup_cosine` is not a function: define it with def")
    base_lr, warmup, total = 0.1, 10, 100

    def make(optimizer: torch.optim.Optimizer) -> LRScheduler:
        scheduler = warmup_cosine(optimizer, warmup, total)
        expect(
            scheduler is not None,
            "warmup_cosine returned None: return the scheduler you built (e.g. a LambdaLR)",
        )
        expect(
            isinstance(scheduler, LRScheduler),
            f"warmup_cosine returned a {type(scheduler).__name__}, not a scheduler from "
            "torch.optim.lr_scheduler",
        )
        return scheduler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lrs = lr_trace(make, total, lr=base_lr)
    peak = max(lrs)
    peak_step = next(i for i, lr in enumerate(lrs) if lr >= 0.98 * peak)
    expect(
        math.isclose(peak, base_lr, rel_tol=0.02),
        f"the highest learning rate is {peak:.4g}, but the schedule should reach the "
        f"optimizer's own lr ({base_lr:g}) at the end of the warm-up: a factor of 1.0",
    )
    expect(
        lrs[0] <= 0.2 * peak,
        f"the first step already uses lr {lrs[0]:.4g} ({lrs[0] / peak:.0%} of the peak): there "
        "is no warm-up. Start near 0 and grow linearly over warmup_steps",
    )
    expect(
        warmup - 1 <= peak_step <= warmup + 1,
        f"the learning rate reaches its peak at step {peak_step}, but the warm-up should take "
        f"warmup_steps={warmup} steps",
    )
    halfway = lrs[warmup // 2] / peak
    expect(
        0.35 <= halfway <= 0.65,
        f"half-way through the warm-up the lr is {halfway:.0%} of the peak: a LINEAR warm-up "
        "is at about 50 % there (factor = step / warmup_steps)",
    )
    rises_again = next(
        (i for i in range(peak_step + 1, total) if lrs[i] > lrs[i - 1] * (1 + 1e-6)), None
    )
    expect(
        rises_again is None,
        f"after the peak the learning rate goes up again at step {rises_again}: the cosine "
        "should fall once, from 1 at the end of the warm-up to 0 at total_steps (for "
        "CosineAnnealingLR: T_max = total_steps - warmup_steps)",
    )
    expect(
        lrs[-1] <= 0.02 * peak,
        f"the last step still uses {lrs[-1] / peak:.0%} of the peak lr: the cosine should end "
        "near 0 at total_steps, so decay over total_steps - warmup_steps steps",
    )
    quarter = lrs[warmup + (total - warmup) // 4] / peak
    expect(
        0.78 <= quarter <= 0.92,
        f"a quarter of the way through the decay the lr is {quarter:.0%} of the peak; a cosine "
        "is still at 85 % there (0.5 × (1 + cos(π/4))): use a cosine, not a straight line or steps",
    )
    passed(f"linear warm-up for {warmup} steps, then a cosine down to {lrs[-1]:.1e}")


# ----------------------------------------------------------------------------------------------
# Exercise 2 · OneCycleLR steps once per batch, after the optimizer
# ----------------------------------------------------------------------------------------------


def _tiny_problem(batches: int, batch_size: int = 8) -> tuple[nn.Module, DataLoader]:
    generator = torch.Generator().manual_seed(2)
    features = torch.randn(batches * batch_size, 6, generator=generator)
    labels = torch.randint(0, 3, (batches * batch_size,), generator=generator)
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random numbers alone
        torch.manual_seed(2)
        model = nn.Linear(6, 3)
    return model, DataLoader(TensorDataset(features, labels), batch_size=batch_size)


def _record_calls(obj: object, method: str, log: list[str]) -> None:
    """Wrap ``obj.method`` so every call is appended to ``log`` before it runs."""
    original = getattr(obj, method)

    def recorded(*args, **kwargs):
        log.append(f"{type(obj).__name__}.{method}")
        return original(*args, **kwargs)

    setattr(obj, method, recorded)


def check_one_cycle_epoch(train_one_epoch: Callable, device: torch.device | str) -> None:
    """`train_one_epoch(model, loader, optimizer, scheduler, loss_fn, device)`: one optimizer
    step per batch, each followed by one scheduler step."""
    expect(callable(train_one_epoch), "`train_one_epoch` is not a function: define it with def")
    batches = 5
    model, loader = _tiny_problem(batches)
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=2 * batches)
    calls: list[str] = []
    _record_calls(optimizer, "step", calls)
    _record_calls(scheduler, "step", calls)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            train_one_epoch(model, loader, optimizer, scheduler, nn.CrossEntropyLoss(), device)
        except ValueError as error:
            expect(
                "Tried to step" not in str(error),
                "scheduler.step() ran more often than there are batches: OneCycleLR was "
                "built for total_steps = epochs × batches, so step it exactly once per batch",
            )
            raise
    optimizer_steps = calls.count("SGD.step")
    scheduler_steps = calls.count("OneCycleLR.step")
    expect(
        optimizer_steps == batches,
        f"optimizer.step() ran {optimizer_steps} times for {batches} batches: call it once per "
        "batch, after loss.backward()",
    )
    expect(scheduler_steps > 0, "scheduler.step() was never called: call it after optimizer.step()")
    expect(
        scheduler_steps != 1,
        f"scheduler.step() ran once for the whole epoch of {batches} batches: OneCycleLR counts "
        "BATCHES (total_steps = epochs × batches per epoch), so stepped per epoch it would "
        "barely leave its warm-up. Call scheduler.step() inside the batch loop",
    )
    expect(
        scheduler_steps == batches,
        f"scheduler.step() ran {scheduler_steps} times for {batches} batches: call it exactly "
        "once per batch",
    )
    expect(
        calls[0] == "SGD.step",
        "scheduler.step() came before optimizer.step(): the first batch then skips the "
        "schedule's first learning rate (PyTorch warns 'Detected call of lr_scheduler.step() "
        "before optimizer.step()'). Call optimizer.step() first, then scheduler.step()",
    )
    passed(f"{batches} batches: optimizer.step() then scheduler.step(), once per batch")


# ----------------------------------------------------------------------------------------------
# Exercise 3 · clip after backward, before step
# ----------------------------------------------------------------------------------------------


def check_clipped_step(clipped_step: Callable) -> None:
    """`clipped_step(model, optimizer, loss_fn, xb, yb, max_norm)`: backward, clip the gradient
    norm to max_norm, step; returns the gradient norm from BEFORE clipping as a float."""
    expect(callable(clipped_step), "`clipped_step` is not a function: define it with def")
    generator = torch.Generator().manual_seed(3)
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random numbers alone
        torch.manual_seed(3)
        model = nn.Linear(6, 3)
    xb = 50 * torch.randn(16, 6, generator=generator)  # badly scaled inputs: a huge gradient
    yb = torch.randint(0, 3, (16,), generator=generator)
    loss_fn = nn.CrossEntropyLoss()
    learning_rate, max_norm = 0.01, 1.0
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    params = list(model.parameters())
    true_norm = float(
        torch.nn.utils.get_total_norm(torch.autograd.grad(loss_fn(model(xb), yb), params))
    )
    before = [p.detach().clone() for p in params]

    returned = clipped_step(model, optimizer, loss_fn, xb, yb, max_norm)

    update = [(b - p.detach()) / learning_rate for b, p in zip(before, params, strict=True)]
    used_norm = float(torch.nn.utils.get_total_norm(update))
    grads = [p.grad for p in params if p.grad is not None]
    final_norm = float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
    expect(
        used_norm > 0,
        "the parameters did not change: call optimizer.step() after clipping",
    )
    largest_update = max(float(u.abs().max()) for u in update)
    expect(
        not (used_norm > max_norm * 1.01 and math.isclose(largest_update, max_norm, rel_tol=1e-3)),
        f"every gradient value was clamped to ±{max_norm:g} (clip_grad_value_), so the step's "
        f"norm was still {used_norm:.3g}: this exercise clips the NORM of the whole gradient "
        "with clip_grad_norm_, which keeps its direction",
    )
    if used_norm > max_norm * 1.01:
        expect(
            final_norm > max_norm * 1.01,
            f"the step used a gradient of norm {used_norm:.3g} and only afterwards were the "
            f"gradients clipped to {max_norm:g}: clipping after optimizer.step() is too late. "
            "Clip between loss.backward() and optimizer.step()",
        )
        expect(
            False,
            f"the optimizer stepped with a gradient of norm {used_norm:.3g} > max_norm="
            f"{max_norm:g}: nothing clipped the gradients it used. loss.backward() creates "
            "them, so clip_grad_norm_ must come AFTER backward and BEFORE optimizer.step()",
        )
    expect(
        used_norm > max_norm * 0.99,
        f"the step used a gradient of norm {used_norm:.3g}, smaller than max_norm={max_norm:g}: "
        "clip_grad_norm_ scales the gradient down to exactly max_norm; clip once, by norm "
        "(clip_grad_value_ is a different method)",
    )
    expect(
        returned is not None,
        "clipped_step returned None: return the norm that clip_grad_norm_ gives back "
        "(the norm BEFORE clipping), as a float with .item()",
    )
    value = float(returned.item() if isinstance(returned, torch.Tensor) else returned)
    expect(
        not math.isclose(value, max_norm, rel_tol=0.01),
        f"clipped_step returned {value:.3g}, the norm AFTER clipping: return what "
        "clip_grad_norm_ returns, the norm before clipping, so you can log how big it was",
    )
    expect(
        math.isclose(value, true_norm, rel_tol=1e-3),
        f"clipped_step returned {value:.4g}, but the gradient norm before clipping was "
        f"{true_norm:.4g}: return the value of clip_grad_norm_",
    )
    passed(f"gradient norm {true_norm:.3g} was clipped to {max_norm:g} before the step")


# ----------------------------------------------------------------------------------------------
# Exercise 4 · early stopping
# ----------------------------------------------------------------------------------------------

_VALIDATION_LOSSES = [1.0, 0.8, 0.7, 0.75, 0.72, 0.65, 0.66, 0.67, 0.66, 0.68, 0.69, 0.70, 0.71]


def _stop_epoch(
    losses: Sequence[float], patience: int, *, reset: bool = True, versus_best: bool = True
) -> int | None:
    """The 1-based epoch after which a stopper stops, or None when it never does. The keywords
    make the typical mistakes: never resetting the count, comparing with the previous epoch."""
    best, previous, bad = math.inf, math.inf, 0
    for epoch, loss in enumerate(losses, start=1):
        improved = loss < (best if versus_best else previous)
        best, previous = min(best, loss), loss
        bad = (0 if reset else bad) if improved else bad + 1
        if bad >= patience:
            return epoch
    return None


def _epochs_since_best(losses: Sequence[float]) -> int:
    """How many epochs at the end of ``losses`` brought no new best."""
    return len(losses) - 1 - min(range(len(losses)), key=losses.__getitem__)


def check_early_stopping(stopper_class: type) -> None:
    """`EarlyStopping(patience)`: `.step(val_loss)` returns True once `patience` epochs in a row
    brought no new best; `.best` holds the best validation loss so far."""
    expect(isinstance(stopper_class, type), "`EarlyStopping` is not a class: define it with class")
    for patience in (3, 1):
        stopper = stopper_class(patience=patience)
        stopped_after = None
        for epoch, loss in enumerate(_VALIDATION_LOSSES, start=1):
            if stopper.step(loss):
                stopped_after = epoch
                break
        expected = _stop_epoch(_VALIDATION_LOSSES, patience)
        history = ", ".join(f"{v:g}" for v in _VALIDATION_LOSSES)
        where = f"with patience={patience} and validation losses {history}"
        expect(
            stopped_after is not None,
            f"{where}, step() never returned True; it should after epoch {expected}",
        )
        if stopped_after != expected:
            streak = _epochs_since_best(_VALIDATION_LOSSES[:stopped_after])
            expect(
                streak != patience - 1,
                f"{where}, it stopped after epoch {stopped_after}, one epoch too early: only "
                f"{streak} epoch(s) in a row without a new best. Stop when the count of bad "
                "epochs reaches patience (>= patience), counting from 0 after each new best",
            )
            expect(
                streak != patience + 1,
                f"{where}, it stopped after epoch {stopped_after}, one epoch too late: "
                f"{streak} epochs in a row without a new best. Stop as soon as the count "
                "reaches patience (>= patience, not > patience)",
            )
            expect(
                stopped_after != _stop_epoch(_VALIDATION_LOSSES, patience, reset=False),
                f"{where}, it stopped after epoch {stopped_after}, too early: the new best "
                "at epoch 6 (0.65) must reset the count of bad epochs to 0",
            )
            expect(
                stopped_after != _stop_epoch(_VALIDATION_LOSSES, patience, versus_best=False),
                f"{where}, it stopped after epoch {stopped_after}, too late: epoch 9 (0.66) "
                "beat epoch 8 but not the best (0.65). Compare each loss with self.best, "
                "not with the previous epoch",
            )
        expect(
            stopped_after == expected,
            f"{where}, it stopped after epoch {stopped_after}; it should stop after epoch "
            f"{expected} ({patience} epoch(s) in a row without a new best)",
        )
        best = min(_VALIDATION_LOSSES[:stopped_after])
        expect(
            getattr(stopper, "best", None) is not None
            and math.isclose(float(stopper.best), best, rel_tol=1e-9),
            f"`best` is {getattr(stopper, 'best', None)!r} but the best validation loss seen "
            f"was {best:g}: update self.best whenever a loss beats it",
        )
    passed("stops after `patience` epochs without improvement, and remembers the best loss")
