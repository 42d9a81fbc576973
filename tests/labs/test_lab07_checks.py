"""Lab 7's checks: each rejects a typical wrong answer with its specific message and accepts
the solution."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LambdaLR,
    LinearLR,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)

from tests.labs.solutions import (
    assert_runs_past_with_a_stand_in,
    lab_constant,
    lab_namespace,
    solution,
    solution_source,
    starter,
)
from workshop_labs import checks, data, lab07
from workshop_labs.checks import ExerciseNotSolved

CPU = torch.device("cpu")

# ----------------------------------------------------------------------------------------------
# Exercise 1: linear warm-up, then cosine
# ----------------------------------------------------------------------------------------------


def warmup_cosine_sequential(optimizer, warmup_steps, total_steps):
    return SequentialLR(
        optimizer,
        [
            LinearLR(optimizer, start_factor=0.01, total_iters=warmup_steps),
            CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps),
        ],
        milestones=[warmup_steps],
    )


def sequential_with(*, warmup_scale=1.0, t_max_shift=0, linear_decay=False):
    """A warm-up + decay schedule with one typical mistake."""

    def make(optimizer, warmup_steps, total_steps):
        warmup = round(warmup_steps * warmup_scale)
        decay_steps = total_steps - warmup_steps + t_max_shift
        decay = (
            LinearLR(optimizer, start_factor=1.0, end_factor=0.0, total_iters=decay_steps)
            if linear_decay
            else CosineAnnealingLR(optimizer, T_max=decay_steps)
        )
        return SequentialLR(
            optimizer,
            [LinearLR(optimizer, start_factor=0.01, total_iters=warmup), decay],
            milestones=[warmup],
        )

    return make


@pytest.mark.parametrize(
    "right", [solution(7, "warmup_cosine"), warmup_cosine_sequential], ids=["lab", "sequential"]
)
def test_warmup_cosine_accepts_the_solutions(right, capsys):
    lab07.check_warmup_cosine(right)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda opt, w, t: None, r"returned None: return the scheduler"),
        (lambda opt, w, t: opt, r"returned a SGD, not a scheduler"),
        (lambda opt, w, t: CosineAnnealingLR(opt, T_max=t), r"there is no warm-up"),
        (
            lambda opt, w, t: LambdaLR(opt, lambda s: 0.5 * min(1.0, (s + 1) / w)),
            r"highest learning rate is 0\.05, .*factor of 1\.0",
        ),
        (sequential_with(warmup_scale=2), r"peak at step 20, .*warmup_steps=10"),
        (sequential_with(t_max_shift=-60), r"goes up again at step .*T_max = total_steps"),
        (sequential_with(t_max_shift=+90), r"last step still uses .* decay over total_steps"),
        (sequential_with(linear_decay=True), r"not a straight line"),
        (
            lambda opt, w, t: LambdaLR(opt, lambda s: min(1.0, ((s + 1) / w) ** 3)),
            r"half-way through the warm-up .* LINEAR",
        ),
        (lambda opt, w, t: StepLR(opt, step_size=30), r"no warm-up"),
        ("not a function", r"`warmup_cosine` is not a function"),
    ],
    ids=[
        "none",
        "optimizer",
        "no-warmup",
        "half-peak",
        "long-warmup",
        "short-t-max",
        "long-t-max",
        "linear-decay",
        "curved-warmup",
        "steplr",
        "not-callable",
    ],
)
def test_warmup_cosine_rejects_wrong_answers(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab07.check_warmup_cosine(wrong)


# ----------------------------------------------------------------------------------------------
# Exercise 2: OneCycleLR steps once per batch, after the optimizer
# ----------------------------------------------------------------------------------------------


def train_one_epoch_with(*edits):
    """The lab's solution, with one typical mistake."""
    return solution(7, "train_one_epoch", edits=edits)


