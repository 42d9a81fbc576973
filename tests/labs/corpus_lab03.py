"""Lab 3's answer corpus: for every exercise, the starter, the published solution, answers a
beginner writes that are wrong (each with the reason its check must give) and other answers
that are right. ``test_check_corpus.py`` runs every case through its check.

A case's ``answer()`` builds the check's whole argument list, the answer first: for the
profiler exercises the profile is part of what the attendee made."""

from __future__ import annotations

import contextlib
import functools
import time
from types import SimpleNamespace

import torch
import torch.utils.benchmark as benchmark
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.data import TensorDataset

from tests.labs.corpus import REFERENCE, RIGHT, STARTER, WRONG, Case
from tests.labs.solutions import lab_namespace, solution, solution_namespace, starter
from workshop_labs import timing

CPU = torch.device("cpu")
EXERCISES = ("time_it", "timer", "top_op", "stages", "fast_load", "speedup", "compiled")


def run(check, case):
    """As the lab's cell calls it: with everything the case's ``answer()`` gives."""
    check(*case.answer())


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------------------------
# Exercise 1: time_it
# ----------------------------------------------------------------------------------------------


def time_it_wall_clock(fn, device, warmup=3, repeats=10):
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.time()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.time() - start) * 1000 / repeats


def time_it_process_time(fn, device, warmup=3, repeats=10):
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.process_time()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.process_time() - start) * 1000 / repeats


def time_it_one_extra_call(fn, device, warmup=3, repeats=10):
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats + 1):
        fn()
    _sync(device)
    return (time.perf_counter() - start) * 1000 / repeats


def time_it_fixed_warmup(fn, device, warmup=3, repeats=10):
    for _ in range(5):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) * 1000 / repeats


def time_it_no_warmup(fn, device, warmup=3, repeats=10):
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) * 1000 / repeats


def time_it_never_syncs(fn, device, warmup=3, repeats=10):
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) * 1000 / repeats


def time_it_per_call(fn, device, warmup=3, repeats=10):
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


def time_it_nanoseconds(fn, device, warmup=3, repeats=10):
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter_ns()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter_ns() - start) / 1e6 / repeats


# ----------------------------------------------------------------------------------------------
# Exercise 2: a Timer of predicting one sample
# ----------------------------------------------------------------------------------------------


@functools.cache
def _timer_inputs():
    """The lab's model, predict and a batch: what the exercise's Timer statement uses."""
    torch.manual_seed(0)
    made = lab_namespace(3, "make_model", "predict", device=CPU)
    return {"predict": made["predict"], "model": made["make_model"](), "batch": torch.rand(256, 64)}


def timer_of(statement, **options):
    """A Timer of ``statement`` over the lab's names, with ``options`` (e.g. num_threads)."""
    return benchmark.Timer(stmt=statement, globals=dict(_timer_inputs()), **options)


ALL_THREADS = {"num_threads": torch.get_num_threads()}


def timer_case(kind, name, measure, refused=None):
    def arguments():
        given = _timer_inputs()
        return measure(), given["model"], given["batch"]

    return Case("timer", kind, name, arguments, refused)


def timer_reference():
    given = _timer_inputs()
    measured = solution(3, "one_at_a_time", **given)
    return measured, given["model"], given["batch"]


# ----------------------------------------------------------------------------------------------
# Exercise 3: top_op, on a recorded profile so the answer does not depend on this machine
# ----------------------------------------------------------------------------------------------


class RecordedProfile(torch.profiler.profile):
    """A profile with fixed events."""

    def __init__(self, events):
        self.events = events

    def key_averages(self):
        return self.events

    def __del__(self):
        pass


def event(key, self_us, total_us, count=1):
    return SimpleNamespace(
        key=key, self_cpu_time_total=self_us, cpu_time_total=total_us, count=count
    )


