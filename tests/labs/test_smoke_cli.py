"""`python -m workshop_labs.smoke` run natively, as on a GPU machine in a virtualenv.

It runs in a subprocess, as it does in an image, so its exit status, its table and its JSON
report are what is tested; the tiny-/dev/shm case and the attendees' limits are
tests/e2e/test_smoke_images.py's, with real Docker limits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workshop_labs.smoke import cli as smoke_cli

REPO = Path(__file__).resolve().parents[2]
# The report lists the system checks in the order the smoke test plans them.
STATIC_CHECKS = [check.name for check in smoke_cli.STATIC_CHECKS]


def run_smoke(tmp_path: Path, *args: str, env: dict | None = None):
    """Run the smoke test; returns (completed process, parsed JSON report)."""
    report_path = tmp_path / "report.json"
    completed = subprocess.run(
        [sys.executable, "-m", "workshop_labs.smoke", "--json", str(report_path), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return completed, report


def by_name(report: dict) -> dict[str, dict]:
    return {check["name"]: check for check in report["checks"]}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """Every check but the labs, with NVIDIA_VISIBLE_DEVICES set the way the fake NVIDIA hook
    sets it on the CI host (a GPU assigned, no CUDA behind it)."""
    return run_smoke(
        tmp_path_factory.mktemp("full"), "--skip", "labs", env={"NVIDIA_VISIBLE_DEVICES": "1"}
    )


def test_every_check_passes_or_skips_with_a_reason(full_run):
    completed, report = full_run
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert report["ok"] is True
    checks = by_name(report)
    assert list(checks) == STATIC_CHECKS
    for check in checks.values():
        assert check["verdict"] in {"pass", "skip"}, check
        assert check["note"], f"{check['name']} gives no note"
        assert check["seconds"] >= 0
    for name in ("system", "versions", "pins", "amp_cpu", "dataloader", "kernel", "compile"):
        assert checks[name]["verdict"] == "pass", checks[name]


def test_table_on_stdout_and_progress_on_stderr(full_run):
    completed, _ = full_run
    for name in STATIC_CHECKS:
        assert name in completed.stdout
    assert "OK:" in completed.stdout
    assert "[smoke" in completed.stderr and "[smoke" not in completed.stdout


def test_figures_are_measured(full_run):
    _, report = full_run
    checks = by_name(report)
    import torch

    system = checks["system"]["figures"]
    assert system["uid"] == os.getuid()
    assert system["cpu_count"] == os.cpu_count()
    assert {"memory_limit_bytes", "pids_max", "cgroup_version"} <= set(system)
    versions = checks["versions"]["figures"]
    assert versions["torch"] == torch.__version__
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    amp = checks["amp_cpu"]["figures"]["cpu_bfloat16"]
    assert amp["output_dtype"] == "bfloat16"
    assert amp["losses"][-1] < amp["losses"][0]
    assert amp["speedup_vs_fp32"] > 0
    dataloader = checks["dataloader"]["figures"]
    assert dataloader["shm_bytes"] == shutil.disk_usage("/dev/shm").total
    assert dataloader["workers"] == 2
    assert checks["kernel"]["figures"]["result"] == "2"
    assert checks["compile"]["figures"]["max_abs_difference"] < 1e-3


def test_torch_compile_without_a_compiler_fails_naming_the_fix(tmp_path):
    """The image without g++: the check fails with the cause and the fix, not a traceback. A
    fresh inductor cache, or an earlier build would be reused without any compiler."""
    completed, report = run_smoke(
        tmp_path,
        "--only",
        "compile",
        env={"CXX": str(tmp_path / "no-such-g++"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path)},
    )
    assert completed.returncode != 0
    (check,) = report["checks"]
    assert check["verdict"] == "fail"
    assert "torch.compile could not build for the CPU" in check["note"]
    assert "g++ and Python's headers" in check["note"]
    assert "Traceback" not in completed.stdout + completed.stderr


def test_gpu_checks_report_the_assigned_devices(full_run):
    _, report = full_run
    gpu, amp_cuda = by_name(report)["gpu"], by_name(report)["amp_cuda"]
    assert gpu["figures"]["NVIDIA_VISIBLE_DEVICES"] == "1"
    if gpu["figures"]["cuda_available"]:
        assert gpu["verdict"] == amp_cuda["verdict"] == "pass"
        assert gpu["figures"]["devices"][0]["matmul_relative_error"] < 1e-4
    else:
        assert gpu["verdict"] == amp_cuda["verdict"] == "skip"
        assert "no CUDA" in gpu["note"] and "NVIDIA_VISIBLE_DEVICES=1" in gpu["note"]


def test_require_gpu_without_cuda_fails_clearly(tmp_path):
    # An empty CUDA_VISIBLE_DEVICES hides every GPU, so this also runs on a GPU machine.
    completed, report = run_smoke(
        tmp_path, "--only", "gpu,amp_cuda", "--require-gpu", env={"CUDA_VISIBLE_DEVICES": ""}
    )
    assert completed.returncode == 1
    assert report["ok"] is False
    for check in report["checks"]:
        assert check["verdict"] == "fail"
        assert "GPU required (--require-gpu)" in check["note"]
        assert "nvidia-container-toolkit" in check["note"]
    assert "FAILED" in completed.stdout


def test_a_single_lab_runs_in_quick_mode(tmp_path):
    from workshop_labs.notebooks import lab_sources

    first_lab = lab_sources(REPO / "labs")[0]
    completed, report = run_smoke(tmp_path, "--only", f"lab:{first_lab.stem[:2]}")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (check,) = report["checks"]
    assert check["name"] == f"lab:{first_lab.stem}"
    assert check["verdict"] == "pass"
    assert 0 < check["figures"]["seconds"] <= check["figures"]["budget_seconds"]


LAB_HEADER = "# %% [markdown]\n# # A lab written for this test\n\n"


def test_a_broken_or_slow_lab_fails_with_the_reason(tmp_path):
    labs = tmp_path / "labs"
    labs.mkdir()
    (labs / "01_broken.py").write_text(LAB_HEADER + "# %%\nraise ValueError('lab is broken')\n")
    slow_cells = "".join("# %%\nimport time\ntime.sleep(1.5)\n\n" for _ in range(3))
    (labs / "02_slow.py").write_text(LAB_HEADER + slow_cells)
    completed, report = run_smoke(
        tmp_path, "--only", "labs", "--labs-dir", str(labs), "--lab-budget", "3"
    )
    assert completed.returncode == 1
    checks = by_name(report)
    assert checks["lab:01_broken"]["verdict"] == "fail"
    assert "ValueError: lab is broken" in checks["lab:01_broken"]["note"]
    assert checks["lab:02_slow"]["verdict"] == "fail"
    assert "over its 3 s budget" in checks["lab:02_slow"]["note"]


def test_no_labs_is_a_failure(tmp_path):
    completed, report = run_smoke(tmp_path, "--only", "labs", "--labs-dir", str(tmp_path))
    assert completed.returncode == 1
    (check,) = report["checks"]
    assert check["verdict"] == "fail" and "--labs-dir" in check["note"]


def test_pins_that_differ_warn_but_do_not_fail(tmp_path):
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("# pins\ntorch==0.0.1\nnumpy==0.0.2  # why\nnot-a-package==1.0\n")
    completed, report = run_smoke(tmp_path, "--only", "pins", "--constraints", str(constraints))
    assert completed.returncode == 0
    (pins,) = report["checks"]
    assert pins["verdict"] == "warn"
    assert "torch" in pins["note"] and "pinned 0.0.1" in pins["note"]
    assert set(pins["figures"]["differ"]) == {"torch", "numpy"}
    assert pins["figures"]["not_installed"] == ["not-a-package"]


def test_missing_constraints_skip_and_say_how_to_fix(tmp_path):
    completed, report = run_smoke(
        tmp_path, "--only", "pins", "--constraints", str(tmp_path / "missing.txt")
    )
    assert completed.returncode == 0
    (pins,) = report["checks"]
    assert pins["verdict"] == "skip" and "--constraints" in pins["note"]


def test_unknown_check_is_refused(tmp_path):
    completed, report = run_smoke(tmp_path, "--only", "versoins")
    assert completed.returncode == 2
    assert report is None
    assert "unknown check 'versoins'" in completed.stderr and "versions" in completed.stderr


def test_only_and_skip_select_by_name_group_and_lab_prefix(tmp_path):
    completed, report = run_smoke(tmp_path, "--only", "versions,amp", "--skip", "amp_cuda")
    assert completed.returncode == 0
    assert [check["name"] for check in report["checks"]] == ["versions", "pins", "amp_cpu"]


def test_the_attendee_notebooks_run_past_their_unsolved_exercises(tmp_path):
    """The image's default: the notebooks attendees get, not strict, as their Run All."""
    import nbformat

    from workshop_labs.notebooks import attendee_edition, build_notebook, lab_sources

    first_lab = lab_sources(REPO / "labs")[0]
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nbformat.write(
        attendee_edition(build_notebook(first_lab)), notebooks / f"{first_lab.stem}.ipynb"
    )
    completed, report = run_smoke(tmp_path, "--only", "labs", "--labs-dir", str(notebooks))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (check,) = report["checks"]
    assert check["name"] == f"lab:{first_lab.stem}" and check["verdict"] == "pass", check
    assert check["figures"]["edition"] == "attendee notebook"
