"""Lab 4's checks: each rejects a typical wrong answer with its specific message and accepts
the solution."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.labs.solutions import solution
from workshop_labs import lab04
from workshop_labs.checks import ExerciseNotSolved

DEVICE = torch.device("cpu")
LOW = lab04.amp_dtype(DEVICE)

# ----------------------------------------------------------------------------------------------
# Exercise 1: predict_amp
# ----------------------------------------------------------------------------------------------


def predict_amp_with(*edits):
    """The lab's solution, with one typical mistake."""
    return solution(4, "predict_amp", edits=edits, low_precision=LOW)


def predict_amp_converts_model(model, inputs):
    return model.to(LOW)(inputs.to(LOW))


def test_predict_amp_accepts_the_solution(capsys):
    lab04.check_predict_amp(predict_amp_with(), DEVICE)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (None, "is None"),
        (
            predict_amp_with((", torch.autocast(inputs.device.type, dtype=low_precision)", "")),
            "Linear ran in float32",
        ),
        (
            predict_amp_with(("inputs.device.type", '"cuda"'), ("low_precision", "torch.float16")),
            "device_type must be the device",
        ),
        (
            predict_amp_with(("low_precision", "torch.float16")),
            "Linear ran in float16 but this exercise needs bfloat16",
        ),
        (predict_amp_converts_model, "do not convert the model"),
        (
            predict_amp_with(("torch.inference_mode(), ", "")),
            "autograd recorded the forward pass",
        ),
    ],
    ids=["none", "no-autocast", "wrong-device-type", "float16", "converts-model", "with-grad"],
)
@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_predict_amp_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab04.check_predict_amp(wrong, DEVICE)


# ----------------------------------------------------------------------------------------------
# Exercise 2: train_step_bf16
# ----------------------------------------------------------------------------------------------


def train_step_bf16_with(*edits):
    """The lab's solution, with one typical mistake."""
    return solution(4, "train_step_bf16", edits=edits)


def bf16_model_converted(model, optimizer, loss_fn, inputs, targets):
    model.to(torch.bfloat16)
    optimizer.zero_grad()
    loss = loss_fn(model(inputs.to(torch.bfloat16)), targets)
    loss.backward()
    optimizer.step()
    return loss


def test_train_step_bf16_accepts_the_solution(capsys):
    lab04.check_train_step_bf16(train_step_bf16_with(), DEVICE)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (None, "is None"),
        (
            # the loss line moved out of the `with` block
            train_step_bf16_with(("\n        loss = ", "\n    loss = ")),
            "loss was computed outside the autocast block",
        ),
        (
            train_step_bf16_with(("torch.bfloat16", "torch.float16")),
            "Linear ran in float16 but this exercise needs bfloat16",
        ),
        (train_step_bf16_with(("optimizer.step()", "")), "optimizer.step\\(\\) was never called"),
        (train_step_bf16_with(("optimizer.zero_grad()", "")), "zero_grad\\(\\) was never called"),
        (bf16_model_converted, "do not convert the model"),
    ],
    ids=["none", "loss-outside", "float16", "no-step", "no-zero-grad", "model-converted"],
)
def test_train_step_bf16_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab04.check_train_step_bf16(wrong, DEVICE)


# ----------------------------------------------------------------------------------------------
# Exercise 3: train_step_fp16 with a GradScaler
# ----------------------------------------------------------------------------------------------


def train_step_fp16_with(*edits):
    """The lab's solution, with one typical mistake (or one harmless addition)."""
    return solution(4, "train_step_fp16", edits=edits)


SCALED_BACKWARD = "scaler.scale(loss).backward()"
SCALER_STEP = "scaler.step(optimizer)"


