"""Lab 4's checks: each rejects a typical wrong answer with its specific message and accepts
the solution."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workshop_labs import lab04
from workshop_labs.checks import ExerciseNotSolved

DEVICE = torch.device("cpu")
LOW = lab04.amp_dtype(DEVICE)

# ----------------------------------------------------------------------------------------------
# Exercise 1: predict_amp
# ----------------------------------------------------------------------------------------------


def predict_amp_solution(model, inputs):
    with torch.inference_mode(), torch.autocast(inputs.device.type, dtype=LOW):
        return model(inputs)


def predict_amp_no_autocast(model, inputs):
    with torch.inference_mode():
        return model(inputs)


def predict_amp_wrong_device_type(model, inputs):
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
        return model(inputs)


def predict_amp_float16(model, inputs):
    with torch.inference_mode(), torch.autocast(inputs.device.type, dtype=torch.float16):
        return model(inputs)


def predict_amp_converts_model(model, inputs):
    return model.to(LOW)(inputs.to(LOW))


def predict_amp_with_grad(model, inputs):
    with torch.autocast(inputs.device.type, dtype=LOW):
        return model(inputs)


def test_predict_amp_accepts_the_solution(capsys):
    lab04.check_predict_amp(predict_amp_solution, DEVICE)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (None, "is None"),
        (predict_amp_no_autocast, "Linear ran in float32"),
        (predict_amp_wrong_device_type, "device_type must be the device"),
        (predict_amp_float16, "Linear ran in float16 but this exercise needs bfloat16"),
        (predict_amp_converts_model, "do not convert the model"),
        (predict_amp_with_grad, "autograd recorded the forward pass"),
    ],
)
@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_predict_amp_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab04.check_predict_amp(wrong, DEVICE)


# ----------------------------------------------------------------------------------------------
# Exercise 2: train_step_bf16
# ----------------------------------------------------------------------------------------------


def bf16_solution(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16):
        loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss


def bf16_loss_outside(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16):
        outputs = model(inputs)
    loss = loss_fn(outputs, targets)
    loss.backward()
    optimizer.step()
    return loss


def bf16_float16(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss


def bf16_no_step(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16):
        loss = loss_fn(model(inputs), targets)
    loss.backward()
    return loss


def bf16_no_zero_grad(model, optimizer, loss_fn, inputs, targets):
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16):
        loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss


def bf16_model_converted(model, optimizer, loss_fn, inputs, targets):
    model.to(torch.bfloat16)
    optimizer.zero_grad()
    loss = loss_fn(model(inputs.to(torch.bfloat16)), targets)
    loss.backward()
    optimizer.step()
    return loss


def test_train_step_bf16_accepts_the_solution(capsys):
    lab04.check_train_step_bf16(bf16_solution, DEVICE)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (None, "is None"),
        (bf16_loss_outside, "loss was computed outside the autocast block"),
        (bf16_float16, "Linear ran in float16 but this exercise needs bfloat16"),
        (bf16_no_step, "optimizer.step\\(\\) was never called"),
        (bf16_no_zero_grad, "zero_grad\\(\\) was never called"),
        (bf16_model_converted, "do not convert the model"),
    ],
)
def test_train_step_bf16_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab04.check_train_step_bf16(wrong, DEVICE)


# ----------------------------------------------------------------------------------------------
# Exercise 3: train_step_fp16 with a GradScaler
# ----------------------------------------------------------------------------------------------


def fp16_solution(model, optimizer, scaler, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss


def fp16_with_unscale_for_clipping(model, optimizer, scaler, loss_fn, inputs, targets):
    """Also right: unscale_ before clipping, then step."""
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
    return loss


def fp16_unscaled_backward(model, optimizer, scaler, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
    scaler.scale(loss)
    loss.backward()
    scaler.step(optimizer)
    scaler.update()
    return loss


def fp16_no_scaler(model, optimizer, scaler, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss


def fp16_optimizer_step(model, optimizer, scaler, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
    scaler.scale(loss).backward()
    optimizer.step()
    scaler.update()
    return loss


def fp16_update_before_step(model, optimizer, scaler, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
    scaler.scale(loss).backward()
    scaler.update()
    scaler.step(optimizer)
    return loss


def fp16_no_update(model, optimizer, scaler, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    return loss


def fp16_loss_outside(model, optimizer, scaler, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        outputs = model(inputs)
    loss = loss_fn(outputs, targets)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss


def fp16_bfloat16(model, optimizer, scaler, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16):
        loss = loss_fn(model(inputs), targets)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss


def fp16_zero_grad_after_backward(model, optimizer, scaler, loss_fn, inputs, targets):
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
    scaler.scale(loss).backward()
    optimizer.zero_grad()
    scaler.step(optimizer)
    scaler.update()
    return loss


def test_train_step_fp16_accepts_the_solutions(capsys):
    lab04.check_train_step_fp16(fp16_solution, DEVICE)
    lab04.check_train_step_fp16(fp16_with_unscale_for_clipping, DEVICE)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (None, "is None"),
        (fp16_unscaled_backward, "backward\\(\\) ran on the unscaled loss"),
        (fp16_no_scaler, "scaler.scale\\(loss\\) was never called"),
        (fp16_optimizer_step, "optimizer.step\\(\\) was called directly"),
        (fp16_update_before_step, "scaler.update\\(\\) ran before scaler.step"),
        (fp16_no_update, "scaler.update\\(\\) was never called"),
        (fp16_loss_outside, "loss was computed outside the autocast block"),
        (fp16_bfloat16, "Linear ran in bfloat16 but this exercise needs float16"),
        (fp16_zero_grad_after_backward, "zero_grad\\(\\) ran after backward"),
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


def test_activation_memory_halves_under_autocast():
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64))
    inputs = torch.rand(4, 8)
    fp32 = lab04.activation_bytes(model, inputs, dtype=None)
    amp = lab04.activation_bytes(model, inputs, dtype=torch.bfloat16)
    assert fp32 == 3 * 4 * 64 * 4
    assert amp == fp32 // 2


@pytest.mark.parametrize(("speedup", "word"), [(2.0, "faster"), (0.5, "slower"), (1.0, "about")])
def test_verdict_describes_the_measurement(speedup, word):
    sentence = lab04.verdict(DEVICE, speedup=speedup, memory_ratio=0.5)
    assert f"{speedup:.2f}×" in sentence and word in sentence
