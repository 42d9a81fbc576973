"""Lab 2's checks reject the typical wrong answers with a message naming the cause, and accept
the solutions."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from workshop_labs import data, lab02
from workshop_labs.checks import ExerciseNotSolved


class TwoLayerNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class TwoLayerNetWithoutSuper(nn.Module):
    def __init__(self):
        self.fc1 = nn.Linear(64, 32)

    def forward(self, x):
        return self.fc1(x)


class TwoLayerNetWrongOutput(TwoLayerNet):
    def __init__(self):
        super().__init__()
        self.fc2 = nn.Linear(32, 5)


def test_two_layer_net(capsys):
    with pytest.raises(ExerciseNotSolved, match=r"does not|Call super\(\).__init__\(\) as the"):
        lab02.check_two_layer_net(TwoLayerNetWithoutSuper)
    with pytest.raises(ExerciseNotSolved, match="must be a class that inherits from nn.Module"):
        lab02.check_two_layer_net(lambda x: x)
    with pytest.raises(ExerciseNotSolved, match="parameters but Linear"):
        lab02.check_two_layer_net(TwoLayerNetWrongOutput)
    lab02.check_two_layer_net(TwoLayerNet)
    assert "✅" in capsys.readouterr().out


def make_deep_net(container):
    class DeepNet(nn.Module):
        def __init__(self, depth):
            super().__init__()
            self.input = nn.Linear(64, 32)
            self.hidden = container([nn.Linear(32, 32) for _ in range(depth)])
            self.output = nn.Linear(32, 10)

        def forward(self, x):
            x = torch.relu(self.input(x))
            for layer in self.hidden:
                x = torch.relu(layer(x))
            return self.output(x)

    return DeepNet


def test_deep_net_names_the_unregistered_list():
    with pytest.raises(ExerciseNotSolved, match=r"`self.hidden` is a plain Python list: its 3"):
        lab02.check_deep_net(make_deep_net(list))
    lab02.check_deep_net(make_deep_net(nn.ModuleList))


class ImageClassifier(nn.Module):
    def __init__(self, flatten):
        super().__init__()
        self.flatten_input = flatten
        self.fc1 = nn.Linear(64, 10)

    def forward(self, x):
        if self.flatten_input == "flatten":
            x = x.flatten(1)
        elif self.flatten_input == "hardcoded":
            x = x.reshape(16, 64)
        return self.fc1(x)


def image_classifier(flatten):
    class Variant(ImageClassifier):
        def __init__(self):
            super().__init__(flatten)

    return Variant


def test_image_classifier_reports_the_shape_error():
    with pytest.raises(ExerciseNotSolved, match=r"x of shape \(16, 8, 8\) raised RuntimeError"):
        lab02.check_image_classifier(image_classifier("none"))
    with pytest.raises(ExerciseNotSolved, match="must be a class"):
        lab02.check_image_classifier(lambda: ImageClassifier("flatten"))
    with pytest.raises(ExerciseNotSolved, match=r"x of shape \(3, 8, 8\) raised RuntimeError"):
        lab02.check_image_classifier(image_classifier("hardcoded"))
    lab02.check_image_classifier(image_classifier("flatten"))


def make_dataset(length, item):
    class DigitImages(Dataset):
        def __init__(self, features, labels):
            self.features = features
            self.labels = labels

        def __len__(self):
            return length(self)

        def __getitem__(self, index):
            return item(self, index)

    return DigitImages


def test_digit_images_names_the_wrong_method():
    features, labels = data.digits()
    right_len = lambda self: len(self.labels)  # noqa: E731
    right_item = lambda self, i: (self.features[i].view(8, 8), self.labels[i])  # noqa: E731
    cases = [
        (lambda self: 0, right_item, r"len\(dataset\) is 0 but 100 samples"),
        (lambda self: None, right_item, "__len__ must return the number of samples as an int"),
        (right_len, lambda self, i: None, "dataset\\[7\\] returned NoneType"),
        (right_len, lambda self, i: (self.features[i], self.labels[i]), r"shape \(64,\)"),
        (right_len, lambda self, i: (self.features[i].view(8, 8), self.labels[0]), "label is"),
    ]
    for length, item, message in cases:
        with pytest.raises(ExerciseNotSolved, match=message):
            lab02.check_digit_images(make_dataset(length, item), features, labels)
    lab02.check_digit_images(make_dataset(right_len, right_item), features, labels)


def epoch(zero_grad=True, mean=True, step=True):
    def train_epoch(model, loader, optimizer, loss_fn):
        total = 0.0
        for xb, yb in loader:
            if zero_grad:
                optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            if step:
                optimizer.step()
            total += loss.item()
        return total / len(loader) if mean else total

    return train_epoch


def test_train_epoch_detects_gradient_accumulation():
    with pytest.raises(ExerciseNotSolved, match=r"SUM of the gradients.*optimizer.zero_grad\(\)"):
        lab02.check_train_epoch(epoch(zero_grad=False))
    with pytest.raises(ExerciseNotSolved, match=r"optimizer.step\(\) was never called"):
        lab02.check_train_epoch(epoch(step=False))
    with pytest.raises(ExerciseNotSolved, match="divide by len\\(loader\\)"):
        lab02.check_train_epoch(epoch(mean=False))
    lab02.check_train_epoch(epoch())


def test_unregistered_modules_ignores_module_internals():
    assert lab02.unregistered_modules(make_deep_net(nn.ModuleList)(2)) == {}
    assert lab02.unregistered_modules(make_deep_net(list)(2)) == {"hidden": 2}


def test_call_flow_draws_from_a_real_call():
    model = nn.Sequential(nn.Linear(64, 8), nn.ReLU())
    assert lab02.call_flow(model, torch.zeros(2, 64)) is not None