def test_train_step_fp16_accepts_the_solutions(capsys):
    lab04.check_train_step_fp16(train_step_fp16_with(), DEVICE)
    unscale_then_clip = (
        "scaler.unscale_(optimizer); nn.utils.clip_grad_norm_(model.parameters(), 1.0)"
    )
    lab04.check_train_step_fp16(
        train_step_fp16_with((SCALER_STEP, f"{unscale_then_clip}; {SCALER_STEP}")), DEVICE
    )
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (None, "is None"),
        (
            train_step_fp16_with((SCALED_BACKWARD, "scaler.scale(loss); loss.backward()")),
            "backward\\(\\) ran on the unscaled loss",
        ),
        (
            train_step_fp16_with(
                (SCALED_BACKWARD, "loss.backward()"),
                (SCALER_STEP, "optimizer.step()"),
                ("scaler.update()", ""),
            ),
            "scaler.scale\\(loss\\) was never called",
        ),
        (
            train_step_fp16_with((SCALER_STEP, "optimizer.step()")),
            "optimizer.step\\(\\) was called directly",
        ),
        (
            train_step_fp16_with(
                (SCALER_STEP, ""), ("scaler.update()", f"scaler.update(); {SCALER_STEP}")
            ),
            "scaler.update\\(\\) ran before scaler.step",
        ),
        (train_step_fp16_with(("scaler.update()", "")), "scaler.update\\(\\) was never called"),
        (
            # the model runs inside the `with` block, the loss after it
            train_step_fp16_with(
                (
                    "loss = loss_fn(model(inputs), targets)",
                    "outputs = model(inputs)\n    loss = loss_fn(outputs, targets)",
                )
            ),
            "loss was computed outside the autocast block",
        ),
        (
            train_step_fp16_with(("torch.float16", "torch.bfloat16")),
            "Linear ran in bfloat16 but this exercise needs float16",
        ),
        (
            train_step_fp16_with(
                ("optimizer.zero_grad()", ""),
                (SCALED_BACKWARD, f"{SCALED_BACKWARD}; optimizer.zero_grad()"),
            ),
            "zero_grad\\(\\) ran after backward",
        ),
    ],
    ids=[
        "none",
        "unscaled-backward",
        "no-scaler",
        "optimizer-step",
        "update-before-step",
        "no-update",
        "loss-outside",
        "bfloat16",
        "zero-grad-after-backward",
    ],
)
def test_train_step_fp16_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab04.check_train_step_fp16(wrong, DEVICE)


# ----------------------------------------------------------------------------------------------
# The lab's measurements and tables
# ----------------------------------------------------------------------------------------------


def test_dtype_table_records_autocast_choices():
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3))
    rows = lab04.dtype_table(model, torch.rand(2, 8), torch.tensor([0, 2]), dtype=torch.bfloat16)
    by_step = {row["step"]: row for row in rows}
    assert by_step["layer 0"]["output"] == "bfloat16"
    assert by_step["logits → loss"]["output"] == "float32"


def test_dtype_table_shows_the_cpu_lists():
    """On the CPU, exp, log, softmax and sum are on no list: they follow their bf16 input."""
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3))
    rows = lab04.dtype_table(model, torch.rand(2, 8), torch.tensor([0, 2]), dtype=torch.bfloat16)
    outputs = {row["op"]: row["output"] for row in rows}
    assert {op: outputs[op] for op in ("softmax", "sum", "exp", "log")} == dict.fromkeys(
        ("softmax", "sum", "exp", "log"), "bfloat16"
    )
    assert outputs["cross_entropy"] == "float32"


def test_saved_for_backward_counts_activations_and_autocast_weight_copies():
    width, batch = 64, 32
    model = nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 10))
    inputs, targets = torch.rand(batch, 8), torch.randint(0, 10, (batch,))
    fp32 = lab04.saved_for_backward(model, inputs, targets, dtype=None)
    amp = lab04.saved_for_backward(model, inputs, targets, dtype=torch.bfloat16)
    assert fp32[lab04.WEIGHT_COPIES] == 0, "float32 saves references to the weights, no copies"
    # only the second layer's copy is kept: the first layer's input needs no gradient, so its
    # backward never multiplies by that weight
    assert amp[lab04.WEIGHT_COPIES] == 2 * model[2].weight.numel()
    # the ReLU output (batch × width) is what both layers share; 2 bytes instead of 4
    relu_output = batch * width
    assert fp32[lab04.ACTIVATIONS] - amp[lab04.ACTIVATIONS] >= 2 * relu_output
    assert amp[lab04.ACTIVATIONS] < 0.75 * fp32[lab04.ACTIVATIONS]


@pytest.mark.parametrize(("speedup", "word"), [(2.0, "faster"), (0.5, "slower"), (1.0, "about")])
def test_verdict_describes_the_measurement(speedup, word):
    sentence = lab04.verdict(DEVICE, speedup=speedup, memory_ratio=0.5)
    assert f"{speedup:.2f}×" in sentence and word in sentence
