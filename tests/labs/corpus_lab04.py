"""Lab 4's answer corpus: for every exercise, the starter, the published solution, answers a
beginner writes that are wrong (each with the reason its check must give) and other answers
that are right. ``test_check_corpus.py`` runs every case through its check."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.labs.corpus import REFERENCE, RIGHT, STARTER, WRONG, Case, answer_then_context
from tests.labs.solutions import solution, starter

CPU = torch.device("cpu")
LOW = torch.bfloat16  # the lab's low_precision on the CPU

# The check's arguments after the answer, per exercise.
CONTEXT = {
    "predict_amp": (CPU, LOW),
    "train_step_bf16": (CPU,),
    "train_step_fp16": (CPU,),
    "train_step_fp16_clipped": (CPU,),
}

# ----------------------------------------------------------------------------------------------
# Exercise 1: predict_amp
# ----------------------------------------------------------------------------------------------


def predict_without_autocast(model, inputs):
    with torch.inference_mode():
        return model(inputs)


def predict_in_float16(model, inputs):
    with torch.inference_mode(), torch.autocast(inputs.device.type, dtype=torch.float16):
        return model(inputs)


def predict_with_autograd(model, inputs):
    with torch.autocast(inputs.device.type, dtype=LOW):
        return model(inputs)


def predict_autocast_without_device_type(model, inputs):
    with torch.inference_mode(), torch.autocast(dtype=LOW):
        return model(inputs)


def predict_under_no_grad(model, inputs):
    # no_grad records no graph either: as right as inference_mode for this check
    with torch.no_grad(), torch.autocast(device_type=inputs.device.type, dtype=LOW):
        scores = model(inputs)
    return scores


def predict_nested_blocks(model, inputs):
    with torch.inference_mode():
        with torch.autocast(device_type=inputs.device.type, dtype=LOW):
            return model(inputs)


# ----------------------------------------------------------------------------------------------
# Exercise 2: train_step_bf16
# ----------------------------------------------------------------------------------------------


def bf16_backward_and_step_inside(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16):
        outputs = model(inputs)
        loss = loss_fn(outputs, targets)
        loss.backward()
        optimizer.step()
    return loss


def bf16_step_inside(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16):
        loss = loss_fn(model(inputs), targets)
    loss.backward()
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16):
        optimizer.step()
    return loss


def bf16_zero_grad_before_step(model, optimizer, loss_fn, inputs, targets):
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16):
        loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss


def bf16_step_before_backward(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16):
        loss = loss_fn(model(inputs), targets)
    optimizer.step()
    loss.backward()
    return loss


def bf16_loss_outside(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16):
        outputs = model(inputs)
    loss = loss_fn(outputs, targets)
    loss.backward()
    optimizer.step()
    return loss


def bf16_no_backward(model, optimizer, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16):
        loss = loss_fn(model(inputs), targets)
    optimizer.step()
    return loss


def bf16_zero_grad_at_the_end(model, optimizer, loss_fn, inputs, targets):
    with torch.autocast(device_type=inputs.device.type, dtype=torch.bfloat16):
        loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def bf16_default_cpu_dtype(model, optimizer, loss_fn, inputs, targets):
    # the CPU's autocast runs in bfloat16 when no dtype is given
    optimizer.zero_grad()
    with torch.autocast("cpu"):
        loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss


# ----------------------------------------------------------------------------------------------
# Exercise 3: train_step_fp16
# ----------------------------------------------------------------------------------------------


def fp16_backward_inside(model, optimizer, scaler, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
        scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss


def fp16_everything_inside(model, optimizer, scaler, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return loss


def fp16_no_zero_grad(model, optimizer, scaler, loss_fn, inputs, targets):
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss


def fp16_no_update(model, optimizer, scaler, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    return loss


def fp16_scaled_loss_named(model, optimizer, scaler, loss_fn, inputs, targets):
    optimizer.zero_grad()
    with torch.autocast(device_type=inputs.device.type, dtype=torch.float16):
        outputs = model(inputs)
        loss = loss_fn(outputs, targets)
    scaled_loss = scaler.scale(loss)
    scaled_loss.backward()
    scaler.step(optimizer)
    scaler.update()
    return loss


# ----------------------------------------------------------------------------------------------
# Exercise 4: train_step_fp16_clipped
# ----------------------------------------------------------------------------------------------


def clipped_inside_autocast(model, optimizer, scaler, loss_fn, inputs, targets, max_norm):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        scaler.step(optimizer)
        scaler.update()
    return loss


def clipped_without_unscale(model, optimizer, scaler, loss_fn, inputs, targets, max_norm):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
    scaler.scale(loss).backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    scaler.step(optimizer)
    scaler.update()
    return loss


def clipped_by_value(model, optimizer, scaler, loss_fn, inputs, targets, max_norm):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    nn.utils.clip_grad_value_(model.parameters(), max_norm)
    scaler.step(optimizer)
    scaler.update()
    return loss


def clipped_no_update(model, optimizer, scaler, loss_fn, inputs, targets, max_norm):
    optimizer.zero_grad()
    with torch.autocast(inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    scaler.step(optimizer)
    return loss


def clipped_optimizer_params(model, optimizer, scaler, loss_fn, inputs, targets, max_norm):
    optimizer.zero_grad()
    with torch.autocast(device_type=inputs.device.type, dtype=torch.float16):
        loss = loss_fn(model(inputs), targets)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(params, max_norm=max_norm)
    scaler.step(optimizer)
    scaler.update()
    return loss


INSIDE = "ran inside the autocast block"

CASES = [
    # Exercise 1
    Case(
        "predict_amp",
        STARTER,
        "starter",
        lambda: starter(4, "predict_amp", low_precision=LOW),
        "do not convert the model",
    ),
    Case(
        "predict_amp",
        REFERENCE,
        "solution",
        lambda: solution(4, "predict_amp", low_precision=LOW),
    ),
    Case("predict_amp", WRONG, "no-autocast", lambda: predict_without_autocast, "ran in float32"),
    Case(
        "predict_amp", WRONG, "float16", lambda: predict_in_float16, "float16 but .* needs bfloat16"
    ),
    Case(
        "predict_amp",
        WRONG,
        "no-inference-mode",
        lambda: predict_with_autograd,
        "autograd recorded the forward pass",
    ),
    Case(
        "predict_amp",
        WRONG,
        "autocast-without-device-type",
        lambda: predict_autocast_without_device_type,
        "predict_amp raised TypeError: .*device_type",
    ),
    Case("predict_amp", RIGHT, "no-grad", lambda: predict_under_no_grad),
    Case("predict_amp", RIGHT, "nested-blocks", lambda: predict_nested_blocks),
    # Exercise 2
    Case(
        "train_step_bf16",
        STARTER,
        "starter",
        lambda: starter(4, "train_step_bf16"),
        "Linear ran in float32",
    ),
    Case("train_step_bf16", REFERENCE, "solution", lambda: solution(4, "train_step_bf16")),
    Case(
        "train_step_bf16",
        WRONG,
        "backward-and-step-inside",
        lambda: bf16_backward_and_step_inside,
        rf"backward\(\) and optimizer.step\(\) {INSIDE}",
    ),
    Case(
        "train_step_bf16",
        WRONG,
        "step-inside",
        lambda: bf16_step_inside,
        rf"^optimizer.step\(\) {INSIDE}",
    ),
    Case(
        "train_step_bf16",
        WRONG,
        "zero-grad-between-backward-and-step",
        lambda: bf16_zero_grad_before_step,
        r"zero_grad\(\) ran between backward\(\) and step\(\)",
    ),
    Case(
        "train_step_bf16",
        WRONG,
        "step-before-backward",
        lambda: bf16_step_before_backward,
        r"optimizer.step\(\) ran before loss.backward\(\)",
    ),
    Case(
        "train_step_bf16",
        WRONG,
        "loss-outside",
        lambda: bf16_loss_outside,
        "loss was computed outside the autocast block",
    ),
    Case(
        "train_step_bf16",
        WRONG,
        "no-backward",
        lambda: bf16_no_backward,
        r"backward\(\) never reached the loss",
    ),
    Case("train_step_bf16", RIGHT, "zero-grad-at-the-end", lambda: bf16_zero_grad_at_the_end),
    Case("train_step_bf16", RIGHT, "default-cpu-dtype", lambda: bf16_default_cpu_dtype),
    # Exercise 3
    Case(
        "train_step_fp16",
        STARTER,
        "starter",
        lambda: starter(4, "train_step_fp16"),
        r"scaler.scale\(loss\) was never called",
    ),
    Case("train_step_fp16", REFERENCE, "solution", lambda: solution(4, "train_step_fp16")),
    Case(
        "train_step_fp16",
        WRONG,
        "backward-inside",
        lambda: fp16_backward_inside,
        rf"^backward\(\) {INSIDE}",
    ),
    Case(
        "train_step_fp16",
        WRONG,
        "everything-inside",
        lambda: fp16_everything_inside,
        rf"backward\(\) and scaler.step\(optimizer\) and scaler.update\(\) {INSIDE}",
    ),
    Case(
        "train_step_fp16",
        WRONG,
        "no-zero-grad",
        lambda: fp16_no_zero_grad,
        r"zero_grad\(\) was never called",
    ),
    Case(
        "train_step_fp16",
        WRONG,
        "no-update",
        lambda: fp16_no_update,
        r"scaler.update\(\) was never called",
    ),
    Case("train_step_fp16", RIGHT, "scaled-loss-named", lambda: fp16_scaled_loss_named),
    # Exercise 4
    Case(
        "train_step_fp16_clipped",
        STARTER,
        "starter",
        lambda: starter(4, "train_step_fp16_clipped"),
        "above max_norm=.*: they were not clipped",
    ),
    Case(
        "train_step_fp16_clipped",
        REFERENCE,
        "solution",
        lambda: solution(4, "train_step_fp16_clipped"),
    ),
    Case(
        "train_step_fp16_clipped",
        WRONG,
        "everything-inside",
        lambda: clipped_inside_autocast,
        rf"^backward\(\) and scaler.step\(optimizer\) and scaler.update\(\) {INSIDE}",
    ),
    Case(
        "train_step_fp16_clipped",
        WRONG,
        "no-unscale",
        lambda: clipped_without_unscale,
        "clip_grad_norm_ clipped the scaled gradients",
    ),
    Case(
        "train_step_fp16_clipped",
        WRONG,
        "clip-by-value",
        lambda: clipped_by_value,
        "clip_grad_value_ cut each number",
    ),
    Case(
        "train_step_fp16_clipped",
        WRONG,
        "no-update",
        lambda: clipped_no_update,
        r"scaler.update\(\) was never called",
    ),
    Case(
        "train_step_fp16_clipped",
        RIGHT,
        "clip-the-optimizers-params",
        lambda: clipped_optimizer_params,
    ),
]
EXERCISES = tuple(CONTEXT)
run = answer_then_context(CONTEXT)
# Without a GPU, torch warns that CUDA is not available; the checks run on the CPU all the same.
MARKS = (pytest.mark.filterwarnings("ignore:CUDA is not available"),)
