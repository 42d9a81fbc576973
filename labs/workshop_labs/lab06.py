"""Lab 6 · Checkpoints: the exercise checks and the lab's own figures."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from unittest import mock

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from torch import nn

from workshop_labs import data, plots
from workshop_labs.checks import ExerciseNotSolved, calling, error_text, exercise, expect, passed
from workshop_labs.timing import quartiles
from workshop_labs.units import human_size

# ----------------------------------------------------------------------------------------------
# Figures and small helpers
# ----------------------------------------------------------------------------------------------

_MAX_CHILDREN = 6  # per level; numbered entries (the optimizer's per-parameter state) show 2
_COLOURS = {"key": "#222222", "tensor": plots.PALETTE[0], "value": plots.PALETTE[2], "more": "0.5"}
_MONO_CHAR_PT = 0.602  # advance width of one DejaVu Sans Mono character, in font sizes


def _is_container(value: object) -> bool:
    return isinstance(value, Mapping | list | tuple)


def _leaf_text(value: object) -> tuple[str, str]:
    if isinstance(value, torch.Tensor):
        shape = "scalar" if value.dim() == 0 else "×".join(str(d) for d in value.shape)
        dtype = str(value.dtype).removeprefix("torch.")
        size = human_size(value.numel() * value.element_size())
        return f"tensor {shape} · {dtype} · {value.device.type} · {size}", "tensor"
    text = repr(value)
    return (text if len(text) <= 40 else text[:37] + "..."), "value"


def _tree_lines(value: object, prefix: str = "") -> list[tuple[str, str, str]]:
    """(connector prefix, text, kind) for every line of the tree below ``value``."""
    if isinstance(value, Mapping):
        items = [(k if isinstance(k, str) else repr(k), v) for k, v in value.items()]
    else:
        items = [(f"[{i}]", v) for i, v in enumerate(value)]
    numbered = isinstance(value, Mapping) and all(isinstance(k, int) for k in value)
    limit = 2 if numbered else _MAX_CHILDREN
    shown = items[:limit]
    lines = []
    for index, (key, child) in enumerate(shown):
        last = index == len(shown) - 1 and len(items) <= limit
        connector = prefix + ("└─ " if last else "├─ ")
        short_tuple = isinstance(child, tuple) and not any(map(_is_container, child))
        if _is_container(child) and len(child) > 0 and not short_tuple:
            kind = "dict" if isinstance(child, Mapping) else type(child).__name__
            lines.append((connector, f"{key}  ({kind}, {len(child)} entries)", "key"))
            lines += _tree_lines(child, prefix + ("   " if last else "│  "))
        else:
            text, kind = _leaf_text(child)
            lines.append((connector, f"{key}: {text}", kind))
    if len(items) > limit:
        lines.append((prefix + "└─ ", f"… {len(items) - limit} more", "more"))
    return lines


def checkpoint_tree(
    checkpoint: Mapping, *, title: str = "What the checkpoint file contains"
) -> Figure:
    """Draw a checkpoint as a tree: keys, and each tensor's shape, dtype, device and size."""
    lines = _tree_lines(checkpoint)
    fontsize = 10
    fig, ax = plots.figure(figsize=(9, 0.9 + 0.22 * len(lines)))
    ax.axis("off")
    ax.grid(False)
    ax.set_xlim(0, 1)
    ax.set_ylim(len(lines) + 0.5, -1.5)
    ax.text(
        0.0,
        -1,
        "checkpoint (dict)",
        fontsize=fontsize + 1,
        fontweight="bold",
        family="monospace",
        va="center",
    )
    for row, (connector, text, kind) in enumerate(lines):
        ax.text(
            0.0, row, connector, fontsize=fontsize, family="monospace", color="0.6", va="center"
        )
        ax.annotate(
            text,
            xy=(0.0, row),
            xytext=(len(connector) * _MONO_CHAR_PT * fontsize, 0),
            textcoords="offset points",
            fontsize=fontsize,
            family="monospace",
            va="center",
            color=_COLOURS[kind],
            fontweight="bold" if kind == "key" else "normal",
        )
    ax.set_title(title)
    return plots.show(fig)


def resume_curves(
    uninterrupted: list[float],
    resumed: list[float],
    weights_only: list[float],
    crash_after: int,
) -> Figure:
    """The uninterrupted loss curve, and the two resumed runs continuing after the crash."""
    fig, ax = plots.figure(figsize=(9, 4.8))
    epochs = range(1, len(uninterrupted) + 1)
    after = range(crash_after + 1, crash_after + 1 + len(resumed))
    ax.plot(epochs, uninterrupted, color="0.7", linewidth=7, alpha=0.6, label="uninterrupted run")
    ax.plot(
        list(epochs)[:crash_after],
        uninterrupted[:crash_after],
        color=plots.PALETTE[0],
        linewidth=2,
        marker="o",
        label="first session (until the crash)",
    )
    ax.plot(
        after,
        resumed,
        color=plots.PALETTE[2],
        linewidth=2,
        marker="o",
        linestyle="--",
        label="resumed from the full checkpoint",
    )
    ax.plot(
        after,
        weights_only,
        color=plots.PALETTE[3],
        linewidth=2,
        marker="s",
        linestyle=":",
        label="resumed from the weights only",
    )
    ax.axvline(crash_after + 0.5, color="0.3", linestyle="--", linewidth=1)
    ax.annotate(
        "checkpoint saved,\nkernel crashes",
        xy=(crash_after + 0.5, 0.95),
        xycoords=("data", "axes fraction"),
        ha="center",
        va="top",
        fontsize=10,
        backgroundcolor="white",
    )
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    difference = max(abs(a - b) for a, b in zip(uninterrupted[crash_after:], resumed, strict=True))
    match = "exactly" if difference == 0 else f"to within {difference:.1e}"
    ax.set(
        title=f"Resuming training: the full checkpoint continues the original curve {match}",
        xlabel="epoch",
        ylabel="training loss (log scale)",
    )
    ax.set_xticks(list(epochs))
    ax.legend(loc="lower left")
    return plots.show(fig)