# aten::linear calls aten::t and aten::addmm: its total holds theirs, its self time is small;
# aten::t is called most often; aten::relu has the least self time.
LINEAR_PROFILE = [
    event("aten::linear", 40, 1040, 16),
    event("aten::addmm", 900, 900, 16),
    event("aten::t", 60, 100, 48),
    event("aten::relu", 30, 30, 16),
]


def top_op_case(kind, name, answer_from_events, refused=None):
    def arguments():
        prof = RecordedProfile(LINEAR_PROFILE)
        return answer_from_events(prof.key_averages()), prof

    return Case("top_op", kind, name, arguments, refused)


def top_op_starter():
    prof = RecordedProfile(LINEAR_PROFILE)
    return starter(3, "top_op", prof=prof), prof


def top_op_solution():
    prof = RecordedProfile(LINEAR_PROFILE)
    return solution(3, "top_op", prof=prof), prof


# ----------------------------------------------------------------------------------------------
# Exercise 4: label the stages, name the bottleneck
# ----------------------------------------------------------------------------------------------

N_BATCHES, STAGE_BATCH = 2, 32


def _stage_inputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).eval()
    given = {
        "model": model,
        "dataset": TensorDataset(torch.rand(N_BATCHES * STAGE_BATCH, 64)),
        "n_batches": N_BATCHES,
        "stage_batch": STAGE_BATCH,
        "activities": [ProfilerActivity.CPU],
    }
    return given


def _profiled(run):
    run()  # warm-up: the first call pays one-off costs
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    return prof


def stages_reference():
    solved = solution_namespace(
        3, "bottleneck", needs=("standardize", "load_batch"), **_stage_inputs()
    )
    return solved["bottleneck"], solved["prof_stages"]


def stages_starter():
    given = _stage_inputs()
    namespace = lab_namespace(3, "standardize", "load_batch", **given)
    run_pipeline = starter(3, "run_pipeline", **given, load_batch=namespace["load_batch"])
    return starter(3, "bottleneck", **given, load_batch=namespace["load_batch"]), _profiled(
        run_pipeline
    )


def _pipeline(model_region_holds: str):
    """The lab's pipeline, profiled, with its 'model' label around ``model_region_holds``:
    "forward" (as asked), "loop" (the whole loop) or "batch" (the loading and the forward)."""
    given = _stage_inputs()
    load_batch = lab_namespace(3, "standardize", "load_batch", **given)["load_batch"]
    model = given["model"]

    def label(around: str):
        return (
            record_function("model") if around == model_region_holds else contextlib.nullcontext()
        )

    def run():
        with torch.inference_mode(), label("loop"):
            for b in range(N_BATCHES):
                with label("batch"):
                    with record_function("load"):
                        inputs = load_batch(range(b * STAGE_BATCH, (b + 1) * STAGE_BATCH))
                    with label("forward"):
                        model(inputs)

    return _profiled(run)


def stage_ms(prof):
    return {e.key: e.cpu_time_total for e in prof.key_averages() if e.key in ("load", "model")}


def stages_the_faster_one():
    prof = _pipeline("forward")
    times = stage_ms(prof)
    return min(times, key=times.get), prof


def stages_sorted():
    prof = _pipeline("forward")
    ranked = sorted(stage_ms(prof).items(), key=lambda item: item[1], reverse=True)
    return ranked[0][0], prof


def stages_wrong_label(model_region_holds):
    def arguments():
        prof = _pipeline(model_region_holds)
        times = stage_ms(prof)
        return max(times, key=times.get), prof

    return arguments


# ----------------------------------------------------------------------------------------------
# Exercise 5: load a whole batch at once
# ----------------------------------------------------------------------------------------------

IMAGES = torch.rand(300, 64) * 16


def standardize(image):
    return (image - image.mean()) / (image.std() + 1e-6)


def load_batch(indices):
    """The lab's loader: one sample at a time."""
    return torch.stack([standardize(IMAGES[i]) for i in indices])


def fast_load_population_std(indices):
    images = IMAGES[indices]
    mean = images.mean(dim=1, keepdim=True)
    std = images.std(dim=1, keepdim=True, unbiased=False)
    return (images - mean) / (std + 1e-6)


