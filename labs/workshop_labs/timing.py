"""Timing code correctly: warm-up first, then repeated runs, synchronizing with the GPU.

Lab 3 teaches these steps in its own cells (its ``time_runs``); this is the same code packaged
for the labs after it. GPU kernels run asynchronously: without ``torch.cuda.synchronize()`` a
timer only measures how long it took to *queue* the work. The first calls also pay one-off
costs (memory allocation, kernel selection, compilation), so they are run and thrown away
before measuring.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


def quartiles(runs: Sequence[float]) -> tuple[float, float, float]:
    """First quartile, median and third quartile of repeated timings, each one of the runs or
    between two of them (a single run is all three)."""
    if len(runs) == 1:
        return (runs[0],) * 3
    low, median, high = statistics.quantiles(runs, n=4, method="inclusive")
    return low, median, high


@dataclass(frozen=True)
class Measurement:
    """Wall-clock time of one call, in milliseconds; ``runs`` holds every measured call."""

    mean_ms: float
    std_ms: float
    min_ms: float
    runs: tuple[float, ...]

    @property
    def quartiles(self) -> tuple[float, float, float]:
        """First quartile, median and third quartile of the runs: a median with the range of
        the middle half, e.g. for ``plots.bars(..., spread=...)``."""
        return quartiles(self.runs)

    def __str__(self) -> str:
        spread = f"± {self.std_ms:.3f} ms (min {self.min_ms:.3f}, n={len(self.runs)})"
        return f"{self.mean_ms:.3f} ms {spread}"


def sync(device: torch.device | str) -> None:
    """Wait until the GPU has finished its queued work; nothing to wait for on the CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    fn: Callable[[], object],
    *,
    device: torch.device | str,
    warmup: int = 3,
    repeats: int = 10,
) -> Measurement:
    """Call ``fn`` ``warmup`` times untimed, then time ``repeats`` calls one by one."""
    if repeats < 1:
        raise ValueError(f"repeats={repeats}: at least one timed run is needed")
    for _ in range(warmup):
        fn()
    sync(device)
    runs = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        runs.append((time.perf_counter() - start) * 1000.0)
    std = statistics.stdev(runs) if len(runs) > 1 else 0.0
    return Measurement(statistics.fmean(runs), std, min(runs), tuple(runs))


def compare(baseline: Measurement, candidate: Measurement) -> float:
    """Speed-up of ``candidate`` over ``baseline``: 2.0 means the candidate takes half the time."""
    return baseline.mean_ms / candidate.mean_ms


# Lab 3's rule for every speed statement of the course: repeat, compare the middle halves of
# the runs, and say "within the noise" when they overlap; never a verdict from one run.

FASTER, SLOWER, WITHIN_THE_NOISE = "faster", "slower", "within the noise"
# Every printed verdict starts with this, so a reader (and the labs' verdict tests, which run
# the measurements again on a loaded machine) finds each one.
VERDICT = "Verdict ·"


@dataclass(frozen=True)
class Speedup:
    """How much faster ``after`` ran than ``before``: the ratio of the median runs, and the range
    the quartiles allow (the slower quarter of one against the faster quarter of the other)."""

    ratio: float
    low: float
    high: float

    @property
    def within_noise(self) -> bool:
        """The middle halves of the two sets of runs overlap: no difference beyond the noise."""
        return self.low <= 1 <= self.high

    @property
    def direction(self) -> str:
        """FASTER, SLOWER or WITHIN_THE_NOISE: what may be said, and nothing more."""
        if self.within_noise:
            return WITHIN_THE_NOISE
        return FASTER if self.ratio > 1 else SLOWER

    def __str__(self) -> str:
        quartiles = f"quartiles {_ratio(self.low)}–{_ratio(self.high)}×"
        if self.within_noise:
            return f"{WITHIN_THE_NOISE} ({_ratio(self.ratio)}×, {quartiles})"
        if self.ratio > 1:
            return f"{self.ratio:.1f}× {FASTER} ({quartiles})"
        return f"{1 / self.ratio:.1f}× {SLOWER} ({_ratio(self.ratio)}×, {quartiles})"


def _ratio(value: float) -> str:
    """Two decimals, or two significant digits below 0.01 (a 500× slow-down is 0.002×, not
    0.00×)."""
    return f"{value:.2f}" if value >= 0.01 else f"{value:.2g}"


def speedup(before_ms: Sequence[float], after_ms: Sequence[float]) -> Speedup:
    """The speed-up of ``after`` over ``before`` from their repeated runs (milliseconds)."""
    if not before_ms or not after_ms:
        raise ValueError("a speed-up needs runs of both: time each side at least once")
    before_q1, before_median, before_q3 = quartiles(before_ms)
    after_q1, after_median, after_q3 = quartiles(after_ms)
    return Speedup(before_median / after_median, before_q1 / after_q3, before_q3 / after_q1)


def verdict(what: str, before_ms: Sequence[float], after_ms: Sequence[float]) -> str:
    """One printed line: ``what`` (e.g. "AMP training step vs float32") and its speed-up."""
    return f"{VERDICT} {what}: {speedup(before_ms, after_ms)}"
