"""Lab 7 · Advanced training techniques: the exercise checks and the lab's own figures."""

from __future__ import annotations

import json
import marshal
import math
import os
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader, TensorDataset

from workshop_labs import plots
from workshop_labs.checks import ExerciseNotSolved, exercise, expect, passed

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
    without clipping, and the clipped run's norm after clipping. The title gives the first
    curve's peak and each run's last loss.
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
    unclipped_norms = next(iter(grad_norms.values()))
    last_losses = " vs ".join(f"{values[-1]:.2f} ({name})" for name, values in losses.items())
    fig.suptitle(
        f"Unscaled pixels (0…16): the unclipped gradient norm peaks at {max(unclipped_norms):.3g}"
        f"\nlast training loss {last_losses}",
        fontweight="bold",
    )
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


def constant_lr(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """What the cells below Exercise 1 use while it is unsolved: the optimizer's own learning
    rate, unchanged at every step (the warm-up and the cosine are the exercise, its solution
    hidden)."""
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


@exercise(stand_in=lambda: constant_lr, stand_in_is="a constant learning rate")
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
    from_step_zero = [0.5 * (1 + math.cos(math.pi * step / total)) for step in range(total)]
    expect(
        not all(
            math.isclose(lr / peak, want, abs_tol=0.01)
            for lr, want in zip(lrs[warmup:], from_step_zero[warmup:], strict=True)
        ),
        "the cosine counts its steps from step 0, so it starts part-way down at the end of the "
        "warm-up: count from there, progress = (step - warmup_steps) / (total_steps - "
        "warmup_steps)",
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


@exercise()
def check_one_cycle_epoch(train_one_epoch: Callable, device: torch.device | str) -> None:
    """`train_one_epoch(model, loader, optimizer, scheduler, loss_fn, device)`: one optimizer
    step per batch, each followed by one scheduler step."""
    expect(callable(train_one_epoch), "`train_one_epoch` is not a function: define it with def")
    batches = 5
    model, loader = _tiny_problem(batches)
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=2 * batches)
    records = _record_steps(optimizer, model)
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
    problem = _accumulation_problem(records, list(loader), 1)
    expect(problem is None, problem or "")
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
# Exercise 4 · clip after backward, before step
# ----------------------------------------------------------------------------------------------


@exercise()
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
    true_gradient = torch.autograd.grad(loss_fn(model(xb), yb), params)
    true_norm = float(torch.nn.utils.get_total_norm(true_gradient))
    # As in a training loop, the step before this one left its gradient in .grad.
    stale = torch.autograd.grad(loss_fn(model(xb.flip(0)[:4]), yb.flip(0)[:4]), params)
    for param, gradient in zip(params, stale, strict=True):
        param.grad = gradient.clone()
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
    direction = torch.cat([g.flatten() for g in true_gradient]) / true_norm
    used = torch.cat([u.flatten() for u in update]) / used_norm
    if not torch.allclose(used, direction, atol=1e-3):
        with_stale = torch.cat(
            [(g + s).flatten() for g, s in zip(true_gradient, stale, strict=True)]
        )
        expect(
            not torch.allclose(used, with_stale / with_stale.norm(), atol=1e-3),
            "the step used this batch's gradient plus the gradient left from the step before: "
            "call optimizer.zero_grad() before loss.backward(), since backward() adds to .grad",
        )
        expect(
            False,
            "the step did not go along this batch's gradient: clip_grad_norm_ only scales the "
            "gradient down to max_norm and keeps its direction; compute the loss of (xb, yb), "
            "backward, clip, then step",
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
# Exercise 7 · early stopping
# ----------------------------------------------------------------------------------------------

_VALIDATION_LOSSES = [1.0, 0.8, 0.7, 0.75, 0.72, 0.65, 0.66, 0.67, 0.66, 0.68, 0.69, 0.70, 0.71]
# A plateau: the losses after the second equal the best, and equal is no new best.
_PLATEAU_LOSSES = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9]


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


@exercise()
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
    patience = 2
    stopper = stopper_class(patience=patience)
    stopped_after = next(
        (epoch for epoch, loss in enumerate(_PLATEAU_LOSSES, start=1) if stopper.step(loss)), None
    )
    expected = _stop_epoch(_PLATEAU_LOSSES, patience)
    history = ", ".join(f"{v:g}" for v in _PLATEAU_LOSSES)
    expect(
        stopped_after == expected,
        f"with patience={patience} and validation losses {history}, it "
        f"{'never stopped' if stopped_after is None else f'stopped after epoch {stopped_after}'}"
        f"; it should stop after epoch {expected}: a loss equal to the best is not a new best, "
        "so count it as a bad epoch (improved means val_loss < self.best, not <=)",
    )
    passed("stops after `patience` epochs without improvement, and remembers the best loss")


# ----------------------------------------------------------------------------------------------
# ReduceLROnPlateau
# ----------------------------------------------------------------------------------------------


def plateau_picture(
    val_losses: Sequence[float], lrs: Sequence[float], *, factor: float, patience: int
) -> Figure:
    """Top: the validation loss fed to ``ReduceLROnPlateau`` each epoch. Bottom: the lr each
    epoch used; the title lists the epochs after which the lr was cut."""
    epochs = np.arange(1, len(val_losses) + 1)
    cuts = [epoch for epoch in range(1, len(lrs)) if lrs[epoch] < lrs[epoch - 1]]
    fig, (ax_loss, ax_lr) = plots.figure(2, 1, figsize=(8, 5.6), sharex=True)
    ax_loss.plot(epochs, val_losses, marker="o", lw=2, color=plots.PALETTE[1])
    ax_loss.set_ylabel("validation loss")
    if max(val_losses) > 4 * min(val_losses):  # a real run: the stall is small beside the start
        ax_loss.set_yscale("log")
        ax_loss.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax_loss.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax_loss.yaxis.set_minor_formatter(NullFormatter())
        ax_loss.set_ylabel("validation loss (log scale)")
    ax_lr.step(epochs, lrs, where="mid", lw=2.2, color=plots.PALETTE[0])
    ax_lr.set_yscale("log")
    ax_lr.set(xlabel="epoch", ylabel="learning rate (log scale)")
    for epoch in cuts:
        for ax in (ax_loss, ax_lr):
            ax.axvline(epoch + 0.5, color="0.5", ls=":", lw=1.2)
    ax_lr.xaxis.set_major_locator(MaxNLocator(integer=True))
    when = ", ".join(str(epoch) for epoch in cuts) if cuts else "never"
    fig.suptitle(
        f"ReduceLROnPlateau(factor={factor:g}, patience={patience}): lr cut after epoch(s) {when}",
        fontweight="bold",
    )
    return plots.show(fig)


# ----------------------------------------------------------------------------------------------
# Exercise 3 · ReduceLROnPlateau, stepped once per epoch with the validation loss
# ----------------------------------------------------------------------------------------------


def constant_lr_loop(device: torch.device | str) -> Callable[..., dict]:
    """What the cells below Exercise 3 use while it is unsolved: a loop that trains and
    validates every epoch but never steps the scheduler, so the lr stays where it started (the
    scheduler call is the exercise, its solution hidden)."""
    device = torch.device(device)

    def train_with_plateau(model, optimizer, scheduler, train_loader, val_loader, epochs):
        history = {"lr": [], "validation loss": []}
        for _ in range(epochs):
            history["lr"].append(optimizer.param_groups[0]["lr"])
            _plain_epoch(model, optimizer, train_loader, device)
            history["validation loss"].append(_validate(model, val_loader, device)[0])
        return history

    return train_with_plateau


@exercise(
    stand_in=lambda device, use_amp: constant_lr_loop(device),
    stand_in_is="a loop that never steps the scheduler: a constant lr",
)
def check_plateau(train_with_plateau: Callable, device: torch.device | str, use_amp: bool) -> None:
    """`train_with_plateau(model, optimizer, scheduler, train_loader, val_loader, epochs)` steps
    its ReduceLROnPlateau once per epoch, after validation, with that epoch's validation loss."""
    expect(
        callable(train_with_plateau), "`train_with_plateau` is not a function: define it with def"
    )
    batches, epochs = 4, 4
    model, loader = _tiny_problem(batches)
    model.to(device)
    features, labels = loader.dataset.tensors
    # Validation labels one class off the training labels: training makes the validation loss
    # worse every epoch (a plateau at once) while the training loss keeps falling.
    val_batch = (features, (labels + 1) % 3)
    val_loader = DataLoader(TensorDataset(*val_batch), batch_size=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
    records = _record_steps(optimizer, model)
    metrics: list[dict] = []
    original_step = scheduler.step

    def recorded_step(*args, **kwargs):
        metric = kwargs.get("metrics", args[0] if args else None)
        expect(
            metric is not None,
            "scheduler.step() was called without the metric: ReduceLROnPlateau decides from a "
            "number you give it, so call scheduler.step(val_loss) with the epoch's validation loss",
        )
        weights = [p.detach().cpu().clone() for p in model.parameters()]
        metrics.append({"metric": metric, "weights": weights, "steps": len(records)})
        return original_step(*args, **kwargs)

    scheduler.step = recorded_step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = train_with_plateau(model, optimizer, scheduler, loader, val_loader, epochs)
    expect(
        len(records) == batches * epochs,
        f"optimizer.step() ran {len(records)} times in {epochs} epochs of {batches} batches: "
        "train as before, one optimizer step per batch",
    )
    expect(
        bool(metrics),
        "scheduler.step(...) was never called: after validating each epoch, call "
        "scheduler.step(val_loss)",
    )
    expect(
        len(metrics) != batches * epochs,
        f"scheduler.step(...) ran {len(metrics)} times in {epochs} epochs: once per batch. "
        "ReduceLROnPlateau counts EPOCHS without improvement: step it once per epoch, after "
        "the validation",
    )
    expect(
        len(metrics) == epochs,
        f"scheduler.step(...) ran {len(metrics)} times in {epochs} epochs: step it exactly once "
        "per epoch, after the validation",
    )
    rtol = 0.03 if use_amp else 1e-4  # bf16 autocast rounds the validation loss
    for epoch, call in enumerate(metrics, start=1):
        expect(
            isinstance(call["metric"], (int, float, torch.Tensor)),
            f"scheduler.step got a {type(call['metric']).__name__}: give it the validation "
            "loss, one number",
        )
        given = float(call["metric"])
        # Re-measured: the validation loss of the weights the model had when the scheduler ran.
        val_loss = float(_loss_at(call["weights"], [val_batch]))
        if math.isclose(given, val_loss, rel_tol=rtol):
            continue
        epoch_steps = records[(epoch - 1) * batches : epoch * batches]
        batch_losses = [
            float(_loss_at(record["weights"], [batch]))
            for record, batch in zip(epoch_steps, loader, strict=True)
        ]
        training_losses = [
            *batch_losses,
            sum(batch_losses) / len(batch_losses),
            float(_loss_at(call["weights"], list(loader))),
        ]
        expect(
            not any(math.isclose(given, loss, rel_tol=0.02) for loss in training_losses),
            f"after epoch {epoch} scheduler.step got {given:.4f}, a TRAINING loss; the "
            f"validation loss was {val_loss:.4f}. The training loss keeps falling while the "
            "model stops getting better: give the scheduler the validation loss",
        )
        expect(
            False,
            f"after epoch {epoch} scheduler.step got {given:.4f}, but the model's validation "
            f"loss, measured at that moment, was {val_loss:.4f}: call scheduler.step(val_loss) "
            "after computing this epoch's validation loss",
        )
    expect(
        isinstance(history, dict) and len(history.get("lr", [])) == epochs,
        "train_with_plateau should return the history dictionary, with one lr per epoch",
    )
    lrs = list(history["lr"])
    cuts = [epoch for epoch in range(1, epochs) if lrs[epoch] < lrs[epoch - 1]]
    passed(
        f"scheduler.step(val_loss) once per epoch: the validation loss stalled, so the lr was "
        f"cut after epoch {', '.join(map(str, cuts)) or 'none'} ({lrs[0]:g} → {lrs[-1]:g})"
    )


# ----------------------------------------------------------------------------------------------
# Exercise 5 · gradient accumulation
# ----------------------------------------------------------------------------------------------


def _record_steps(optimizer: torch.optim.Optimizer, model: nn.Module) -> list[dict]:
    """Wrap ``optimizer.step`` so each call records the gradients it uses and the weights
    before it (both on the CPU)."""
    records: list[dict] = []
    original = optimizer.step

    def recorded(*args, **kwargs):
        params = list(model.parameters())
        grads = [None if p.grad is None else p.grad.detach().cpu().clone() for p in params]
        records.append({"grads": grads, "weights": [p.detach().cpu().clone() for p in params]})
        return original(*args, **kwargs)

    optimizer.step = recorded
    return records


def _loss_at(
    weights: Sequence[torch.Tensor], batches: Sequence[tuple[torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """The mean cross-entropy over ``batches`` together of an ``nn.Linear`` with the given
    weight and bias."""
    weight, bias = weights
    features = torch.cat([x for x, _ in batches])
    labels = torch.cat([y for _, y in batches])
    return nn.functional.cross_entropy(features @ weight.T + bias, labels)


def _gradient_at(
    weights: Sequence[torch.Tensor], batches: Sequence[tuple[torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """The gradient (one flat vector) of ``_loss_at``."""
    leaves = [w.clone().requires_grad_() for w in weights]
    return torch.cat([g.flatten() for g in torch.autograd.grad(_loss_at(leaves, batches), leaves)])


def _accumulation_problem(
    records: Sequence[dict],
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    k: int,
    *,
    rtol: float = 1e-4,
) -> str | None:
    """What is wrong with the optimizer steps ``records`` of an accumulation loop over
    ``batches`` with ``k`` accumulation steps, in one line; None when each step used the
    gradient of the mean loss over its k micro-batches (within ``rtol``: bf16 autocast needs a
    loose one)."""
    groups = len(batches) // k
    if not records:
        return "optimizer.step() never ran: step once every accumulation_steps batches"
    if len(records) == len(batches) and k > 1:
        return (
            f"optimizer.step() ran {len(records)} times for {len(batches)} micro-batches: with "
            f"accumulation_steps={k}, step (and zero the gradients) only once every {k} "
            "batches, e.g. `if batch % accumulation_steps == 0:`"
        )
    if len(records) != groups:
        return (
            f"optimizer.step() ran {len(records)} times for {len(batches)} micro-batches; with "
            f"accumulation_steps={k} it should run {groups} times, once every {k} batches"
        )
    previous = None
    for index, record in enumerate(records):
        if any(g is None for g in record["grads"]):
            return "optimizer.step() ran without gradients: call loss.backward() for each batch"
        got = torch.cat([g.flatten() for g in record["grads"]])
        group = batches[index * k : (index + 1) * k]
        wanted = _gradient_at(record["weights"], group)
        last = _gradient_at(record["weights"], group[-1:])

        def close(a: torch.Tensor, b: torch.Tensor) -> bool:
            return torch.allclose(a, b, rtol=rtol, atol=rtol / 100)

        if close(got, wanted):
            previous = got
            continue
        if close(got, k * wanted):
            return (
                f"the step used {k}× the gradient of one big batch: divide each micro-batch's "
                "loss by accumulation_steps before backward(), so the summed gradients average"
            )
        if close(got, last / k) or close(got, last):
            return (
                "only the last micro-batch's gradient reached optimizer.step(): the gradients "
                "were zeroed at every micro-batch. Call optimizer.zero_grad() only after "
                "optimizer.step(), so backward() can add the micro-batches up"
            )
        first = _gradient_at(record["weights"], group[:1])
        if index == 0 and (close(got, first / k) or close(got, first)):
            return (
                "the first step came right after the first micro-batch: enumerate(loader) counts "
                "from 0, and 0 % accumulation_steps == 0. Count from 1 with "
                "enumerate(loader, start=1)"
            )
        if previous is not None and close(got, wanted + previous):
            if k == 1:
                return (
                    f"step {index + 1} still held the gradient of the batch before it: call "
                    "optimizer.zero_grad() for every batch, before loss.backward()"
                )
            return (
                f"step {index + 1} still held the gradient of the step before it: call "
                "optimizer.zero_grad() right after each optimizer.step()"
            )
        difference = float((got - wanted).abs().max())
        return (
            f"step {index + 1} used a gradient that differs from the gradient of its {k} "
            f"micro-batches taken as one batch (largest difference {difference:.3g}): "
            "backward() on loss / accumulation_steps for each batch, step every k batches"
        )
    return None


@exercise()
def check_accumulation(train_accumulated: Callable, device: torch.device | str) -> None:
    """`train_accumulated(model, loader, optimizer, loss_fn, device, accumulation_steps)`: one
    optimizer step every accumulation_steps batches, with the gradient one batch of all of
    them together would give."""
    expect(callable(train_accumulated), "`train_accumulated` is not a function: define it with def")
    k, batches = 4, 8
    model, loader = _tiny_problem(batches)
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    records = _record_steps(optimizer, model)
    train_accumulated(model, loader, optimizer, nn.CrossEntropyLoss(), device, k)
    problem = _accumulation_problem(records, list(loader), k)
    expect(problem is None, problem or "")
    passed(
        f"{batches} micro-batches of {loader.batch_size} → {len(records)} steps, each with the "
        f"gradient of one batch of {k * loader.batch_size}"
    )


# ----------------------------------------------------------------------------------------------
# Exercise 6 · AdamW that decays weights, not biases and norms
# ----------------------------------------------------------------------------------------------


def decay_everything(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """What the cells below Exercise 6 use while it is unsolved: the starter's AdamW, one group
    in which every parameter decays, biases and norms too (the two groups are the exercise,
    its solution hidden)."""
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


@exercise(
    stand_in=lambda: decay_everything,
    stand_in_is="an AdamW that decays every parameter, biases and norms too",
)
def check_decay_groups(adamw_decay_groups: Callable) -> None:
    """`adamw_decay_groups(model, lr, weight_decay)` returns an AdamW in which every weight
    matrix decays by weight_decay and every bias and norm parameter (1 dimension) does not."""
    expect(
        callable(adamw_decay_groups), "`adamw_decay_groups` is not a function: define it with def"
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        model = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 3))
    lr, weight_decay = 3e-3, 0.05
    try:
        optimizer = adamw_decay_groups(model, lr, weight_decay)
    except ValueError as error:
        expect(
            "more than one parameter group" not in str(error),
            "a parameter is in both groups: split model.parameters() in two, by p.ndim",
        )
        raise
    expect(
        optimizer is not None,
        "adamw_decay_groups returned None: return the torch.optim.AdamW you built",
    )
    expect(
        not isinstance(optimizer, torch.optim.Adam) or isinstance(optimizer, torch.optim.AdamW),
        "this is torch.optim.Adam, whose weight_decay is coupled to the gradient (section 4): "
        "use torch.optim.AdamW",
    )
    expect(
        isinstance(optimizer, torch.optim.AdamW),
        f"adamw_decay_groups returned a {type(optimizer).__name__}, not a torch.optim.AdamW",
    )
    decay_of = {
        id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]
    }
    named = list(model.named_parameters())
    missing = [name for name, p in named if id(p) not in decay_of]
    expect(
        not missing,
        f"{', '.join(missing)} in no group: the optimizer would never train them. Put every "
        "parameter in one of the two groups",
    )
    small = [(name, decay_of[id(p)]) for name, p in named if p.ndim < 2]
    matrices = [(name, decay_of[id(p)]) for name, p in named if p.ndim >= 2]
    expect(
        not all(decay > 0 for _, decay in small + matrices),
        "every parameter decays, the biases and LayerNorm's weight too: put the parameters "
        "with p.ndim < 2 in a second group with weight_decay=0.0",
    )
    decayed_small = [name for name, decay in small if decay != 0]
    expect(
        not decayed_small,
        f"{', '.join(decayed_small)} (1-dimensional: biases, norm weights) decay: give the "
        "group with p.ndim < 2 weight_decay=0.0",
    )
    wrong_matrices = [f"{name} ({decay:g})" for name, decay in matrices if decay != weight_decay]
    expect(
        not wrong_matrices,
        f"the weight matrices {', '.join(wrong_matrices)} should decay with "
        f"weight_decay={weight_decay:g}: give the group with p.ndim >= 2 that weight_decay",
    )
    lrs = {group["lr"] for group in optimizer.param_groups}
    expect(lrs == {lr}, f"the groups use lr {sorted(lrs)}, not the lr={lr:g} given: pass lr=lr")
    passed(
        f"{len(matrices)} weight matrices decay with {weight_decay:g}; {len(small)} biases and "
        "norm parameters do not"
    )


# ----------------------------------------------------------------------------------------------
# Exercise 8 · fit, assembled from the lab's pieces
# ----------------------------------------------------------------------------------------------


def _plain_epoch(
    model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader, device: torch.device
) -> float:
    """One epoch of lab 1's loop in float32 (a step after every batch); the mean training loss."""
    model.train()
    summed = 0.0
    for inputs, labels in loader:
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        batch_loss = nn.functional.cross_entropy(model(inputs), labels)
        batch_loss.backward()
        optimizer.step()
        summed += batch_loss.item() * len(labels)
    return summed / len(loader.dataset)


def _validate(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[float, float]:
    """Mean loss and accuracy over ``loader``, without autograd, in float32."""
    model.eval()
    summed, hits = 0.0, 0
    with torch.no_grad():
        for inputs, labels in loader:
            scores = model(inputs.to(device))
            labels = labels.to(device)
            summed += nn.functional.cross_entropy(scores, labels, reduction="sum").item()
            hits += int((scores.argmax(dim=1) == labels).sum())
    return summed / len(loader.dataset), hits / len(loader.dataset)


def plain_fit(device: torch.device | str) -> Callable[..., dict]:
    """What the comparison below Exercise 8 trains with while it is unsolved: a plain loop of
    lab 1 that steps the optimizer after every batch, in float32, validates and keeps the best
    epoch's weights. It takes fit's options and leaves them unused: no scheduler, clipping,
    accumulation, early stopping or autocast (putting them in is the exercise, its solution
    hidden), so every recipe runs all its epochs at its optimizer's learning rate."""
    device = torch.device(device)

    def fit(model, optimizer, train_loader, val_loader, *, epochs, checkpoint_path, **unused):
        history = {"training loss": [], "validation loss": [], "validation accuracy": []}
        for epoch in range(1, epochs + 1):
            training_loss = _plain_epoch(model, optimizer, train_loader, device)
            val_loss, val_accuracy = _validate(model, val_loader, device)
            history["training loss"].append(training_loss)
            history["validation loss"].append(val_loss)
            history["validation accuracy"].append(val_accuracy)
            if val_loss <= min(history["validation loss"]):
                state = {"epoch": epoch, "val_loss": val_loss, "model": model.state_dict()}
                torch.save(state, checkpoint_path)
        return history

    return fit


@exercise(
    stand_in=lambda device, use_amp: plain_fit(device),
    stand_in_is="a plain loop without scheduler, clipping, accumulation, early stopping or AMP",
)
def check_fit(fit: Callable, device: torch.device | str, use_amp: bool) -> None:
    """`fit(model, optimizer, train_loader, val_loader, *, epochs, checkpoint_path, scheduler,
    max_norm, patience, accumulation_steps, name)` trains with accumulation, clipping, the
    scheduler and early stopping, saves the best epoch and returns the history."""

    expect(callable(fit), "`fit` is not a function: define it with def")
    batches, k = 4, 2
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checkpoint_path = Path(folder) / "check_fit.pt"

        def run(lr: float, epochs: int, val_loader: DataLoader | None = None, **options):
            """fit on the tiny problem: its history, the recorded steps, the batches, the
            order of the step calls and the model."""
            model, loader = _tiny_problem(batches)
            model.to(device)
            optimizer = torch.optim.SGD(model.parameters(), lr=lr)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
            records = _record_steps(optimizer, model)
            calls: list[str] = []
            _record_calls(optimizer, "step", calls)
            _record_calls(scheduler, "step", calls)
            history = fit(
                model,
                optimizer,
                loader,
                val_loader or loader,
                epochs=epochs,
                checkpoint_path=checkpoint_path,
                scheduler=scheduler,
                name="check",
                **options,
            )
            return history, records, list(loader), calls, model

        history, records, micro_batches, calls, _ = run(0.1, 1, accumulation_steps=k)
        expect(
            isinstance(history, dict) and len(history.get("validation loss", [])) == 1,
            "fit should return the history dictionary, with one validation loss per epoch",
        )
        rtol = 0.03 if use_amp else 1e-4  # bf16 autocast rounds the gradients
        loss_rtol = 0.05 if use_amp else 1e-3  # and the losses
        problem = _accumulation_problem(records, micro_batches, k, rtol=rtol)
        expect(problem is None, f"fit(..., accumulation_steps={k}): {problem}")
        # Re-measured: each micro-batch's loss at the weights it was computed with.
        losses = [
            float(_loss_at(records[index // k]["weights"], [batch])) * len(batch[1])
            for index, batch in enumerate(micro_batches)
        ]
        training_loss = sum(losses) / sum(len(labels) for _, labels in micro_batches)
        reported = float(history["training loss"][0])
        expect(
            not math.isclose(reported, training_loss / k, rel_tol=loss_rtol),
            f"fit(..., accumulation_steps={k}) reports a training loss of {reported:.4f}, the "
            f"measured {training_loss:.4f} divided by {k}: add up each batch's loss before "
            "dividing it by accumulation_steps (the division is for backward only)",
        )
        expect(
            math.isclose(reported, training_loss, rel_tol=loss_rtol),
            f"fit reports a training loss of {reported:.4f}, but its batches' mean loss, "
            f"measured, is {training_loss:.4f}: add loss.detach() * len(xb) for every batch "
            "and divide by the number of samples",
        )
        expect(
            checkpoint_path.exists(),
            "no checkpoint was saved: torch.save the best epoch to checkpoint_path",
        )
        saved = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        expect(
            isinstance(saved, dict) and "model" in saved,
            "the checkpoint should be a dictionary with the model's state_dict under 'model'",
        )
        optimizer_steps, scheduler_steps = calls.count("SGD.step"), calls.count("LambdaLR.step")
        expect(
            scheduler_steps == optimizer_steps,
            f"scheduler.step() ran {scheduler_steps} times for {optimizer_steps} optimizer "
            "steps: call it right after each optimizer.step() (a schedule counts optimizer "
            "steps, so with accumulation it steps every accumulation_steps batches too)",
        )
        expect(
            calls[:1] == ["SGD.step"],
            "scheduler.step() came before optimizer.step(): call optimizer.step() first",
        )

        max_norm = 0.01
        _, records, _, _, _ = run(0.1, 1, max_norm=max_norm)
        norms = [float(torch.cat([g.flatten() for g in r["grads"]]).norm()) for r in records]
        expect(
            max(norms) <= max_norm * 1.01,
            f"a step used a gradient of norm {max(norms):.3g} > max_norm={max_norm:g}: when "
            "max_norm is given, clip_grad_norm_(model.parameters(), max_norm) after the last "
            "backward() and before optimizer.step()",
        )

        # Validation labels one class off the training labels: training makes the validation
        # loss worse, so the best epoch is an early one and the last epoch is not the best. At
        # lr 1.0 each epoch's loss is several percent above the one before (1.43, 1.57, 1.64),
        # far more than bf16 autocast rounds, so fit and this check agree on the best epoch.
        features, labels = _tiny_problem(batches)[1].dataset.tensors
        val_batches = [(features, (labels + 1) % 3)]
        epochs = 3
        history, records, _, _, model = run(1.0, epochs, DataLoader(TensorDataset(*val_batches[0])))
        after_epoch = [records[epoch * batches]["weights"] for epoch in range(1, epochs)]
        after_epoch.append([p.detach().cpu() for p in model.parameters()])
        measured = [float(_loss_at(weights, val_batches)) for weights in after_epoch]
        reported = [float(loss) for loss in history["validation loss"]]
        expect(
            len(reported) == epochs
            and all(
                math.isclose(got, want, rel_tol=loss_rtol)
                for got, want in zip(reported, measured, strict=True)
            ),
            f"the history's validation losses are {', '.join(f'{v:.3f}' for v in reported)}, "
            f"but the model's, measured after each epoch, are "
            f"{', '.join(f'{v:.3f}' for v in measured)}: record what evaluate(model, "
            "val_loader) returns, once per epoch",
        )
        best_epoch = 1 + min(range(epochs), key=measured.__getitem__)
        saved = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        saved_weights = [saved["model"].get(key) for key in ("weight", "bias")]
        held = next(
            (
                epoch
                for epoch, weights in enumerate(after_epoch, start=1)
                if all(
                    isinstance(got, torch.Tensor) and torch.equal(got, want)
                    for got, want in zip(saved_weights, weights, strict=True)
                )
            ),
            None,
        )
        expect(
            held == best_epoch,
            f"after {epochs} epochs the checkpoint holds the weights of "
            f"{'no epoch' if held is None else f'epoch {held}'}, but the best validation loss "
            f"was after epoch {best_epoch} ({', '.join(f'{v:.3f}' for v in measured)}): save "
            "the model only when its validation loss beats the best so far",
        )

        epochs, patience = 6, 2
        history, _, _, _, _ = run(0.0, epochs, patience=patience)
        ran = len(history["validation loss"])
        expect(
            ran == 1 + patience,
            f"with lr=0 the validation loss never improves after epoch 1, so with patience="
            f"{patience} fit should stop after epoch {1 + patience}; it ran {ran} epochs. "
            "Give each epoch's validation loss to EarlyStopping(patience).step() and break "
            "when it returns True",
        )
    passed(
        "accumulation, clipping, scheduler after each optimizer step, early stopping and the "
        "best checkpoint all work"
    )


def accumulation_bars(norms: Mapping[str, float]) -> Figure:
    """The gradient norm of each way to build a batch's gradient; the first is the reference
    (one big batch). The title names the ways that match it within 0.1 %."""
    reference_name, reference = next(iter(norms.items()))
    matching = [
        name
        for name, norm in list(norms.items())[1:]
        if math.isclose(norm, reference, rel_tol=1e-3)
    ]
    verdict = ", ".join(matching) if matching else "none"
    return plots.bars(
        norms,
        title=f"Gradient norm; same as {reference_name}: {verdict}",
        ylabel="gradient norm",
    )


# ----------------------------------------------------------------------------------------------
# Exercise 9 · averaging the gradients of every process by hand
# ----------------------------------------------------------------------------------------------

# What each process of the check runs: the attendee's function (its code object, handed over
# with marshal: the same interpreter runs both sides) on a gradient that differs per rank.
_AVERAGING_PROCESS = """
import json, marshal, sys, types
import torch
import torch.distributed as dist
from torch import nn

dist.init_process_group("gloo")
print("joined", flush=True)
rank, world_size = dist.get_rank(), dist.get_world_size()
with open(sys.argv[1], "rb") as answer:
    code, defaults = marshal.load(answer)
names = {"torch": torch, "dist": dist, "nn": nn, "__builtins__": __builtins__}
average_gradients = types.FunctionType(code, names, "average_gradients", defaults)
torch.manual_seed(0)
model = nn.Linear(3, 2)  # the same weights on every rank; the gradient differs
for parameter in model.parameters():
    parameter.grad = (rank + 1) * torch.arange(1.0, parameter.numel() + 1).view_as(parameter)
def flat(tensors):
    return torch.cat([t.detach().flatten() for t in tensors]).tolist()

report = {"rank": rank, "error": None}
report["own"] = flat(p.grad for p in model.parameters())
report["weights before"] = flat(model.parameters())
try:
    average_gradients(model)
except Exception as error:
    report["error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[0]}"
report["grads"] = flat(p.grad for p in model.parameters())
report["weights"] = flat(model.parameters())
print(json.dumps(report), flush=True)
dist.destroy_process_group()
"""


# What torchrun and its two training processes add to a container's memory, each with torch
# loaded: 0.85 GB measured in the CPU image under the attendee's 2 GB limit.
DATA_PARALLEL_MEMORY = 0.9e9


def free_port() -> int:
    """A loopback port no program listens on now: where data-parallel processes meet."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _in_processes(function: Callable, world_size: int, timeout: float) -> list[dict]:
    """Run ``function(model)`` in ``world_size`` processes joined by gloo on loopback; each
    process's report: its rank, its gradients and weights after the call, an error or None."""
    with tempfile.TemporaryDirectory() as folder:
        answer = Path(folder) / "answer.marshal"
        answer.write_bytes(marshal.dumps((function.__code__, function.__defaults__)))
        program = Path(folder) / "averaging.py"
        program.write_text(_AVERAGING_PROCESS)
        shared = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "GLOO_SOCKET_IFNAME": "lo",  # loopback, even where the host's name resolves to nothing
            "MASTER_PORT": str(free_port()),
            "WORLD_SIZE": str(world_size),
            "OMP_NUM_THREADS": "1",
        }
        processes = [
            subprocess.Popen(
                [sys.executable, str(program), str(answer)],
                env={**shared, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for rank in range(world_size)
        ]
        try:
            outputs = [process.communicate(timeout=timeout) for process in processes]
        except subprocess.TimeoutExpired:
            for process in processes:
                process.kill()
            joined = sum("joined" in process.communicate()[0] for process in processes)
            expect(
                joined == world_size,
                f"only {joined} of the {world_size} processes connected to each other over "
                f"loopback (127.0.0.1) within {timeout:g} s: this machine's network setup "
                "blocks them, so ask your instructor (your answer never ran)",
            )
            raise ExerciseNotSolved(
                f"the {world_size} processes were still waiting for each other after "
                f"{timeout:g} s: every rank must make the same dist calls, for the same tensors, "
                "in the same order (call dist.all_reduce on every rank, not only on one)"
            ) from None
    reports = []
    for rank, (stdout, stderr) in enumerate(outputs):
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        expect(
            bool(lines),
            f"process {rank} stopped without a report: "
            f"{(stderr.strip().splitlines() or ['no message'])[-1]}",
        )
        reports.append(json.loads(lines[-1]))
    return reports


def own_gradients_only():
    """What the cells below Exercise 9 use while it is unsolved: a function that leaves every
    process with its own gradient (the averaging is the exercise, its solution hidden)."""

    def average_gradients(model):
        """Stand-in for the exercise: averages nothing."""

    return average_gradients


@exercise(stand_in=own_gradients_only, stand_in_is="a function that averages nothing")
def check_average_gradients(average_gradients: Callable) -> None:
    """`average_gradients(model)`, run in every process, replaces each parameter's .grad by the
    mean over all processes of that parameter's .grad, and leaves the weights alone."""
    expect(
        callable(average_gradients) and hasattr(average_gradients, "__code__"),
        "`average_gradients` is not a function: define it with def",
    )
    expect(
        not average_gradients.__code__.co_freevars,
        "`average_gradients` uses variables of an enclosing function: define it at the top "
        "level of the cell, so it can be sent to other processes",
    )
    world_size = 3  # not 2, so that dividing by a fixed 2 shows
    reports = _in_processes(average_gradients, world_size, timeout=120)
    failed = [report for report in reports if report["error"]]
    finished = [str(report["rank"]) for report in reports if not report["error"]]
    expect(
        not failed or not finished,
        f"on rank {failed[0]['rank'] if failed else ''} your `average_gradients` failed while "
        f"rank(s) {', '.join(finished)} finished: every rank must make the same dist calls, in "
        "the same order (dist.all_reduce on every rank, not only on one). The error: "
        f"{failed[0]['error'][:120] if failed else ''}",
    )
    expect(not failed, f"your `average_gradients` raised {failed[0]['error'] if failed else ''}")
    expect(
        all(report["weights"] == report["weights before"] for report in reports),
        "your function changed the weights: average each parameter's .grad (p.grad), not the "
        "parameter itself (p or p.data)",
    )
    grads = [torch.tensor(report["grads"]) for report in reports]
    own = [torch.tensor(report["own"]) for report in reports]
    total = sum(own)
    mean = total / world_size

    def everywhere(expected: torch.Tensor) -> bool:
        return all(torch.allclose(g, expected, rtol=1e-5) for g in grads)

    expect(
        not all(torch.allclose(g, o) for g, o in zip(grads, own, strict=True)),
        "every process still has only its own gradient: dist.all_reduce(p.grad, "
        "op=dist.ReduceOp.SUM) on each parameter's .grad adds up the gradients of all processes",
    )
    expect(
        not everywhere(total),
        f"every process holds the SUM of the {world_size} processes' gradients, not their "
        "mean: after the all_reduce divide by dist.get_world_size()",
    )
    expect(
        not everywhere(total / 2),
        f"the sum was divided by 2, but this check runs {world_size} processes: divide by "
        "dist.get_world_size(), never by a fixed number",
    )
    expect(
        all(torch.allclose(g, grads[0]) for g in grads),
        "after your function the processes still hold different gradients: every process must "
        "end with the same gradient, the mean (all_reduce, then divide)",
    )
    expect(
        everywhere(mean),
        f"the processes agree on a gradient ({grads[0][:3].tolist()}, ...), but it is not the "
        f"mean of their gradients ({mean[:3].tolist()}, ...): all_reduce with op=SUM, then "
        "divide by the world size",
    )
    passed(
        f"{world_size} processes: each gradient replaced by the mean of all {world_size}, "
        "the weights untouched"
    )
