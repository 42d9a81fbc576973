"""Lab 6's answers, kept as test data: for every exercise the starter, the reference (the
published solution), wrong answers a beginner writes, each with the words its refusal must
hold, and other right answers, which must pass."""

from __future__ import annotations

import torch
from torch import nn

from tests.labs.corpus import answer_then_context, case
from tests.labs.solutions import lab_namespace, solution, starter

EXERCISES = (
    "load_trusted",
    "save_checkpoint",
    "resume",
    "save_if_best",
    "prepare_for_finetuning",
)

# The lab's own definitions that its solutions and checks use.
LAB = lab_namespace(6, "DigitsCNN", "TrainingConfig", "rng_state", "set_rng_state")
TrainingConfig, rng_state = LAB["TrainingConfig"], LAB["rng_state"]

# What each check is given besides the answer, as the lab's cell gives it.
CONTEXT = {
    "load_trusted": (TrainingConfig,),
    "save_checkpoint": (rng_state,),
    "resume": (rng_state,),
    "save_if_best": (),
    "prepare_for_finetuning": (LAB["DigitsCNN"],),
}


def with_edits(name, *edits):
    """The published solution that defines ``name`` with each (old, new) text replaced."""
    return solution(6, name, edits=edits, **LAB)


# ---- load_trusted ---------------------------------------------------------------------------


def load_from_an_open_file(path, device):
    with open(path, "rb") as file, torch.serialization.safe_globals([TrainingConfig]):
        return torch.load(file, map_location=str(device))


def load_falling_back_to_unsafe(path, device):
    """Tries the safe way, then, when it is refused, the unsafe one."""
    try:
        with torch.serialization.safe_globals([TrainingConfig]):
            return torch.load(path, map_location=device, weights_only=True)
    except Exception:
        return torch.load(path, map_location=device, weights_only=False)


def load_made_up(path, device):
    """Returns a checkpoint of its own making instead of reading the file."""
    return {"model": {"weight": torch.zeros(3, 2, device=device)}, "config": TrainingConfig()}


# ---- save_checkpoint ------------------------------------------------------------------------


def save_with_extras(path, model, optimizer, scheduler, epoch):
    checkpoint = dict(
        epoch=epoch,
        rng=rng_state(),
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict(),
        lr=scheduler.get_last_lr(),
    )
    torch.save(checkpoint, path)


def save_before_training(path, model, optimizer, scheduler, epoch):
    """Saves the state of a fresh optimizer, made for the purpose."""
    fresh = type(optimizer)(model.parameters(), **optimizer.defaults)
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": fresh.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "rng": rng_state(),
    }
    torch.save(checkpoint, path)


# ---- resume ---------------------------------------------------------------------------------


def resume_with_torch_rng(path, model, optimizer, scheduler):
    checkpoint = torch.load(path, weights_only=True)
    for part, state in (
        (model, checkpoint["model"]),
        (optimizer, checkpoint["optimizer"]),
        (scheduler, checkpoint["scheduler"]),
    ):
        part.load_state_dict(state)
    torch.set_rng_state(checkpoint["rng"]["cpu"])
    next_epoch = checkpoint["epoch"] + 1
    return next_epoch


# ---- save_if_best ---------------------------------------------------------------------------


def save_if_best_returning_early(path, model, epoch, val_accuracy, best_accuracy):
    if val_accuracy <= best_accuracy:
        return best_accuracy
    torch.save({"model": model.state_dict(), "epoch": epoch, "val_accuracy": val_accuracy}, path)
    return val_accuracy


# ---- prepare_for_finetuning -----------------------------------------------------------------


def prepare_with_loops(model, num_classes):
    for parameter in model.body.parameters():
        parameter.requires_grad = False
    last = [m for m in model.body if list(m.parameters())][-1]
    for parameter in last.parameters():
        parameter.requires_grad = True
    model.head = nn.Linear(model.head.in_features, num_classes)
    return model


def prepare_with_eval(model, num_classes):
    """Believes eval() freezes a model."""
    model.body.eval()
    model.head = nn.Linear(model.head.in_features, num_classes)
    return model


def prepare_first_layer(model, num_classes):
    """Leaves the first layer with weights trainable instead of the last."""
    model.body.requires_grad_(False)
    model.body[1].requires_grad_(True)
    model.head = nn.Linear(model.head.in_features, num_classes)
    return model


def prepare_with_a_second_head(model, num_classes):
    """Registers a new head beside the old one; forward still uses model.head."""
    model.body.requires_grad_(False)
    model.body[3].requires_grad_(True)
    model.new_head = nn.Linear(model.head.in_features, num_classes)
    return model


