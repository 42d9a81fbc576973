"""Lab 7's answers, kept as test data: for every exercise the starter, the reference (the
published solution), wrong answers a beginner writes, each with the words its refusal must
hold, and other right answers, which must pass."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LinearLR, SequentialLR

from tests.labs.corpus import answer_then_context, case
from tests.labs.solutions import lab_namespace, solution, starter

CPU = torch.device("cpu")
EXERCISES = (
    "warmup_cosine",
    "one_cycle_epoch",
    "plateau",
    "clipped_step",
    "early_stopping",
    "accumulation",
    "decay_groups",
    "fit",
    "average_gradients",
)
DEFINES = {
    "warmup_cosine": "warmup_cosine",
    "one_cycle_epoch": "train_one_epoch",
    "plateau": "train_with_plateau",
    "clipped_step": "clipped_step",
    "early_stopping": "EarlyStopping",
    "accumulation": "train_accumulated",
    "decay_groups": "adamw_decay_groups",
    "fit": "fit",
    "average_gradients": "average_gradients",
}
# What each check is given besides the answer, as the lab's cell gives it (CPU, no AMP).
CONTEXT = {
    "one_cycle_epoch": (CPU,),
    "plateau": (CPU, False),
    "accumulation": (CPU,),
    "fit": (CPU, False),
}


def fit_namespace():
    """What the lab's fit and train_with_plateau use from the cells above them, run on the CPU
    without AMP."""
    given = {"device": CPU, "use_amp": False, "loss_fn": nn.CrossEntropyLoss()}
    evaluate = lab_namespace(7, "evaluate", **given)["evaluate"]
    return {**given, "evaluate": evaluate, "EarlyStopping": solution(7, "EarlyStopping")}


def with_edits(exercise, *edits):
    """The published solution of ``exercise`` with each (old, new) text replaced."""
    given = fit_namespace() if exercise in {"fit", "plateau"} else {}
    return solution(7, DEFINES[exercise], edits=edits, **given)


# ---- warmup_cosine --------------------------------------------------------------------------


def warmup_then_cosine_sequential(optimizer, warmup_steps, total_steps):
    warmup = LinearLR(optimizer, start_factor=1 / warmup_steps, total_iters=warmup_steps - 1)
    cosine = CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps)
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


def cosine_over_every_step(optimizer, warmup_steps, total_steps):
    """The cosine counts from step 0, not from the end of the warm-up."""

    def factor(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return 0.5 * (1 + math.cos(math.pi * step / total_steps))

    return LambdaLR(optimizer, factor)


# ---- train_one_epoch ------------------------------------------------------------------------


def one_cycle_zeroing_after_the_step(model, loader, optimizer, scheduler, loss_fn, device):
    model.train()
    for inputs, labels in loader:
        loss_fn(model(inputs.to(device)), labels.to(device)).backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)


# ---- train_with_plateau ---------------------------------------------------------------------

PLATEAU_STEP = "        scheduler.step(val_loss)  # once per epoch, with the metric it watches\n"
OPTIMIZER_STEP = "            optimizer.step()\n"


# ---- average_gradients ----------------------------------------------------------------------

ALL_REDUCE = "        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)\n"
DIVIDE = "        p.grad /= world_size\n"


# ---- clipped_step ---------------------------------------------------------------------------


def clipped_step_by_hand(model, optimizer, loss_fn, xb, yb, max_norm):
    optimizer.zero_grad()
    loss_fn(model(xb), yb).backward()
    parameters = [p for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.get_total_norm([p.grad for p in parameters])
    torch.nn.utils.clip_grads_with_norm_(parameters, max_norm, norm)
    optimizer.step()
    return float(norm)


# ---- EarlyStopping --------------------------------------------------------------------------


class EarlyStoppingFromHistory:
    """Counts the epochs since the lowest loss in the history."""

    def __init__(self, patience):
        self.patience = patience
        self.losses = []

    @property
    def best(self):
        return min(self.losses)

    def step(self, val_loss):
        self.losses.append(val_loss)
        first_best = self.losses.index(self.best)
        return len(self.losses) - 1 - first_best >= self.patience


# ---- train_accumulated ----------------------------------------------------------------------


def accumulation_dividing_gradients(model, loader, optimizer, loss_fn, device, accumulation_steps):
    model.train()
    optimizer.zero_grad()
    for index, (xb, yb) in enumerate(loader):
        loss_fn(model(xb.to(device)), yb.to(device)).backward()
        if (index + 1) % accumulation_steps == 0:
            for parameter in model.parameters():
                parameter.grad /= accumulation_steps
            optimizer.step()
            optimizer.zero_grad()


# ---- adamw_decay_groups ---------------------------------------------------------------------


def decay_groups_by_name(model, lr, weight_decay):
    decay, no_decay = [], []
    for _, parameter in model.named_parameters():
        (decay if parameter.dim() > 1 else no_decay).append(parameter)
    return torch.optim.AdamW(
        [{"params": no_decay, "weight_decay": 0}, {"params": decay}],
        lr=lr,
        weight_decay=weight_decay,
    )


def decay_groups_of_biases(model, lr, weight_decay):
    """Spares what is named bias, and decays LayerNorm's weight."""
    named = list(model.named_parameters())
    biases = [p for name, p in named if name.endswith("bias")]
    others = [p for name, p in named if not name.endswith("bias")]
    groups = [
        {"params": others, "weight_decay": weight_decay},
        {"params": biases, "weight_decay": 0},
    ]
    return torch.optim.AdamW(groups, lr=lr)


