"""Lab 3's checks: each rejects a typical wrong answer with its specific message and accepts
the solution."""

from __future__ import annotations

import contextlib
import time
from unittest import mock

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import TensorDataset

from tests.labs.corpus_lab03 import LINEAR_PROFILE, RecordedProfile
from tests.labs.solutions import solution, solution_namespace
from workshop_labs import checks, lab03, timing
from workshop_labs.checks import ExerciseNotSolved

CPU = torch.device("cpu")


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


def test_time_it_runs_past_the_starter_with_the_attendees_function(monkeypatch, capsys):
    monkeypatch.setenv(checks.STRICT_ENV, "0")
    starter = time_it_with(warm_up=False, sync_before_clock=False, sync_after=False, scale=1)
    assert lab03.check_time_it(starter) is starter
    assert "Not solved yet" in capsys.readouterr().out


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
    lab03.check_top_op(solution(3, "top_op", prof=prof), prof)
    assert "✅" in capsys.readouterr().out


def test_top_op_rejects_sorting_by_total_time():
    with pytest.raises(ExerciseNotSolved, match="includes the ops it calls"):
        lab03.check_top_op.unchecked("aten::linear", RecordedProfile(LINEAR_PROFILE))
    lab03.check_top_op.unchecked("aten::addmm", RecordedProfile(LINEAR_PROFILE))


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
        lab03.check_top_op(answer, prof)


def test_top_op_rejects_a_missing_or_empty_profile():
    with pytest.raises(ExerciseNotSolved, match="`prof` is None"):
        lab03.check_top_op("aten::addmm", None)
    with profile() as empty:
        pass
    with pytest.raises(ExerciseNotSolved, match="recorded no ops"):
        lab03.check_top_op("aten::addmm", empty)


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
    lab03.check_stages(solved["bottleneck"], solved["prof_stages"])
    assert "✅" in capsys.readouterr().out


def test_stages_rejects_a_missing_label(model):
    unlabelled = stages_solution(model, ('record_function("model")', "nullcontext()"))
    with pytest.raises(ExerciseNotSolved, match="no 'model' region"):
        lab03.check_stages("load", unlabelled["prof_stages"])


def test_stages_rejects_the_faster_stage(model):
    prof_stages = stages_solution(model)["prof_stages"]
    stages = lab03.stage_times_ms(prof_stages)
    with pytest.raises(ExerciseNotSolved, match="is not the slower stage"):
        lab03.check_stages(min(stages, key=stages.get), prof_stages)
    with pytest.raises(ExerciseNotSolved, match="`bottleneck` is None"):
        lab03.check_stages(None, prof_stages)
    with pytest.raises(ExerciseNotSolved, match="one of the stage names"):
        lab03.check_stages("data", prof_stages)


def test_profile_checks_run_past_the_starters_with_the_attendees_answer(
    prof, model, monkeypatch, capsys
):
    monkeypatch.setenv(checks.STRICT_ENV, "0")
    assert lab03.check_top_op(None, prof) is None
    unlabelled = stages_solution(model, ('record_function("model")', "nullcontext()"))
    assert lab03.check_stages(None, unlabelled["prof_stages"]) is None
    assert capsys.readouterr().out.count("Not solved yet") == 2


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
            "8: 4.9× faster · 64: 19.3× faster · 256: 26.1× faster",
        ),
        (PEAK_THEN_FALL, "8: 5.1× faster · 64: 20.0× faster · 256: 13.4× faster"),
        (
            {1: [4.0, 4.1, 4.2], 8: [4.1, 3.9, 4.3], 64: [2.0, 2.6], 256: [5.2, 5.5]},
            "8: within the noise · 64: 1.8× faster · 256: 1.3× slower",
        ),
    ],
    ids=["rises", "peaks-then-falls", "noise-faster-slower"],
)
def test_throughput_title_gives_each_batch_size_its_verdict_against_the_smallest(runs_ms, title):
    assert lab03.throughput_title(runs_ms) == (
        f"Throughput against batch size 1, by batch size:\n{title}"
    )
    for size, runs in runs_ms.items():
        if size != 1:
            assert timing.speedup(runs_ms[1], runs).direction in title.split(f"{size}: ")[1]


def test_throughput_chart_has_log_batch_sizes_a_zero_based_y_and_run_spread():
    fig = lab03.throughput_chart(PEAK_THEN_FALL, n_samples=128)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert [label.get_text() for label in ax.get_xticklabels()] == ["1", "8", "64", "256"]
    assert ax.get_ylim()[0] == 0
    assert "64: 20.0× faster" in ax.get_title()
    (bars,) = [c for c in ax.containers if hasattr(c, "has_yerr")]
    assert bars.has_yerr


