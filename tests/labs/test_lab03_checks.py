"""Lab 3's checks: each rejects a typical wrong answer with its specific message and accepts
the solution."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn
from torch.profiler import profile, record_function

from workshop_labs import lab03
from workshop_labs.checks import ExerciseNotSolved

# ----------------------------------------------------------------------------------------------
# Exercise 1: time_it
# ----------------------------------------------------------------------------------------------


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_it_solution(fn, device, warmup=3, repeats=10):
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) * 1000 / repeats


def time_it_per_call_sync(fn, device, warmup=3, repeats=10):
    """Also right: synchronize around every single call."""
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        runs.append((time.perf_counter() - start) * 1000)
    return sum(runs) / len(runs)


def time_it_no_sync(fn, device, warmup=3, repeats=10):
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) * 1000 / repeats


def time_it_no_warmup(fn, device, warmup=3, repeats=10):
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) * 1000 / repeats


def time_it_no_sync_after_warmup(fn, device, warmup=3, repeats=10):
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) * 1000 / repeats


def time_it_total(fn, device, warmup=3, repeats=10):
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) * 1000


def time_it_seconds(fn, device, warmup=3, repeats=10):
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def time_it_always_sync(fn, device, warmup=3, repeats=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1000 / repeats


def test_time_it_accepts_the_solutions(capsys):
    lab03.check_time_it(time_it_solution)
    lab03.check_time_it(time_it_per_call_sync)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (None, "is None"),
        (time_it_no_sync, "CUDA is asynchronous"),
        (time_it_no_warmup, "no warm-up"),
        (time_it_no_sync_after_warmup, "after the warm-up, before starting the clock"),
        (time_it_total, "total of all repeats"),
        (time_it_seconds, "that is seconds"),
        (time_it_always_sync, "for a CPU device"),
    ],
)
def test_time_it_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab03.check_time_it(wrong)


def test_simulated_gpu_is_asynchronous():
    gpu = lab03.SimulatedGPU(kernel_ms=20, first_call_ms=20)
    start = time.perf_counter()
    gpu.launch()
    queued = time.perf_counter() - start
    gpu.synchronize()
    finished = time.perf_counter() - start
    assert queued < 0.005 < 0.015 < finished


# ----------------------------------------------------------------------------------------------
# Exercises 2 and 3: the profiler
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).eval()


@pytest.fixture(scope="module")
def prof(model):
    inputs = torch.rand(16, 64)
    with profile() as recording, torch.inference_mode():
        for row in inputs:
            model(row[None])
    return recording


def test_top_op_accepts_the_solution(prof, capsys):
    top_op = max(prof.key_averages(), key=lambda event: event.self_cpu_time_total).key
    lab03.check_top_op(prof, top_op)
    assert "✅" in capsys.readouterr().out


def test_top_op_rejects_sorting_by_total_time(prof):
    by_total = max(prof.key_averages(), key=lambda event: event.cpu_time_total).key
    with pytest.raises(ExerciseNotSolved, match="includes the ops it calls"):
        lab03.check_top_op(prof, by_total)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (None, "`top_op` is None"),
        (3, "give the op's name"),
        ("aten::conv2d", "no op named"),
    ],
)
def test_top_op_names_the_mistake(prof, answer, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab03.check_top_op(prof, answer)


def test_top_op_rejects_a_missing_or_empty_profile():
    with pytest.raises(ExerciseNotSolved, match="`prof` is None"):
        lab03.check_top_op(None, "aten::addmm")
    with profile() as empty:
        pass
    with pytest.raises(ExerciseNotSolved, match="recorded no ops"):
        lab03.check_top_op(empty, "aten::addmm")


def _stages_profile(model, label_model: bool):
    data = torch.rand(64, 64)
    with profile() as recording, torch.inference_mode():
        for b in range(2):
            with record_function("load"):
                inputs = torch.stack([(row - row.mean()) / row.std() for row in data[b * 32 :]])
            if label_model:
                with record_function("model"):
                    model(inputs)
            else:
                model(inputs)
    return recording


def test_stages_accepts_the_solution(model, capsys):
    prof_stages = _stages_profile(model, label_model=True)
    stages = lab03.stage_times_ms(prof_stages)
    lab03.check_stages(prof_stages, max(stages, key=stages.get))
    assert "✅" in capsys.readouterr().out


def test_stages_rejects_a_missing_label(model):
    with pytest.raises(ExerciseNotSolved, match="no 'model' region"):
        lab03.check_stages(_stages_profile(model, label_model=False), "load")


def test_stages_rejects_the_faster_stage(model):
    prof_stages = _stages_profile(model, label_model=True)
    stages = lab03.stage_times_ms(prof_stages)
    with pytest.raises(ExerciseNotSolved, match="is not the slower stage"):
        lab03.check_stages(prof_stages, min(stages, key=stages.get))
    with pytest.raises(ExerciseNotSolved, match="`bottleneck` is None"):
        lab03.check_stages(prof_stages, None)
    with pytest.raises(ExerciseNotSolved, match="one of the stage names"):
        lab03.check_stages(prof_stages, "data")
