"""Lab 2's answer corpus: for every exercise, the starter, the published solution, answers a
beginner writes that are wrong (each with the reason its check must give) and other answers
that are right. ``test_check_corpus.py`` runs every case through its check."""

from __future__ import annotations

import torch
from torch import nn

from tests.labs.corpus import REFERENCE, RIGHT, STARTER, WRONG, Case, answer_then_context
from tests.labs.solutions import lab_namespace, solution, starter
from workshop_labs import data

FEATURES, LABELS = data.digits()
# predict()'s numbers in §1, made as the lab makes them.
W1, B1 = torch.randn(64, 32, requires_grad=True), torch.zeros(32, requires_grad=True)
W2, B2 = torch.randn(32, 10, requires_grad=True), torch.zeros(10, requires_grad=True)
SPARE_MODEL = lab_namespace(2, "WithSpare")["WithSpare"]()

# The check's arguments after the answer, per exercise.
CONTEXT = {
    "optimizer_by_hand": (W1, B1, W2, B2),
    "linear_digits": (),
    "deep_net": (),
    "image_classifier": (),
    "have_grad": (SPARE_MODEL, FEATURES[:16]),
    "loss_choice": (),
    "residual_block": (),
    "guess_classes": (),
    "digit_images": (FEATURES, LABELS),
    "train_epoch": (),
    "momentum_steps": (),
}

NAMES = {
    "optimizer_by_hand": "optimizer_by_hand",
    "linear_digits": "LinearDigits",
    "deep_net": "DeepNet",
    "image_classifier": "ImageClassifier",
    "have_grad": "have_grad",
    "loss_choice": "loss_fns",
    "residual_block": "ResidualBlock",
    "guess_classes": "guess_classes",
    "digit_images": "DigitImages",
    "train_epoch": "train_epoch",
    "momentum_steps": "w_after_two_steps",
}


def solved(exercise: str) -> Case:
    """The case of the published solution of ``exercise``."""
    return Case(exercise, REFERENCE, "solution", lambda: solution(2, NAMES[exercise]))


def unsolved(exercise: str, refused: str) -> Case:
    """The case of the exercise cell as the attendee gets it."""
    return Case(exercise, STARTER, "starter", lambda: starter(2, NAMES[exercise]), refused)


def edited(exercise: str, kind: str, name: str, *edits, refused: str | None = None, **given):
    """The published solution with ``edits`` (each (old, new), applied in turn)."""
    return Case(
        exercise,
        kind,
        name,
        lambda: solution(2, NAMES[exercise], edits=edits, **given),
        refused,
    )


# ----------------------------------------------------------------------------------------------
# Exercise 3: DeepNet, every layer registered
# ----------------------------------------------------------------------------------------------

SUPER = "super().__init__()"
HIDDEN = "nn.ModuleList([nn.Linear(32, 32) for _ in range(depth)])"

DEEP_NET = [
    unsolved("deep_net", r"Call super\(\)\.__init__\(\) as the first line"),
    solved("deep_net"),
    edited("deep_net", WRONG, "no-super", (SUPER, ""), refused=r"Call super\(\)\.__init__\(\)"),
    edited(
        "deep_net",
        WRONG,
        "super-last",
        (SUPER, ""),
        ("self.output = nn.Linear(32, 10)", f"self.output = nn.Linear(32, 10)\n        {SUPER}"),
        refused=r"before assigning any layer to self",
    ),
    edited(
        "deep_net",
        WRONG,
        "plain-list",
        ("nn.ModuleList(", "list("),
        refused=r"`self\.hidden` is a plain Python list: its 3 layers are not registered",
    ),
    edited(
        "deep_net",
        WRONG,
        "hidden-left-out-of-forward",
        ("x = torch.relu(layer(x))", "pass"),
        refused=r"never calls self\.hidden\.0, self\.hidden\.1, self\.hidden\.2: registered",
    ),
    edited(
        "deep_net",
        WRONG,
        "one-layer-repeated",
        ("[nn.Linear(32, 32) for _ in range(depth)]", "[nn.Linear(32, 32)] * depth"),
        refused=r"holds ONE layer \(hidden\.0\) 3 times: \[layer\] \* depth",
    ),
    edited(
        "deep_net",
        WRONG,
        "one-layer-short",
        ("range(depth)", "range(depth - 1)"),
        refused=r"DeepNet\(3\) has 2 hidden Linear\(32, 32\) layers, not 3",
    ),
    edited(
        "deep_net",
        WRONG,
        "depth-written-in",
        ("range(depth)", "range(3)"),
        refused=r"DeepNet\(1\) has 3 hidden Linear\(32, 32\) layers, not 1",
    ),
    edited(
        "deep_net",
        RIGHT,
        "super-with-arguments",
        (SUPER, "super(DeepNet, self).__init__()"),
    ),
    edited(
        "deep_net",
        RIGHT,
        "sequential",
        (HIDDEN, "nn.Sequential(*[nn.Linear(32, 32) for _ in range(depth)])"),
    ),
    edited(
        "deep_net",
        RIGHT,
        "module-list-of-a-generator",
        (HIDDEN, "nn.ModuleList(nn.Linear(32, 32) for _ in range(depth))"),
    ),
]

