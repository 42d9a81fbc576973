"""Lab 3 · Benchmarking models: the exercise checks and the lab's own figures."""

from __future__ import annotations

import itertools
import logging
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from unittest import mock

import torch
from matplotlib.figure import Figure

from workshop_labs import plots
from workshop_labs.checks import expect, passed

# The profiler's C++ logger prints internal status lines (and, on a CUDA build without a GPU,
# a harmless "gpuGetDeviceCount failed") to stderr, which a notebook shows in red; and
# importing torch.utils.benchmark on such a build warns that no CUDA runtime was found.
# Neither says anything about the attendee's code.
os.environ.setdefault("KINETO_LOG_LEVEL", "6")
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)

# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------


def top_ops_chart(prof: torch.profiler.profile, *, n: int = 10, title: str) -> Figure:
    """Horizontal bars: the ``n`` ops with the most *self* CPU time, with their call counts."""
    everything = prof.key_averages()
    events = sorted(everything, key=lambda e: e.self_cpu_time_total, reverse=True)[:n]
    total_us = sum(e.self_cpu_time_total for e in everything) or 1.0
    names = [e.key for e in reversed(events)]
    times_ms = [e.self_cpu_time_total / 1000 for e in reversed(events)]
    fig, ax = plots.figure(figsize=(9, 0.45 * len(events) + 1.6))
    rects = ax.barh(names, times_ms, color=plots.PALETTE[0])
    rects[-1].set_color(plots.PALETTE[3])
    labels = [
        f"{e.self_cpu_time_total / total_us:.0%} · {e.count:,} calls" for e in reversed(events)
    ]
    ax.bar_label(rects, labels=labels, padding=4, fontsize=9)
    ax.margins(x=0.3)
    ax.grid(axis="y", visible=False)
    ax.set(title=title, xlabel="self CPU time (ms), summed over all calls")
    return plots.show(fig)


def async_timeline() -> Figure:
    """Why CUDA timings need ``synchronize()``: the CPU queues kernels and runs ahead."""
    fig, ax = plots.figure(figsize=(10, 3.6))
    launches = [(0.0 + 0.6 * i, 0.5) for i in range(4)]
    kernels = [(0.4 + 2.6 * i, 2.5) for i in range(4)]
    ax.broken_barh(launches, (1.6, 0.7), color=plots.PALETTE[0])
    ax.broken_barh(kernels, (0.4, 0.7), color=plots.PALETTE[1])
    for i, (start, width) in enumerate(kernels):
        ax.text(start + width / 2, 0.75, f"kernel {i + 1}", ha="center", va="center", color="white")
        ax.annotate(
            "",
            xy=(start + 0.05, 1.1),
            xytext=(launches[i][0] + 0.25, 1.6),
            arrowprops={"arrowstyle": "->", "color": "0.5"},
        )
    cpu_done = launches[-1][0] + launches[-1][1]
    gpu_done = kernels[-1][0] + kernels[-1][1]
    ax.axvline(cpu_done, color=plots.PALETTE[3], linestyle="--")
    ax.axvline(gpu_done, color=plots.PALETTE[2], linestyle="--")
    ax.text(
        cpu_done + 0.1,
        2.55,
        "no sync: clock stops here\n(work only queued)",
        color=plots.PALETTE[3],
    )
    ax.text(
        gpu_done - 0.1, 2.55, "synchronize(): clock stops here", color=plots.PALETTE[2], ha="right"
    )
    ax.set_yticks([0.75, 1.95], ["GPU runs", "CPU (Python)\nqueues"])
    ax.set_ylim(0, 3.2)
    ax.set_xlim(-0.2, gpu_done + 0.4)
    ax.set_xticks([])
    ax.grid(False)
    ax.set(
        title="CUDA is asynchronous: a launch returns before the GPU has done the work",
        xlabel="time →",
    )
    return plots.show(fig)