def fast_load_per_pixel(indices):
    images = IMAGES[indices]
    return (images - images.mean(dim=0)) / (images.std(dim=0) + 1e-6)


def fast_load_without_keepdim(indices):
    images = IMAGES[indices]
    return (images - images.mean(dim=1)) / (images.std(dim=1) + 1e-6)


def fast_load_still_a_loop(indices):
    rows = [IMAGES[i] for i in indices]
    return torch.stack([(row - row.mean()) / (row.std() + 1e-6) for row in rows])


def fast_load_std_mean(indices):
    images = IMAGES[list(indices)]
    std, mean = torch.std_mean(images, dim=1, keepdim=True)
    return (images - mean) / (std + 1e-6)


def fast_load_case(kind, name, answer, refused=None):
    return Case("fast_load", kind, name, lambda: (answer(), load_batch, IMAGES), refused)


# ----------------------------------------------------------------------------------------------
# Exercise 6: the measured speed-up of two functions that take about 4 ms and 1 ms
# ----------------------------------------------------------------------------------------------


def takes(ms):
    """A function that takes about ``ms`` milliseconds and returns the same scores each call.
    It sleeps: a busy machine delays some wake-ups, which the fastest runs the check compares
    leave out, but never shortens a sleep, so the ratio of the fastest runs holds."""
    scores = torch.arange(6.0)

    def fn():
        time.sleep(ms / 1000)
        return scores

    return fn


SLOW, FAST = takes(4), takes(1)


def time_runs(fn, **options):
    """The lab's own time_runs."""
    return lab_namespace(3, "time_runs", device=CPU)["time_runs"](fn, **options)


def speedup_case(kind, name, runs, refused=None):
    return Case("speedup", kind, name, lambda: (runs(), SLOW, FAST, CPU), refused)


def speedup_starter():
    runs = starter(
        3,
        "speedup_runs",
        run_pipeline_with=lambda load: load(),
        load_batch=SLOW,
        load_batch_fast=FAST,
    )
    return runs, SLOW, FAST, CPU


def speedup_reference():
    solved = solution_namespace(
        3,
        "speedup_runs",
        needs=("time_runs",),
        edits=(("before, warmup=3, repeats=10", "before, warmup=3, repeats=6"),),
        device=CPU,
        run_pipeline_with=lambda load: load(),
        load_batch=SLOW,
        load_batch_fast=FAST,
    )
    return solved["speedup_runs"], solved["before"], solved["after"], CPU


def runs_by_hand():
    runs = {"before": [], "after": []}
    for name, fn in (("before", SLOW), ("after", FAST)):
        for _ in range(2):
            fn()
        for _ in range(7):
            start = time.perf_counter()
            fn()
            runs[name].append((time.perf_counter() - start) * 1000)
    return runs


def runs_interleaved():
    runs = {"before": [], "after": []}
    SLOW(), FAST()
    for _ in range(6):
        for name, fn in (("before", SLOW), ("after", FAST)):
            runs[name].append(timing.measure(fn, device=CPU, warmup=0, repeats=1).runs[0])
    return runs


def runs_in_seconds():
    return {
        name: [ms / 1000 for ms in time_runs(fn)]
        for name, fn in (("before", SLOW), ("after", FAST))
    }


# ----------------------------------------------------------------------------------------------
# Exercise 7: torch.compile, the compile timed apart from the warm runs
# ----------------------------------------------------------------------------------------------


@functools.cache
def _compiled():
    """The lab's smooth activation, an input, and the activation compiled and called once."""
    smooth = lab_namespace(3, "SmoothActivation")["SmoothActivation"]()
    x = torch.randn(4096, 256)
    compiled = torch.compile(smooth)
    compiled(x)
    return smooth, compiled, x