# ----------------------------------------------------------------------------------------------
# Exercise 4: a forward that fits the data
# ----------------------------------------------------------------------------------------------

FLATTEN = "x = self.flatten(x)"

IMAGE_CLASSIFIER = [
    unsolved(
        "image_classifier",
        r"layer `fc1` = nn\.Linear\(in_features=64, \.\.\.\) receives x of shape \(16, 8, 8\)"
        r".*flatten the input first",
    ),
    solved("image_classifier"),
    edited(
        "image_classifier",
        WRONG,
        "batch-written-in",
        (FLATTEN, "x = x.view(16, 64)"),
        refused=r"x of shape \(3, 8, 8\) raised RuntimeError: shape '\[16, 64\]' is invalid",
    ),
    edited(
        "image_classifier",
        WRONG,
        "batch-flattened-too",
        (FLATTEN, "x = x.flatten()"),
        refused=r"the batch dimension is gone: x\.flatten\(\) flattens every dimension",
    ),
    edited(
        "image_classifier",
        WRONG,
        "no-activation",
        ("self.fc2(self.act(self.fc1(x)))", "self.fc2(self.fc1(x))"),
        refused=r"from fc1 straight to fc2: the activation is left out",
    ),
    edited(
        "image_classifier",
        WRONG,
        "samples-mixed",
        (FLATTEN, "x = x.reshape(64, -1).T"),
        refused=r"the logits of image i do not come from image i",
    ),
    edited(
        "image_classifier",
        WRONG,
        "fc1-left-out",
        ("self.fc2(self.act(self.fc1(x)))", "self.fc2(self.act(x[:, :32]))"),
        refused=r"never calls self\.fc1",
    ),
    edited("image_classifier", RIGHT, "view", (FLATTEN, "x = x.view(-1, 64)")),
    edited("image_classifier", RIGHT, "flatten-from-1", (FLATTEN, "x = x.flatten(1)")),
    edited("image_classifier", RIGHT, "torch-relu", ("self.act(", "torch.relu(")),
]

# ----------------------------------------------------------------------------------------------
# Exercise 6: pick the loss
# ----------------------------------------------------------------------------------------------

RIGHT_LOSSES = {"binary": nn.BCEWithLogitsLoss(), "10 classes": nn.CrossEntropyLoss()}


def pick(name: str, kind: str, refused: str | None = None, *, binary=None, classes=None) -> Case:
    """The right pair of losses, with the binary one, the 10-class one or both replaced."""
    picked = {"binary": binary, "10 classes": classes}
    answer = {**RIGHT_LOSSES, **{key: fn for key, fn in picked.items() if fn is not None}}
    return Case("loss_choice", kind, name, lambda: answer, refused)


def log_softmax_then_nll(logits, targets):
    return nn.NLLLoss()(nn.LogSoftmax(dim=1)(logits), targets)


def sigmoid_then_bce(logits, targets):
    return nn.BCELoss()(torch.sigmoid(logits), targets)


def softmax_then_cross_entropy(logits, targets):
    return nn.CrossEntropyLoss()(torch.softmax(logits, dim=1), targets)


BINARY = r'loss_fns\["binary"\]'
CLASSES = r'loss_fns\["10 classes"\]'