def test_one_cycle_epoch_accepts_the_solution(capsys):
    lab07.check_one_cycle_epoch(train_one_epoch_with(), CPU)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (
            # the starter code: scheduler.step() dedented out of the loop, once per epoch
            train_one_epoch_with(("        scheduler.step()", "    scheduler.step()")),
            r"ran once for the whole epoch .* OneCycleLR counts BATCHES",
        ),
        (
            train_one_epoch_with(
                ("optimizer.step()", ""), ("scheduler.step()", "scheduler.step(); optimizer.step()")
            ),
            r"scheduler\.step\(\) came before optimizer\.step\(\)",
        ),
        (
            train_one_epoch_with(("scheduler.step()", "scheduler.step(); scheduler.step()")),
            r"ran 10 times for 5 batches: .*exactly once per batch",
        ),
        (
            train_one_epoch_with(("scheduler.step()", "")),
            r"scheduler\.step\(\) was never called",
        ),
        (
            train_one_epoch_with(("optimizer.step()", "")),
            r"optimizer\.step\(\) ran 0 times for 5 batches",
        ),
        ("not a function", r"`train_one_epoch` is not a function"),
    ],
    ids=["per-epoch", "wrong-order", "twice", "no-scheduler", "no-optimizer", "not-callable"],
)
def test_one_cycle_epoch_rejects_wrong_answers(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab07.check_one_cycle_epoch(wrong, CPU)


# ----------------------------------------------------------------------------------------------
# Exercise 3: clip after backward, before step
# ----------------------------------------------------------------------------------------------


CLIP = "norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm)"


def clipped_step_with(*edits):
    """The lab's solution, with one typical mistake."""
    return solution(7, "clipped_step", edits=edits)


def test_clipped_step_accepts_the_solution(capsys):
    lab07.check_clipped_step(clipped_step_with())
    assert "✅" in capsys.readouterr().out


def test_clipped_step_accepts_a_tensor_return_value(capsys):
    """Returning clip_grad_norm_'s tensor itself (without .item()) is fine too."""

    lab07.check_clipped_step(clipped_step_with(("return norm.item()", "return norm")))
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (
            clipped_step_with((CLIP, ""), ("loss = ", f"{CLIP}; loss = ")),
            r"nothing clipped the gradients it used.*AFTER backward",
        ),
        (
            clipped_step_with((CLIP, ""), ("optimizer.step()", f"optimizer.step(); {CLIP}")),
            r"clipping after optimizer\.step\(\) is too late",
        ),
        (
            clipped_step_with((CLIP, ""), ("norm.item()", "None")),
            r"stepped with a gradient of norm .* > max_norm=1",
        ),
        (
            clipped_step_with(
                (
                    "norm.item()",
                    "nn.utils.get_total_norm([p.grad for p in model.parameters()]).item()",
                )
            ),
            r"returned 1, the norm AFTER clipping",
        ),
        (
            clipped_step_with(("optimizer.step()", "")),
            r"parameters did not change: call optimizer\.step\(\)",
        ),
        (
            clipped_step_with(
                ("norm = nn.utils.clip_grad_norm_", "nn.utils.clip_grad_value_"),
                ("norm.item()", "None"),
            ),
            r"clamped to ±1 \(clip_grad_value_\).*clips the NORM",
        ),
        ("not a function", r"`clipped_step` is not a function"),
    ],
    ids=[
        "before-backward",
        "after-step",
        "starter",
        "returns-clipped-norm",
        "no-step",
        "by-value",
        "not-callable",
    ],
)
def test_clipped_step_rejects_wrong_answers(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab07.check_clipped_step(wrong)


# ----------------------------------------------------------------------------------------------
# Exercise 4: early stopping
# ----------------------------------------------------------------------------------------------


STOP_TEST = "return self.bad_epochs >= self.patience"


def early_stopping_with(*edits):
    """The lab's solution, with one typical mistake."""
    return solution(7, "EarlyStopping", edits=edits)


class EarlyStoppingComparesWithLastLoss:
    """Counts epochs that are worse than the previous epoch, not than the best."""

    def __init__(self, patience):
        self.patience = patience
        self.best = math.inf
        self.previous = math.inf
        self.bad_epochs = 0

    def step(self, val_loss):
        self.best = min(self.best, val_loss)
        self.bad_epochs = self.bad_epochs + 1 if val_loss >= self.previous else 0
        self.previous = val_loss
        return self.bad_epochs >= self.patience


def test_early_stopping_accepts_the_solution(capsys):
    lab07.check_early_stopping(early_stopping_with())
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (
            early_stopping_with((STOP_TEST, f"{STOP_TEST} - 1")),
            r"after epoch 5, one epoch too early",
        ),
        (
            early_stopping_with((STOP_TEST, f"{STOP_TEST} + 1")),
            r"after epoch 10, one epoch too late",
        ),
        (
            # the reset inside `if val_loss < self.best:`, not the one in __init__
            early_stopping_with(("            self.bad_epochs = 0", "")),
            r"new best at epoch 6 .* reset the count",
        ),
        (early_stopping_with(("self.best = val_loss", "")), r"step\(\) never returned True"),
        (
            # the starter: step() always answers "keep going"
            early_stopping_with((STOP_TEST, "return False")),
            r"step\(\) never returned True; it should after epoch 9",
        ),
        (EarlyStoppingComparesWithLastLoss, r"after epoch 12, too late: .*not with the previous"),
        ("not a class", r"`EarlyStopping` is not a class"),
    ],
    ids=["early", "late", "no-reset", "no-best", "starter", "last-loss", "not-a-class"],
)
def test_early_stopping_rejects_wrong_answers(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab07.check_early_stopping(wrong)


def test_early_stopping_requires_the_best_loss():
    class KeepsBestElsewhere:
        def __init__(self, patience):
            self.patience = patience
            self.best = math.inf
            self.lowest = math.inf  # the best loss, under another name
            self.bad_epochs = 0

        def step(self, val_loss):
            if val_loss < self.lowest:
                self.lowest, self.bad_epochs = val_loss, 0
            else:
                self.bad_epochs += 1
            return self.bad_epochs >= self.patience

    with pytest.raises(
        ExerciseNotSolved, match=r"`best` is inf but the best validation loss seen was 0\.65"
    ):
        lab07.check_early_stopping(KeepsBestElsewhere)


# ----------------------------------------------------------------------------------------------
# Helpers the lab draws with
# ----------------------------------------------------------------------------------------------


def test_lr_trace_reads_the_lr_each_step_uses():
    trace = lab07.lr_trace(lambda opt: StepLR(opt, step_size=2, gamma=0.5), 5, lr=1.0)
    assert trace == [1.0, 1.0, 0.5, 0.5, 0.25]
    one_cycle = lab07.lr_trace(lambda opt: OneCycleLR(opt, max_lr=1.0, total_steps=10), 10, lr=1)
    assert max(one_cycle) == pytest.approx(1.0) and one_cycle[0] < 0.1


def test_clipping_picture_shows_what_the_clip_functions_return():
    fig = lab07.clipping_picture(torch.tensor([3.0, 4.0]), max_norm=1.0, clip_value=2.0)
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert labels[1].endswith("(0.60, 0.80)")  # norm 5 scaled down to norm 1
    assert labels[2].endswith("(2.00, 2.00)")  # each number clamped to ±2


def test_early_stopping_picture_says_whether_it_stopped():
    val = [1.0, 0.5, 0.4, 0.45, 0.46]
    history = {"training loss": [1.1, 0.6, 0.4, 0.3, 0.2], "validation loss": val}
    stopped = lab07.early_stopping_picture(history, patience=2, title="run")
    assert "stopped after epoch 5: 2 epochs in a row" in stopped.axes[0].get_title()
    ongoing = lab07.early_stopping_picture(history, patience=3, title="run")
    assert "ran all 5 epochs" in ongoing.axes[0].get_title()


# ----------------------------------------------------------------------------------------------
# Exercise 4: gradient accumulation
# ----------------------------------------------------------------------------------------------

DIVIDED = "loss = loss_fn(model(xb), yb) / accumulation_steps"


def train_accumulated_with(*edits):
    """The lab's solution, with one typical mistake."""
    return solution(7, "train_accumulated", edits=edits)


# The exercise cell as shipped: a plain loop that steps at every batch.
train_accumulated_starter = starter(7, "train_accumulated")


def test_accumulation_accepts_the_solution(capsys):
    lab07.check_accumulation(train_accumulated_with(), CPU)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (train_accumulated_starter, r"ran 8 times for 8 micro-batches: .*once every 4 batches"),
        (
            train_accumulated_with((DIVIDED, "loss = loss_fn(model(xb), yb)")),
            r"4× the gradient of one big batch: divide each micro-batch's loss",
        ),
        (
            train_accumulated_with((DIVIDED, f"optimizer.zero_grad(); {DIVIDED}")),
            r"only the last micro-batch's gradient .* zeroed at every micro-batch",
        ),
        (
            train_accumulated_with(
                (DIVIDED, "optimizer.zero_grad(); loss = loss_fn(model(xb), yb)")
            ),
            r"only the last micro-batch's gradient",
        ),
        (
            train_accumulated_with(("            optimizer.zero_grad()\n", "")),
            r"step 2 still held the gradient of the step before it",
        ),
        (
            train_accumulated_with(("enumerate(loader, start=1)", "enumerate(loader)")),
            r"first step came right after the first micro-batch: .*enumerate\(loader, start=1\)",
        ),
        (
            train_accumulated_with(("            optimizer.step()\n", "")),
            r"optimizer\.step\(\) never ran",
        ),
        ("not a function", r"`train_accumulated` is not a function"),
    ],
    ids=[
        "starter",
        "not-divided",
        "zeroed-every-micro-batch",
        "zeroed-and-not-divided",
        "never-zeroed",
        "counts-from-0",
        "no-step",
        "not-callable",
    ],
)
def test_accumulation_rejects_wrong_answers(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab07.check_accumulation(wrong, CPU)


# ----------------------------------------------------------------------------------------------
# Exercise 5: AdamW with decay on the weight matrices only
# ----------------------------------------------------------------------------------------------


def decay_groups_with(*edits):
    """The lab's solution, with one typical mistake."""
    return solution(7, "adamw_decay_groups", edits=edits)


# The exercise cell as shipped: one group, everything decays.
decay_groups_starter = starter(7, "adamw_decay_groups")


def test_decay_groups_accepts_the_solution(capsys):
    lab07.check_decay_groups(decay_groups_with())
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (decay_groups_starter, r"every parameter decays, the biases and LayerNorm's weight too"),
        (
            decay_groups_with(("torch.optim.AdamW(groups", "torch.optim.Adam(groups")),
            r"this is torch\.optim\.Adam, .*use torch\.optim\.AdamW",
        ),
        (
            decay_groups_with(('        {"params": no_decay, "weight_decay": 0.0},\n', "")),
            r"0\.bias, 1\.weight, 1\.bias, 3\.bias in no group: .*never train them",
        ),
        (
            decay_groups_with(
                ('{"params": decay, "weight_decay": weight_decay}', '{"params": decay}')
            ),
            r"the weight matrices 0\.weight \(0\.01\), 3\.weight \(0\.01\) should decay with "
            r"weight_decay=0\.05",
        ),
        (
            decay_groups_with(
                (
                    '"params": decay, "weight_decay": weight_decay',
                    '"params": decay, "weight_decay": 0.0',
                ),
                (
                    '"params": no_decay, "weight_decay": 0.0',
                    '"params": no_decay, "weight_decay": weight_decay',
                ),
            ),
            r"0\.bias, 1\.weight, 1\.bias, 3\.bias \(1-dimensional: biases, norm weights\) decay",
        ),
        (
            decay_groups_with(
                (
                    "no_decay = [p for p in model.parameters() if p.ndim < 2]",
                    "no_decay = list(model.parameters())",
                )
            ),
            r"a parameter is in both groups",
        ),
        (
            decay_groups_with(
                ("return torch.optim.AdamW(groups, lr=lr)", "torch.optim.AdamW(groups, lr=lr)")
            ),
            r"returned None: return the torch\.optim\.AdamW",
        ),
        (
            decay_groups_with(("AdamW(groups, lr=lr)", "AdamW(groups)")),
            r"the groups use lr \[0\.001\]",
        ),
        ("not a function", r"`adamw_decay_groups` is not a function"),
    ],
    ids=[
        "starter",
        "adam",
        "missing-group",
        "default-decay",
        "swapped",
        "in-both-groups",
        "returns-none",
        "default-lr",
        "not-callable",
    ],
)
def test_decay_groups_rejects_wrong_answers(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab07.check_decay_groups(wrong)


# ----------------------------------------------------------------------------------------------
# Exercise 7: fit, assembled from the lab's pieces
# ----------------------------------------------------------------------------------------------


def fit_with(*edits):
    """The lab's solution (run with the published EarlyStopping), with one typical mistake."""
    return solution(
        7,
        "fit",
        edits=edits,
        needs=["evaluate"],
        device=CPU,
        use_amp=False,
        loss_fn=nn.CrossEntropyLoss(),
        EarlyStopping=solution(7, "EarlyStopping"),
    )


def test_fit_accepts_the_solution(capsys):
    lab07.check_fit(fit_with(), CPU, False)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (
            # the starter steps at every batch
            fit_with(("if batch % accumulation_steps == 0:", "if True:")),
            r"accumulation_steps=2\): optimizer\.step\(\) ran 4 times for 4 micro-batches",
        ),
        (
            fit_with(("(loss / accumulation_steps).backward()", "loss.backward()")),
            r"2× the gradient of one big batch",
        ),
        (
            fit_with(
                (
                    "(loss / accumulation_steps).backward()",
                    "optimizer.zero_grad(); (loss / accumulation_steps).backward()",
                )
            ),
            r"only the last micro-batch's gradient",
        ),
        (
            fit_with(("nn.utils.clip_grad_norm_(model.parameters(), max_norm)", "pass")),
            r"a step used a gradient of norm .* > max_norm=0\.01",
        ),
        (
            fit_with(("                    scheduler.step()", "                    pass")),
            r"scheduler\.step\(\) ran 0 times for 2 optimizer steps",
        ),
        (
            fit_with(("if stopper is not None and stopper.step(val_loss):", "if False:")),
            r"patience=2 fit should stop after epoch 3; it ran 6 epochs",
        ),
        (
            fit_with(("            torch.save(checkpoint, checkpoint_path)", "            pass")),
            r"no checkpoint was saved",
        ),
        ("not a function", r"`fit` is not a function"),
    ],
    ids=[
        "starter",
        "not-divided",
        "zeroed-every-micro-batch",
        "no-clipping",
        "no-scheduler",
        "no-early-stopping",
        "no-checkpoint",
        "not-callable",
    ],
)
def test_fit_rejects_wrong_answers(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab07.check_fit(wrong, CPU, False)


# ----------------------------------------------------------------------------------------------
# Running past an unsolved exercise: each check, given the exercise cell as shipped, returns
# what the cells below it can use
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def not_strict(monkeypatch):
    monkeypatch.setenv(checks.STRICT_ENV, "0")


def test_unsolved_warmup_cosine_goes_on_with_a_constant_learning_rate(monkeypatch, capsys):
    """Section 6's recipes build their schedule with it: the stand-in keeps the optimizer's
    learning rate at every step (warm-up and cosine are the hidden solution)."""
    unsolved = starter(7, "warmup_cosine")
    stand_in = assert_runs_past_with_a_stand_in(
        lab07.check_warmup_cosine, unsolved, (), monkeypatch, capsys
    )
    assert set(lab07.lr_trace(lambda opt: stand_in(opt, 10, 100), 100, lr=0.1)) == {0.1}


def test_unsolved_checks_without_reference_return_the_answer(not_strict, capsys):
    """Nothing after Exercises 2, 3, 4 and 6 uses their answers: they come back unchanged
    (fit's stand-in does not stop early, so it needs no EarlyStopping)."""
    one_cycle = train_one_epoch_with(("        scheduler.step()", "    scheduler.step()"))
    assert lab07.check_one_cycle_epoch(one_cycle, CPU) is one_cycle
    clipped = clipped_step_with((CLIP, ""), ("norm.item()", "None"))
    assert lab07.check_clipped_step(clipped) is clipped
    assert lab07.check_accumulation(train_accumulated_starter, CPU) is train_accumulated_starter
    stopper = early_stopping_with((STOP_TEST, "return False"))
    assert lab07.check_early_stopping(stopper) is stopper
    assert "the cells below use your answer as it is" in capsys.readouterr().out


def test_unsolved_decay_groups_goes_on_with_an_adamw_that_decays_everything(monkeypatch, capsys):
    stand_in = assert_runs_past_with_a_stand_in(
        lab07.check_decay_groups, decay_groups_starter, (), monkeypatch, capsys
    )
    optimizer = stand_in(nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)), 3e-3, 0.05)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert {group["weight_decay"] for group in optimizer.param_groups} == {0.05}


