"""Lab 2's checks reject the typical wrong answers with a message naming the cause, and accept
the solutions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.labs.solutions import (
    lab_namespace,
    solution,
    starter,
)
from workshop_labs import data, diagrams, lab02
from workshop_labs.checks import STRICT_ENV, ExerciseNotSolved


def lab_starter(name):
    """What lab 2's exercise cell defines as ``name`` before the attendee edits it."""
    return starter(2, name)


PLAIN_LIST = ("nn.ModuleList(", "list(")


def test_deep_net_names_the_missing_super_and_the_unregistered_list(capsys):
    without_super = solution(2, "DeepNet", edits=[("super().__init__()", "")])
    with pytest.raises(ExerciseNotSolved, match=r"Call super\(\).__init__\(\) as the first line"):
        lab02.check_deep_net(without_super)
    with pytest.raises(ExerciseNotSolved, match="must be a class that inherits from nn.Module"):
        lab02.check_deep_net(lambda depth: solution(2, "DeepNet")(depth))
    with pytest.raises(ExerciseNotSolved, match=r"`self.hidden` is a plain Python list: its 3"):
        lab02.check_deep_net(solution(2, "DeepNet", edits=[PLAIN_LIST]))
    lab02.check_deep_net(solution(2, "DeepNet"))
    assert "✅" in capsys.readouterr().out


def test_image_classifier_reports_the_shape_error():
    def classifier_flattening_with(replacement):
        return solution(2, "ImageClassifier", edits=[("x = self.flatten(x)", replacement)])

    with pytest.raises(
        ExerciseNotSolved,
        match=r"layer `fc1` = nn.Linear\(in_features=64, ...\) receives x of shape \(16, 8, 8\), "
        r"whose last dimension is 8, not 64: flatten the input first .*\(16, 64\)",
    ):
        lab02.check_image_classifier(classifier_flattening_with("pass"))
    with pytest.raises(
        ExerciseNotSolved,
        match=r"layer `fc2` = nn.Linear\(in_features=16, ...\) .* or use in_features=32",
    ):
        lab02.check_image_classifier(
            solution(2, "ImageClassifier", edits=[("nn.Linear(32, 10)", "nn.Linear(16, 10)")])
        )
    with pytest.raises(ExerciseNotSolved, match="must be a class"):
        lab02.check_image_classifier(lambda: solution(2, "ImageClassifier")())
    with pytest.raises(ExerciseNotSolved, match=r"x of shape \(3, 8, 8\) raised RuntimeError"):
        lab02.check_image_classifier(classifier_flattening_with("x = x.reshape(16, 64)"))
    lab02.check_image_classifier(solution(2, "ImageClassifier"))


def test_digit_images_names_the_wrong_method():
    features, labels = data.digits()
    length = "return len(self.labels)"
    item = "return self.features[index].view(8, 8), self.labels[index]"
    cases = [
        ((length, "return 0"), r"len\(dataset\) is 0 but 100 samples"),
        ((length, "return None"), "__len__ must return the number of samples as an int"),
        ((item, "return None"), "dataset\\[7\\] returned NoneType"),
        ((".view(8, 8)", ""), r"shape \(64,\)"),
        (("self.labels[index]", "self.labels[0]"), "label is"),
    ]
    for edit, message in cases:
        wrong = solution(2, "DigitImages", edits=[edit])
        with pytest.raises(ExerciseNotSolved, match=message):
            lab02.check_digit_images(wrong, features, labels)
    lab02.check_digit_images(solution(2, "DigitImages"), features, labels)


def test_train_epoch_detects_gradient_accumulation():
    def train_epoch_with(*edits):
        return solution(2, "train_epoch", edits=edits)

    with pytest.raises(ExerciseNotSolved, match=r"SUM of the gradients.*optimizer.zero_grad\(\)"):
        lab02.check_train_epoch(train_epoch_with(("optimizer.zero_grad()", "")))
    with pytest.raises(ExerciseNotSolved, match=r"optimizer.step\(\) was never called"):
        lab02.check_train_epoch(train_epoch_with(("optimizer.step()", "")))
    with pytest.raises(ExerciseNotSolved, match="divide by len\\(loader\\)"):
        lab02.check_train_epoch(train_epoch_with(("total / len(loader)", "total")))
    lab02.check_train_epoch(solution(2, "train_epoch"))


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