LOSS_CHOICE = [
    unsolved("loss_choice", rf"{BINARY} .* is None: replace the None with a loss"),
    solved("loss_choice"),
    pick(
        "class-not-instance",
        WRONG,
        r"the class BCEWithLogitsLoss itself",
        binary=nn.BCEWithLogitsLoss,
    ),
    pick("bce-on-logits", WRONG, r"BCELoss expects probabilities", binary=nn.BCELoss()),
    pick("sigmoid-then-bce", WRONG, r"Sigmoid then BCELoss saturates", binary=sigmoid_then_bce),
    pick("mse-for-binary", WRONG, r"MSELoss measures a distance", binary=nn.MSELoss()),
    pick(
        "cross-entropy-for-binary",
        WRONG,
        r"needs one logit per class",
        binary=nn.CrossEntropyLoss(),
    ),
    pick("sum", WRONG, r"reduction='sum'", binary=nn.BCEWithLogitsLoss(reduction="sum")),
    pick("softmax-first", WRONG, rf"{CLASSES}.*softmax before", classes=softmax_then_cross_entropy),
    pick("nll-on-logits", WRONG, r"NLLLoss expects log-probabilities", classes=nn.NLLLoss()),
    pick("mse-for-classes", WRONG, r"raised RuntimeError.*CrossEntropyLoss", classes=nn.MSELoss()),
    pick("activation-not-loss", WRONG, rf"{BINARY}.*raised TypeError", binary=torch.sigmoid),
    pick("log-softmax-and-nll", RIGHT, classes=log_softmax_then_nll),
    pick(
        "functional",
        RIGHT,
        binary=nn.functional.binary_cross_entropy_with_logits,
        classes=nn.functional.cross_entropy,
    ),
]

# ----------------------------------------------------------------------------------------------
# Exercise 7: a residual block
# ----------------------------------------------------------------------------------------------

RESIDUAL = "return x + self.layer(x)"


class SeparateLayers(nn.Module):
    """The block with its Linear stored on its own and the ReLU as a function."""

    def __init__(self, width):
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, x):
        return x + torch.relu(self.linear(x))


RESIDUAL_BLOCK = [
    unsolved("residual_block", r"ResidualBlock\(8\) has no nn\.Linear"),
    solved("residual_block"),
    edited(
        "residual_block",
        WRONG,
        "no-skip",
        (RESIDUAL, "return self.layer(x)"),
        refused=r"only self\.layer\(x\): the skip connection",
    ),
    edited(
        "residual_block", WRONG, "identity", (RESIDUAL, "return x"), refused="returns x unchanged"
    ),
    edited(
        "residual_block",
        WRONG,
        "no-relu",
        (", nn.ReLU()", ""),
        refused="no ReLU after the Linear",
    ),
    edited(
        "residual_block",
        WRONG,
        "relu-after-add",
        (RESIDUAL, "return torch.relu(x + self.layer[0](x))"),
        refused="ReLU comes after the addition",
    ),
    edited(
        "residual_block",
        WRONG,
        "no-super",
        ("super().__init__()", ""),
        refused=r"Call super\(\)\.__init__\(\)",
    ),
    edited(
        "residual_block",
        WRONG,
        "plain-list",
        ("nn.Sequential(nn.Linear(width, width), nn.ReLU())", "[nn.Linear(width, width)]"),
        refused="plain Python list",
    ),
    edited(
        "residual_block",
        WRONG,
        "width-written-in",
        ("nn.Linear(width, width)", "nn.Linear(8, 8)"),
        refused=r"one nn\.Linear\(3, 3\), not Linear\(8, 8\): use `width`",
    ),
    edited(
        "residual_block",
        WRONG,
        "no-return",
        (RESIDUAL, "self.layer(x)"),
        refused="forward returned None",
    ),
    edited(
        "residual_block",
        WRONG,
        "input-changed-in-place",
        (RESIDUAL, "x += self.layer(x)\n        return x"),
        refused=r"forward changed its input x in place",
    ),
    edited(
        "residual_block",
        WRONG,
        "relu-class-not-instance",
        ("nn.ReLU()", "nn.ReLU"),
        refused=r"ResidualBlock\(8\) raised TypeError: .*ReLU.* the error is in __init__",
    ),
    edited("residual_block", RIGHT, "layer-first", (RESIDUAL, "return self.layer(x) + x")),
    edited("residual_block", RIGHT, "relu-in-place", ("nn.ReLU()", "nn.ReLU(inplace=True)")),
    Case("residual_block", RIGHT, "separate-layers", lambda: SeparateLayers),
]