@pytest.mark.parametrize(
    ("before", "after", "verdict", "direction"),
    [
        ([10.0, 10.5, 11.0, 10.2, 10.8], [5.0, 5.2, 5.5, 5.1, 5.3], "2.0× faster (q", "faster"),
        ([5.0, 5.2, 5.5, 5.1, 5.3], [10.0, 10.5, 11.0, 10.2, 10.8], "2.0× slower (0.50×", "slower"),
        (
            [10.0, 12.0, 11.0, 10.5, 11.5],
            [10.5, 11.8, 10.9, 11.2, 12.5],
            "within the noise",
            "within the noise",
        ),
    ],
    ids=["faster", "slower", "overlapping-quartiles"],
)
def test_speedup_says_faster_slower_or_within_the_noise(before, after, verdict, direction):
    assert str(timing.speedup(before, after)).startswith(verdict)
    assert timing.speedup(before, after).direction == direction
    line = timing.verdict("after vs before", before, after)
    assert line == f"Verdict · after vs before: {timing.speedup(before, after)}"


def test_a_speedup_without_runs_says_what_is_missing():
    with pytest.raises(ValueError, match="needs runs of both"):
        timing.speedup([], [1.0])


def test_before_after_chart_has_quartile_whiskers_and_a_title_from_the_runs():
    runs = {"batch size 1": [40.0, 41.0, 42.0], "batch size 64": [2.0, 2.1, 2.2]}
    ax = lab03.before_after_chart(runs, n_samples=128).axes[0]
    assert ax.get_title().startswith("batch size 64 vs batch size 1:\n19.5× faster (quartiles")
    assert ax.get_ylim()[0] == 0
    (whiskers,) = [c for c in ax.containers if hasattr(c, "has_yerr")]
    low, high = whiskers.lines[2][0].get_segments()[1][:, 1]
    assert (low, high) == pytest.approx((128 / 0.00215, 128 / 0.00205))


def test_timing_spread_title_gives_the_first_call_and_the_range_of_the_rest():
    ax = lab03.timing_spread([30.0, 10.0, 9.0, 11.0]).axes[0]
    assert "call 1 took 30.00 ms, slower than every later call" in ax.get_title()
    assert "from 9.00 to 11.00 ms" in ax.get_title()
    calm = lab03.timing_spread([10.0, 10.5, 9.0, 11.0]).axes[0]
    assert "call 1 took 10.00 ms, not the slowest" in calm.get_title()


def test_quartiles_stay_within_the_runs():
    assert timing.quartiles([1.0, 2.0, 3.0, 4.0, 100.0]) == (2.0, 3.0, 4.0)
    assert timing.quartiles([7.0]) == (7.0, 7.0, 7.0)
    runs = (1.0, 2.0, 3.0)
    assert timing.Measurement(2.0, 1.0, 1.0, runs).quartiles == (1.5, 2.0, 2.5)


# ----------------------------------------------------------------------------------------------
# Exercise 4: load a whole batch at once
# ----------------------------------------------------------------------------------------------

IMAGES = torch.rand(300, 64) * 16


def standardize(image):
    return (image - image.mean()) / (image.std() + 1e-6)


def load_batch(indices):
    """The lab's loader: one sample at a time."""
    return torch.stack([standardize(IMAGES[i]) for i in indices])


def fast_load(*, dim=1, keepdim=True, rows=None):
    """A load_batch_fast with one typical mistake."""

    def load_batch_fast(indices):
        images = IMAGES[indices] if rows is None else IMAGES[rows(indices)]
        if dim is None:
            return (images - images.mean()) / (images.std() + 1e-6)
        mean, std = images.mean(dim=dim, keepdim=keepdim), images.std(dim=dim, keepdim=keepdim)
        return (images - mean) / (std + 1e-6)

    return load_batch_fast


def fast_load_solution():
    return solution(3, "load_batch_fast", X=IMAGES)


def test_fast_load_accepts_the_solution(capsys):
    lab03.check_fast_load(fast_load_solution(), load_batch, IMAGES)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (None, "is None: define"),
        (lambda indices: None, "returned None"),
        (fast_load(keepdim=False), "pass keepdim=True"),
        (fast_load(dim=0), "each pixel across the batch"),
        (fast_load(dim=None), "whole batch as one block"),
        (fast_load(rows=lambda indices: range(len(indices))), "differs from load_batch"),
        (load_batch, "still one sample at a time"),
    ],
    ids=["none", "returns-none", "no-keepdim", "dim-0", "whole-batch", "wrong-rows", "loop"],
)
def test_fast_load_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab03.check_fast_load(wrong, load_batch, IMAGES)


def test_fast_load_runs_past_the_starter_with_a_working_reference(monkeypatch, capsys):
    monkeypatch.setenv(checks.STRICT_ENV, "0")

    def starter(indices):
        return None

    reference = lab03.check_fast_load(starter, load_batch, IMAGES)
    assert reference is not starter
    lab03.check_fast_load.unchecked(reference, load_batch, IMAGES)
    assert "Not solved yet" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# Exercise 5: the measured speed-up
