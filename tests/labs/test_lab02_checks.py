"""Lab 2's checks beyond its answer corpus (corpus_lab02.py, run by test_check_corpus.py):
outside strict mode the lab runs past the starter answers; and the pictures lab 2 draws."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.labs.solutions import lab_namespace, solution, starter
from workshop_labs import data, diagrams, lab02
from workshop_labs.checks import STRICT_ENV, ExerciseNotSolved


def lab_starter(name):
    """What lab 2's exercise cell defines as ``name`` before the attendee edits it."""
    return starter(2, name)


PLAIN_LIST = ("nn.ModuleList(", "list(")


def test_unregistered_modules_ignores_module_internals():
    assert lab02.unregistered_modules(solution(2, "DeepNet")(2)) == {}
    assert lab02.unregistered_modules(solution(2, "DeepNet", edits=[PLAIN_LIST])(2)) == {
        "hidden": 2
    }


def test_call_flow_labels_each_arrow_with_the_call_the_code_makes():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x):
            return self.fc(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(64, 8)
            self.blocks = nn.ModuleList([Block()])

        def forward(self, x):
            return self.blocks[0](self.fc1(x))

    fig = lab02.call_flow(Net(), torch.zeros(2, 64))
    calls = [t.get_text() for t in fig.axes[0].texts if t.get_text().endswith(")  x: (2, 64)")]
    calls += [t.get_text() for t in fig.axes[0].texts if t.get_text().endswith(")  x: (2, 8)")]
    assert calls == [
        "model(x)  x: (2, 64)",
        "self.fc1(x)  x: (2, 64)",
        "self.blocks[0](x)  x: (2, 8)",
        "self.fc(x)  x: (2, 8)",
    ]
    assert not any("forward(" in t.get_text() for t in fig.axes[0].texts)


def test_linear_guard_leaves_no_hook_behind():
    model = solution(2, "ImageClassifier")()
    with pytest.raises(ExerciseNotSolved):
        lab02._run(model, torch.zeros(2, 3, 8), "ImageClassifier()")
    assert not model.fc1._forward_pre_hooks


# ---- Run past an unsolved exercise ----------------------------------------------------------

FEATURES, LABELS = data.digits()
# Nothing below these exercises uses their answer: Run All goes on with the starter as it is.
UNSOLVED_AS_IT_IS = {
    "DeepNet": (lab02.check_deep_net, ()),
    "ImageClassifier": (lab02.check_image_classifier, ()),
    "loss_fns": (lab02.check_loss_choice, ()),
    "DigitImages": (lab02.check_digit_images, (FEATURES, LABELS)),
    "train_epoch": (lab02.check_train_epoch, ()),
}


@pytest.mark.parametrize("name", UNSOLVED_AS_IT_IS)
def test_an_unsolved_exercise_goes_on_with_the_answer_as_it_is(name, monkeypatch, capsys):
    check, context = UNSOLVED_AS_IT_IS[name]
    unsolved = lab_starter(name)
    monkeypatch.setenv(STRICT_ENV, "0")
    assert check(unsolved, *context) is unsolved
    assert "the cells below use your answer as it is" in capsys.readouterr().out


def test_an_unsolved_residual_block_goes_on_with_a_plain_block_that_builds_the_net(
    monkeypatch, capsys
):
    """ResidualNet is built and trained below Exercise 7: it gets a block without the skip
    connection (the skip is the hidden solution), which the check refuses."""
    monkeypatch.setenv(STRICT_ENV, "0")
    stand_in = lab02.check_residual_block(lab_starter("ResidualBlock"))
    assert "a stand-in (a plain block without the skip connection)" in capsys.readouterr().out
    net = lab_namespace(2, "ResidualNet", ResidualBlock=stand_in)["ResidualNet"]()
    assert net(torch.zeros(3, 8, 8)).shape == (3, 10)
    monkeypatch.setenv(STRICT_ENV, "1")
    with pytest.raises(ExerciseNotSolved, match="not registered|skip|add"):
        lab02.check_residual_block(stand_in)


# ---- The network diagram draws skip connections ---------------------------------------------


def residual_net():
    block = solution(2, "ResidualBlock")
    return lab_namespace(2, "ResidualNet", ResidualBlock=block)["ResidualNet"]()


def test_trace_finds_where_each_skip_leaves_and_joins():
    steps = diagrams._trace(residual_net(), torch.zeros(3, 64))
    adds = [
        (i, step.skip_from, step.skip_shape) for i, step in enumerate(steps) if step.type == "add"
    ]
    names = [step.name for step in steps]
    # Each block adds back what entered it: the stem's ReLU output, then the first sum.
    assert adds == [(5, names.index("stem.2"), (3, 48)), (8, 5, (3, 48))]
    assert [step.skip_from for step in steps if step.type != "add"] == [None] * 8


def test_network_diagram_draws_an_arrow_for_each_skip():
    fig = diagrams.network_diagram(residual_net(), torch.zeros(3, 64))
    ax = fig.axes[0]
    skips = [patch for patch in ax.patches if patch.get_gid() == "skip"]
    labels = [text.get_text() for text in ax.texts if text.get_gid() == "skip label"]
    assert len(skips) == 2 and labels == ["skip (3, 48)", "skip (3, 48)"]
    assert "2 skip connections" in ax.get_title(loc="left")
    plain = diagrams.network_diagram(nn.Sequential(nn.Linear(4, 2), nn.ReLU()), torch.zeros(1, 4))
    assert not [p for p in plain.axes[0].patches if p.get_gid() == "skip"]


def test_a_skip_from_the_input_starts_above_the_first_layer():
    class AddInput(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x) + x

    (step,) = [s for s in diagrams._trace(AddInput(), torch.zeros(2, 4)) if s.type == "add"]
    assert step.skip_from == diagrams.INPUT


@pytest.mark.parametrize(
    ("check", "reason"),
    [
        ("optimizer_by_hand", "`optimizer_by_hand` is None"),
        ("have_grad", "`have_grad` is None"),
        ("guess_classes", "Dropout still zeroed values"),
        ("momentum_steps", "`w_after_two_steps` is None"),
    ],
)
def test_unsolved_small_exercises_run_past_with_the_answer_as_it_is(
    check, reason, monkeypatch, capsys
):
    """Nothing below these exercises needs their answer: the lab goes on with it as it is."""
    from tests.labs import corpus_lab02

    monkeypatch.setenv(STRICT_ENV, "0")
    unsolved = starter(2, corpus_lab02.NAMES[check])
    returned = getattr(lab02, f"check_{check}")(unsolved, *corpus_lab02.CONTEXT[check])
    assert returned is unsolved
    out = capsys.readouterr().out
    assert reason in out and "the cells below use your answer as it is" in out


def test_have_grad_measures_a_copy_and_leaves_the_model_without_gradients():
    from tests.labs import corpus_lab02

    model, x = corpus_lab02.CONTEXT["have_grad"]
    lab02.check_have_grad.unchecked({"fc.weight", "fc.bias"}, model, x)
    assert all(p.grad is None for p in model.parameters())