# ----------------------------------------------------------------------------------------------
# Exercise 9: your own Dataset
# ----------------------------------------------------------------------------------------------

LENGTH = "return len(self.labels)"
ITEM = "return self.features[index].view(8, 8), self.labels[index]"

DIGIT_IMAGES = [
    unsolved("digit_images", r"len\(dataset\) is 0 but 100 samples were given"),
    solved("digit_images"),
    edited(
        "digit_images",
        WRONG,
        "always-sample-7",
        (ITEM, "return self.features[7].view(8, 8), self.labels[7]"),
        refused=r"dataset\[0\]'s image is sample 7, not sample 0: index self\.features with",
    ),
    edited(
        "digit_images",
        WRONG,
        "index-off-by-one",
        ("self.features[index]", "self.features[index + 1]"),
        refused=r"dataset\[0\]'s image is sample 1, not sample 0",
    ),
    edited(
        "digit_images",
        WRONG,
        "notebook-globals",
        ("self.features[index]", "features[index]"),
        refused=r"sample 0 of the notebook's `features`.*use self\.features, not a global",
        features=FEATURES,
    ),
    edited(
        "digit_images",
        WRONG,
        "length-off-by-one",
        (LENGTH, "return len(self.labels) - 1"),
        refused=r"len\(dataset\) is 99 but 100 samples",
    ),
    edited(
        "digit_images",
        WRONG,
        "length-of-every-number",
        (LENGTH, "return self.features.numel()"),
        refused=r"len\(dataset\) is 6400",
    ),
    edited(
        "digit_images",
        WRONG,
        "no-length",
        (LENGTH, "return None"),
        refused=r"__len__ must return the number of samples as an int",
    ),
    edited(
        "digit_images",
        WRONG,
        "label-then-image",
        (ITEM, "return self.labels[index], self.features[index].view(8, 8)"),
        refused=r"dataset\[0\] is \(label, image\): return the image first",
    ),
    edited(
        "digit_images",
        WRONG,
        "flat-image",
        (".view(8, 8)", ""),
        refused=r"dataset\[0\]\[0\] \(the image\)` has shape \(64,\)",
    ),
    edited(
        "digit_images",
        WRONG,
        "float-label",
        ("self.labels[index]", "self.labels[index].float()"),
        refused=r"label is a float: class labels are int64",
    ),
    edited(
        "digit_images",
        WRONG,
        "first-label",
        ("self.labels[index]", "self.labels[0]"),
        refused=r"dataset\[1\]'s label is .* return self\.labels\[index\]",
    ),
    edited(
        "digit_images",
        WRONG,
        "no-pair",
        (ITEM, "return None"),
        refused=r"dataset\[0\] returned NoneType: __getitem__ must return a pair",
    ),
    edited("digit_images", RIGHT, "reshape", (".view(8, 8)", ".reshape(8, 8)")),
    edited(
        "digit_images", RIGHT, "python-int-label", ("self.labels[index]", "int(self.labels[index])")
    ),
    edited(
        "digit_images",
        RIGHT,
        "list-pair",
        (ITEM, "return [self.features[index].view(8, 8), self.labels[index]]"),
    ),
    edited("digit_images", RIGHT, "length-of-features", (LENGTH, "return len(self.features)")),
]

# ----------------------------------------------------------------------------------------------
# Exercise 10: one epoch over a DataLoader
# ----------------------------------------------------------------------------------------------


def epoch_dividing_by_the_last_index(model, loader, optimizer, loss_fn):
    total = 0.0
    for i, (xb, yb) in enumerate(loader):  # noqa: B007 (read after the loop: the slip)
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / i


