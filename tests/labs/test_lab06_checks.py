"""Lab 6's checks reject the typical wrong answers with a message naming the cause, accept the
solutions, and run past an unsolved exercise with a stand-in where the cells below need one."""

from __future__ import annotations

import pytest
import torch

from tests.labs.conftest import keep_figure
from tests.labs.solutions import (
    assert_runs_past_with_a_stand_in,
    lab_namespace,
    solution,
    starter,
)
from workshop_labs import lab06
from workshop_labs.checks import STRICT_ENV, ExerciseNotSolved

# The lab's own definitions that its solutions and checks use.
LAB = lab_namespace(6, "DigitsCNN", "TrainingConfig", "rng_state", "set_rng_state")
DigitsCNN, TrainingConfig, rng_state = LAB["DigitsCNN"], LAB["TrainingConfig"], LAB["rng_state"]


def solution_with(name, *edits):
    """The lab's solution that defines ``name``, with one typical mistake."""
    return solution(6, name, edits=edits, **LAB)


def lab_starter(name):
    """What lab 6's exercise cell defines as ``name`` before the attendee edits it."""
    return starter(6, name, **LAB)


# ---- exercise 1 · load_trusted --------------------------------------------------------------


def load_without_permission(path, device):
    return torch.load(path, map_location=device, weights_only=True)


def load_unsafely(path, device):
    return torch.load(path, map_location=device, weights_only=False)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (load_without_permission, "refused to load `.*TrainingConfig`.*safe_globals"),
        (
            solution_with("load_trusted", ("map_location=device", 'map_location="cpu"')),
            "wrong map_location: asked for device 'meta'",
        ),
        (load_unsafely, "ran code hidden inside a checkpoint"),
        (lambda path, device: None, "returned None"),
    ],
    ids=["without-permission", "ignoring-device", "unsafely", "none"],
)
def test_load_trusted_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab06.check_load_trusted(answer, TrainingConfig)


def test_load_trusted_accepts_solution(capsys):
    lab06.check_load_trusted(solution_with("load_trusted"), TrainingConfig)
    assert "✅" in capsys.readouterr().out


# ---- exercise 2 · save_checkpoint -----------------------------------------------------------


def save_without(key):
    return solution_with("save_checkpoint", (f'"{key}": {key}.state_dict(),', ""))


def save_whole_model(path, model, optimizer, scheduler, epoch):
    torch.save({"model": model, "epoch": epoch}, path)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda path, *rest: None, "did not write a file"),
        (save_whole_model, "cannot be loaded with weights_only=True"),
        (save_without("optimizer"), "checkpoint missing optimizer state"),
        (save_without("scheduler"), "checkpoint missing scheduler state"),
        (
            solution_with("save_checkpoint", ('"rng": rng_state(),', "")),
            "checkpoint missing rng state",
        ),
        (
            solution_with("save_checkpoint", ('"epoch": epoch,', '"epoch": epoch + 1,')),
            "checkpoint\\['epoch'\\] is 4 but the epoch passed in was 3",
        ),
    ],
    ids=["none", "whole-model", "no-optimizer", "no-scheduler", "no-rng", "next-epoch"],
)
def test_save_checkpoint_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab06.check_save_checkpoint(answer, rng_state)


def test_save_checkpoint_accepts_solution(capsys):
    lab06.check_save_checkpoint(solution_with("save_checkpoint"), rng_state)
    assert "✅" in capsys.readouterr().out


# ---- exercise 3 · resume --------------------------------------------------------------------

RESTORE_OPTIMIZER = 'optimizer.load_state_dict(checkpoint["optimizer"])'
RESTORE_SCHEDULER = 'scheduler.load_state_dict(checkpoint["scheduler"])'
RESTORE_RNG = 'set_rng_state(checkpoint["rng"])'


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            solution_with("resume", ('checkpoint["epoch"] + 1', 'checkpoint["epoch"]')),
            "resumed epoch off by one",
        ),
        (
            solution_with(
                "resume", (RESTORE_OPTIMIZER, ""), (RESTORE_SCHEDULER, ""), (RESTORE_RNG, "")
            ),
            "optimizer state not restored",
        ),
        (
            solution_with("resume", (RESTORE_RNG, "")),
            "random number generator state not restored",
        ),
        (
            solution_with("resume", ("weights_only=True", "weights_only=False")),
            "weights_only=False",
        ),
        (lambda path, *objects: 5, "did not read the file"),
    ],
    ids=["off-by-one", "no-optimizer", "no-rng", "unsafely", "no-read"],
)
def test_resume_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab06.check_resume(answer, rng_state)


def test_resume_accepts_solution(capsys):
    lab06.check_resume(solution_with("resume"), rng_state)
    assert "epoch 5" in capsys.readouterr().out


# ---- exercise 4 · save_if_best --------------------------------------------------------------