def compiled_case(kind, name, timing_of, refused=None):
    """A case whose answer ``timing_of(smooth, compiled, x)`` makes from the shared compile."""

    def arguments():
        smooth, compiled, x = _compiled()
        return timing_of(smooth, compiled, x), smooth, compiled, x, CPU

    return Case("compiled", kind, name, arguments, refused)


def _given_for_compile():
    smooth, _, x = _compiled()
    return {"smooth": smooth, "x": x, "time_runs": time_runs, "device": CPU}


def compiled_starter():
    smooth, compiled, x = _compiled()
    return starter(3, "compile_timing", **_given_for_compile()), smooth, compiled, x, CPU


def compiled_reference():
    solved = solution_namespace(3, "compile_timing", **_given_for_compile())
    return solved["compile_timing"], solved["smooth"], solved["compiled"], solved["x"], CPU


def warm_runs(smooth, compiled, x, **options):
    return {
        "eager": time_runs(lambda: smooth(x), **options),
        "compiled": time_runs(lambda: compiled(x), **options),
    }


def compile_timed_with_the_runs(smooth, _, x):
    """torch.compile, then time_runs without a warm-up (the first compiled run compiles), and
    only then the "first call" timed for compile_s: by now a warm one."""
    torch.compiler.reset()
    fresh = torch.compile(smooth)
    runs = warm_runs(smooth, fresh, x, warmup=0, repeats=6)
    start = time.perf_counter()
    fresh(x)
    return {"compile_s": time.perf_counter() - start, **runs}


def compile_s_of_a_warm_call(smooth, compiled, x):
    """compiled(x) called once to try it, then the "first call" timed: a warm one (the
    fastest of three, as on a quiet machine)."""
    compiled(x)
    calls = []
    for _ in range(3):
        start = time.perf_counter()
        compiled(x)
        calls.append(time.perf_counter() - start)
    return {"compile_s": min(calls), **warm_runs(smooth, compiled, x)}


def compiled_by_hand(smooth, compiled, x):
    """The first call alone, then a warm-up and warm runs written out by hand, in turn."""
    torch.compiler.reset()
    fresh = torch.compile(smooth)
    start = time.perf_counter()
    fresh(x)
    compile_s = time.perf_counter() - start
    runs = {"eager": [], "compiled": []}
    smooth(x), fresh(x)
    for _ in range(8):
        for name, fn in (("eager", smooth), ("compiled", fresh)):
            start = time.perf_counter()
            fn(x)
            runs[name].append((time.perf_counter() - start) * 1000)
    return {"compile_s": compile_s, **runs}