def test_unsolved_fit_goes_on_with_a_plain_loop_that_keeps_the_best_epoch(
    tmp_path, monkeypatch, capsys
):
    """The comparison trains every recipe with it and the last cell loads the best epoch: the
    stand-in trains, validates and saves, and takes none of the lab's techniques."""
    unsolved = fit_with(("if batch % accumulation_steps == 0:", "if True:"))
    stand_in = assert_runs_past_with_a_stand_in(
        lab07.check_fit, unsolved, (CPU, False), monkeypatch, capsys
    )
    model, loader = lab07._tiny_problem(4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = stand_in(
        model,
        optimizer,
        loader,
        loader,
        epochs=3,
        checkpoint_path=tmp_path / "best.pt",
        scheduler=LambdaLR(optimizer, lambda step: 1.0),
        max_norm=1.0,
        patience=1,
        name="stand-in",
    )
    assert [len(values) for values in history.values()] == [3, 3, 3]
    assert history["training loss"][-1] < history["training loss"][0]
    saved = torch.load(tmp_path / "best.pt", weights_only=True)
    best = min(history["validation loss"])
    assert saved["val_loss"] == best
    assert saved["epoch"] == 1 + history["validation loss"].index(best)


# ----------------------------------------------------------------------------------------------
# More helpers the lab draws with
# ----------------------------------------------------------------------------------------------


def test_plateau_picture_names_the_epochs_after_which_the_lr_fell():
    fig = lab07.plateau_picture(
        [1.0, 0.9, 0.9, 0.9, 0.8], [0.1, 0.1, 0.1, 0.1, 0.05], factor=0.5, patience=2
    )
    assert fig.get_suptitle().endswith("lr cut after epoch(s) 4")


def test_accumulation_bars_title_names_only_the_matching_bars():
    fig = lab07.accumulation_bars({"one batch": 1.0, "right": 1.0000001, "wrong": 4.0})
    assert fig.axes[0].get_title() == "Gradient norm; same as one batch: right"


# ----------------------------------------------------------------------------------------------
# Exercise 3: ReduceLROnPlateau, stepped once per epoch with the validation loss
# ----------------------------------------------------------------------------------------------


def plateau_namespace():
    """What the lab's train_with_plateau uses from the cells above it, on the CPU, no AMP."""
    given = {"device": CPU, "use_amp": False, "loss_fn": nn.CrossEntropyLoss()}
    return {**given, "evaluate": lab_namespace(7, "evaluate", **given)["evaluate"]}


def plateau_with(*edits):
    """The lab's solution, with one typical mistake."""
    return solution(7, "train_with_plateau", edits=edits, **plateau_namespace())


PLATEAU_STEP = "scheduler.step(val_loss)"


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        ("not a function", r"`train_with_plateau` is not a function"),
        (plateau_with((PLATEAU_STEP, "scheduler.step(str(val_loss))")), r"got a str"),
        (
            plateau_with((PLATEAU_STEP, "scheduler.step(val_loss); scheduler.step(val_loss)")),
            r"ran 8 times in 4 epochs: step it exactly once per epoch",
        ),
        (plateau_with((PLATEAU_STEP, "pass")), r"scheduler\.step\(\.\.\.\) was never called"),
        (
            plateau_with(("            optimizer.step()\n", "")),
            r"optimizer\.step\(\) ran 0 times in 4 epochs",
        ),
    ],
    ids=["not-callable", "string-metric", "twice-per-epoch", "never", "no-optimizer-step"],
)
def test_plateau_rejects_wrong_answers(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab07.check_plateau(wrong, CPU, False)


def test_plateau_says_when_the_lr_was_cut(capsys):
    lab07.check_plateau(plateau_with(), CPU, False)
    assert "the lr was cut after epoch 3 (0.5 → 0.25)" in capsys.readouterr().out


def test_unsolved_plateau_goes_on_with_a_loop_that_keeps_the_lr(monkeypatch, capsys):
    """The cell below trains on the digits with it and draws the lr per epoch: the stand-in
    trains and validates, and never steps the scheduler (that is the hidden solution)."""
    unsolved = starter(7, "train_with_plateau", **plateau_namespace())
    stand_in = assert_runs_past_with_a_stand_in(
        lab07.check_plateau, unsolved, (CPU, False), monkeypatch, capsys
    )
    model, loader = lab07._tiny_problem(4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    plateau = ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
    history = stand_in(model, optimizer, plateau, loader, loader, 3)
    assert history["lr"] == [0.5, 0.5, 0.5]
    assert len(history["validation loss"]) == 3


# ----------------------------------------------------------------------------------------------
# Exercise 9: averaging the gradients of every process by hand
# ----------------------------------------------------------------------------------------------


def test_average_gradients_refuses_what_cannot_be_sent_to_another_process():
    with pytest.raises(ExerciseNotSolved, match=r"`average_gradients` is not a function"):
        lab07.check_average_gradients(print)
    world_size = 2

    def closure(model):
        for p in model.parameters():
            p.grad /= world_size

    with pytest.raises(ExerciseNotSolved, match=r"enclosing function: define it at the top"):
        lab07.check_average_gradients(closure)


def average_with_a_typo(model):
    for p in model.parameters():
        dist.all_reduce(p.gradient)


def test_average_gradients_names_what_the_answer_raised():
    with pytest.raises(
        ExerciseNotSolved, match=r"`average_gradients` raised AttributeError: .*gradient"
    ):
        lab07.check_average_gradients(average_with_a_typo)


def all_reduce_on_rank_0_only(model):
    if dist.get_rank() == 0:
        for p in model.parameters():
            dist.all_reduce(p.grad)


def test_a_collective_call_on_one_rank_only_is_named():
    with pytest.raises(
        ExerciseNotSolved, match=r"on rank 0 .* failed while rank\(s\) 1, 2 finished.*every rank"
    ):
        lab07.check_average_gradients(all_reduce_on_rank_0_only)


def test_unsolved_average_gradients_goes_on_with_a_function_that_averages_nothing(
    monkeypatch, capsys
):
    """The training script below copies it in: the stand-in's source is a function with the
    exercise's name that leaves each process its own gradient."""
    import inspect

    stand_in = assert_runs_past_with_a_stand_in(
        lab07.check_average_gradients,
        starter(7, "average_gradients"),
        (),
        monkeypatch,
        capsys,
    )
    assert stand_in.__name__ == "average_gradients"
    assert inspect.getsource(stand_in).lstrip().startswith("def average_gradients(model):")


# The script the lab runs under torchrun, with the published average_gradients copied in, and
# a last report: the threads each process still has after the script's own goodbye.
THREADS_LEFT_REPORT = """
import os
tasks = Path("/proc/self/task")
threads = [(tasks / task / "comm").read_text().strip() for task in os.listdir(tasks)]
Path(__file__).with_name(f"threads_left_rank{rank}.json").write_text(json.dumps(threads))
"""


def test_the_data_parallel_script_ends_gloos_threads_before_python_shuts_down(tmp_path):
    """A gloo thread still running as Python shuts down can abort a process after all its
    work is done ("terminate called without an active exception": torchrun then fails the
    lab's cell). It happened to lab 7 beside a CPU hog in two of three CI runs: torch 2.13's
    torch.distributed.nn kept the process group, and so gloo's threads, past
    destroy_process_group."""
    script = tmp_path / "lab07_data_parallel.py"
    torch.save(data.digits(), tmp_path / "lab07_digits.pt")
    code = lab_constant(7, "DATA_PARALLEL_SCRIPT").replace(
        "# average_gradients\n", solution_source(7, "average_gradients")
    )
    script.write_text(code + THREADS_LEFT_REPORT)
    finished = subprocess.run(
        [
            *(sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2"),
            *("--master-addr=127.0.0.1", f"--master-port={lab07.free_port()}", str(script), "1"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"},
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "weights identical on all 2 ranks: True" in finished.stdout, finished.stdout
    for rank in range(2):
        threads = json.loads((tmp_path / f"threads_left_rank{rank}.json").read_text())
        assert not [name for name in threads if "gloo" in name], f"rank {rank}: {threads}"
