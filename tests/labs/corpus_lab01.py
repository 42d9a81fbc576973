"""Lab 1's answer corpus: for every exercise, the starter, the published solution, answers a
beginner writes that are wrong (each with the reason its check must give) and other answers
that are right. ``test_check_corpus.py`` runs every case through its check."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from tests.labs.corpus import REFERENCE, RIGHT, STARTER, WRONG, Case, answer_then_context
from tests.labs.solutions import solution, solution_namespace, starter

CPU = torch.device("cpu")
COUNTS = torch.tensor([[8, 1, 1, 0], [2, 5, 0, 1], [0, 0, 9, 3], [1, 4, 1, 8]])
PICTURES = [torch.arange(64.0).reshape(8, 8) / 64 + i for i in range(4)]  # told apart by value
IMAGE_NP = np.arange(64, dtype=np.float32).reshape(8, 8) / 64
X = torch.tensor([1.0, 2.0, 3.0])
Y_TRUE = torch.tensor([2.0, 4.0, 6.0])
# Rows: true class, columns: guess; its row totals differ from its column totals, class by class.
CONFUSION = torch.tensor([[9, 1, 0, 0], [3, 6, 1, 0], [0, 2, 7, 1], [1, 0, 0, 8]])

# The check's arguments after the answer, per exercise.
CONTEXT = {
    "batch": (CPU,),
    "row_normalised": (COUNTS,),
    "digit_batch": (PICTURES,),
    "shares_memory": (IMAGE_NP,),
    "gradient": (X, Y_TRUE),
    "train_step": (),
    "precision_recall": (CONFUSION,),
}

# ----------------------------------------------------------------------------------------------
# Exercise 1: a batch with the right shape, dtype and device
# ----------------------------------------------------------------------------------------------

BATCH = [
    Case("batch", STARTER, "starter", lambda: starter(1, "batch"), r"`batch` is None"),
    Case("batch", REFERENCE, "solution", lambda: solution(1, "batch", device=CPU)),
    Case(
        "batch",
        WRONG,
        "randn",
        lambda: torch.randn(32, 64),
        r"values outside \[0, 1\): torch\.randn .* torch\.rand",
    ),
    Case("batch", WRONG, "transposed", lambda: torch.rand(64, 32), r"shape \(64, 32\)"),
    Case("batch", WRONG, "float64", lambda: torch.rand(32, 64).double(), r"needs torch\.float32"),
    Case("batch", WRONG, "integers", lambda: torch.randint(0, 2, (32, 64)), r"floating-point"),
    Case("batch", WRONG, "zeros", lambda: torch.zeros(32, 64), r"one repeated value"),
    Case(
        "batch",
        WRONG,
        "one-row-repeated",
        lambda: torch.rand(64).expand(32, 64),
        r"every row of `batch` is the same image",
    ),
    Case("batch", WRONG, "numpy", lambda: np.random.rand(32, 64), r"ndarray, not a torch\.Tensor"),
    Case("batch", RIGHT, "moved-after", lambda: torch.rand(32, 64).to(CPU)),
    Case("batch", RIGHT, "all-spelled-out", lambda: torch.rand((32, 64), dtype=torch.float32)),
]

# ----------------------------------------------------------------------------------------------
# Exercise 2: broadcasting
# ----------------------------------------------------------------------------------------------

ROW_NORMALISED = [
    Case(
        "row_normalised",
        STARTER,
        "starter",
        lambda: starter(1, "probabilities"),
        r"`probabilities` is None",
    ),
    Case(
        "row_normalised",
        REFERENCE,
        "solution",
        lambda: solution(1, "probabilities", counts=COUNTS),
    ),
    Case(
        "row_normalised",
        WRONG,
        "no-keepdim",
        lambda: COUNTS / COUNTS.sum(dim=1),
        r"each COLUMN was divided by a row total.*keepdim=True",
    ),
    Case(
        "row_normalised",
        WRONG,
        "dim-0",
        lambda: COUNTS / COUNTS.sum(dim=0, keepdim=True),
        r"the columns sum to 1, not the rows",
    ),
    Case(
        "row_normalised",
        WRONG,
        "floor-division",
        lambda: COUNTS // COUNTS.sum(dim=1, keepdim=True),
        r"true division `/`, not `//`",
    ),
    Case(
        "row_normalised",
        WRONG,
        "grand-total",
        lambda: COUNTS / COUNTS.sum(),
        r"the rows of `probabilities` sum to .* not 1",
    ),
    Case(
        "row_normalised",
        WRONG,
        "softmax",
        lambda: torch.softmax(COUNTS.float(), dim=1),
        r"that is a softmax",
    ),
    Case(
        "row_normalised",
        WRONG,
        "row-maximum",
        lambda: COUNTS / COUNTS.max(dim=1, keepdim=True).values,
        r"the rows of `probabilities` sum to",
    ),
    Case(
        "row_normalised",
        RIGHT,
        "unsqueeze",
        lambda: COUNTS / COUNTS.sum(dim=1).unsqueeze(1),
    ),
    Case("row_normalised", RIGHT, "none-index", lambda: COUNTS / COUNTS.sum(dim=1)[:, None]),
    Case("row_normalised", RIGHT, "transpose-twice", lambda: (COUNTS.T / COUNTS.sum(dim=1)).T),
    Case(
        "row_normalised",
        RIGHT,
        "normalize",
        lambda: nn.functional.normalize(COUNTS.float(), p=1, dim=1),
    ),
]

# ----------------------------------------------------------------------------------------------
# Exercise 3: a batch of pictures (stack, unsqueeze)
# ----------------------------------------------------------------------------------------------

DIGIT_BATCH = [
    Case("digit_batch", STARTER, "starter", lambda: starter(1, "digit_batch"), r"is None"),
    Case(
        "digit_batch",
        REFERENCE,
        "solution",
        lambda: solution(1, "digit_batch", pictures=PICTURES),
    ),
    Case("digit_batch", WRONG, "list", lambda: PICTURES, r"still a Python list: torch\.stack"),
    Case("digit_batch", WRONG, "cat", lambda: torch.cat(PICTURES), r"torch\.cat joined"),
    Case(
        "digit_batch",
        WRONG,
        "no-channel",
        lambda: torch.stack(PICTURES),
        r"channel dimension is missing",
    ),
    Case(
        "digit_batch",
        WRONG,
        "unsqueeze-0",
        lambda: torch.stack(PICTURES).unsqueeze(0),
        r"unsqueeze\(0\) put the new dimension in FRONT",
    ),
    Case(
        "digit_batch",
        WRONG,
        "channels-last",
        lambda: torch.stack(PICTURES).unsqueeze(-1),
        r"channels LAST",
    ),
    Case(
        "digit_batch",
        WRONG,
        "stack-dim-1-reshaped",
        lambda: torch.stack(PICTURES, dim=1).reshape(4, 1, 8, 8),
        r"the pixels are scrambled",
    ),
    Case(
        "digit_batch",
        WRONG,
        "first-picture-four-times",
        lambda: torch.stack([PICTURES[0]] * 4).unsqueeze(1),
        r"digit_batch\[1, 0\] is pictures\[0\], not pictures\[1\]",
    ),
    Case(
        "digit_batch",
        WRONG,
        "reversed",
        lambda: torch.stack(PICTURES[::-1]).unsqueeze(1),
        r"digit_batch\[0, 0\] is pictures\[3\]",
    ),
    Case(
        "digit_batch",
        RIGHT,
        "cat-reshaped",
        lambda: torch.cat(PICTURES).reshape(4, 1, 8, 8),
    ),
    Case(
        "digit_batch",
        RIGHT,
        "stack-of-unsqueezed",
        lambda: torch.stack([p.unsqueeze(0) for p in PICTURES]),
    ),
    Case("digit_batch", RIGHT, "none-index", lambda: torch.stack(PICTURES)[:, None]),
]

# ----------------------------------------------------------------------------------------------
# Exercise 4: NumPy interop
# ----------------------------------------------------------------------------------------------

SHARES_MEMORY = [
    Case("shares_memory", STARTER, "starter", lambda: starter(1, "image"), r"`image` is None"),
    Case(
        "shares_memory",
        REFERENCE,
        "solution",
        lambda: solution(1, "image", image_np=IMAGE_NP),
    ),
    Case(
        "shares_memory",
        WRONG,
        "torch.tensor",
        lambda: torch.tensor(IMAGE_NP),
        r"is a copy .* torch\.tensor\(\.\.\.\) always copies",
    ),
    Case(
        "shares_memory",
        WRONG,
        "dtype-copy",
        lambda: torch.from_numpy(IMAGE_NP).double(),
        r"is a copy .*changing the dtype",
    ),
    Case(
        "shares_memory",
        WRONG,
        "cloned",
        lambda: torch.from_numpy(IMAGE_NP).clone(),
        r"is a copy of `image_np`",
    ),
    Case(
        "shares_memory",
        WRONG,
        "still-numpy",
        lambda: IMAGE_NP,
        r"`image` is a ndarray, not a torch\.Tensor",
    ),
    Case(
        "shares_memory",
        WRONG,
        "transposed",
        lambda: torch.from_numpy(IMAGE_NP).T,
        r"shows other numbers .* torch\.from_numpy\(image_np\)",
    ),
    Case("shares_memory", RIGHT, "as_tensor", lambda: torch.as_tensor(IMAGE_NP)),
    Case("shares_memory", RIGHT, "asarray", lambda: torch.asarray(IMAGE_NP)),
    Case("shares_memory", RIGHT, "view", lambda: torch.from_numpy(IMAGE_NP).view(8, 8)),
]

# ----------------------------------------------------------------------------------------------
# Exercise 5: autograd
# ----------------------------------------------------------------------------------------------


def w_after(make_loss: Callable[[torch.Tensor], torch.Tensor], *, backward_calls: int = 1):
    """``w = torch.tensor(0.5, requires_grad=True)``, then ``make_loss(w).backward()``."""
    w = torch.tensor(0.5, requires_grad=True)
    for _ in range(backward_calls):
        make_loss(w).backward()
    return w


def mean_squared(w: torch.Tensor) -> torch.Tensor:
    return ((w * X - Y_TRUE) ** 2).mean()


def w_converted_after_creation():
    w = torch.tensor(0.5, requires_grad=True).to(torch.float64)  # .to(device) on a GPU
    mean_squared(w).backward()
    return w


def w_made_then_requiring_grad():
    w = torch.tensor(0.5).requires_grad_()
    mean_squared(w).backward()
    return w


GRADIENT = [
    Case(
        "gradient",
        STARTER,
        "starter",
        lambda: starter(1, "w"),
        r"`w\.requires_grad` is False",
    ),
    Case("gradient", REFERENCE, "solution", lambda: solution_namespace(1, "w")["w"]),
    Case(
        "gradient",
        WRONG,
        "no-backward",
        lambda: w_after(mean_squared, backward_calls=0),
        r"`w\.grad` is None: .*loss\.backward\(\)",
    ),
    Case(
        "gradient",
        WRONG,
        "backward-twice",
        lambda: w_after(mean_squared, backward_calls=2),
        r"twice the right value .* ACCUMULATE",
    ),
    Case(
        "gradient",
        WRONG,
        "sum",
        lambda: w_after(lambda w: ((w * X - Y_TRUE) ** 2).sum()),
        r"3× the right value .* MEAN",
    ),
    Case(
        "gradient",
        WRONG,
        "absolute-error",
        lambda: w_after(lambda w: (w * X - Y_TRUE).abs().mean()),
        r"but d\(loss\)/dw is -14",
    ),
    Case(
        "gradient",
        WRONG,
        "not-a-leaf",
        w_converted_after_creation,
        r"not a leaf .* torch\.tensor\(0\.5, requires_grad=True\)",
    ),
    Case(
        "gradient",
        WRONG,
        "one-element-vector",
        lambda: torch.tensor([0.5], requires_grad=True),
        r"`w` has shape \(1,\) but the exercise needs \(\)",
    ),
    Case("gradient", RIGHT, "requires-grad-after", w_made_then_requiring_grad),
    Case(
        "gradient",
        RIGHT,
        "functional-mse",
        lambda: w_after(lambda w: nn.functional.mse_loss(w * X, Y_TRUE)),
    ),
]

# ----------------------------------------------------------------------------------------------
# Exercise 6: one training step
# ----------------------------------------------------------------------------------------------


def train_step_with(*edits: tuple[str, str]):
    """The lab's solution with one typical mistake."""
    return solution(1, "train_step", edits=edits)