# ----------------------------------------------------------------------------------------------


def takes(ms, result=None):
    """A function that takes about ``ms`` milliseconds and returns the same scores each call."""
    scores = torch.arange(6.0) if result is None else result

    def fn():
        time.sleep(ms / 1000)
        return scores

    return fn


SLOW, FAST = takes(4), takes(1)
WARM = {"before": [4.2, 4.1, 4.3, 4.2, 4.4, 4.2], "after": [1.1, 1.2, 1.1, 1.3, 1.1, 1.2]}


def test_speedup_reports_the_attendees_ratio_and_its_own(capsys):
    lab03.check_speedup(WARM, SLOW, FAST, CPU)
    assert "3.7× faster" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        (None, "is None"),
        ([4.2, 1.1], "must be a dict"),
        ({"before": 4.2, "after": 1.1}, "must be a list of milliseconds"),
        ({"before": [4.2], "after": [1.1]}, "has 1 run"),
        ({k: [ms / 1000 for ms in runs] for k, runs in WARM.items()}, "that is seconds"),
        # a first call that paid a one-off cost of 0.4 s, as torch.compile's first call does
        ({"before": [400.0, *WARM["before"][1:]], "after": WARM["after"]}, "Warm up"),
    ],
    ids=["none", "list", "numbers", "one-run", "seconds", "no-warm-up"],
)
def test_speedup_names_the_mistake(runs, message):
    with pytest.raises(ExerciseNotSolved, match=message):
        lab03.check_speedup(runs, SLOW, FAST, CPU)


def test_speedup_rejects_different_work():
    with pytest.raises(ExerciseNotSolved, match="give different results"):
        lab03.check_speedup(WARM, SLOW, takes(1, torch.zeros(6)), CPU)
    with pytest.raises(ExerciseNotSolved, match="give different results"):
        lab03.check_speedup(WARM, SLOW, takes(1, torch.arange(3.0)), CPU)


def test_speedup_on_cuda_rejects_runs_that_never_waited_for_the_gpu():
    gpu = lab03.SimulatedGPU(kernel_ms=4, first_call_ms=4)

    def launch():
        gpu.launch()
        return torch.arange(6.0)

    queued_only = {"before": [0.01, 0.02] * 3, "after": [0.01, 0.02] * 3}
    with mock.patch.object(torch.cuda, "synchronize", gpu.synchronize):
        with pytest.raises(ExerciseNotSolved, match="Call torch.cuda.synchronize"):
            lab03.check_speedup(queued_only, launch, launch, torch.device("cuda"))
        runs = {"before": [4.0, 4.1, 4.2, 4.1, 4.0, 4.3], "after": [4.1, 4.0, 4.2, 4.2, 4.1, 4.0]}
        lab03.check_speedup(runs, launch, launch, torch.device("cuda"))


def test_speedup_runs_past_the_starter_with_a_warm_reference(monkeypatch, capsys):
    monkeypatch.setenv(checks.STRICT_ENV, "0")
    reference = lab03.check_speedup({"before": [9.0], "after": [1.0]}, SLOW, FAST, CPU)
    assert set(reference) == {"before", "after"} and len(reference["before"]) >= 5
    lab03.check_speedup.unchecked(reference, SLOW, FAST, CPU)
    assert "Not solved yet" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# Exercise 2: a Timer of one prediction; Exercise 7: torch.compile (their corpora hold the rest)
# ----------------------------------------------------------------------------------------------


def test_timer_statement_that_raises_is_one_line_naming_it(model):
    def predict(model, inputs, batch_size):
        return model(inputs)

    own_names = {"predict": predict, "net": model, "batch": torch.rand(8, 64)}
    measured = torch.utils.benchmark.Timer(
        stmt="predict(net, batch[:1], 1)", globals=own_names, num_threads=torch.get_num_threads()
    ).timeit(5)
    with pytest.raises(
        ExerciseNotSolved, match=r"statement 'predict\(net, batch\[:1\], 1\)'.*NameError"
    ):
        lab03.check_timer(measured, model, own_names["batch"])


def test_compiled_refuses_a_wrong_shape_before_timing_anything():
    smooth = nn.ReLU()
    with pytest.raises(ExerciseNotSolved, match="must be a dict"):
        lab03.check_compiled([1.0, 2.0], smooth, smooth, torch.rand(4), CPU)
    with pytest.raises(ExerciseNotSolved, match="not what torch.compile"):
        timing_ = {"compile_s": 9.0, "eager": [1.0] * 5, "compiled": [1.0] * 5}
        lab03.check_compiled(timing_, smooth, smooth, torch.rand(4), CPU)


def test_a_huge_slow_down_keeps_its_digits():
    said = str(timing.speedup([1.0, 1.1, 1.05], [500.0, 510.0, 505.0]))
    assert said.startswith("481.0× slower (0.0021×, quartiles 0.002–0.0021×)"), said
