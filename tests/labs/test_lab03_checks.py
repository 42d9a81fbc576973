"""Lab 3's checks: each rejects a typical wrong answer with its specific message and accepts
the solution."""

from __future__ import annotations

import contextlib
import time

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import TensorDataset

from tests.labs.solutions import solution, solution_namespace
from workshop_labs import lab03
from workshop_labs.checks import ExerciseNotSolved

# ----------------------------------------------------------------------------------------------
# Exercise 1: time_it
# ----------------------------------------------------------------------------------------------


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_it_with(
    *,
    warm_up=True,
    sync_before_clock=True,
    sync_after=True,
    scale=1000,
    per_repeat=True,
    synchronize=_sync,
):
    """A time_it with one typical mistake."""

    def time_it(fn, device, warmup=3, repeats=10):
        for _ in range(warmup if warm_up else 0):
            fn()
        if sync_before_clock:
            synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        if sync_after:
            synchronize(device)
        elapsed = (time.perf_counter() - start) * scale
        return elapsed / repeats if per_repeat else elapsed

    return time_it


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


def test_time_it_accepts_the_solutions(capsys):
    lab03.check_time_it(solution(3, "time_it"))
    lab03.check_time_it(time_it_per_call_sync)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (None, "is None"),
        (time_it_with(sync_before_clock=False, sync_after=False), "CUDA is asynchronous"),
        (time_it_with(warm_up=False), "no warm-up"),
        (time_it_with(sync_before_clock=False), "after the warm-up, before starting the clock"),
        (time_it_with(per_repeat=False), "total of all repeats"),
        (time_it_with(scale=1), "that is seconds"),
        (time_it_with(synchronize=lambda device: torch.cuda.synchronize()), "for a CPU device"),
    ],
    ids=["none", "no-sync", "no-warmup", "no-sync-after-warmup", "total", "seconds", "always-sync"],
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
    lab03.check_top_op(prof, solution(3, "top_op", prof=prof))
    assert "✅" in capsys.readouterr().out


def test_top_op_rejects_sorting_by_total_time(prof):
    events = prof.key_averages()
    top_self = max(events, key=lambda event: event.self_cpu_time_total).key
    # The op a total-time sort puts first, other than the right answer (on a fast run the
    # two can coincide, and then there is no mistake to show).
    by_total = max(
        (event for event in events if event.key != top_self), key=lambda e: e.cpu_time_total
    ).key
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


def stages_solution(model, *edits):
    """The lab's profiled pipeline (its solution, with ``edits``) on a small model and data."""
    return solution_namespace(
        3,
        "bottleneck",
        edits=edits,
        needs=("standardize", "load_batch"),
        model=model,
        dataset=TensorDataset(torch.rand(64, 64)),
        n_batches=2,
        stage_batch=32,
        activities=[ProfilerActivity.CPU],
        nullcontext=contextlib.nullcontext,
    )


def test_stages_accepts_the_solution(model, capsys):
    solved = stages_solution(model)
    lab03.check_stages(solved["prof_stages"], solved["bottleneck"])
    assert "✅" in capsys.readouterr().out


def test_stages_rejects_a_missing_label(model):
    unlabelled = stages_solution(model, ('record_function("model")', "nullcontext()"))
    with pytest.raises(ExerciseNotSolved, match="no 'model' region"):
        lab03.check_stages(unlabelled["prof_stages"], "load")


def test_stages_rejects_the_faster_stage(model):
    prof_stages = stages_solution(model)["prof_stages"]
    stages = lab03.stage_times_ms(prof_stages)
    with pytest.raises(ExerciseNotSolved, match="is not the slower stage"):
        lab03.check_stages(prof_stages, min(stages, key=stages.get))
    with pytest.raises(ExerciseNotSolved, match="`bottleneck` is None"):
        lab03.check_stages(prof_stages, None)
    with pytest.raises(ExerciseNotSolved, match="one of the stage names"):
        lab03.check_stages(prof_stages, "data")


# ----------------------------------------------------------------------------------------------
# The measured improvement: the text and the title say what the measurements show
# ----------------------------------------------------------------------------------------------


def test_agreement_is_judged_against_the_spread_of_single_runs():
    # Measured on an idle 2-core machine: 0.905 ms (IQR 0.014) against 0.869 ms (IQR 0.030).
    agreeing = lab03.agreement_sentence(0.905, 0.014, 0.869, 0.030)
    assert agreeing.startswith("The medians differ by 0.036 ms (4%), less than the two spreads")
    assert agreeing.endswith("agree within the noise.")
    # A median of 9.33 ms against 6.71 ms: far apart, whatever a mean and its std would say.
    disagreeing = lab03.agreement_sentence(9.33, 0.5, 6.71, 0.4)
    assert "more than the two spreads together (0.900 ms)" in disagreeing
    assert "agree within" not in disagreeing


# Milliseconds per run for 128 samples, as measured on a busy 2-core machine: batch size 64 was
# the fastest and 256 clearly slower (every 256 run slower than every 64 run).
PEAK_THEN_FALL = {1: [40.0, 42.0, 41.0], 8: [8.0, 8.2, 8.1], 64: [2.0, 2.1, 2.05], 256: [3, 3.1]}


@pytest.mark.parametrize(
    ("runs_ms", "title"),
    [
        (
            {1: [40.0, 41.0], 8: [8.0, 8.4], 64: [2.0, 2.2], 256: [1.5, 1.6]},
            "Throughput rises with every batch size up to 256: 26.1× batch size 1",
        ),
        (PEAK_THEN_FALL, "Throughput peaks at batch size 64 (20.0× batch size 1), then falls 33%"),
        (
            {1: [40.0, 41.0], 8: [8.0, 8.4], 64: [2.0, 2.6], 256: [2.2, 2.5]},
            "Throughput levels off from batch size 64 (17.6× batch size 1)",
        ),
        (
            {1: [40.0, 41.0], 8: [8.0, 8.4], 64: [9.0, 9.4], 256: [2.0, 2.2]},
            "Throughput is highest at batch size 256 (19.3× batch size 1), but not rising",
        ),
    ],
)
def test_throughput_title_says_what_the_curve_does(runs_ms, title):
    assert lab03.throughput_title(runs_ms, n_samples=128).startswith(title)


def test_throughput_chart_has_log_batch_sizes_a_zero_based_y_and_run_spread():
    fig = lab03.throughput_chart(PEAK_THEN_FALL, n_samples=128)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert [label.get_text() for label in ax.get_xticklabels()] == ["1", "8", "64", "256"]
    assert ax.get_ylim()[0] == 0
    assert "peaks at batch size 64" in ax.get_title()
    (bars,) = [c for c in ax.containers if hasattr(c, "has_yerr")]
    assert bars.has_yerr