def step_under_no_grad(model, optimizer, loss_fn, xb, yb):
    optimizer.zero_grad()
    with torch.no_grad():
        logits = model(xb)
    loss = loss_fn(logits, yb)
    loss.backward()
    optimizer.step()
    return loss.item()


def zero_grad_last(model, optimizer, loss_fn, xb, yb):
    loss = loss_fn(model(xb), yb)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def zero_grad_after_forward(model, optimizer, loss_fn, xb, yb):
    logits = model(xb)
    optimizer.zero_grad()
    loss = loss_fn(logits, yb)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


ZERO_GRAD = "optimizer.zero_grad()"
BACKWARD = "loss.backward()"
STEP = "optimizer.step()"

TRAIN_STEP = [
    Case(
        "train_step",
        STARTER,
        "starter",
        lambda: starter(1, "train_step"),
        r"no gradients were computed",
    ),
    Case("train_step", REFERENCE, "solution", lambda: solution(1, "train_step")),
    Case(
        "train_step",
        WRONG,
        "no-zero-grad",
        lambda: train_step_with((ZERO_GRAD, "")),
        r"gradients ACCUMULATE.*optimizer\.zero_grad\(\)",
    ),
    Case(
        "train_step",
        WRONG,
        "no-backward",
        lambda: train_step_with((BACKWARD, "")),
        r"no gradients were computed: call loss\.backward\(\)",
    ),
    Case(
        "train_step",
        WRONG,
        "no-step",
        lambda: train_step_with((STEP, "")),
        r"parameters did not change: call optimizer\.step\(\) AFTER",
    ),
    Case(
        "train_step",
        WRONG,
        "zero-grad-between-backward-and-step",
        lambda: train_step_with((ZERO_GRAD, ""), (STEP, f"{ZERO_GRAD}; {STEP}")),
        r"gradients were wiped before the update",
    ),
    Case(
        "train_step",
        WRONG,
        "step-before-backward",
        lambda: train_step_with((STEP, ""), (BACKWARD, f"{STEP}; {BACKWARD}")),
        r"parameters did not change: .*AFTER loss\.backward",
    ),
    Case(
        "train_step",
        WRONG,
        "step-twice",
        lambda: train_step_with((STEP, f"{STEP}; {STEP}")),
        r"moved twice as far .* optimizer\.step\(\) ran twice",
    ),
    Case(
        "train_step",
        WRONG,
        "returns-tensor",
        lambda: train_step_with(("return loss.item()", "return loss")),
        r"returned Tensor, not a Python number",
    ),
    Case(
        "train_step",
        WRONG,
        "no-return",
        lambda: train_step_with(("return loss.item()", "")),
        r"returned NoneType, not a Python number",
    ),
    Case(
        "train_step",
        WRONG,
        "loss-after-the-step",
        lambda: train_step_with(("return loss.item()", "return loss_fn(model(xb), yb).item()")),
        r"returned .* but this batch's loss was .* before the step",
    ),
    Case(
        "train_step",
        WRONG,
        "forward-under-no-grad",
        lambda: step_under_no_grad,
        r"your `train_step\(model, optimizer, loss_fn, xb, yb\)` raised RuntimeError: "
        r"element 0 of tensors does not require grad",
    ),
    Case("train_step", WRONG, "not-callable", lambda: "train_step", r"is not a function"),
    Case("train_step", RIGHT, "zero-grad-last", lambda: zero_grad_last),
    Case("train_step", RIGHT, "zero-grad-after-forward", lambda: zero_grad_after_forward),
    Case(
        "train_step",
        RIGHT,
        "model-zero-grad",
        lambda: train_step_with((ZERO_GRAD, "model.zero_grad()")),
    ),
    Case(
        "train_step",
        RIGHT,
        "zero-grad-keeps-tensors",
        lambda: train_step_with((ZERO_GRAD, "optimizer.zero_grad(set_to_none=False)")),
    ),
]

