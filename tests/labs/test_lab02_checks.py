"""Lab 2's checks reject the typical wrong answers with a message naming the cause, and accept
the solutions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.labs.solutions import solution
from workshop_labs import data, lab02
from workshop_labs.checks import ExerciseNotSolved


def test_two_layer_net(capsys):
    without_super = solution(2, "TwoLayerNet", edits=[("super().__init__()", "")])
    wrong_output = solution(2, "TwoLayerNet", edits=[("nn.Linear(32, 10)", "nn.Linear(32, 5)")])
    with pytest.raises(ExerciseNotSolved, match=r"does not|Call super\(\).__init__\(\) as the"):
        lab02.check_two_layer_net(without_super)
    with pytest.raises(ExerciseNotSolved, match="must be a class that inherits from nn.Module"):
        lab02.check_two_layer_net(lambda x: x)
    with pytest.raises(ExerciseNotSolved, match="parameters but Linear"):
        lab02.check_two_layer_net(wrong_output)
    lab02.check_two_layer_net(solution(2, "TwoLayerNet"))
    assert "✅" in capsys.readouterr().out


PLAIN_LIST = ("nn.ModuleList(", "list(")


def test_deep_net_names_the_unregistered_list():
    with pytest.raises(ExerciseNotSolved, match=r"`self.hidden` is a plain Python list: its 3"):
        lab02.check_deep_net(solution(2, "DeepNet", edits=[PLAIN_LIST]))
    lab02.check_deep_net(solution(2, "DeepNet"))


def test_image_classifier_reports_the_shape_error():
    def classifier_flattening_with(replacement):
        return solution(2, "ImageClassifier", edits=[("x = self.flatten(x)", replacement)])

    with pytest.raises(ExerciseNotSolved, match=r"x of shape \(16, 8, 8\) raised RuntimeError"):
        lab02.check_image_classifier(classifier_flattening_with("pass"))
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
