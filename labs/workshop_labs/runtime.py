"""Where a lab runs: quick mode, device, seeding, GPU memory share, progress bars, work folder.

Every lab starts with ``setup()``; every size a lab uses comes from ``pick(full=..., quick=...)``
so that ``WORKSHOP_QUICK=1`` (the tests) finishes in seconds without changing what is taught.
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from workshop_labs.modes import QUICK_ENV
from workshop_labs.smoke.core import read_first_line
from workshop_labs.smoke.system import CGROUP_ROOT, cgroup_limits, cgroup_number
from workshop_labs.units import human_size

T = TypeVar("T")

QUICK: bool = os.environ.get(QUICK_ENV, "0").strip().lower() in {"1", "true", "yes", "on"}
GPU_MEMORY_FRACTION_ENV = "WORKSHOP_GPU_MEMORY_FRACTION"
WORK_DIR_ENV = "WORKSHOP_WORK_DIR"


def pick(full: T, quick: T) -> T:
    """The quick-mode value when WORKSHOP_QUICK=1 (tests), otherwise the full-size value."""
    return quick if QUICK else full


@functools.cache
def device() -> torch.device:
    """The GPU when PyTorch can see one, otherwise the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and every GPU) so reruns give the same numbers."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def memory_headroom(cgroup: Path = CGROUP_ROOT) -> int | None:
    """Bytes this container may still use before its memory limit (the limit as the smoke
    test reads it, cgroup v2 or v1), not counting file cache the kernel gives back first;
    None without a limit or a cgroup."""
    limits = cgroup_limits(cgroup)
    if limits["cgroup_version"] == 2:
        memory, usage = cgroup, "memory.current"
    else:
        memory, usage = cgroup / "memory", "memory.usage_in_bytes"
    limit, used = limits["memory_limit_bytes"], cgroup_number(read_first_line(memory / usage))
    if limit is None or used is None:
        return None
    try:
        fields = dict(line.split() for line in (memory / "memory.stat").read_text().splitlines())
    except (OSError, ValueError):
        fields = {}
    cache = int(fields.get("inactive_file", fields.get("total_inactive_file", 0)))
    return limit - used + cache


def make_room_for(what: str, needed_bytes: float, cgroup: Path = CGROUP_ROOT) -> None:
    """Stop with what to close, before starting ``what``, when it would not fit in memory:
    the kernel would otherwise be killed (and this notebook's variables lost with it)."""
    from workshop_labs.checks import NotEnoughMemory

    headroom = memory_headroom(cgroup)
    if headroom is not None and headroom < needed_bytes:
        raise NotEnoughMemory(
            f"{what} needs about {human_size(needed_bytes)} of memory and {human_size(headroom)} "
            "is free: other labs' kernels hold the rest. In the Running tab (the ⏹ icon on the "
            "left) shut down every kernel but this notebook's, then run this cell again"
        )


def gpu_memory_fraction() -> float | None:
    """The share of each GPU's memory this attendee may use, from WORKSHOP_GPU_MEMORY_FRACTION.

    None when the variable is unset or empty; a ValueError naming the variable when it is not a
    number in (0, 1].
    """
    raw = os.environ.get(GPU_MEMORY_FRACTION_ENV, "").strip()
    if not raw:
        return None
    try:
        fraction = float(raw)
    except ValueError:
        raise ValueError(
            f"{GPU_MEMORY_FRACTION_ENV}={raw!r} is not a number: "
            "set it to a fraction in (0, 1], e.g. 0.25 for a quarter of the GPU memory"
        ) from None
    if not 0.0 < fraction <= 1.0:
        raise ValueError(
            f"{GPU_MEMORY_FRACTION_ENV}={raw!r} is outside (0, 1]: "
            "set it to a fraction such as 0.25 (a quarter) or 1 (the whole GPU)"
        )
    return fraction


def apply_gpu_memory_share() -> float | None:
    """Cap this process's share of every visible GPU's memory; returns the fraction applied."""
    fraction = gpu_memory_fraction()
    if fraction is None or not torch.cuda.is_available():
        return None
    for index in range(torch.cuda.device_count()):
        torch.cuda.set_per_process_memory_fraction(fraction, index)
    return fraction


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, nbclient), False in plain Python or pytest."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def progress(iterable: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """A progress bar: a widget in JupyterLab, text elsewhere, silent in quick mode (tests)."""
    from tqdm.auto import tqdm

    return iter(tqdm(iterable, desc=desc, total=total, disable=QUICK, leave=True))


def work_dir() -> Path:
    """The folder where labs save artifacts that later labs reuse (created when missing)."""
    folder = Path(os.environ.get(WORK_DIR_ENV) or Path.home() / "work" / "outputs").expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _cgroup_cpu_quota() -> float | None:
    """CPUs this container may use (its Docker --cpus), from cgroup v2 or v1; None if unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text().strip()
            period = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in {"max", "-1"}:
        return None
    return int(quota) / int(period)


def cpu_budget() -> int:
    """Threads worth running: the cores this process may use, capped by the container's quota.

    torch otherwise starts one thread per core of the *host*: in a container limited to 2 of
    64 cores that means 64 threads fighting over 2 cores, and small models run 10x slower.
    """
    cores = len(os.sched_getaffinity(0))
    quota = _cgroup_cpu_quota()
    return max(1, min(cores, int(quota) if quota else cores))


def _device_description(dev: torch.device) -> str:
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
        fraction = gpu_memory_fraction()
        share = f", {fraction:.0%} of its memory" if fraction is not None else ""
        return f"cuda ({name}{share})"
    return f"cpu ({torch.get_num_threads()} threads)"


def setup(seed: int = 0) -> torch.device:
    """Prepare a lab: seeds, CPU threads, device, GPU memory share, figure style, clear messages.

    Prints one line saying what was chosen and returns the device to put tensors on.
    """
    from workshop_labs import checks, plots

    seed_everything(seed)
    torch.set_num_threads(cpu_budget())
    dev = device()
    apply_gpu_memory_share()
    plots.apply_style()
    checks.install_notebook_handler()
    version = torch.__version__.split("+")[0]
    quick = "on" if QUICK else "off"
    print(f"PyTorch {version} · device: {_device_description(dev)} · quick mode: {quick}")
    return dev
