"""The limits the attendee's code runs under: a wrong one explains many later failures."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from workshop_labs.smoke.core import Options, read_first_line
from workshop_labs.units import human_size

CGROUP_ROOT = Path("/sys/fs/cgroup")
SHM_DIR = Path("/dev/shm")
# cgroup v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX * page size).
UNLIMITED_THRESHOLD = 2**60


def cgroup_number(text: str | None) -> int | None:
    """A cgroup limit as an int, None for 'max', unlimited or unreadable."""
    if text is None or not text.lstrip("-").isdigit():
        return None
    value = int(text)
    return None if value < 0 or value >= UNLIMITED_THRESHOLD else value


def _cores(quota: int | None, period: int | None) -> float | None:
    return round(quota / period, 2) if quota and period else None


def cgroup_limits(root: Path = CGROUP_ROOT) -> dict[str, Any]:
    """Memory, pids and CPU limits of this container from cgroup v2, else cgroup v1."""
    if (root / "cgroup.controllers").exists():
        cpu_max = (read_first_line(root / "cpu.max") or "max").split()
        return {
            "cgroup_version": 2,
            "memory_limit_bytes": cgroup_number(read_first_line(root / "memory.max")),
            "pids_max": cgroup_number(read_first_line(root / "pids.max")),
            "cpu_quota_cores": _cores(
                cgroup_number(cpu_max[0]), cgroup_number(cpu_max[1]) if len(cpu_max) > 1 else None
            ),
        }
    return {
        "cgroup_version": 1,
        "memory_limit_bytes": cgroup_number(
            read_first_line(root / "memory" / "memory.limit_in_bytes")
        ),
        "pids_max": cgroup_number(read_first_line(root / "pids" / "pids.max")),
        "cpu_quota_cores": _cores(
            cgroup_number(read_first_line(root / "cpu" / "cpu.cfs_quota_us")),
            cgroup_number(read_first_line(root / "cpu" / "cpu.cfs_period_us")),
        ),
    }


def shm_size_bytes(path: Path = SHM_DIR) -> int | None:
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    return stats.f_blocks * stats.f_frsize


def check_system(options: Options, figures: dict) -> str:
    limits = cgroup_limits()
    figures.update(limits)
    figures["uid"] = os.getuid()
    figures["gid"] = os.getgid()
    figures["cpu_count"] = os.cpu_count()
    figures["cpus_usable"] = len(os.sched_getaffinity(0))
    figures["shm_bytes"] = shm_size_bytes()
    figures["image_flavor"] = os.environ.get("WORKSHOP_IMAGE_FLAVOR")  # set by the lab image
    figures["hostname"] = platform.node()
    figures["platform"] = platform.platform()
    cpus = limits["cpu_quota_cores"] or figures["cpus_usable"]
    return (
        f"uid {figures['uid']} · {cpus:g} CPUs"
        f" · memory {human_size(limits['memory_limit_bytes'])}"
        f" · pids {limits['pids_max'] or 'unlimited'}"
        f" · /dev/shm {human_size(figures['shm_bytes'])}"
    )