# ---- Exercise 3 · pick the loss -----------------------------------------------------------

RIGHT_LOSSES = {"binary": nn.BCEWithLogitsLoss(), "10 classes": nn.CrossEntropyLoss()}


def log_softmax_then_nll(logits, targets):
    return nn.NLLLoss()(nn.LogSoftmax(dim=1)(logits), targets)


def sigmoid_then_bce(logits, targets):
    return nn.BCELoss()(torch.sigmoid(logits), targets)


def softmax_then_cross_entropy(logits, targets):
    return nn.CrossEntropyLoss()(torch.softmax(logits, dim=1), targets)


@pytest.mark.parametrize(
    ("problem", "loss_fn", "message"),
    [
        ("binary", None, r'loss_fns\["binary"\] .* is None'),
        ("binary", nn.BCEWithLogitsLoss, r"the class BCEWithLogitsLoss itself: .* parentheses"),
        ("binary", nn.BCELoss(), "BCELoss expects probabilities, the model gives raw logits"),
        ("binary", sigmoid_then_bce, "Sigmoid then BCELoss saturates.*BCEWithLogitsLoss"),
        ("binary", nn.MSELoss(), "MSELoss measures a distance.*BCEWithLogitsLoss"),
        ("binary", nn.CrossEntropyLoss(), "CrossEntropyLoss needs one logit per class"),
        ("binary", nn.BCEWithLogitsLoss(reduction="sum"), "reduction='sum'.*'mean'"),
        ("10 classes", softmax_then_cross_entropy, "softmax before CrossEntropyLoss"),
        ("10 classes", nn.NLLLoss(), "NLLLoss expects log-probabilities.*LogSoftmax"),
        ("10 classes", nn.BCEWithLogitsLoss(), "raised ValueError.*use nn.CrossEntropyLoss"),
        ("10 classes", nn.MSELoss(), "raised RuntimeError.*use nn.CrossEntropyLoss"),
    ],
    ids=[
        "none",
        "class-not-instance",
        "bce-on-logits",
        "sigmoid-bce",
        "mse",
        "cross-entropy-for-binary",
        "sum",
        "softmax-first",
        "nll-on-logits",
        "bce-for-classes",
        "mse-for-classes",
    ],
)
def test_loss_choice_names_the_wrong_pairing(problem, loss_fn, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab02.check_loss_choice({**RIGHT_LOSSES, problem: loss_fn})


def test_loss_choice_accepts_the_solution_and_log_softmax_with_nll(capsys):
    lab02.check_loss_choice(solution(2, "loss_fns"))
    lab02.check_loss_choice({**RIGHT_LOSSES, "10 classes": log_softmax_then_nll})
    with pytest.raises(ExerciseNotSolved, match="must be a dict with the keys"):
        lab02.check_loss_choice(nn.CrossEntropyLoss())
    assert capsys.readouterr().out.count("✅") == 2


# ---- Exercise 4 · a residual block --------------------------------------------------------

RESIDUAL = "return x + self.layer(x)"


def residual_block_with(*edits):
    return solution(2, "ResidualBlock", edits=edits)


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        ([(RESIDUAL, "return self.layer(x)")], "only self.layer\\(x\\): the skip connection"),
        ([(RESIDUAL, "return x")], "returns x unchanged"),
        ([(", nn.ReLU()", "")], "no ReLU after the Linear"),
        ([(RESIDUAL, "return torch.relu(x + self.layer[0](x))")], "ReLU comes after the addition"),
        ([("super().__init__()", "")], r"Call super\(\).__init__\(\)"),
        (
            [("nn.Sequential(nn.Linear(width, width), nn.ReLU())", "[nn.Linear(width, width)]")],
            "plain Python list",
        ),
        ([("nn.Linear(width, width)", "nn.Linear(width, 2 * width)")], r"one nn.Linear\(8, 8\)"),
        ([(RESIDUAL, "self.layer(x)")], "forward returned None"),
    ],
    ids=["no-skip", "identity", "no-relu", "relu-after-add", "no-super", "list", "wide", "none"],
)
def test_residual_block_names_the_mistake(edits, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab02.check_residual_block(residual_block_with(*edits))


def test_residual_block_accepts_the_solution(capsys):
    lab02.check_residual_block(residual_block_with())
    assert "✅" in capsys.readouterr().out


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
    """ResidualNet is built and trained below Exercise 4: it gets a block without the skip
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