def timing_spread(single_runs_ms: list[float], *, title: str) -> Figure:
    """Every single-call timing as a dot, with the first call and the median of the rest marked."""
    fig, ax = plots.figure(figsize=(8, 4.2))
    calls = range(1, len(single_runs_ms) + 1)
    ax.plot(calls, single_runs_ms, marker="o", linewidth=1, color=plots.PALETTE[0])
    median = statistics.median(single_runs_ms[1:])
    ax.axhline(
        median, color=plots.PALETTE[2], linestyle="--", label=f"median of calls 2+: {median:.2f} ms"
    )
    ax.annotate(
        f"call 1: {single_runs_ms[0]:.2f} ms\n(one-off setup)",
        xy=(1, single_runs_ms[0]),
        xytext=(len(single_runs_ms) * 0.25, single_runs_ms[0] * 0.9),
        arrowprops={"arrowstyle": "->", "color": plots.PALETTE[3]},
        color=plots.PALETTE[3],
    )
    ax.set_ylim(bottom=0)
    ax.set(title=title, xlabel="call number", ylabel="time of that one call (ms)")
    ax.legend(loc="upper right")
    return plots.show(fig)


# ----------------------------------------------------------------------------------------------
# Exercise 1: a correct timing function
# ----------------------------------------------------------------------------------------------

KERNEL_MS = 5.0
FIRST_CALL_MS = 100.0


class SimulatedGPU:
    """A stand-in for a CUDA device that behaves like one on any machine.

    ``launch()`` returns at once and the work "runs in the background"; ``synchronize()``
    waits until it is done. The first launch costs extra, like a real GPU's one-off setup.
    """

    def __init__(self, kernel_ms: float = KERNEL_MS, first_call_ms: float = FIRST_CALL_MS):
        self.kernel_ms = kernel_ms
        self.first_call_ms = first_call_ms
        self.busy_until = 0.0
        self.launches = 0
        self.syncs = 0

    def launch(self) -> None:
        cost_ms = self.first_call_ms if self.launches == 0 else self.kernel_ms
        self.launches += 1
        self.busy_until = max(self.busy_until, time.perf_counter()) + cost_ms / 1000

    def synchronize(self, device: object = None) -> None:
        self.syncs += 1
        remaining = self.busy_until - time.perf_counter()
        if remaining > 0:
            time.sleep(remaining)


def _run_time_it(time_it: Callable, device: torch.device, fn: Callable, synchronize: Callable):
    with mock.patch.object(torch.cuda, "synchronize", synchronize):
        return time_it(fn, device, warmup=3, repeats=10)


def check_time_it(time_it: Callable) -> None:
    """Run ``time_it`` on a simulated GPU and on the CPU, and say what it gets wrong."""
    expect(time_it is not None, "`time_it` is None: define the function")
    expect(callable(time_it), "`time_it` must be a function: def time_it(fn, device, ...)")

    cpu_syncs: list[object] = []
    result = _run_time_it(
        time_it, torch.device("cpu"), lambda: None, lambda *args: cpu_syncs.append(args)
    )
    expect(
        not cpu_syncs,
        "time_it called torch.cuda.synchronize() for a CPU device: synchronize only when "
        "device.type == 'cuda' (on a machine without a GPU it raises an error)",
    )
    expect(
        isinstance(result, int | float),
        f"time_it returned a {type(result).__name__}: return the milliseconds as a float",
    )

    gpu = SimulatedGPU()
    ms = _run_time_it(time_it, torch.device("cuda"), gpu.launch, gpu.synchronize)
    expect(gpu.launches > 0, "time_it never called `fn`: call fn() in the timing loop")
    expect(
        gpu.syncs > 0 or ms > 0.5 * KERNEL_MS,
        f"time_it measured {ms:.3f} ms for a call that keeps the GPU busy {KERNEL_MS:.0f} ms: "
        "CUDA is asynchronous, so the clock stopped before the GPU finished. Call "
        "torch.cuda.synchronize() before reading the clock",
    )
    expect(
        not (0.5 * KERNEL_MS / 1000 < ms < 1.6 * KERNEL_MS / 1000),
        f"time_it returned {ms:.4f} for a {KERNEL_MS:.0f} ms call: that is seconds; "
        "multiply by 1000 to return milliseconds",
    )
    expect(
        ms > 0.5 * KERNEL_MS,
        f"time_it measured {ms:.3f} ms for a call that keeps the GPU busy {KERNEL_MS:.0f} ms: "
        "synchronize after the timed calls too, right before you stop the clock",
    )
    if ms > 1.6 * KERNEL_MS:
        warmed_up = gpu.launches > 10
        expect(
            warmed_up,
            f"time_it measured {ms:.1f} ms per call, but a warm call takes {KERNEL_MS:.0f} ms: "
            f"no warm-up, so the slow first call ({FIRST_CALL_MS:.0f} ms of one-off setup) was "
            "timed. Call fn() `warmup` times before starting the clock",
        )
        expect(
            ms < 5 * KERNEL_MS,
            f"time_it returned {ms:.1f} ms for a {KERNEL_MS:.0f} ms call: that looks like the "
            "total of all repeats; divide by `repeats` to return the time of one call",
        )
        expect(
            False,
            f"time_it measured {ms:.1f} ms per call, but a warm call takes {KERNEL_MS:.0f} ms: "
            "the warm-up's queued work was still running when the clock started. Call "
            "torch.cuda.synchronize() after the warm-up, before starting the clock",
        )
    passed(
        f"time_it measured {ms:.2f} ms for a {KERNEL_MS:.0f} ms GPU call: warm-up done, "
        "clock read only after synchronizing"
    )


