"""What every check shares: its verdicts, its options, its result, and the progress line."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PASS, WARN, SKIP, FAIL = "pass", "warn", "skip", "fail"

STARTED = time.monotonic()


def keep_clock(started: float) -> None:
    """In a child process: count progress times from the parent's start, as one timeline
    (the monotonic clock is the same for every process of the machine)."""
    global STARTED
    STARTED = started


def progress(message: str) -> None:
    """One line on stderr, so that the table on stdout stays clean for a reader or a pipe."""
    print(f"[smoke {time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


class Verdict(Exception):
    """Ends a check with a verdict other than pass; the message says why."""

    verdict = FAIL


class Failed(Verdict):
    verdict = FAIL


class Skipped(Verdict):
    verdict = SKIP


class Warned(Verdict):
    verdict = WARN


@dataclass
class Options:
    require_gpu: bool
    constraints: Path | None
    lab_budget_s: float


@dataclass
class Check:
    """A named step. `run(options, figures)` fills `figures` as it measures (so a failing check
    still reports what it saw), returns a one-line note, or raises a Verdict."""

    name: str
    group: str
    run: Callable[[Options, dict], str]


@dataclass
class Result:
    name: str
    group: str
    verdict: str
    note: str
    seconds: float
    figures: dict = field(default_factory=dict)
    error: str | None = None


def read_first_line(path: Path) -> str | None:
    try:
        return path.read_text().strip().splitlines()[0]
    except (OSError, IndexError):
        return None