CASES = [
    # Exercise 1
    Case("time_it", STARTER, "starter", lambda: (starter(3, "time_it"),), r"reads time.time\(\)"),
    Case("time_it", REFERENCE, "solution", lambda: (solution(3, "time_it"),)),
    Case(
        "time_it",
        WRONG,
        "wall-clock",
        lambda: (time_it_wall_clock,),
        r"reads time.time\(\), the wall clock.*Use time.perf_counter\(\)",
    ),
    Case(
        "time_it",
        WRONG,
        "process-time",
        lambda: (time_it_process_time,),
        r"reads time.process_time\(\).*stops while the process waits",
    ),
    Case(
        "time_it",
        WRONG,
        "one-call-too-many",
        lambda: (time_it_one_extra_call,),
        "called fn 14 times with warmup=3 and repeats=10",
    ),
    Case(
        "time_it",
        WRONG,
        "warm-up-ignores-its-argument",
        lambda: (time_it_fixed_warmup,),
        "called fn 15 times",
    ),
    Case("time_it", WRONG, "no-warm-up", lambda: (time_it_no_warmup,), "no warm-up"),
    Case("time_it", WRONG, "never-syncs", lambda: (time_it_never_syncs,), "CUDA is asynchronous"),
    Case("time_it", RIGHT, "sync-around-each-call", lambda: (time_it_per_call,)),
    Case("time_it", RIGHT, "nanosecond-counter", lambda: (time_it_nanoseconds,)),
    # Exercise 2
    timer_case(STARTER, "starter", lambda: starter(3, "one_at_a_time"), "`one_at_a_time` is None"),
    Case("timer", REFERENCE, "solution", timer_reference),
    timer_case(
        WRONG,
        "the-timer-not-its-measurement",
        lambda: timer_of("predict(model, batch[:1], batch_size=1)", **ALL_THREADS),
        "is the Timer itself: call its .blocked_autorange",
    ),
    timer_case(
        WRONG,
        "one-thread",
        lambda: timer_of("predict(model, batch[:1], batch_size=1)").blocked_autorange(
            min_run_time=0.2
        ),
        r"ran with 1 thread\(s\).*num_threads=torch.get_num_threads\(\)",
    ),
    timer_case(
        WRONG,
        "the-whole-batch-one-at-a-time",
        lambda: timer_of("predict(model, batch, batch_size=1)", **ALL_THREADS).blocked_autorange(
            min_run_time=0.2
        ),
        "predicts 256 samples per run: time one sample",
    ),
    timer_case(
        WRONG,
        "one-call",
        lambda: timer_of("predict(model, batch[:1], batch_size=1)", **ALL_THREADS).timeit(1),
        "rests on one single call",
    ),
    timer_case(
        WRONG,
        "just-the-median",
        lambda: (
            timer_of("predict(model, batch[:1], batch_size=1)", **ALL_THREADS)
            .blocked_autorange(min_run_time=0.2)
            .median
        ),
        "is a float: keep the whole Measurement",
    ),
    timer_case(
        RIGHT,
        "positional-and-timeit",
        lambda: timer_of("predict(model, batch[:1], 1)", **ALL_THREADS).timeit(200),
    ),
    timer_case(
        RIGHT,
        "adaptive",
        lambda: timer_of(
            "predict(model, batch[0:1], batch_size=1)", **ALL_THREADS
        ).adaptive_autorange(max_run_time=1.0),
    ),
    # Exercise 2
    Case("top_op", STARTER, "starter", top_op_starter, "`top_op` is None"),
    Case("top_op", REFERENCE, "solution", top_op_solution),
    top_op_case(
        WRONG,
        "by-total-time",
        lambda events: max(events, key=lambda e: e.cpu_time_total).key,
        "includes the ops it calls",
    ),
    top_op_case(
        WRONG,
        "by-call-count",
        lambda events: max(events, key=lambda e: e.count).key,
        "called most often",
    ),
    top_op_case(
        WRONG,
        "min-not-max",
        lambda events: min(events, key=lambda e: e.self_cpu_time_total).key,
        r"\*smallest\* self CPU time: take max",
    ),
    top_op_case(
        WRONG,
        "the-event-not-its-name",
        lambda events: max(events, key=lambda e: e.self_cpu_time_total),
        "give the op's name",
    ),
    top_op_case(WRONG, "typed-in", lambda events: "aten::matmul", "no op named 'aten::matmul'"),
    top_op_case(
        RIGHT,
        "sorted-descending",
        lambda events: sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[0].key,
    ),
    # Exercise 3
    Case("stages", STARTER, "starter", stages_starter, "no 'model' region"),
    Case("stages", REFERENCE, "solution", stages_reference),
    Case("stages", WRONG, "the-faster-stage", stages_the_faster_one, "is not the slower stage"),
    Case(
        "stages",
        WRONG,
        "model-label-around-the-loop",
        stages_wrong_label("loop"),
        "1 'model' region.*inside the loop, once per batch",
    ),
    Case(
        "stages",
        WRONG,
        "model-label-around-load-too",
        stages_wrong_label("batch"),
        "the 'model' region also holds the loading",
    ),
    Case("stages", RIGHT, "sorted-stages", stages_sorted),
    # Exercise 4
    fast_load_case(
        STARTER,
        "starter",
        lambda: starter(3, "load_batch_fast", X=IMAGES),
        "returned None",
    ),
    fast_load_case(REFERENCE, "solution", lambda: solution(3, "load_batch_fast", X=IMAGES)),
    fast_load_case(WRONG, "population-std", lambda: fast_load_population_std, "correction=0"),
    fast_load_case(WRONG, "per-pixel", lambda: fast_load_per_pixel, "each pixel across the batch"),
    fast_load_case(WRONG, "no-keepdim", lambda: fast_load_without_keepdim, "pass keepdim=True"),
    fast_load_case(
        WRONG, "still-a-loop", lambda: fast_load_still_a_loop, "still one sample at a time"
    ),
    fast_load_case(RIGHT, "std-mean", lambda: fast_load_std_mean),
    # Exercise 5
    Case("speedup", STARTER, "starter", speedup_starter, "has 1 run"),
    Case("speedup", REFERENCE, "solution", speedup_reference),
    speedup_case(
        WRONG,
        "made-up-constants",
        lambda: {"before": [50] * 6, "after": [5] * 6},
        r"is exactly 50 ms: real timings scatter",
    ),
    speedup_case(
        WRONG,
        "made-up-numbers",
        lambda: {"before": [120, 118, 125, 121, 119, 123], "after": [12, 12.5, 11.8, 12.1, 12]},
        r"speedup_runs\['before'\] took 118.00 ms.*not timings of before\(\)",
    ),
    speedup_case(
        WRONG,
        "before-timed-twice",
        lambda: {"before": time_runs(SLOW, repeats=15), "after": time_runs(SLOW, repeats=15)},
        r"both look like before\(\), timed twice",
    ),
    speedup_case(
        WRONG,
        "after-timed-twice",
        lambda: {"before": time_runs(FAST, repeats=15), "after": time_runs(FAST, repeats=15)},
        r"both look like after\(\), timed twice",
    ),
    speedup_case(
        WRONG,
        "swapped",
        lambda: {"before": time_runs(FAST, repeats=15), "after": time_runs(SLOW, repeats=15)},
        "'before' and 'after' are swapped",
    ),
    speedup_case(WRONG, "seconds", runs_in_seconds, "that is seconds"),
    speedup_case(
        WRONG,
        "one-mean-each",
        lambda: {"before": 4.1, "after": 1.1},
        "must be a list of milliseconds",
    ),
    speedup_case(RIGHT, "by-hand", runs_by_hand),
    speedup_case(RIGHT, "interleaved", runs_interleaved),
    # Exercise 7
    Case("compiled", STARTER, "starter", compiled_starter, r"\['compile_s'\] is None"),
    Case("compiled", REFERENCE, "solution", compiled_reference),
    compiled_case(
        WRONG,
        "compile-timed-with-the-runs",
        compile_timed_with_the_runs,
        r"(first run of 'compiled' took .* it compiled.*belongs in compile_s alone)|"
        r"(nothing was compiled in it.*the compiling happens in the first call)",
    ),
    compiled_case(
        WRONG,
        "first-call-already-made",
        compile_s_of_a_warm_call,
        r"torch.compile\(...\) returns at once; the compiling happens in the first call",
    ),
    compiled_case(
        WRONG,
        "milliseconds",
        lambda smooth, compiled, x: {"compile_s": 8400.0, **warm_runs(smooth, compiled, x)},
        "that is milliseconds",
    ),
    compiled_case(
        WRONG,
        "one-cold-run-each",
        lambda smooth, compiled, x: {
            "compile_s": 9.0,
            "eager": time_runs(lambda: smooth(x), warmup=0, repeats=1),
            "compiled": time_runs(lambda: compiled(x), warmup=0, repeats=1),
        },
        r"\['eager'\] has 1 run\(s\): repeat at least 5 times",
    ),
    compiled_case(
        WRONG,
        "made-up-constants",
        lambda smooth, compiled, x: {"compile_s": 9.0, "eager": [10.0] * 6, "compiled": [2.0] * 6},
        r"is exactly 10.0 ms: real timings scatter",
    ),
    compiled_case(RIGHT, "by-hand-interleaved", compiled_by_hand),
]