def save_if_best_without_return(path, model, epoch, val_accuracy, best_accuracy):
    if val_accuracy > best_accuracy:
        torch.save(
            {"model": model.state_dict(), "epoch": epoch, "val_accuracy": val_accuracy}, path
        )


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lab_starter("save_if_best"), "holds epoch 2: it keeps the last epoch, not the best"),
        (save_if_best_without_return, "returned None: return the best accuracy so far"),
        (
            solution_with("save_if_best", ("return best_accuracy", "return val_accuracy")),
            "after epoch 2 \\(80%\\) `save_if_best` returned 0.8, but the best so far is 0.85",
        ),
        (
            solution_with(
                "save_if_best", ("val_accuracy > best_accuracy", "val_accuracy < best_accuracy")
            ),
            "wrote nothing after epoch 0",
        ),
        (
            solution_with("save_if_best", ('"model": model.state_dict()', '"model": model')),
            "cannot be loaded with weights_only=True",
        ),
        (
            solution_with("save_if_best", (', "val_accuracy": val_accuracy}', "}")),
            "misses 'val_accuracy'",
        ),
    ],
    ids=["keeps-last", "no-return", "returns-latest", "reversed", "whole-model", "no-accuracy"],
)
def test_save_if_best_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab06.check_save_if_best(answer)


def test_save_if_best_accepts_solution(capsys):
    lab06.check_save_if_best(solution_with("save_if_best"))
    assert "kept epoch 3 (90%), the best" in capsys.readouterr().out


# ---- exercise 5 · prepare_for_finetuning ----------------------------------------------------

FREEZE_BODY = "model.body.requires_grad_(False)"
UNFREEZE_LAST = "layers_with_weights[-1].requires_grad_(True)"
NEW_HEAD = "model.head = nn.Linear(model.head.in_features, num_classes)"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda model, num_classes: None, "returned None"),
        (solution_with("prepare_for_finetuning", (NEW_HEAD, "")), "head not replaced"),
        (
            solution_with(
                "prepare_for_finetuning", ("in_features, num_classes)", "in_features, 10)")
            ),
            "10 outputs but the new task has 3 classes",
        ),
        (
            solution_with(
                "prepare_for_finetuning",
                ("return model", "model.head.requires_grad_(False); return model"),
            ),
            "new head is frozen",
        ),
        (
            solution_with("prepare_for_finetuning", (FREEZE_BODY, ""), (UNFREEZE_LAST, "")),
            "body not frozen: `body.1.weight` still has requires_grad=True",
        ),
        (
            solution_with("prepare_for_finetuning", (UNFREEZE_LAST, "")),
            "last body layer `body.4` is still frozen",
        ),
    ],
    ids=["none", "keeping-head", "wrong-classes", "frozen-head", "no-freeze", "freeze-all"],
)
def test_prepare_for_finetuning_rejects(answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab06.check_prepare_for_finetuning(answer, DigitsCNN)


def test_prepare_for_finetuning_accepts_solution(capsys):
    lab06.check_prepare_for_finetuning(solution_with("prepare_for_finetuning"), DigitsCNN)
    assert "✅" in capsys.readouterr().out


# ---- figures --------------------------------------------------------------------------------


def test_checkpoint_tree_draws_every_top_level_key():
    model = DigitsCNN()
    checkpoint = {"model": model.state_dict(), "epoch": 3, "rng": rng_state()}
    figure = lab06.checkpoint_tree(checkpoint)
    texts = " ".join(text.get_text() for text in figure.axes[0].texts)
    for expected in (
        "model  (dict, 11 entries)",
        "body.2.running_mean: tensor 16 · float32",
        "epoch: 3",
        "rng",
    ):
        assert expected in texts


def test_seed_curves_draws_each_median_inside_its_shaded_middle_half():
    runs = {
        "pretrained": [[0.5, 0.7, 0.9], [0.6, 0.8, 0.9], [0.4, 0.75, 0.85]],
        "from scratch": [[0.3, 0.6, 0.9], [0.5, 0.7, 0.95], [0.35, 0.65, 0.8]],
    }
    figure = lab06.seed_curves(runs, title="Digits 5–9", ylabel="accuracy")
    keep_figure(figure, "lab06_seed_curves")
    ax = figure.axes[0]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == [
        "pretrained (median of 3)",
        "from scratch (median of 3)",
    ]
    assert list(lines[0].get_ydata()) == [0.5, 0.75, 0.9]
    assert list(lines[1].get_xdata()) == [1, 2, 3]
    bands = ax.collections
    assert len(bands) == 2
    for band, line in zip(bands, lines, strict=True):
        ys = band.get_paths()[0].vertices[:, 1]
        assert min(ys) <= min(line.get_ydata()) and max(ys) >= max(line.get_ydata())
    assert "middle half" in ax.get_title()


def test_pictures_are_8_bit_images_of_the_digits():
    pictures = lab06.pictures(3)
    assert len(pictures) == 3
    assert pictures[0].shape == (8, 8) and str(pictures[0].dtype) == "uint8"
    assert pictures[0].max() > 200


# ---- running past an unsolved exercise ------------------------------------------------------

# Nothing below these exercises uses their answer: Run All goes on with the starter as it is.
UNSOLVED_AS_IT_IS = {
    "load_trusted": (lab06.check_load_trusted, (TrainingConfig,)),
    "resume": (lab06.check_resume, (rng_state,)),
}


@pytest.mark.parametrize("name", UNSOLVED_AS_IT_IS)
def test_an_unsolved_exercise_goes_on_with_the_answer_as_it_is(name, monkeypatch, capsys):
    check, context = UNSOLVED_AS_IT_IS[name]
    unsolved = lab_starter(name)
    with pytest.raises(ExerciseNotSolved):
        check(unsolved, *context)
    monkeypatch.setenv(STRICT_ENV, "0")
    assert check(unsolved, *context) is unsolved
    assert "the cells below use your answer as it is" in capsys.readouterr().out


def test_an_unsolved_save_checkpoint_goes_on_with_the_walkthrough_checkpoint(
    tmp_path, monkeypatch, capsys
):
    """Section 5's resumed run reads the file back, so the stand-in writes the checkpoint the
    walk-through above the exercise draws: all five parts, which the lab's resume cell loads."""
    monkeypatch.setenv(STRICT_ENV, "0")
    stand_in = lab06.check_save_checkpoint(lab_starter("save_checkpoint"), rng_state)
    assert "a stand-in (the five parts" in capsys.readouterr().out
    model, optimizer, scheduler = lab06._trained_setup()
    stand_in(tmp_path / "resume.pt", model, optimizer, scheduler, 3)
    checkpoint = torch.load(tmp_path / "resume.pt", weights_only=True)
    assert set(checkpoint) == {"model", "optimizer", "scheduler", "epoch", "rng"}
    fresh_model, fresh_optimizer, fresh_scheduler = lab06._trained_setup(seed=1)
    fresh_model.load_state_dict(checkpoint["model"])
    fresh_optimizer.load_state_dict(checkpoint["optimizer"])
    fresh_scheduler.load_state_dict(checkpoint["scheduler"])
    LAB["set_rng_state"](checkpoint["rng"])
    assert checkpoint["epoch"] == 3
    assert torch.equal(fresh_model[0].weight, model[0].weight)


def test_an_unsolved_save_if_best_goes_on_saving_every_epoch(tmp_path, monkeypatch, capsys):
    """The pretraining below saves with it: the stand-in keeps the last epoch, not the best."""
    unsolved = lab_starter("save_if_best")
    stand_in = assert_runs_past_with_a_stand_in(
        lab06.check_save_if_best, unsolved, (), monkeypatch, capsys
    )
    model, best = torch.nn.Linear(2, 2), 0.0
    for epoch, accuracy in enumerate((0.5, 0.9, 0.7)):
        best = stand_in(tmp_path / "best.pt", model, epoch, accuracy, best)
    assert torch.load(tmp_path / "best.pt", weights_only=True)["epoch"] == 2


def test_an_unsolved_prepare_for_finetuning_goes_on_with_a_frozen_body(monkeypatch, capsys):
    """The comparison below fine-tunes what it returns: the walk-through's frozen body with a
    new head, which trains (only its head) and is not the solution."""
    unsolved = lab_starter("prepare_for_finetuning")
    stand_in = assert_runs_past_with_a_stand_in(
        lab06.check_prepare_for_finetuning, unsolved, (DigitsCNN,), monkeypatch, capsys
    )
    model = stand_in(DigitsCNN(num_classes=5), 3)
    assert model.head.out_features == 3
    assert model(torch.zeros(2, 64)).shape == (2, 3)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}


