"""The day's plan: how many minutes each lab has in an 08:30–16:30 course day.

One place for these numbers: labs/README.md shows them (a test keeps the two the same) and
scripts/benchmark_labs.py holds each lab's full-mode run time against them.
"""

from __future__ import annotations

MINUTES_IN_THE_DAY = {1: 60, 2: 60, 3: 45, 4: 45, 5: 40, 6: 50, 7: 60}

# "Run All" on the course's smallest machine (2 CPU cores) may take at most this share of a
# lab's minutes: the rest is reading, thinking and the exercises, and attendees run some
# cells more than once.
RUN_SHARE_OF_THE_LAB = 0.2


def full_run_goal_seconds(lab: int) -> float:
    """The longest a full-mode "Run All" of ``lab`` may take."""
    return MINUTES_IN_THE_DAY[lab] * 60 * RUN_SHARE_OF_THE_LAB