def cases():
    """Every answer of the lab's corpus."""
    return [
        # load_trusted
        case("load_trusted", "starter", starter(6, "load_trusted", **LAB), "Allow just that class"),
        case("load_trusted", "reference", with_edits("load_trusted"), None),
        case("load_trusted", "right-open-file", load_from_an_open_file, None),
        case("load_trusted", "wrong-made-up", load_made_up, "did not come back as the saved"),
        case("load_trusted", "wrong-fallback", load_falling_back_to_unsafe, "ran code hidden"),
        case(
            "load_trusted",
            "wrong-no-map-location",
            with_edits("load_trusted", ("map_location=device, ", "")),
            "wrong map_location",
        ),
        # save_checkpoint
        case(
            "save_checkpoint",
            "starter",
            starter(6, "save_checkpoint", **LAB),
            "checkpoint missing model weights",
        ),
        case("save_checkpoint", "reference", with_edits("save_checkpoint"), None),
        case("save_checkpoint", "right-extras", save_with_extras, None),
        case(
            "save_checkpoint",
            "wrong-whole-model",
            with_edits("save_checkpoint", ('"model": model.state_dict()', '"model": model')),
            r"weights_only=True refused to load `torch\.nn.*Sequential`.*state_dict",
        ),
        case(
            "save_checkpoint",
            "wrong-no-optimizer",
            with_edits("save_checkpoint", ('"optimizer": optimizer.state_dict(),', "")),
            "missing optimizer state",
        ),
        case(
            "save_checkpoint",
            "wrong-no-epoch",
            with_edits("save_checkpoint", ('"epoch": epoch,', "")),
            "missing epoch",
        ),
        case(
            "save_checkpoint",
            "wrong-next-epoch",
            with_edits("save_checkpoint", ('"epoch": epoch,', '"epoch": epoch + 1,')),
            "the epoch passed in was",
        ),
        case("save_checkpoint", "wrong-fresh-optimizer", save_before_training, "momentum buffers"),
        # resume
        case("resume", "starter", starter(6, "resume", **LAB), "model weights not restored"),
        case("resume", "reference", with_edits("resume"), None),
        case("resume", "right-torch-rng", resume_with_torch_rng, None),
        case(
            "resume",
            "wrong-no-scheduler",
            with_edits("resume", ('scheduler.load_state_dict(checkpoint["scheduler"])', "")),
            "scheduler not restored",
        ),
        case(
            "resume",
            "wrong-no-optimizer",
            with_edits("resume", ('optimizer.load_state_dict(checkpoint["optimizer"])', "")),
            "optimizer state not restored",
        ),
        case(
            "resume",
            "wrong-whole-checkpoint-not-strict",
            with_edits(
                "resume",
                (
                    'model.load_state_dict(checkpoint["model"])',
                    "model.load_state_dict(checkpoint, strict=False)",
                ),
            ),
            r"model weights not restored.*strict=False",
        ),
        case(
            "resume",
            "wrong-whole-checkpoint",
            with_edits(
                "resume",
                ('model.load_state_dict(checkpoint["model"])', "model.load_state_dict(checkpoint)"),
            ),
            r"the whole checkpoint.*checkpoint\['model'\]",
        ),
        case(
            "resume",
            "wrong-same-epoch",
            with_edits("resume", ('checkpoint["epoch"] + 1', 'checkpoint["epoch"]')),
            "off by one",
        ),
        # save_if_best
        case("save_if_best", "starter", starter(6, "save_if_best", **LAB), "keeps the last epoch"),
        case("save_if_best", "reference", with_edits("save_if_best"), None),
        case("save_if_best", "right-early-return", save_if_best_returning_early, None),
        case(
            "save_if_best",
            "wrong-ties-overwrite",
            with_edits(
                "save_if_best", ("val_accuracy > best_accuracy", "val_accuracy >= best_accuracy")
            ),
            r"only tied the best.*strictly better",
        ),
        case(
            "save_if_best",
            "wrong-returns-latest",
            with_edits("save_if_best", ("    return best_accuracy", "    return val_accuracy")),
            r"returned 0\.8, but the best so far is 0\.85",
        ),
        case(
            "save_if_best",
            "wrong-whole-model",
            with_edits("save_if_best", ('{"model": model.state_dict()', '{"model": model')),
            r"weights_only=True refused.*Linear",
        ),
        # prepare_for_finetuning
        case(
            "prepare_for_finetuning",
            "starter",
            starter(6, "prepare_for_finetuning", **LAB),
            "head not replaced",
        ),
        case("prepare_for_finetuning", "reference", with_edits("prepare_for_finetuning"), None),
        case("prepare_for_finetuning", "right-loops", prepare_with_loops, None),
        case(
            "prepare_for_finetuning", "wrong-eval", prepare_with_eval, r"eval\(\) does not freeze"
        ),
        case(
            "prepare_for_finetuning",
            "wrong-first-layer",
            prepare_first_layer,
            r"body not frozen: `body\.1\.weight`",
        ),
        case(
            "prepare_for_finetuning",
            "wrong-second-head",
            prepare_with_a_second_head,
            r"new_head.*forward uses model\.head",
        ),
        case(
            "prepare_for_finetuning",
            "wrong-frozen-head",
            with_edits(
                "prepare_for_finetuning",
                ("model.body.requires_grad_(False)", ""),
                ("    return model", "    model.requires_grad_(False)\n    return model"),
            ),
            "new head is frozen",
        ),
    ]


run = answer_then_context(CONTEXT, returns_answer=True)
CASES = cases()