def test_an_unsolved_make_transform_goes_on_with_pictures_that_are_never_augmented(
    monkeypatch, capsys
):
    """The fine-tuning below reads its pictures through what comes back: scaled and
    normalized as the solution does, but never augmented, and written without v2."""
    unsolved = lab_starter("make_transform")
    stand_in = assert_runs_past_with_a_stand_in(
        lab06.check_make_transform, unsolved, (0.3, 0.4), monkeypatch, capsys
    )
    picture = lab06.pictures(1)[0]
    for train in (True, False):
        out = stand_in(train)(picture)
        assert out.shape == (1, 8, 8) and out.dtype == torch.float32
        expected = (torch.as_tensor(picture, dtype=torch.float32) / 255 - 0.3) / 0.4
        assert torch.allclose(out[0], expected)


# ---- the new exercises: whatever the answer does, one line naming it ----------------------


def raises(*args):
    raise ValueError("boom")


NEW_CHECKS = {
    "conv_side": (lab06.check_conv_side, ()),
    "small_cnn": (lab06.check_small_cnn, ()),
    "non_parameters": (lab06.check_non_parameters, (DigitsCNN,)),
    "make_transform": (lab06.check_make_transform, (0.3, 0.4)),
}


@pytest.mark.parametrize("name", NEW_CHECKS)
@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (None, "None|not a function"),
        (raises, "raised ValueError: boom|not a model"),
        (42, "not a function|not a model"),
    ],
    ids=["none", "raises", "a-number"],
)
def test_a_new_check_refuses_any_broken_answer_in_one_line(name, answer, message):
    check, context = NEW_CHECKS[name]
    with pytest.raises(ExerciseNotSolved, match=message) as refusal:
        check(answer, *context)
    assert "\n" not in str(refusal.value)
