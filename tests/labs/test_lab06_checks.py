"""Lab 6's checks reject the typical wrong answers with a message naming the cause, and accept
the solutions."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from workshop_labs import lab06
from workshop_labs.checks import ExerciseNotSolved


def rng_state():
    return {"cpu": torch.get_rng_state(), "cuda": []}


def set_rng_state(state):
    torch.set_rng_state(state["cpu"])


# ---- exercise 1 · load_trusted --------------------------------------------------------------


@dataclasses.dataclass
class TrainingConfig:
    learning_rate: float = 3e-3
    batch_size: int = 64


def load_solution(path, device):
    with torch.serialization.safe_globals([TrainingConfig]):
        return torch.load(path, map_location=device, weights_only=True)


def load_without_permission(path, device):
    return torch.load(path, map_location=device, weights_only=True)


def load_unsafely(path, device):
    return torch.load(path, map_location=device, weights_only=False)


def load_ignoring_device(path, device):
    with torch.serialization.safe_globals([TrainingConfig]):
        return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (load_without_permission, "refused to load `.*TrainingConfig`.*safe_globals"),
        (load_ignoring_device, "wrong map_location: asked for device 'meta'"),
        (load_unsafely, "ran code hidden inside a checkpoint"),
        (lambda path, device: None, "returned None"),
    ],
)
def test_load_trusted_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab06.load_trusted(answer, TrainingConfig)


def test_load_trusted_accepts_solution(capsys):
    lab06.load_trusted(load_solution, TrainingConfig)
    assert "✅" in capsys.readouterr().out


# ---- exercise 2 · save_checkpoint -----------------------------------------------------------


def save_solution(path, model, optimizer, scheduler, epoch):
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "rng": rng_state(),
        },
        path,
    )


def save_without(key):
    def save(path, model, optimizer, scheduler, epoch):
        full = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "rng": rng_state(),
        }
        del full[key]
        torch.save(full, path)

    return save


def save_whole_model(path, model, optimizer, scheduler, epoch):
    torch.save({"model": model, "epoch": epoch}, path)


def save_next_epoch(path, model, optimizer, scheduler, epoch):
    save_solution(path, model, optimizer, scheduler, epoch)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["epoch"] = epoch + 1
    torch.save(checkpoint, path)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda path, *rest: None, "did not write a file"),
        (save_whole_model, "cannot be loaded with weights_only=True"),
        (save_without("optimizer"), "checkpoint missing optimizer state"),
        (save_without("scheduler"), "checkpoint missing scheduler state"),
        (save_without("rng"), "checkpoint missing rng state"),
        (save_next_epoch, "checkpoint\\['epoch'\\] is 4 but the epoch passed in was 3"),
    ],
)
def test_save_checkpoint_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab06.save_checkpoint(answer, rng_state)


def test_save_checkpoint_accepts_solution(capsys):
    lab06.save_checkpoint(save_solution, rng_state)
    assert "✅" in capsys.readouterr().out


# ---- exercise 3 · resume --------------------------------------------------------------------


def resume_solution(path, model, optimizer, scheduler):
    checkpoint = torch.load(path, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    set_rng_state(checkpoint["rng"])
    return checkpoint["epoch"] + 1


def resume_off_by_one(path, model, optimizer, scheduler):
    return resume_solution(path, model, optimizer, scheduler) - 1


def resume_weights_only(path, model, optimizer, scheduler):
    checkpoint = torch.load(path, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    return checkpoint["epoch"] + 1


def resume_without_rng(path, model, optimizer, scheduler):
    checkpoint = torch.load(path, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    return checkpoint["epoch"] + 1


def resume_unsafely(path, model, optimizer, scheduler):
    torch.load(path, weights_only=False)
    return resume_solution(path, model, optimizer, scheduler)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (resume_off_by_one, "resumed epoch off by one"),
        (resume_weights_only, "optimizer state not restored"),
        (resume_without_rng, "random number generator state not restored"),
        (resume_unsafely, "weights_only=False"),
        (lambda path, *objects: 5, "did not read the file"),
    ],
)
def test_resume_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab06.resume(answer, rng_state)


def test_resume_accepts_solution(capsys):
    lab06.resume(resume_solution, rng_state)
    assert "epoch 5" in capsys.readouterr().out


# ---- exercise 4 · prepare_for_finetuning ----------------------------------------------------


class DigitsCNN(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(0.2),
        )
        self.head = nn.Linear(32 * 4 * 4, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


def prepare_solution(model, num_classes):
    model.body.requires_grad_(False)
    [m for m in model.body if isinstance(m, nn.Conv2d | nn.Linear)][-1].requires_grad_(True)
    model.head = nn.Linear(model.head.in_features, num_classes)
    return model


def prepare_without_freezing(model, num_classes):
    model.head = nn.Linear(model.head.in_features, num_classes)
    return model


def prepare_freezing_everything(model, num_classes):
    model.body.requires_grad_(False)
    model.head = nn.Linear(model.head.in_features, num_classes)
    return model


def prepare_keeping_head(model, num_classes):
    model.body.requires_grad_(False)
    model.body[3].requires_grad_(True)
    return model


def prepare_frozen_head(model, num_classes):
    prepare_solution(model, num_classes)
    model.head.requires_grad_(False)
    return model


def prepare_wrong_classes(model, num_classes):
    return prepare_solution(model, 10)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda model, num_classes: None, "returned None"),
        (prepare_keeping_head, "head not replaced"),
        (prepare_wrong_classes, "10 outputs but the new task has 3 classes"),
        (prepare_frozen_head, "new head is frozen"),
        (prepare_without_freezing, "body not frozen: `body.1.weight` still has requires_grad=True"),
        (prepare_freezing_everything, "last body layer `body.3` is still frozen"),
    ],
)
def test_prepare_for_finetuning_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab06.prepare_for_finetuning(answer, DigitsCNN)


def test_prepare_for_finetuning_accepts_solution(capsys):
    lab06.prepare_for_finetuning(prepare_solution, DigitsCNN)
    assert "✅" in capsys.readouterr().out


# ---- figures --------------------------------------------------------------------------------


def test_checkpoint_tree_draws_every_top_level_key():
    model = DigitsCNN()
    checkpoint = {"model": model.state_dict(), "epoch": 3, "rng": rng_state()}
    figure = lab06.checkpoint_tree(checkpoint)
    texts = " ".join(text.get_text() for text in figure.axes[0].texts)
    for expected in ("model", "head.weight: tensor 10×512 · float32", "epoch: 3", "rng"):
        assert expected in texts