# ----------------------------------------------------------------------------------------------
# Exercise 7: precision and recall from the confusion matrix
# ----------------------------------------------------------------------------------------------

RIGHT_GUESSES = CONFUSION.diagonal()
COLUMN_TOTALS, ROW_TOTALS = CONFUSION.sum(dim=0), CONFUSION.sum(dim=1)


def published_precision_recall() -> tuple:
    namespace = solution_namespace(1, "precision", confusion=CONFUSION)
    return namespace["precision"], namespace["recall"]


def precision_recall_by_loop(first_class: int = 0) -> tuple[list[float], list[float]]:
    """The answer written as a loop over the classes, from ``first_class`` on."""
    precision, recall = [], []
    for k in range(first_class, len(CONFUSION)):
        precision.append(CONFUSION[k, k].item() / CONFUSION[:, k].sum().item())
        recall.append(CONFUSION[k, k].item() / CONFUSION[k, :].sum().item())
    return precision, recall


PRECISION_RECALL = [
    Case(
        "precision_recall",
        STARTER,
        "starter",
        lambda: (starter(1, "precision"), starter(1, "recall")),
        r"`precision` is None",
    ),
    Case("precision_recall", REFERENCE, "solution", published_precision_recall),
    Case(
        "precision_recall",
        WRONG,
        "rows-and-columns-swapped",
        lambda: (RIGHT_GUESSES / ROW_TOTALS, RIGHT_GUESSES / COLUMN_TOTALS),
        r"`precision` holds the recall: rows are the TRUE class.*COLUMN total",
    ),
    Case(
        "precision_recall",
        WRONG,
        "recall-by-columns-too",
        lambda: (RIGHT_GUESSES / COLUMN_TOTALS, RIGHT_GUESSES / COLUMN_TOTALS),
        r"`recall` holds the precision: .*ROW total",
    ),
    Case(
        "precision_recall",
        WRONG,
        "divided-by-the-total",
        lambda: (RIGHT_GUESSES / CONFUSION.sum(), RIGHT_GUESSES / CONFUSION.sum()),
        r"`precision` divides by the number of ALL digits",
    ),
    Case(
        "precision_recall",
        WRONG,
        "integer-division",
        lambda: (RIGHT_GUESSES // COLUMN_TOTALS, RIGHT_GUESSES // ROW_TOTALS),
        r"`precision` has dtype torch\.int64: `//` .* Divide with `/`",
    ),
    Case(
        "precision_recall",
        WRONG,
        "classes-from-one",
        lambda: precision_recall_by_loop(first_class=1),
        r"`precision` has 3 values, one short: the classes are 0 to 3",
    ),
    Case(
        "precision_recall",
        WRONG,
        "next-class-total",
        lambda: (
            RIGHT_GUESSES / COLUMN_TOTALS.roll(1),
            RIGHT_GUESSES / ROW_TOTALS,
        ),
        r"`precision` is not the diagonal count divided by the COLUMN total",
    ),
    Case(
        "precision_recall",
        WRONG,
        "shifted-by-one",
        lambda: ((RIGHT_GUESSES / COLUMN_TOTALS).roll(1), RIGHT_GUESSES / ROW_TOTALS),
        r"`precision` is shifted by one class",
    ),
    Case(
        "precision_recall",
        WRONG,
        "percent",
        lambda: (100 * RIGHT_GUESSES / COLUMN_TOTALS, 100 * RIGHT_GUESSES / ROW_TOTALS),
        r"`precision` is in percent",
    ),
    Case(
        "precision_recall",
        WRONG,
        "one-number",
        lambda: ((RIGHT_GUESSES / COLUMN_TOTALS).mean(), RIGHT_GUESSES / ROW_TOTALS),
        r"`precision` has shape \(\): it needs one number per class, shape \(4,\)",
    ),
    Case("precision_recall", RIGHT, "loop-of-floats", precision_recall_by_loop),
    Case(
        "precision_recall",
        RIGHT,
        "diag-and-transpose",
        lambda: (
            CONFUSION.diag().float() / CONFUSION.T.sum(dim=1),
            CONFUSION.diag().float() / CONFUSION.sum(dim=1).float(),
        ),
    ),
    Case(
        "precision_recall",
        RIGHT,
        "numpy",
        lambda: (
            np.diag(CONFUSION.numpy()) / CONFUSION.numpy().sum(axis=0),
            np.diag(CONFUSION.numpy()) / CONFUSION.numpy().sum(axis=1),
        ),
    ),
]

CASES = (
    BATCH + ROW_NORMALISED + DIGIT_BATCH + SHARES_MEMORY + GRADIENT + TRAIN_STEP + PRECISION_RECALL
)
EXERCISES = tuple(CONTEXT)
run = answer_then_context(CONTEXT)
