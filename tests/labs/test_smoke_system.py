"""workshop_labs.smoke.system: the container's limits read from cgroup v2 and v1 files."""

from __future__ import annotations

from workshop_labs.smoke.system import cgroup_limits


def test_cgroup_v2_limits(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "memory.max").write_text("2147483648\n")
    (tmp_path / "pids.max").write_text("512\n")
    (tmp_path / "cpu.max").write_text("200000 100000\n")
    assert cgroup_limits(tmp_path) == {
        "cgroup_version": 2,
        "memory_limit_bytes": 2 * 1024**3,
        "pids_max": 512,
        "cpu_quota_cores": 2.0,
    }
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "cpu.max").write_text("max 100000\n")
    limits = cgroup_limits(tmp_path)
    assert limits["memory_limit_bytes"] is None and limits["cpu_quota_cores"] is None


def test_cgroup_v1_limits(tmp_path):
    for folder, name, value in [
        ("memory", "memory.limit_in_bytes", "9223372036854771712"),  # v1's "unlimited"
        ("pids", "pids.max", "max"),
        ("cpu", "cpu.cfs_quota_us", "400000"),
        ("cpu", "cpu.cfs_period_us", "100000"),
    ]:
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_text(value + "\n")
    assert cgroup_limits(tmp_path) == {
        "cgroup_version": 1,
        "memory_limit_bytes": None,
        "pids_max": None,
        "cpu_quota_cores": 4.0,
    }