# ---- fit ------------------------------------------------------------------------------------

SCHEDULER_STEP = "                if scheduler is not None:\n                    scheduler.step()\n"
# the same lines one level out, in the batch loop, before the running loss
SCHEDULER_STEP_PER_BATCH = (
    "if scheduler is not None:\n" + " " * 16 + "scheduler.step()\n" + " " * 12 + "running_loss += "
)
SAVE_BEST = "        if val_loss < best_loss:\n"


def cases():
    """Every answer of the lab's corpus."""
    stopping = "early_stopping"
    return [
        # warmup_cosine
        case("warmup_cosine", "starter", starter(7, "warmup_cosine"), "returned None"),
        case("warmup_cosine", "reference", with_edits("warmup_cosine"), None),
        case("warmup_cosine", "right-sequential", warmup_then_cosine_sequential, None),
        case(
            "warmup_cosine",
            "wrong-cosine-from-zero",
            cosine_over_every_step,
            "counts its steps from step 0",
        ),
        case(
            "warmup_cosine",
            "wrong-no-warmup",
            lambda optimizer, warmup, total: CosineAnnealingLR(optimizer, T_max=total),
            "there is no warm-up",
        ),
        # train_one_epoch with OneCycleLR
        case(
            "one_cycle_epoch",
            "starter",
            starter(7, "train_one_epoch"),
            "ran once for the whole epoch",
        ),
        case("one_cycle_epoch", "reference", with_edits("one_cycle_epoch"), None),
        case("one_cycle_epoch", "right-zero-after-step", one_cycle_zeroing_after_the_step, None),
        case(
            "one_cycle_epoch",
            "wrong-no-zero-grad",
            with_edits("one_cycle_epoch", ("optimizer.zero_grad()", "")),
            r"still held the gradient of the batch before.*zero_grad",
        ),
        case(
            "one_cycle_epoch",
            "wrong-no-backward",
            with_edits("one_cycle_epoch", ("loss.backward()", "")),
            r"without gradients.*loss\.backward\(\)",
        ),
        case(
            "one_cycle_epoch",
            "wrong-scheduler-first",
            with_edits(
                "one_cycle_epoch",
                ("optimizer.step()\n", "scheduler.step()\n"),
                ("scheduler.step()  #", "optimizer.step()  #"),
            ),
            "scheduler.step\\(\\) came before optimizer.step\\(\\)",
        ),
        # train_with_plateau
        case(
            "plateau",
            "starter",
            starter(7, "train_with_plateau", **fit_namespace()),
            "called without the metric",
        ),
        case("plateau", "reference", with_edits("plateau"), None),
        case(
            "plateau",
            "right-metrics-keyword",
            with_edits("plateau", ("scheduler.step(val_loss)", "scheduler.step(metrics=val_loss)")),
            None,
        ),
        case(
            "plateau",
            "wrong-training-loss",
            with_edits("plateau", ("scheduler.step(val_loss)", "scheduler.step(loss)")),
            r"a TRAINING loss.*give the scheduler the validation loss",
        ),
        case(
            "plateau",
            "wrong-per-batch",
            with_edits(
                "plateau",
                (PLATEAU_STEP, ""),
                (OPTIMIZER_STEP, OPTIMIZER_STEP + "            scheduler.step(loss.item())\n"),
            ),
            r"ran 16 times in 4 epochs: once per batch.*once per epoch",
        ),
        case(
            "plateau",
            "wrong-accuracy",
            with_edits("plateau", ("scheduler.step(val_loss)", "scheduler.step(val_accuracy)")),
            r"validation loss, measured at that moment, was",
        ),
        # clipped_step
        case("clipped_step", "starter", starter(7, "clipped_step"), "nothing clipped"),
        case("clipped_step", "reference", with_edits("clipped_step"), None),
        case("clipped_step", "right-by-hand", clipped_step_by_hand, None),
        case(
            "clipped_step",
            "wrong-no-zero-grad",
            with_edits("clipped_step", ("optimizer.zero_grad()", "")),
            r"gradient left from the step before.*zero_grad",
        ),
        case(
            "clipped_step",
            "wrong-by-value",
            with_edits(
                "clipped_step", ("clip_grad_norm_", "clip_grad_value_"), ("norm.item()", "norm")
            ),
            "clip_grad_value_",
        ),
        case(
            "clipped_step",
            "wrong-norm-after",
            with_edits(
                "clipped_step",
                (
                    "return norm.item()",
                    "return nn.utils.get_total_norm([p.grad for p in model.parameters()]).item()",
                ),
            ),
            "AFTER clipping",
        ),
        # EarlyStopping
        case(stopping, "starter", starter(7, "EarlyStopping"), "never returned True"),
        case(stopping, "reference", with_edits(stopping), None),
        case(stopping, "right-history", EarlyStoppingFromHistory, None),
        case(
            stopping,
            "wrong-tie-improves",
            with_edits(stopping, ("val_loss < self.best", "val_loss <= self.best")),
            r"equal to the best.*not a new best.*val_loss < self\.best",
        ),
        case(
            stopping,
            "wrong-strictly-more",
            with_edits(
                stopping, ("self.bad_epochs >= self.patience", "self.bad_epochs > self.patience")
            ),
            "one epoch too late",
        ),
        case(
            stopping,
            "wrong-no-reset",
            with_edits(stopping, ("            self.bad_epochs = 0\n", "")),
            "reset the count",
        ),
        # train_accumulated
        case("accumulation", "starter", starter(7, "train_accumulated"), "ran 8 times"),
        case("accumulation", "reference", with_edits("accumulation"), None),
        case("accumulation", "right-dividing-gradients", accumulation_dividing_gradients, None),
        case(
            "accumulation",
            "wrong-not-divided",
            with_edits("accumulation", (" / accumulation_steps", "")),
            "divide each micro-batch's loss",
        ),
        case(
            "accumulation",
            "wrong-counts-from-zero",
            with_edits("accumulation", ("enumerate(loader, start=1)", "enumerate(loader)")),
            "Count from 1",
        ),
        # adamw_decay_groups
        case("decay_groups", "starter", starter(7, "adamw_decay_groups"), "every parameter decays"),
        case("decay_groups", "reference", with_edits("decay_groups"), None),
        case("decay_groups", "right-default-decay", decay_groups_by_name, None),
        case("decay_groups", "wrong-by-name", decay_groups_of_biases, r"1\.weight.*decay"),
        case(
            "decay_groups",
            "wrong-adam",
            with_edits("decay_groups", ("torch.optim.AdamW(", "torch.optim.Adam(")),
            "torch.optim.Adam, whose weight_decay",
        ),
        # fit
        case("fit", "starter", starter(7, "fit", **fit_namespace()), "accumulation_steps"),
        case("fit", "reference", with_edits("fit"), None),
        case(
            "fit",
            "right-other-spelling",
            with_edits(
                "fit",
                (
                    "(loss / accumulation_steps).backward()",
                    "loss.div(accumulation_steps).backward()",
                ),
                (
                    '"model": model.state_dict()}',
                    '"model": model.state_dict(), "lr": optimizer.param_groups[0]["lr"]}',
                ),
            ),
            None,
        ),
        case(
            "fit",
            "wrong-saves-last",
            with_edits("fit", (SAVE_BEST, "        if True:\n")),
            r"holds the weights of epoch \d.*best validation loss.*epoch 1",
        ),
        case(
            "fit",
            "wrong-scheduler-per-batch",
            with_edits(
                "fit",
                (SCHEDULER_STEP, ""),
                (
                    "running_loss += ",
                    SCHEDULER_STEP_PER_BATCH,
                ),
            ),
            r"scheduler.step\(\) ran 4 times for 2 optimizer steps",
        ),
        case(
            "fit",
            "wrong-divided-training-loss",
            with_edits(
                "fit",
                (
                    "(loss / accumulation_steps).backward()",
                    "loss = loss / accumulation_steps\n            loss.backward()",
                ),
            ),
            r"training loss of .* divided by 2: add up each batch's loss before dividing",
        ),
        case(
            "fit",
            "wrong-validation-is-training",
            with_edits(
                "fit",
                (
                    'history["validation loss"].append(val_loss)',
                    'history["validation loss"].append(history["training loss"][-1])',
                ),
            ),
            r"the history's validation losses are .* measured after each epoch",
        ),
        case(
            "fit",
            "wrong-no-early-stopping",
            with_edits("fit", ("if stopper is not None and stopper.step(val_loss):", "if False:")),
            "EarlyStopping",
        ),
        # average_gradients
        case(
            "average_gradients",
            "starter",
            starter(7, "average_gradients"),
            "still has only its own gradient",
        ),
        case("average_gradients", "reference", with_edits("average_gradients"), None),
        case(
            "average_gradients",
            "right-divide-first",
            with_edits("average_gradients", (ALL_REDUCE, ""), (DIVIDE, DIVIDE + ALL_REDUCE)),
            None,
        ),
        case(
            "average_gradients",
            "wrong-sum-only",
            with_edits("average_gradients", (DIVIDE, "")),
            r"SUM of the 3 processes' gradients.*divide by dist\.get_world_size\(\)",
        ),
        case(
            "average_gradients",
            "wrong-fixed-two",
            with_edits("average_gradients", ("p.grad /= world_size", "p.grad /= 2")),
            "never by a fixed number",
        ),
        case(
            "average_gradients",
            "wrong-weights",
            with_edits(
                "average_gradients",
                ("all_reduce(p.grad,", "all_reduce(p.data,"),
                ("p.grad /= world_size", "p.data /= world_size"),
            ),
            r"changed the weights.*p\.grad",
        ),
    ]


run = answer_then_context(CONTEXT, returns_answer=True)
CASES = cases()