def digit_grid(rows: Mapping[str, torch.Tensor], *, title: str) -> Figure:
    """One row of 8×8 digits per entry of ``rows`` (tensors of shape N×1×8×8 or N×8×8)."""
    columns = max(len(images) for images in rows.values())
    fig, axes = plots.figure(
        len(rows), columns, figsize=(1.1 * columns + 1.6, 1.15 * len(rows) + 0.6), squeeze=False
    )
    for axes_row, (label, images) in zip(axes, rows.items(), strict=True):
        for column, ax in enumerate(axes_row):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if column < len(images):
                ax.imshow(images[column].detach().cpu().reshape(8, 8), cmap="gray_r")
        axes_row[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
    fig.suptitle(title, fontweight="bold")
    return plots.show(fig)


def refusal_reason(error: Exception) -> str:
    """The one sentence of torch.load's weights_only refusal that names the blocked global."""
    match = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    if match:
        return f"weights_only=True refused to load `{match.group(1)}`: it is not an allowed type"
    return str(error).splitlines()[0]


# ----------------------------------------------------------------------------------------------
# A small model and optimizer for the checks (independent of the lab's own cells)
# ----------------------------------------------------------------------------------------------


def _trained_setup(seed: int = 0, steps: int = 3):
    """A model, optimizer and scheduler after ``steps`` steps (0: as a new run has them)."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.randn(4, 8)).sum().backward()
        optimizer.step()
        scheduler.step()
    return model, optimizer, scheduler


def _same_tensors(a: Mapping, b: Mapping) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _load_safely(path: Path) -> dict:
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as error:
        raise ExerciseNotSolved(
            f"your checkpoint cannot be loaded with weights_only=True ({refusal_reason(error)}): "
            "save state_dict()s, numbers and tensors, not whole objects such as the model"
        ) from None


# ----------------------------------------------------------------------------------------------
# Section 1 · the side of a convolution's output, and a BatchNorm2d in a small CNN
# ----------------------------------------------------------------------------------------------

# (size, kernel_size, stride, padding): padding that keeps the size, strides that halve it or
# leave a remainder, a kernel larger than the stride, and MaxPool2d(2)'s settings.
_CONV_SETTINGS = (
    (8, 3, 1, 0),
    (8, 3, 1, 1),
    (8, 3, 2, 1),
    (8, 5, 1, 2),
    (7, 3, 2, 0),
    (9, 2, 2, 0),
    (28, 5, 3, 1),
    (8, 2, 2, 0),
)


# What a beginner's formula computes instead, and what the check then says.
_SIDE_MISTAKES = (
    (
        lambda size, k, s, p: (size + p - k) // s + 1,
        "padding counted once: it adds a border on both sides, so the formula has 2 × padding",
    ),
    (
        lambda size, k, s, p: (size - k) // s + 1,
        "padding left out: it adds 2 × padding to the size",
    ),
    (
        lambda size, k, s, p: (size + 2 * p - k) // s,
        "the + 1 is missing: the kernel's first position counts too",
    ),
    (
        lambda size, k, s, p: size + 2 * p - k + 1,
        "stride left out: the kernel moves `stride` pixels at a time, so divide by it",
    ),
)


@exercise()
def check_conv_side(conv_side_fn: Callable) -> None:
    """Check the shape exercise: conv_side gives the side nn.Conv2d (and so MaxPool2d) makes."""
    name = "conv_side"
    expect(callable(conv_side_fn), f"`{name}` is not a function")
    answers, real = {}, {}
    for size, kernel, stride, padding in _CONV_SETTINGS:
        call = f"{name}({size}, {kernel}, stride={stride}, padding={padding})"
        image = torch.zeros(1, 1, size, size)
        real[call] = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding)(image).shape[-1]
        with calling(call):
            got = conv_side_fn(size, kernel, stride, padding)
        expect(got is not None, f"`{call}` returned None: return the output side")
        expect(
            not isinstance(got, float),
            f"`{call}` returned {got!r}, a float: use // (floor division), since a layer makes "
            "whole pixels and drops a last position that does not fit",
        )
        expect(
            isinstance(got, int) and not isinstance(got, bool),
            f"`{call}` returned a {type(got).__name__}: return an int",
        )
        answers[call] = got
    wrong = [call for call in answers if answers[call] != real[call]]
    if wrong:
        for formula, mistake in _SIDE_MISTAKES:
            expect(
                any(
                    answers[call] != formula(*setting)
                    for call, setting in zip(answers, _CONV_SETTINGS, strict=True)
                ),
                f"`{wrong[0]}` returned {answers[wrong[0]]} but nn.Conv2d makes "
                f"{real[wrong[0]]}: {mistake}",
            )
        expect(
            False, f"`{wrong[0]}` returned {answers[wrong[0]]} but nn.Conv2d makes {real[wrong[0]]}"
        )
    passed(
        f"{name} gives the side nn.Conv2d makes for {len(_CONV_SETTINGS)} settings, "
        "MaxPool2d(2)'s (kernel 2, stride 2) among them"
    )


def _flat_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if not list(m.children())]


@exercise()
def check_small_cnn(small_cnn: object) -> None:
    """Check the BatchNorm2d exercise: one BatchNorm2d on the conv's channels, before Flatten,
    used in forward, and a Linear layer that takes what Flatten gives."""
    name = "small_cnn"
    expect(small_cnn is not None, f"`{name}` is None: build the model")
    expect(
        isinstance(small_cnn, nn.Module), f"`{name}` is a {type(small_cnn).__name__}, not a model"
    )
    layers = _flat_layers(small_cnn)
    expect(
        not any(isinstance(m, nn.BatchNorm1d) for m in layers),
        "BatchNorm1d normalizes vectors (N × features); after a Conv2d the tensor is "
        "N × C × H × W: use nn.BatchNorm2d",
    )
    expect(
        any(isinstance(m, nn.BatchNorm2d) for m in layers),
        f"no nn.BatchNorm2d in `{name}`: add one right after the Conv2d",
    )
    ran: list[nn.Module] = []  # every layer forward() reaches, in order
    linear: dict[str, tuple[int, int]] = {}

    def reached(module, args) -> None:
        ran.append(module)

    def first_linear_gets(module, args) -> None:
        linear.setdefault("sizes", (module.in_features, args[0].shape[-1]))

    hooks = [layer.register_forward_pre_hook(reached) for layer in layers]
    hooks += [
        layer.register_forward_pre_hook(first_linear_gets)
        for layer in layers
        if isinstance(layer, nn.Linear)
    ]
    try:
        output = small_cnn(data.digits()[0][:5])
        failure = None
    except Exception as error:
        output, failure = None, error
    finally:
        for hook in hooks:
            hook.remove()
    norms = [m for m in ran if isinstance(m, nn.BatchNorm2d)]
    expect(
        norms or failure is not None,
        "the BatchNorm2d is registered but forward never uses it: put it in the chain of layers",
    )
    if norms:
        norm = norms[0]
        before = ran[: ran.index(norm)]
        convs = [m for m in before if isinstance(m, nn.Conv2d)]
        expect(convs, "the BatchNorm2d runs before any Conv2d: put it right after the convolution")
        expect(
            not any(isinstance(m, nn.Flatten) for m in before),
            "the BatchNorm2d comes after Flatten, where the images are rows of numbers: put it "
            "right after the Conv2d",
        )
        channels = convs[-1].out_channels
        expect(
            norm.num_features == channels,
            f"BatchNorm2d({norm.num_features}) normalizes {norm.num_features} channel(s), but "
            f"the Conv2d before it makes {channels}: nn.BatchNorm2d({channels})",
        )
    takes, given = linear.get("sizes", (None, None))
    expect(
        takes == given,
        f"nn.Linear takes {takes} features but Flatten hands it {given}: compute each side "
        "with the formula (Conv2d, then MaxPool2d), then channels × height × width",
    )
    if failure is not None:
        raise ExerciseNotSolved(f"`{name}(x)` raised {error_text(failure)}") from None
    expect(norms, f"no nn.BatchNorm2d runs in `{name}`: add one right after the Conv2d")
    expect(
        isinstance(output, torch.Tensor) and tuple(output.shape) == (5, 10),
        f"`{name}` turns 5 digits into {getattr(output, 'shape', type(output).__name__)}, "
        "not 5 × 10 scores",
    )
    parameters = sum(p.numel() for p in norm.parameters())
    passed(
        f"{name}: BatchNorm2d({norm.num_features}) after the convolution ({parameters} "
        f"parameters, and running averages as buffers); the Linear layer takes the {takes} "
        "features Flatten gives"
    )


# ----------------------------------------------------------------------------------------------
# Section 2 · what a state_dict holds besides the parameters
# ----------------------------------------------------------------------------------------------


def _with_a_buffer_of_its_own() -> nn.Module:
    """A model with a buffer that is not BatchNorm's: an answer must find it too."""
    model = nn.Sequential(nn.Linear(3, 2))
    model.register_buffer("scale", torch.ones(2))
    return model


@exercise()
def check_non_parameters(non_parameters_fn: Callable, model_class: type) -> None:
    """Check the state_dict exercise: the names of every state_dict entry that is not a
    parameter, for the lab's model and for others."""
    name = "non_parameters"
    expect(callable(non_parameters_fn), f"`{name}` is not a function")
    for model in (model_class(), _with_a_buffer_of_its_own(), nn.Sequential(nn.Linear(2, 2))):
        parameters, expected = dict(model.named_parameters()), _buffer_names(model)
        with calling(f"{name}(model)"):
            got = non_parameters_fn(model)
        expect(got is not None, f"`{name}` returned None: return the list of names")
        expect(
            not isinstance(got, str | Mapping) and all(isinstance(n, str) for n in got),
            f"`{name}` returned a {type(got).__name__}: return a list of names (strings)",
        )
        got = list(got)
        extra = [key for key in got if key in parameters]
        expect(
            not extra,
            f"`{extra[0] if extra else ''}` is a parameter (it is in model.named_parameters()): "
            "keep only the state_dict entries that are not parameters",
        )
        unknown = [key for key in got if key not in expected]
        expect(not unknown, f"`{unknown[0] if unknown else ''}` is not a key of model.state_dict()")
        missing = [key for key in expected if key not in got]
        expect(
            not missing,
            f"`{missing[0] if missing else ''}` is missing: every state_dict entry that is not a "
            "parameter counts (BatchNorm's running_mean, running_var and num_batches_tracked, "
            "and any other buffer)",
        )
        expect(len(got) == len(expected), f"`{name}` names some entries more than once")
    passed(
        f"{name}: besides the parameters, a state_dict holds buffers such as "
        f"{', '.join(_buffer_names(model_class()))}"
    )


def _buffer_names(model: nn.Module) -> list[str]:
    """The state_dict names of ``model`` that are not parameters."""
    parameters = dict(model.named_parameters())
    return [key for key in model.state_dict() if key not in parameters]


# ----------------------------------------------------------------------------------------------
# Exercise 4 · load safely, on the right device
# ----------------------------------------------------------------------------------------------

_payload_runs: list[str] = []


def _payload(message: str) -> None:
    """Stands in for an attacker's code: it only records that it ran."""
    _payload_runs.append(message)


class _Payload:
    def __reduce__(self):
        return (_payload, ("code hidden in the checkpoint ran",))


@exercise()
def check_load_trusted(load_trusted_fn: Callable, config_class: type) -> None:
    """Check exercise 4: weights_only=True, TrainingConfig allowed, map_location honoured."""
    name = "load_trusted"
    expect(callable(load_trusted_fn), f"`{name}` is not a function")
    config = config_class()
    if dataclasses.is_dataclass(config):  # not the defaults: a loader must read them back
        first = dataclasses.fields(config)[0].name
        config = dataclasses.replace(config, **{first: getattr(config, first) * 2})
    weights = {"weight": torch.randn(3, 2)}
    _payload_runs.clear()
    with tempfile.TemporaryDirectory() as folder:
        good, evil = Path(folder) / "good.pt", Path(folder) / "evil.pt"
        torch.save({"model": weights, "config": config}, good)
        torch.save({"model": weights, "config": _Payload()}, evil)
        try:
            loaded = load_trusted_fn(good, torch.device("cpu"))
        except pickle.UnpicklingError as error:
            raise ExerciseNotSolved(
                f"{refusal_reason(error)}. Allow just that class: "
                f"with torch.serialization.safe_globals([{config_class.__name__}]): ..."
            ) from None
        expect(loaded is not None, f"`{name}` returned None: return the loaded checkpoint")
        expect(
            isinstance(loaded.get("config"), config_class) and loaded["config"] == config,
            f"checkpoint['config'] did not come back as the saved {config_class.__name__}",
        )
        expect(
            isinstance(loaded.get("model"), Mapping)
            and torch.equal(loaded["model"].get("weight", torch.empty(0)), weights["weight"]),
            "checkpoint['model'] did not come back with the saved weights: return what "
            "torch.load read from the file",
        )
        moved = load_trusted_fn(good, torch.device("meta"))
        landed = moved["model"]["weight"].device.type
        expect(
            landed == "meta",
            f"wrong map_location: asked for device 'meta' but the tensors landed on '{landed}'. "
            "Pass map_location=device (this check uses 'meta', a device without data, to see "
            "that your function honours its argument)",
        )
        try:
            load_trusted_fn(evil, torch.device("cpu"))
        except pickle.UnpicklingError:
            refused = True
        else:
            refused = False
    expect(
        not _payload_runs,
        "your loader ran code hidden inside a checkpoint file: never use weights_only=False "
        "for files you did not create; keep weights_only=True",
    )
    expect(refused, "your loader accepted a file with an unknown object: keep weights_only=True")
    passed(
        f"{name} loads tensors and {config_class.__name__} onto the device you ask for, and "
        "refuses anything else"
    )


# ----------------------------------------------------------------------------------------------
# Exercise 5 · save a complete checkpoint
# ----------------------------------------------------------------------------------------------

REQUIRED_KEYS = {
    "model": "model.state_dict()",
    "optimizer": "optimizer.state_dict()",
    "scheduler": "scheduler.state_dict()",
    "epoch": "epoch",
    "rng": "rng_state()",
}


def walkthrough_checkpoint(rng_state_fn: Callable) -> Callable:
    """What the cells below Exercise 9 use while it is unsolved: the checkpoint of the cell
    above the exercise, whose tree the lab draws, written for the epoch given. Section 5's
    resumed run reads it back, so the stand-in must hold all five parts; the exercise's own
    answer is the instructor's to reveal."""

    def save_checkpoint(path, model, optimizer, scheduler, epoch):
        stateful = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
        parts = {key: part.state_dict() for key, part in stateful.items()}
        torch.save({**parts, "epoch": epoch, "rng": rng_state_fn()}, path)

    return save_checkpoint


@exercise(
    stand_in=walkthrough_checkpoint,
    stand_in_is="the five parts of the checkpoint drawn above the exercise",
)
def check_save_checkpoint(save_checkpoint_fn: Callable, rng_state_fn: Callable) -> None:
    """Check exercise 5: the file holds model, optimizer, scheduler, epoch and RNG state."""
    name = "save_checkpoint"
    expect(callable(save_checkpoint_fn), f"`{name}` is not a function")
    model, optimizer, scheduler = _trained_setup()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "check.pt"
        expected_rng = rng_state_fn()
        save_checkpoint_fn(path, model, optimizer, scheduler, 3)
        expect(
            path.exists(), f"`{name}` did not write a file at `path`: call torch.save(..., path)"
        )
        checkpoint = _load_safely(path)
    expect(
        isinstance(checkpoint, dict),
        f"the file holds a {type(checkpoint).__name__}, not a dict: save one dict with all parts",
    )
    for key, how in REQUIRED_KEYS.items():
        part = {"model": "model weights", "optimizer": "optimizer state"}.get(key, f"{key} state")
        expect(
            key in checkpoint,
            f"checkpoint missing {part}: add '{key}': {how} (it has {sorted(checkpoint)})",
        )
    expect(
        isinstance(checkpoint["model"], Mapping)
        and _same_tensors(checkpoint["model"], model.state_dict()),
        "checkpoint['model'] is not the model's state_dict(): save model.state_dict()",
    )
    saved_optimizer = checkpoint["optimizer"]
    expect(
        isinstance(saved_optimizer, Mapping) and "state" in saved_optimizer,
        "checkpoint['optimizer'] is not optimizer.state_dict() (it needs 'state' and "
        "'param_groups')",
    )
    expect(
        len(saved_optimizer["state"]) == len(optimizer.state_dict()["state"]),
        "checkpoint['optimizer'] has no momentum buffers: save optimizer.state_dict() after "
        "training, not of a fresh optimizer",
    )
    expect(
        all(
            torch.equal(
                saved_optimizer["state"][key].get("momentum_buffer"), state["momentum_buffer"]
            )
            for key, state in optimizer.state_dict()["state"].items()
        ),
        "checkpoint['optimizer'] holds other momentum buffers than the optimizer's: save "
        "optimizer.state_dict() of the optimizer passed in, as it is when you save",
    )
    expect(
        isinstance(checkpoint["scheduler"], Mapping)
        and checkpoint["scheduler"].get("last_epoch") == scheduler.last_epoch,
        "checkpoint['scheduler'] is not scheduler.state_dict(): save it so the learning rate "
        "continues where it was",
    )
    expect(
        checkpoint["epoch"] == 3,
        f"checkpoint['epoch'] is {checkpoint['epoch']!r} but the epoch passed in was 3",
    )
    expect(
        isinstance(checkpoint["rng"], Mapping)
        and torch.equal(checkpoint["rng"].get("cpu", torch.empty(0)), expected_rng["cpu"]),
        "checkpoint['rng'] is not the random number generator state: save rng_state()",
    )
    passed(
        "the checkpoint holds everything needed to resume: weights, optimizer, scheduler, "
        "epoch and RNG state"
    )


# ----------------------------------------------------------------------------------------------
# Exercise 6 · resume from a checkpoint
# ----------------------------------------------------------------------------------------------


@exercise()
def check_resume(resume_fn: Callable, rng_state_fn: Callable) -> None:
    """Check exercise 6: everything restored and the next epoch returned."""
    name = "resume"
    expect(callable(resume_fn), f"`{name}` is not a function")
    model, optimizer, scheduler = _trained_setup()
    saved = {
        "model": copy.deepcopy(model.state_dict()),
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "scheduler": scheduler.state_dict(),
        "epoch": 4,
        "rng": rng_state_fn(),
    }
    # what resume is handed: a new run, its scheduler at the start and no momentum yet
    fresh_model, fresh_optimizer, fresh_scheduler = _trained_setup(seed=1, steps=0)
    fresh_weights = copy.deepcopy(fresh_model.state_dict())
    torch.manual_seed(123)
    load_calls: list[dict] = []
    real_load = torch.load

    def spy_load(*args, **kwargs):
        load_calls.append(kwargs)
        return real_load(*args, **kwargs)

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "check.pt"
        torch.save(saved, path)
        with mock.patch.object(torch, "load", spy_load):
            try:
                start_epoch = resume_fn(path, fresh_model, fresh_optimizer, fresh_scheduler)
            except RuntimeError as error:
                if "Unexpected key(s)" not in str(error):
                    raise
                raise ExerciseNotSolved(
                    "load_state_dict was given the whole checkpoint (it found keys such as "
                    "'optimizer' and 'epoch'): give each part its own entry, "
                    "model.load_state_dict(checkpoint['model'])"
                ) from None
    expect(load_calls, f"`{name}` did not read the file: checkpoint = torch.load(path, ...)")
    expect(
        all(call.get("weights_only", True) is True for call in load_calls),
        "you loaded with weights_only=False: keep weights_only=True (the checkpoint holds only "
        "tensors and numbers, so it loads safely)",
    )
    expect(
        not _same_tensors(fresh_model.state_dict(), fresh_weights),
        "model weights not restored: model.load_state_dict(checkpoint['model']) (with "
        "strict=False, load_state_dict skips every key it cannot match and returns their "
        "names: read what it returns, or keep the default strict=True)",
    )
    expect(
        _same_tensors(fresh_model.state_dict(), saved["model"]),
        "model weights not restored: model.load_state_dict(checkpoint['model'])",
    )
    restored = fresh_optimizer.state_dict()
    expect(
        len(restored["state"]) == len(saved["optimizer"]["state"])
        and all(
            torch.equal(restored["state"][key]["momentum_buffer"], state["momentum_buffer"])
            for key, state in saved["optimizer"]["state"].items()
        )
        and restored["param_groups"][0]["lr"] == saved["optimizer"]["param_groups"][0]["lr"],
        "optimizer state not restored (its momentum buffers and learning rate are not the "
        "saved ones): optimizer.load_state_dict(checkpoint['optimizer'])",
    )
    expect(
        fresh_scheduler.last_epoch == scheduler.last_epoch,
        "scheduler not restored (the learning rate would restart from its first value): "
        "scheduler.load_state_dict(checkpoint['scheduler'])",
    )
    expect(
        torch.equal(torch.get_rng_state(), saved["rng"]["cpu"]),
        "random number generator state not restored (shuffling and dropout would differ): "
        "set_rng_state(checkpoint['rng'])",
    )
    expect(start_epoch is not None, f"`{name}` returned None: return the epoch to continue with")
    expect(
        start_epoch != 4,
        "resumed epoch off by one: the checkpoint was saved after epoch 4 finished, so "
        "returning 4 would train epoch 4 twice. Return the epoch after the saved one",
    )
    expect(
        start_epoch == 5,
        f"resumed epoch is {start_epoch!r}: the checkpoint was saved after epoch 4 finished, "
        "so training continues with epoch 5, the one after the saved epoch",
    )
    passed("resume restores weights, optimizer, scheduler and RNG, and continues at epoch 5")


# ----------------------------------------------------------------------------------------------
# Exercise 7 · keep the best checkpoint, not the last
# ----------------------------------------------------------------------------------------------

# The best epoch is neither first nor last, and a later epoch ties it: the file must keep the
# first epoch that reached the best accuracy.
_VAL_ACCURACIES = (0.60, 0.85, 0.80, 0.90, 0.70, 0.90, 0.75)


def save_every_epoch(path, model, epoch, val_accuracy, best_accuracy):
    """What the cells below Exercise 7 use while it is unsolved: the starter's way, which
    saves after every epoch, so the file holds the last epoch, not the best one (keeping the
    best is the exercise, its solution hidden)."""
    torch.save({"model": model.state_dict(), "epoch": epoch, "val_accuracy": val_accuracy}, path)
    return val_accuracy


@exercise(
    stand_in=lambda: save_every_epoch,
    stand_in_is="every epoch saved, so best.pt holds the last epoch, not the best",
)
def check_save_if_best(save_if_best_fn: Callable) -> None:
    """Check exercise 7: the file keeps the best epoch so far, and the best accuracy is returned."""
    name = "save_if_best"
    expect(callable(save_if_best_fn), f"`{name}` is not a function")
    model = nn.Linear(2, 2)
    best, best_epoch = 0.0, None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "best.pt"
        for epoch, val_accuracy in enumerate(_VAL_ACCURACIES):
            with torch.no_grad():  # weights that say which epoch they come from
                model.weight.fill_(epoch)
                model.bias.fill_(epoch)
            returned = save_if_best_fn(path, model, epoch, val_accuracy, best)
            improved = val_accuracy > best
            if improved:
                best, best_epoch = val_accuracy, epoch
            expect(
                path.exists(),
                f"`{name}` wrote nothing after epoch 0, although its accuracy "
                f"{val_accuracy:.0%} beat the best so far (0%): torch.save(...) to `path` when "
                "val_accuracy > best_accuracy",
            )
            saved = _load_safely(path)
            expect(
                isinstance(saved, dict),
                f"the file holds a {type(saved).__name__}: save one dict with 'model', 'epoch' "
                "and 'val_accuracy'",
            )
            for key, what in (
                ("model", "model.state_dict()"),
                ("epoch", "epoch"),
                ("val_accuracy", "val_accuracy"),
            ):
                expect(key in saved, f"the checkpoint misses '{key}': add '{key}': {what}")
            expect(
                val_accuracy != best or improved or saved["epoch"] != epoch,
                f"epoch {epoch} ({val_accuracy:.0%}) only tied the best so far, epoch "
                f"{best_epoch}, and replaced it in the file: save only when strictly better "
                "(val_accuracy > best_accuracy), so the first epoch that reached it stays",
            )
            expect(
                improved or saved["epoch"] != epoch,
                f"after epoch {epoch} ({val_accuracy:.0%}, worse than the best so far, "
                f"{best:.0%}) the file holds epoch {epoch}: it keeps the last epoch, not the "
                "best. Save only when val_accuracy > best_accuracy",
            )
            expect(
                saved["epoch"] == best_epoch,
                f"after epoch {epoch} the file holds epoch {saved['epoch']!r}, but the best so "
                f"far is epoch {best_epoch} ({best:.0%}): save when val_accuracy > best_accuracy",
            )
            expect(
                isinstance(saved["model"], Mapping)
                and torch.equal(
                    saved["model"].get("weight", torch.empty(0)),
                    torch.full_like(model.weight.detach(), float(best_epoch)),
                ),
                f"the weights in the file are not the model's at epoch {best_epoch}: save "
                "model.state_dict() together with that epoch",
            )
            expect(
                returned is not None,
                f"`{name}` returned None: return the best accuracy so far, so that the next "
                "epoch is compared with it",
            )
            expect(
                returned == best,
                f"after epoch {epoch} ({val_accuracy:.0%}) `{name}` returned {returned!r}, but "
                f"the best so far is {best!r}: return val_accuracy when it is better, "
                "else best_accuracy",
            )
    passed(
        f"{name} kept epoch {best_epoch} ({best:.0%}), the best, through "
        f"{len(_VAL_ACCURACIES) - 1 - best_epoch} later epochs that did not beat it"
    )


# ----------------------------------------------------------------------------------------------
# Exercise 9 · prepare a pretrained model for fine-tuning
# ----------------------------------------------------------------------------------------------


def frozen_body_new_head(model: nn.Module, classes: int) -> nn.Module:
    """What the cells below Exercise 9 use while it is unsolved: the walk-through's recipe
    above the exercise, the whole body frozen and a new head (unfreezing the body's last layer
    is the exercise, its solution hidden)."""
    model.body.requires_grad_(False)
    model.head = nn.Linear(model.head.in_features, classes)
    return model


@exercise(
    stand_in=lambda model_class: frozen_body_new_head,
    stand_in_is="the walk-through's whole frozen body with a new head",
)
def check_prepare_for_finetuning(prepare_fn: Callable, model_class: type) -> None:
    """Check exercise 9: body frozen except its last layer with weights, new trainable head."""
    name = "prepare_for_finetuning"
    expect(callable(prepare_fn), f"`{name}` is not a function")
    torch.manual_seed(0)
    model = model_class(num_classes=5)
    old_head = model.head
    result = prepare_fn(model, 3)
    expect(result is not None, f"`{name}` returned None: return the model")
    expect(
        isinstance(getattr(result, "head", None), nn.Linear),
        "the model's `head` is not an nn.Linear any more: replace it with nn.Linear(...)",
    )
    head = result.head
    added = [
        child_name
        for child_name, child in result.named_children()
        if isinstance(child, nn.Linear) and child is not head and child_name != "head"
    ]
    expect(
        not added,
        f"`{', '.join(added)}` is registered on the model, but forward uses model.head, so "
        "the new layer is never used: assign the new nn.Linear to model.head itself",
    )
    expect(
        head is not old_head,
        "head not replaced: the model still has its pretrained head. Assign model.head a new "
        "nn.Linear, from the old head's in_features to num_classes outputs",
    )
    expect(
        head.out_features == 3,
        f"the new head has {head.out_features} outputs but the new task has 3 classes",
    )
    expect(
        head.in_features == old_head.in_features,
        f"the new head takes {head.in_features} inputs but the body gives "
        f"{old_head.in_features}: use model.head.in_features",
    )
    expect(
        all(p.requires_grad for p in head.parameters()),
        "the new head is frozen (requires_grad=False): it is the part that must learn",
    )
    expect(
        result.body.training or not all(p.requires_grad for p in result.body.parameters()),
        "body not frozen: eval() does not freeze a model (it switches dropout and batch norm "
        "to inference); set requires_grad to False on the body's parameters",
    )
    with_weights = [m for m in result.body if any(True for _ in m.parameters(recurse=False))]
    last = with_weights[-1]
    last_name = f"body.{list(result.body).index(last)}"
    for module_name, module in result.body.named_children():
        for param_name, param in module.named_parameters():
            if module is last:
                expect(
                    param.requires_grad,
                    f"the last body layer `{last_name}` is still frozen: set its "
                    f"requires_grad back to True (`{last_name}.{param_name}`)",
                )
            else:
                expect(
                    not param.requires_grad,
                    f"body not frozen: `body.{module_name}.{param_name}` still has "
                    "requires_grad=True",
                )
    trainable = sum(p.numel() for p in result.parameters() if p.requires_grad)
    total = sum(p.numel() for p in result.parameters())
    passed(
        f"body frozen except `{last_name}`, new 3-class head: {trainable:,} of {total:,} "
        "parameters will train"
    )


# ----------------------------------------------------------------------------------------------
# Section 7 · a transforms pipeline for the training and the validation pictures
# ----------------------------------------------------------------------------------------------


def pictures(count: int = 6):
    """``count`` digits as 8-bit pictures (H × W NumPy arrays of 0–255), as an image file holds
    them."""
    return [
        picture.numpy()
        for picture in (data.digits()[0][:count].view(-1, 8, 8) * 255).round().to(torch.uint8)
    ]


def scaled_and_normalized(mean: float, std: float) -> Callable:
    """What the cells below the transforms exercise use while it is unsolved: every picture
    scaled to 0–1 and normalized, never augmented, written without transforms.v2 (composing
    the pipeline is the exercise, its solution hidden)."""

    def make_transform(train):
        def transform(picture):
            pixels = torch.as_tensor(picture, dtype=torch.float32).unsqueeze(0) / 255
            return (pixels - mean) / std

        return transform

    return make_transform


def _transformed(transform: Callable, picture, call: str) -> torch.Tensor:
    try:
        out = transform(picture)
    except Exception as error:
        text = str(error)
        expect(
            "should be a float tensor" not in text,
            f"`{call}` raised {error_text(error)}: Normalize works on floats, so "
            "v2.ToDtype(torch.float32, scale=True) comes before v2.Normalize",
        )
        expect(
            "No image" not in text,
            f"`{call}` raised {error_text(error)}: a random transform met the NumPy picture "
            "before v2.ToImage() made it an image: put ToImage first",
        )
        raise ExerciseNotSolved(f"`{call}` raised {error_text(error)}") from None
    expect(
        isinstance(out, torch.Tensor),
        f"`{call}` gives a {type(out).__name__}, not a tensor: start with v2.ToImage()",
    )
    expect(
        out.dtype == torch.float32,
        f"`{call}` gives {out.dtype} pixels: add v2.ToDtype(torch.float32, scale=True)",
    )
    expect(
        tuple(out.shape) == (1, 8, 8),
        f"`{call}` gives shape {tuple(out.shape)}, not 1 × 8 × 8 (C × H × W)",
    )
    return out


@exercise(
    stand_in=scaled_and_normalized,
    stand_in_is="pictures scaled to 0–1 and normalized, never augmented",
)
def check_make_transform(make_transform_fn: Callable, mean: float, std: float) -> None:
    """Check the transforms exercise: make_transform(False) scales to 0–1 and normalizes, the
    same every time; make_transform(True) does the same with a random change each time."""
    name = "make_transform"
    expect(callable(make_transform_fn), f"`{name}` is not a function")
    with calling(f"{name}(False)"):
        validation = make_transform_fn(False)
    with calling(f"{name}(True)"):
        training = make_transform_fn(True)
    for transform, train in ((validation, False), (training, True)):
        expect(callable(transform), f"`{name}({train})` returned {transform!r}, not a transform")
    samples = pictures()
    lowest, highest = (0 - mean) / std, (1 - mean) / std
    for picture in samples:
        call = f"{name}(False)(picture)"
        first = _transformed(validation, picture, call)
        expect(
            torch.equal(first, _transformed(validation, picture, call)),
            f"`{name}(False)` changes a picture at random: the validation pictures must stay "
            "as they are (augmenting them measures the model on other digits each time): "
            "random transforms only when train is True",
        )
        pixels = torch.as_tensor(picture, dtype=torch.float32).unsqueeze(0)
        expected = (pixels / 255 - mean) / std
        if torch.allclose(first, expected, atol=1e-4):
            continue
        expect(
            not torch.allclose(first, (pixels - mean) / std, atol=1e-3),
            f"`{name}(False)` keeps pixels of 0–255: ToDtype(torch.float32, scale=True) "
            "divides them by 255 (without scale=True it only changes the dtype)",
        )
        expect(
            not torch.allclose(first, pixels / 255, atol=1e-4),
            f"`{name}(False)` leaves out v2.Normalize(mean=[pixel_mean], std=[pixel_std]): "
            "the model was trained on normalized pixels",
        )
        expect(
            False,
            f"`{name}(False)` gives other values than (pixel / 255 − {mean:.3f}) / {std:.3f}: "
            "ToImage, ToDtype(torch.float32, scale=True), Normalize(mean=[pixel_mean], "
            "std=[pixel_std])",
        )
    draws = [_transformed(training, samples[0], f"{name}(True)(picture)") for _ in range(6)]
    expect(
        any(not torch.equal(draws[0], draw) for draw in draws[1:]),
        f"`{name}(True)` gives the same picture every time: add v2.RandomAffine(...) for the "
        "training pictures",
    )
    everything = torch.stack(draws)
    expect(
        everything.max() <= highest + 1e-3,
        f"`{name}(True)` gives values up to {everything.max():.1f}, above "
        f"(1 − mean) / std = {highest:.2f}: pixels of 0–255 are not scaled, "
        "ToDtype(torch.float32, scale=True)",
    )
    expect(
        abs(everything.min() - lowest) < 1e-3,
        f"`{name}(True)` leaves out v2.Normalize: a white pixel should become "
        f"(0 − mean) / std = {lowest:.2f}, as in validation, but the smallest value is "
        f"{everything.min():.2f}",
    )
    passed(
        f"{name}(False) scales and normalizes the same way every time; {name}(True) adds a "
        "random change on top"
    )


# ----------------------------------------------------------------------------------------------
# Section 8 · export a trained model for serving
# ----------------------------------------------------------------------------------------------


@exercise()
def check_export_for_serving(export_fn: Callable, model: nn.Module, digits: torch.Tensor) -> None:
    """Check the torch.export exercise: an ExportedProgram that gives the model's eval() scores
    for a batch of any size. The check hands over a copy of the model in train mode, as
    training leaves it."""
    name = "export_for_serving"
    expect(callable(export_fn), f"`{name}` is not a function")
    trained = copy.deepcopy(model).train()
    reference = copy.deepcopy(model).eval()
    example = digits[:2]
    try:
        program = export_fn(trained, example)
    except Exception as error:
        raise ExerciseNotSolved(
            f"`{name}(model, example)` raised {error_text(error)}: the example goes in as the "
            "model takes it, a tuple holding one batch of shape N × 64, N ≥ 2 (a batch of one "
            "fixes the size)"
        ) from None
    expect(program is not None, f"`{name}` returned None: return what torch.export.export gives")
    expect(
        isinstance(program, torch.export.ExportedProgram),
        f"`{name}` returned a {type(program).__name__}, not an ExportedProgram: "
        "return torch.export.export(...)",
    )
    module = program.module()
    with torch.no_grad():
        wanted = reference(example)
        try:
            got = module(example)
        except Exception as error:
            raise ExerciseNotSolved(
                f"the exported program refuses the example batch: {error_text(error)}"
            ) from None
        expect(
            torch.allclose(got, wanted, atol=1e-5),
            "the exported program gives other scores than the model in eval(): it was "
            "exported in train mode (Dropout drops, BatchNorm uses the batch's statistics). "
            "Call model.eval() before torch.export.export",
        )
        batch = digits[:7]
        try:
            scores = module(batch)
        except Exception:
            raise ExerciseNotSolved(
                f"the exported program takes only batches of {len(example)}, the example's "
                "size: pass dynamic_shapes={'x': {0: torch.export.Dim('batch')}} so the batch "
                "dimension may vary"
            ) from None
        difference = (scores - reference(batch)).abs().max().item()
    expect(difference < 1e-4, f"the exported program's scores differ by up to {difference:.1e}")
    passed(
        f"{name}: the ExportedProgram gives the eval() model's scores for batches of "
        f"{len(example)} and {len(batch)} (largest difference {difference:.1e})"
    )


@exercise()
def check_onnx_scores(onnx_scores_fn: Callable, path: Path, model: nn.Module, digits) -> None:
    """Check the ONNX Runtime exercise: the scores of the file, as a tensor, equal to PyTorch's
    within float32's rounding."""
    name = "onnx_scores"
    expect(callable(onnx_scores_fn), f"`{name}` is not a function")
    try:
        scores = onnx_scores_fn(path, digits)
    except Exception as error:
        text = error_text(error)
        expect(
            "numpy" not in text.lower() or "cuda" in text.lower(),
            f"`{name}` raised {text}: ONNX Runtime takes NumPy arrays, digits.cpu().numpy()",
        )
        expect(
            "cuda" not in text.lower() and "cpu()" not in text,
            f"`{name}` raised {text}: the digits are on the GPU; NumPy needs them on the CPU, "
            "digits.cpu().numpy()",
        )
        expect(
            "data type" not in text.lower(),
            f"`{name}` raised {text}: the file takes float32 (tensor(float)); keep the digits' "
            "dtype, digits.cpu().numpy()",
        )
        expect(
            "input name" not in text.lower(),
            f"`{name}` raised {text}: the input's name is session.get_inputs()[0].name",
        )
        raise ExerciseNotSolved(f"your `{name}` raised {text}") from None
    expect(scores is not None, f"`{name}` returned None: return the scores")
    expect(
        not isinstance(scores, list),
        f"`{name}` returned a list: session.run returns one array per output; "
        "take the first, then torch.from_numpy(...)",
    )
    expect(
        isinstance(scores, torch.Tensor),
        f"`{name}` returned a {type(scores).__name__}: return a tensor, torch.from_numpy(...)",
    )
    with torch.no_grad():
        wanted = model(digits.to(next(model.parameters()).device)).cpu()
    expect(
        tuple(scores.shape) == tuple(wanted.shape),
        f"`{name}` gives shape {tuple(scores.shape)}, PyTorch {tuple(wanted.shape)}",
    )
    difference = (scores.cpu().float() - wanted).abs().max().item()
    expect(
        difference < 1e-4, f"ONNX Runtime's scores differ from PyTorch's by up to {difference:.1e}"
    )
    passed(
        f"{name}: ONNX Runtime gives PyTorch's scores on {len(wanted)} digits "
        f"(largest difference {difference:.1e})"
    )


def seed_curves(runs: Mapping[str, list[list[float]]], *, title: str, ylabel: str) -> Figure:
    """Per series, the median over seeds of each epoch's value, with the middle half of the
    seeds (first to third quartile) shaded around it."""
    fig, ax = plots.figure(figsize=(8.5, 4.8))
    for index, (label, curves) in enumerate(runs.items()):
        epochs = range(1, len(curves[0]) + 1)
        bands = [quartiles([curve[i] for curve in curves]) for i in range(len(curves[0]))]
        colour = plots.PALETTE[index % len(plots.PALETTE)]
        ax.fill_between(
            epochs, [b[0] for b in bands], [b[2] for b in bands], color=colour, alpha=0.18
        )
        ax.plot(
            epochs,
            [b[1] for b in bands],
            color=colour,
            linewidth=2,
            marker="o",
            label=f"{label} (median of {len(curves)})",
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(
        title=f"{title}\nline: median over the seeds · shaded: their middle half",
        xlabel="epoch",
        ylabel=ylabel,
    )
    ax.legend(loc="lower right")
    return plots.show(fig)