def epoch_stepping_once_after_the_loop(model, loader, optimizer, loss_fn):
    total = 0.0
    optimizer.zero_grad()
    for xb, yb in loader:
        loss = loss_fn(model(xb), yb)
        loss.backward()
        total += loss.item()
    optimizer.step()
    return total / len(loader)


def epoch_with_its_own_optimizer(model, loader, optimizer, loss_fn):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    total = 0.0
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(loader)


def epoch_on_the_first_batch(model, loader, optimizer, loss_fn):
    xb, yb = next(iter(loader))
    total = 0.0
    for _ in range(len(loader)):
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(loader)


def epoch_zero_grad_last(model, loader, optimizer, loss_fn):
    losses = []
    for xb, yb in loader:
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return sum(losses) / len(losses)


def epoch_counting_batches(model, loader, optimizer, loss_fn):
    total = 0.0
    for count, (xb, yb) in enumerate(loader, start=1):  # noqa: B007 (read after the loop)
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / count


def epoch_weighted_by_samples(model, loader, optimizer, loss_fn):
    """The mean loss per sample: the mean of the batch losses when the batches are equal."""
    total = 0.0
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(xb)
    return total / len(loader.dataset)


MEAN = "total / len(loader)"

TRAIN_EPOCH = [
    unsolved("train_epoch", r"PLUS the previous ones.*optimizer\.zero_grad\(\)"),
    solved("train_epoch"),
    edited(
        "train_epoch",
        WRONG,
        "no-zero-grad",
        ("optimizer.zero_grad()", ""),
        refused=r"at batch 1 the gradient was this batch's PLUS the previous ones",
    ),
    edited(
        "train_epoch",
        WRONG,
        "no-step",
        ("optimizer.step()", ""),
        refused=r"optimizer\.step\(\) was never called",
    ),
    edited(
        "train_epoch",
        WRONG,
        "zero-grad-between-backward-and-step",
        ("optimizer.zero_grad()", ""),
        ("optimizer.step()", "optimizer.zero_grad()\n        optimizer.step()"),
        refused=r"loss\.backward\(\) ran, but the gradients were gone .* zero_grad\(\) between",
    ),
    Case(
        "train_epoch",
        WRONG,
        "one-step-after-the-loop",
        lambda: epoch_stepping_once_after_the_loop,
        r"optimizer\.step\(\) ran 1 time\(s\) but the loader has 4 batches",
    ),
    Case(
        "train_epoch",
        WRONG,
        "own-optimizer",
        lambda: epoch_with_its_own_optimizer,
        r"not through the optimizer train_epoch was given",
    ),
    Case(
        "train_epoch",
        WRONG,
        "first-batch-every-time",
        lambda: epoch_on_the_first_batch,
        r"the gradient at batch 1 is not the gradient of that batch's loss",
    ),
    edited(
        "train_epoch",
        WRONG,
        "sum-not-mean",
        (MEAN, "total"),
        refused=r"the SUM of the batch losses: divide it by len\(loader\)",
    ),
    Case(
        "train_epoch",
        WRONG,
        "divided-by-last-index",
        lambda: epoch_dividing_by_the_last_index,
        r"divided by 3, one less than the number of batches",
    ),
    edited(
        "train_epoch",
        WRONG,
        "divided-by-samples",
        (MEAN, "total / len(loader.dataset)"),
        refused=r"divided by the number of samples \(40\), but each loss is already",
    ),
    edited(
        "train_epoch",
        WRONG,
        "last-loss",
        (MEAN, "loss.item()"),
        refused=r"the last batch's loss only",
    ),
    edited(
        "train_epoch",
        WRONG,
        "returns-tensor",
        ("total += loss.item()", "total += loss"),
        refused=r"train_epoch returned Tensor: return the mean batch loss as a float",
    ),
    Case("train_epoch", RIGHT, "zero-grad-last", lambda: epoch_zero_grad_last),
    Case("train_epoch", RIGHT, "counting-batches", lambda: epoch_counting_batches),
    Case("train_epoch", RIGHT, "weighted-by-samples", lambda: epoch_weighted_by_samples),
    edited("train_epoch", RIGHT, "model-zero-grad", ("optimizer.zero_grad()", "model.zero_grad()")),
]

# ----------------------------------------------------------------------------------------------
# Exercise 1: an optimizer for a function's parameters
# ----------------------------------------------------------------------------------------------

