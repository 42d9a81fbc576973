"""Lab 7 starts three more torch processes; before it does, it says what to close when they
would not fit under the container's memory limit (instead of the kernel being killed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workshop_labs import runtime
from workshop_labs.checks import NotEnoughMemory

GB = 10**9


def cgroup_v2(root: Path, limit: str, current: int, inactive_file: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpu memory pids\n")  # how v2 is told apart
    (root / "memory.max").write_text(f"{limit}\n")
    (root / "memory.current").write_text(f"{current}\n")
    (root / "memory.stat").write_text(f"anon 1\ninactive_file {inactive_file}\nactive_file 5\n")
    return root


def cgroup_v1(root: Path, limit: int, usage: int, inactive_file: int) -> Path:
    memory = root / "memory"
    memory.mkdir(parents=True)
    (memory / "memory.limit_in_bytes").write_text(f"{limit}\n")
    (memory / "memory.usage_in_bytes").write_text(f"{usage}\n")
    (memory / "memory.stat").write_text(f"cache 9\ntotal_inactive_file {inactive_file}\n")
    return root


def test_headroom_is_the_limit_less_what_is_used_and_cannot_be_given_back(tmp_path):
    v2 = cgroup_v2(tmp_path / "v2", str(2 * GB), int(1.5 * GB), int(0.1 * GB))
    assert runtime.memory_headroom(v2) == int(0.6 * GB)
    v1 = cgroup_v1(tmp_path / "v1", 2 * GB, int(1.5 * GB), int(0.1 * GB))
    assert runtime.memory_headroom(v1) == int(0.6 * GB)


@pytest.mark.parametrize("limit", ["max", str(2**63 - 4096)])
def test_no_limit_or_no_cgroup_means_no_refusal(tmp_path, limit):
    assert runtime.memory_headroom(cgroup_v2(tmp_path / "v2", limit, GB, 0)) is None
    assert runtime.memory_headroom(tmp_path / "nothing here") is None
    runtime.make_room_for("torchrun", 100 * GB, tmp_path / "nothing here")  # goes on


def test_a_full_container_is_told_which_kernels_to_shut_down(tmp_path):
    # Lab 6's kernel still open beside lab 7's: 1.6 GB of the 2 GB used.
    full = cgroup_v2(tmp_path, str(2 * GB), int(1.6 * GB), 0)
    with pytest.raises(NotEnoughMemory) as refused:
        runtime.make_room_for("torchrun with two processes", 0.9e9, full)
    message = str(refused.value)
    # 0.9 GB and 0.4 GB, said in binary units as everywhere.
    assert "needs about 858.3 MiB" in message and "381.5 MiB is free" in message
    assert "shut down every kernel but this notebook's" in message
    runtime.make_room_for("torchrun with two processes", 0.3e9, full)  # fits: goes on
