"""Lab 4's answer corpus: for every exercise, the starter, the published solution, answers a
beginner writes that are wrong (each with the reason its check must give) and other answers
that are right. ``test_check_corpus.py`` runs every case through its check."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from tests.labs.corpus import REFERENCE, RIGHT, STARTER, WRONG, Case, answer_then_context
from tests.labs.solutions import solution, starter
from workshop_labs import timing

CPU = torch.device("cpu")
LOW = torch.bfloat16  # the lab's low_precision on the CPU
# What the lab's cells hold when Exercise 6 runs: the device, and section 6's repeats.
device, repeats = CPU, 10
# Section 7's measured cases, as the check of Exercise 7 gets them (milliseconds).
MEASURED = {
    "wide MLP (2048 units)": ((20.0, 21.0, 22.0, 20.5, 21.5), (10.0, 11.0, 10.5, 12.0, 11.0)),
    "tiny MLP (16 units)": ((1.0, 1.1, 1.0, 1.05, 1.0), (2.0, 2.1, 2.0, 2.2, 2.05)),
    "element-wise op": ((3.0, 3.3, 2.9, 3.1, 3.2), (3.1, 3.0, 3.2, 2.9, 3.3)),
}

# The check's arguments after the answer, per exercise.
CONTEXT = {
    "stored_as": (),
    "predict_amp": (CPU, LOW),
    "train_step_bf16": (CPU,),
    "train_step_fp16": (CPU,),
    "train_step_fp16_clipped": (CPU,),
    "time_both": (),
    "amp_gains": (MEASURED,),
}

# ----------------------------------------------------------------------------------------------
# Exercise 1: stored_as
# ----------------------------------------------------------------------------------------------


def stored_as_tensor(value, dtype):
    return torch.tensor(value).to(dtype)


def stored_as_always_half(value, dtype):
    return torch.tensor(value).half().item()


def stored_as_float_to(value, dtype):
    return value.to(dtype)


def stored_as_in_float32(value, dtype):
    return torch.tensor(value, dtype=torch.float32).item()


def stored_as_made_in_dtype(value, dtype):
    return torch.tensor(value, dtype=dtype).item()


def stored_as_full_then_float(value, dtype):
    return float(torch.full((), value).to(dtype))


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


# ----------------------------------------------------------------------------------------------
# Exercise 6: time_both
# ----------------------------------------------------------------------------------------------


def time_both_made_up(before, after):
    return [50.0] * 6, [5.0] * 6


def time_both_no_warmup(before, after):
    before_runs = timing.measure(before, device=device, warmup=0, repeats=repeats).runs
    after_runs = timing.measure(after, device=device, warmup=0, repeats=repeats).runs
    return before_runs, after_runs


def time_both_swapped(before, after):
    before_runs = timing.measure(before, device=device, repeats=repeats).runs
    after_runs = timing.measure(after, device=device, repeats=repeats).runs
    return after_runs, before_runs


def time_both_in_seconds(before, after):
    def runs_of(fn):
        fn()  # warm-up
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - start)
        return runs

    return runs_of(before), runs_of(after)


def time_both_measurements(before, after):
    return timing.measure(before, device=device), timing.measure(after, device=device)


def time_both_means(before, after):
    before_ms = timing.measure(before, device=device, repeats=repeats).mean_ms
    after_ms = timing.measure(after, device=device, repeats=repeats).mean_ms
    return before_ms, after_ms


def time_both_by_hand(before, after):
    def runs_of(fn):
        for _ in range(3):
            fn()
        runs = []
        for _ in range(repeats):
            timing.sync(device)
            start = time.perf_counter()
            fn()
            timing.sync(device)
            runs.append((time.perf_counter() - start) * 1000)
        return runs

    return runs_of(before), runs_of(after)


def time_both_repeated_means(before, after):
    # five separate measurements of each, every one warmed up: five runs a side
    return tuple(
        [timing.measure(fn, device=device, warmup=1, repeats=2).mean_ms for _ in range(5)]
        for fn in (before, after)
    )


# ----------------------------------------------------------------------------------------------
# Exercise 7: amp_gains
# ----------------------------------------------------------------------------------------------


def gains_above_ten_percent(cases):
    return [case for case, runs in cases.items() if timing.speedup(*runs).ratio > 1.1]


def gains_by_means(cases):
    return [
        case
        for case, (float32_runs, amp_runs) in cases.items()
        if sum(float32_runs) / len(float32_runs) > 1.1 * sum(amp_runs) / len(amp_runs)
    ]


def gains_swapped(cases):
    gains = []
    for case, (float32_runs, amp_runs) in cases.items():
        if timing.speedup(amp_runs, float32_runs).direction == timing.FASTER:
            gains.append(case)
    return gains


def gains_not_noise(cases):
    return [case for case, runs in cases.items() if not timing.speedup(*runs).within_noise]


def gains_by_quartiles(cases):
    # the slowest AMP quarter still beats float32's fastest: the middle halves do not overlap
    return [case for case, runs in cases.items() if timing.speedup(*runs).low > 1]


def gains_by_direction_name(cases):
    return {case for case, runs in cases.items() if timing.speedup(*runs).direction == "faster"}


INSIDE = "ran inside the autocast block"

CASES = [
    # Exercise 1
    Case(
        "stored_as",
        STARTER,
        "starter",
        lambda: starter(4, "stored_as"),
        "returned 70000, the float32 value",
    ),
    Case("stored_as", REFERENCE, "solution", lambda: solution(4, "stored_as")),
    Case(
        "stored_as", WRONG, "tensor", lambda: stored_as_tensor, r"returned a tensor: .*\.item\(\)"
    ),
    Case(
        "stored_as",
        WRONG,
        "always-half",
        lambda: stored_as_always_half,
        "what float16 stores: convert to the dtype you were given",
    ),
    Case(
        "stored_as",
        WRONG,
        "float-has-no-to",
        lambda: stored_as_float_to,
        r"stored_as\(70000, torch.float16\) raised AttributeError",
    ),
    Case(
        "stored_as",
        WRONG,
        "float32",
        lambda: stored_as_in_float32,
        "the float32 value: make a tensor of the value, convert it",
    ),
    Case("stored_as", RIGHT, "made-in-dtype", lambda: stored_as_made_in_dtype),
    Case("stored_as", RIGHT, "full-then-float", lambda: stored_as_full_then_float),
    # Exercise 2
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
    # Exercise 6
    Case(
        "time_both",
        STARTER,
        "starter",
        lambda: starter(4, "time_both", device=CPU),
        r"before_runs holds 1 run\(s\): a verdict needs repeated runs",
    ),
    Case(
        "time_both",
        REFERENCE,
        "solution",
        lambda: solution(4, "time_both", device=CPU, repeats=repeats),
    ),
    Case("time_both", WRONG, "made-up", lambda: time_both_made_up, "a function that never ran"),
    Case("time_both", WRONG, "no-warmup", lambda: time_both_no_warmup, "warm up first"),
    Case("time_both", WRONG, "swapped", lambda: time_both_swapped, "before_runs holds after"),
    Case("time_both", WRONG, "seconds", lambda: time_both_in_seconds, "they are in seconds"),
    Case(
        "time_both",
        WRONG,
        "measurements",
        lambda: time_both_measurements,
        r"is a Measurement: return its \.runs",
    ),
    Case("time_both", WRONG, "means", lambda: time_both_means, "is a float, not the list of runs"),
    Case("time_both", RIGHT, "by-hand", lambda: time_both_by_hand),
    Case("time_both", RIGHT, "repeated-means", lambda: time_both_repeated_means),
    # Exercise 7
    Case(
        "amp_gains",
        STARTER,
        "starter",
        lambda: starter(4, "amp_gains"),
        "middle halves of the runs overlap, so it is within the noise",
    ),
    Case("amp_gains", REFERENCE, "solution", lambda: solution(4, "amp_gains")),
    Case(
        "amp_gains",
        WRONG,
        "above-ten-percent",
        lambda: gains_above_ten_percent,
        "within the noise, not a gain",
    ),
    Case("amp_gains", WRONG, "means", lambda: gains_by_means, "not means"),
    Case("amp_gains", WRONG, "swapped", lambda: gains_swapped, "the wrong way round"),
    Case("amp_gains", WRONG, "not-noise", lambda: gains_not_noise, "is no gain"),
    Case("amp_gains", RIGHT, "quartiles", lambda: gains_by_quartiles),
    Case("amp_gains", RIGHT, "direction-name", lambda: gains_by_direction_name),
]
EXERCISES = tuple(CONTEXT)
run = answer_then_context(CONTEXT)
# Without a GPU, torch warns that CUDA is not available; the checks run on the CPU all the same.
MARKS = (pytest.mark.filterwarnings("ignore:CUDA is not available"),)