OPTIMIZER_BY_HAND = [
    unsolved("optimizer_by_hand", r"`optimizer_by_hand` is None"),
    edited("optimizer_by_hand", REFERENCE, "solution", w1=W1, b1=B1, w2=W2, b2=B2),
    Case(
        "optimizer_by_hand",
        WRONG,
        "weights-only",
        lambda: torch.optim.SGD([W1, W2], lr=0.1),
        r"b1, b2 are missing from the list: the optimizer would never change them",
    ),
    Case(
        "optimizer_by_hand",
        WRONG,
        "copies",
        lambda: torch.optim.SGD([W1.detach().clone(), B1.detach().clone(), W2, B2], lr=0.1),
        r"the optimizer holds copies of w1, b1",
    ),
    Case(
        "optimizer_by_hand",
        WRONG,
        "with-the-data",
        lambda: torch.optim.SGD([W1, B1, W2, B2, FEATURES], lr=0.1),
        r"holds 1 tensor\(s\) besides w1, b1, w2, b2: data such as `features`",
    ),
    Case(
        "optimizer_by_hand",
        WRONG,
        "the-function",
        lambda: lab_namespace(2)["torch"].optim,
        r"`optimizer_by_hand` is a module, not an optimizer",
    ),
    Case("optimizer_by_hand", RIGHT, "adam", lambda: torch.optim.Adam([W1, B1, W2, B2])),
    Case(
        "optimizer_by_hand",
        RIGHT,
        "groups-other-order",
        lambda: torch.optim.SGD([{"params": [W2, B2]}, {"params": [W1, B1]}], lr=0.1),
    ),
]

# ----------------------------------------------------------------------------------------------
# Exercise 2: a first model class
# ----------------------------------------------------------------------------------------------

LAYER_LINE = "self.linear = nn.Linear(64, 10)"
RETURN_LINE = "return self.linear(x)"