# ----------------------------------------------------------------------------------------------
# Exercise 2: read the profiler's op table
# ----------------------------------------------------------------------------------------------


def _expect_profile(prof: object, name: str) -> None:
    expect(
        prof is not None, f"`{name}` is None: run the code inside `with profile(...) as {name}:`"
    )
    expect(
        isinstance(prof, torch.profiler.profile),
        f"`{name}` is a {type(prof).__name__}, not a torch.profiler.profile: "
        f"use `with profile(...) as {name}:`",
    )
    try:
        events = prof.key_averages()
    except (AssertionError, RuntimeError):
        events = []
    expect(
        len(events) > 0,
        f"`{name}` recorded no ops: run the model *inside* the `with profile(...)` block",
    )


def check_top_op(prof: torch.profiler.profile, top_op: object) -> None:
    """``top_op`` must be the op with the largest *self* CPU time in ``prof``."""
    _expect_profile(prof, "prof")
    expect(top_op is not None, "`top_op` is None: replace the None with the op's name")
    expect(
        isinstance(top_op, str),
        f"`top_op` is a {type(top_op).__name__}: give the op's name, a string such as "
        "'aten::relu' (the `key` of an event)",
    )
    everything = {e.key: e for e in prof.key_averages()}
    expect(top_op in everything, f"there is no op named {top_op!r} in the profile")
    by_self = max(everything.values(), key=lambda e: e.self_cpu_time_total)
    if top_op != by_self.key:
        chosen = everything[top_op]
        expect(
            chosen.cpu_time_total <= by_self.self_cpu_time_total,
            f"{top_op!r} has a large *total* CPU time because the total includes the ops it "
            f"calls ({chosen.cpu_time_total / 1000:.1f} ms total, only "
            f"{chosen.self_cpu_time_total / 1000:.1f} ms self). Sort by self_cpu_time_total",
        )
        expect(
            False,
            f"{top_op!r} is not the op with the largest self CPU time: sort the events of "
            "prof.key_averages() by self_cpu_time_total and take the first",
        )
    passed(f"{top_op} is where the time goes: {by_self.self_cpu_time_total / 1000:.1f} ms self")


# ----------------------------------------------------------------------------------------------
# Exercise 3: label the stages of a pipeline and find the bottleneck
# ----------------------------------------------------------------------------------------------

STAGES = ("load", "model")


def stage_times_ms(prof: torch.profiler.profile) -> dict[str, float]:
    """Total CPU time of each ``record_function`` stage label found in ``prof``."""
    return {e.key: e.cpu_time_total / 1000 for e in prof.key_averages() if e.key in STAGES}


def check_stages(prof_stages: torch.profiler.profile, bottleneck: object) -> None:
    """The profile has both stage labels, and ``bottleneck`` names the slower stage."""
    _expect_profile(prof_stages, "prof_stages")
    stages = stage_times_ms(prof_stages)
    for stage in STAGES:
        expect(
            stage in stages,
            f"the profile has no {stage!r} region: wrap that stage in "
            f"`with record_function({stage!r}):` inside the loop",
        )
    expect(bottleneck is not None, "`bottleneck` is None: name the slower stage, 'load' or 'model'")
    expect(
        bottleneck in STAGES,
        f"`bottleneck` is {bottleneck!r}: it must be one of the stage names 'load' or 'model'",
    )
    slowest = max(stages, key=stages.get)
    times = ", ".join(f"{stage} {ms:.1f} ms" for stage, ms in stages.items())
    expect(
        bottleneck == slowest,
        f"{bottleneck!r} is not the slower stage ({times}): compare the stages' total CPU time",
    )
    passed(f"the bottleneck is {slowest!r} ({times})")


