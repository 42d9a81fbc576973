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
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from torch import nn

from workshop_labs import plots
from workshop_labs.checks import ExerciseNotSolved, exercise, expect, passed

# ----------------------------------------------------------------------------------------------
# Figures and small helpers
# ----------------------------------------------------------------------------------------------

_MAX_CHILDREN = 6  # per level; numbered entries (the optimizer's per-parameter state) show 2
_COLOURS = {"key": "#222222", "tensor": plots.PALETTE[0], "value": plots.PALETTE[2], "more": "0.5"}
_MONO_CHAR_PT = 0.602  # advance width of one DejaVu Sans Mono character, in font sizes


def _size_text(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n_bytes < 1024:
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} GiB"


def _is_container(value: object) -> bool:
    return isinstance(value, Mapping | list | tuple)


def _leaf_text(value: object) -> tuple[str, str]:
    if isinstance(value, torch.Tensor):
        shape = "scalar" if value.dim() == 0 else "×".join(str(d) for d in value.shape)
        dtype = str(value.dtype).removeprefix("torch.")
        size = _size_text(value.numel() * value.element_size())
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
# Exercise 1 · load safely, on the right device
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
    """Check exercise 1: weights_only=True, TrainingConfig allowed, map_location honoured."""
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
# Exercise 2 · save a complete checkpoint
# ----------------------------------------------------------------------------------------------

REQUIRED_KEYS = {
    "model": "model.state_dict()",
    "optimizer": "optimizer.state_dict()",
    "scheduler": "scheduler.state_dict()",
    "epoch": "epoch",
    "rng": "rng_state()",
}


def walkthrough_checkpoint(rng_state_fn: Callable) -> Callable:
    """What the cells below Exercise 2 use while it is unsolved: the checkpoint of the cell
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
    """Check exercise 2: the file holds model, optimizer, scheduler, epoch and RNG state."""
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
# Exercise 3 · resume from a checkpoint
# ----------------------------------------------------------------------------------------------


@exercise()
def check_resume(resume_fn: Callable, rng_state_fn: Callable) -> None:
    """Check exercise 3: everything restored and the next epoch returned."""
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
# Exercise 4 · keep the best checkpoint, not the last
# ----------------------------------------------------------------------------------------------

# The best epoch is neither first nor last, and a later epoch ties it: the file must keep the
# first epoch that reached the best accuracy.
_VAL_ACCURACIES = (0.60, 0.85, 0.80, 0.90, 0.70, 0.90, 0.75)


def save_every_epoch(path, model, epoch, val_accuracy, best_accuracy):
    """What the cells below Exercise 4 use while it is unsolved: the starter's way, which
    saves after every epoch, so the file holds the last epoch, not the best one (keeping the
    best is the exercise, its solution hidden)."""
    torch.save({"model": model.state_dict(), "epoch": epoch, "val_accuracy": val_accuracy}, path)
    return val_accuracy


@exercise(
    stand_in=lambda: save_every_epoch,
    stand_in_is="every epoch saved, so best.pt holds the last epoch, not the best",
)
def check_save_if_best(save_if_best_fn: Callable) -> None:
    """Check exercise 4: the file keeps the best epoch so far, and the best accuracy is returned."""
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
# Exercise 5 · prepare a pretrained model for fine-tuning
# ----------------------------------------------------------------------------------------------


def frozen_body_new_head(model: nn.Module, classes: int) -> nn.Module:
    """What the cells below Exercise 5 use while it is unsolved: the walk-through's recipe
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
    """Check exercise 5: body frozen except its last layer with weights, new trainable head."""
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