class LayerMadeInForward(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return nn.Linear(64, 10)(x)


class WrappedInSequential(nn.Module):
    def __init__(self):
        super().__init__()
        self.scores = nn.Sequential(nn.Linear(64, 10))

    def forward(self, x):
        return self.scores(x)


LINEAR_DIGITS = [
    unsolved("linear_digits", r"LinearDigits\(\) registers no parameters"),
    solved("linear_digits"),
    edited(
        "linear_digits",
        WRONG,
        "no-super",
        ("super().__init__()", "pass"),
        refused=r"AttributeError: .*Call super\(\)\.__init__\(\) as the first line",
    ),
    Case(
        "linear_digits",
        WRONG,
        "layer-made-in-forward",
        lambda: LayerMadeInForward,
        r"registers no parameters: create the layer in __init__",
    ),
    edited(
        "linear_digits",
        WRONG,
        "returns-the-layer",
        (RETURN_LINE, "return self.linear"),
        refused=r"forward returned the layer \(Linear\), not scores",
    ),
    edited(
        "linear_digits",
        WRONG,
        "no-return",
        (RETURN_LINE, "self.linear(x)"),
        refused=r"forward returned None",
    ),
    edited(
        "linear_digits",
        WRONG,
        "transposed-layer",
        (LAYER_LINE, "self.linear = nn.Linear(10, 64)"),
        refused=r"exactly one nn\.Linear\(64, 10\).*it has Linear\(10, 64\)",
    ),
    edited(
        "linear_digits",
        RIGHT,
        "other-name",
        (LAYER_LINE, "self.fc = nn.Linear(64, 10)"),
        (RETURN_LINE, "return self.fc(x)"),
    ),
    Case("linear_digits", RIGHT, "sequential-inside", lambda: WrappedInSequential),
]

# ----------------------------------------------------------------------------------------------
# Exercise 5: where gradients land
# ----------------------------------------------------------------------------------------------

HAVE_GRAD = [
    unsolved("have_grad", r"`have_grad` is None"),
    solved("have_grad"),
    Case(
        "have_grad",
        WRONG,
        "every-registered-parameter",
        lambda: {"fc.weight", "fc.bias", "spare.weight", "spare.bias"},
        r"\['spare\.bias', 'spare\.weight'\] are registered, but forward\(\) never uses them",
    ),
    Case(
        "have_grad",
        WRONG,
        "weights-only",
        lambda: {"fc.weight"},
        r"\['fc\.bias'\] get a gradient too: a bias is a parameter",
    ),
    Case(
        "have_grad",
        WRONG,
        "layer-names",
        lambda: {"fc"},
        r"\['fc'\] name layers, not parameters",
    ),
    Case(
        "have_grad",
        WRONG,
        "nothing",
        lambda: set(),
        r"\['fc\.bias', 'fc\.weight'\] also get a gradient",
    ),
    Case(
        "have_grad",
        WRONG,
        "typo",
        lambda: {"fc1.weight", "fc1.bias"},
        r"the model has no parameter \['fc1\.bias', 'fc1\.weight'\]",
    ),
    Case("have_grad", RIGHT, "list", lambda: ["fc.bias", "fc.weight"]),
]

# ----------------------------------------------------------------------------------------------
# Exercise 8: guesses with Dropout off, then back to training
# ----------------------------------------------------------------------------------------------

GUESSES_IN_EVAL = "model.eval()"
BACK_TO_TRAINING = "model.train()\n"


def guesses_restoring_the_mode(model, xb):
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        guesses = model(xb).argmax(1)
    model.train(was_training)
    return guesses


GUESS_CLASSES = [
    unsolved("guess_classes", r"Dropout still zeroed values.*model\.eval\(\)"),
    solved("guess_classes"),
    edited(
        "guess_classes",
        WRONG,
        "no-train-after",
        ("    model.train()\n", ""),
        refused=r"still in eval mode: .*model\.train\(\) before returning",
    ),
    edited(
        "guess_classes",
        WRONG,
        "eval-without-parentheses",
        (GUESSES_IN_EVAL, "model.eval"),
        refused=r"Dropout still zeroed values.*with the parentheses",
    ),
    edited(
        "guess_classes",
        WRONG,
        "scores",
        (".argmax(dim=1)", ""),
        refused=r"returned shape \(64, 5\): those are the scores",
    ),
    edited(
        "guess_classes",
        WRONG,
        "train-instead-of-eval",
        (GUESSES_IN_EVAL, "model.train()"),
        refused=r"Dropout still zeroed values",
    ),
    Case("guess_classes", RIGHT, "restores-the-mode", lambda: guesses_restoring_the_mode),
    edited("guess_classes", RIGHT, "without-no-grad", ("with torch.no_grad():", "if True:")),
]

# ----------------------------------------------------------------------------------------------
# Exercise 11: momentum by hand
# ----------------------------------------------------------------------------------------------

MOMENTUM_STEPS = [
    unsolved("momentum_steps", r"`w_after_two_steps` is None"),
    solved("momentum_steps"),
    Case("momentum_steps", WRONG, "plain-sgd", lambda: 0.8, r"0\.8 is plain SGD"),
    Case(
        "momentum_steps",
        WRONG,
        "second-step-0.9-of-the-first",
        lambda: 0.81,
        r"the second step is not 0\.9 × the first",
    ),
    Case("momentum_steps", WRONG, "uphill", lambda: 1.29, r"moved w UP"),
    Case("momentum_steps", WRONG, "one-step", lambda: 0.9, r"w after ONE step"),
    Case(
        "momentum_steps",
        WRONG,
        "text",
        lambda: "0.71",
        r"is the text '0\.71': write the number, no quotes",
    ),
    Case("momentum_steps", RIGHT, "worked-out", lambda: 1 - 0.1 * 1 - 0.1 * (0.9 * 1 + 1)),
    Case("momentum_steps", RIGHT, "tensor", lambda: torch.tensor(0.71)),
]

CASES = (
    OPTIMIZER_BY_HAND
    + LINEAR_DIGITS
    + DEEP_NET
    + IMAGE_CLASSIFIER
    + HAVE_GRAD
    + LOSS_CHOICE
    + RESIDUAL_BLOCK
    + GUESS_CLASSES
    + DIGIT_IMAGES
    + TRAIN_EPOCH
    + MOMENTUM_STEPS
)
EXERCISES = tuple(CONTEXT)
run = answer_then_context(CONTEXT)