# ----------------------------------------------------------------------------------------------
# The measured improvement
# ----------------------------------------------------------------------------------------------


def agreement_sentence(
    timer_ms: float, timer_iqr_ms: float, helper_ms: float, helper_iqr_ms: float
) -> str:
    """Whether two medians of the same call agree: their gap against the sum of their spreads
    (IQR), since each median is only as sure as the runs behind it."""
    gap, noise = abs(timer_ms - helper_ms), timer_iqr_ms + helper_iqr_ms
    gap_text = f"The medians differ by {gap:.3f} ms ({gap / min(timer_ms, helper_ms):.0%})"
    if gap <= noise:
        return (
            f"{gap_text}, less than the two spreads together ({noise:.3f} ms): "
            "the two tools agree within the noise."
        )
    return (
        f"{gap_text}, more than the two spreads together ({noise:.3f} ms): either the machine "
        "changed between the two measurements (another program, the CPU's clock speed), or "
        "the tools time slightly different things (Timer times a loop of calls, timing.measure "
        "each call alone). Run the cell again: a gap that stays is the second."
    )


def _throughputs(runs_ms: Mapping[int, Sequence[float]], n_samples: int, pick: Callable) -> dict:
    return {size: n_samples / (pick(runs) / 1000) for size, runs in sorted(runs_ms.items())}


def throughput_title(runs_ms: Mapping[int, Sequence[float]], *, n_samples: int) -> str:
    """What the measured curve shows: rising, peaking and falling, or levelling off. A fall
    counts only when the slowest run at the peak beats the fastest run at the largest batch."""
    median = _throughputs(runs_ms, n_samples, statistics.median)
    slowest = _throughputs(runs_ms, n_samples, max)
    fastest = _throughputs(runs_ms, n_samples, min)
    sizes, values = list(median), list(median.values())
    best, smallest, largest = max(median, key=median.get), sizes[0], sizes[-1]
    gain = f"{median[best] / median[smallest]:.1f}× batch size {smallest}"
    if all(later > earlier for earlier, later in itertools.pairwise(values)):
        return f"Throughput rises with every batch size up to {largest}: {gain}"
    if best == largest:
        return f"Throughput is highest at batch size {best} ({gain}), but not rising at every step"
    if slowest[best] > fastest[largest]:
        drop = 1 - median[largest] / median[best]
        return f"Throughput peaks at batch size {best} ({gain}), then falls {drop:.0%} by {largest}"
    return f"Throughput levels off from batch size {best} ({gain}): larger batches gain nothing"


def throughput_chart(runs_ms: Mapping[int, Sequence[float]], *, n_samples: int) -> Figure:
    """Median throughput per batch size on a log-2 x axis (sizes double), y from 0, with a bar
    from the slowest to the fastest run; the title says what the measured curve does."""
    median = _throughputs(runs_ms, n_samples, statistics.median)
    slowest = _throughputs(runs_ms, n_samples, max)
    fastest = _throughputs(runs_ms, n_samples, min)
    sizes = list(median)
    fig, ax = plots.figure(figsize=(8, 4.5))
    ax.errorbar(
        sizes,
        [median[b] for b in sizes],
        yerr=[[median[b] - slowest[b] for b in sizes], [fastest[b] - median[b] for b in sizes]],
        marker="o",
        linewidth=2,
        capsize=5,
        color=plots.PALETTE[0],
        label="median run (bar: slowest to fastest run)",
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(size) for size in sizes])
    ax.minorticks_off()
    ax.set_ylim(0, max(fastest.values()) * 1.15)
    ax.set(
        title=throughput_title(runs_ms, n_samples=n_samples),
        xlabel="batch size (log scale)",
        ylabel="samples per second",
    )
    ax.legend(loc="lower right")
    return plots.show(fig)


def improvement_sentence(throughput: Mapping[int, float], device: torch.device) -> str:
    """One sentence saying how much the best batch size gained over batch size 1."""
    best = max(throughput, key=throughput.get)
    ratio = throughput[best] / throughput[1]
    return (
        f"On this {device.type}, batch size {best} predicted {throughput[best]:,.0f} samples/s "
        f"against {throughput[1]:,.0f} samples/s one at a time: {ratio:.1f}× the throughput."
    )
