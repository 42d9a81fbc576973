"""The smoke test's system checks run in a child process that ends before the labs start:
torch, a compiled model and the GPU context held by the smoke test itself would otherwise take
memory from the labs' kernels under an attendee's limit (0.8 GB measured in the CPU image)."""

from __future__ import annotations

import os
import signal

from workshop_labs.smoke import cli
from workshop_labs.smoke.core import FAIL, PASS, Check, Options
from workshop_labs.smoke.labs import LAB_GROUP

OPTIONS = Options(require_gpu=False, constraints=None, lab_budget_s=60)


def note_the_process(options: Options, figures: dict) -> str:
    figures["pid"] = os.getpid()
    return "ran"


def die_like_an_out_of_memory_kill(options: Options, figures: dict) -> str:
    os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer sends
    return "never reached"


def results_by_name(checks: list[Check]) -> dict:
    return {result.name: result for result in cli.run_with_scratch_work_dir(checks, OPTIONS)}


def test_the_system_checks_run_in_a_process_that_is_gone_before_the_labs():
    results = results_by_name(
        [
            Check("versions", "versions", note_the_process),
            Check("kernel", "runtime", note_the_process),
            Check("lab:01_intro", LAB_GROUP, note_the_process),
        ]
    )
    assert all(result.verdict == PASS for result in results.values()), results
    child = results["versions"].figures["pid"]
    assert results["kernel"].figures["pid"] == child, "one child for every system check"
    assert child != os.getpid()
    assert results["lab:01_intro"].figures["pid"] == os.getpid(), "labs run in the smoke test"
    try:
        os.kill(child, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"the system checks' process {child} is still alive")


def test_a_check_that_kills_its_process_fails_and_the_labs_still_run():
    results = results_by_name(
        [
            Check("compile", "runtime", die_like_an_out_of_memory_kill),
            Check("lab:07_advanced", LAB_GROUP, note_the_process),
        ]
    )
    assert results["compile"].verdict == FAIL
    assert "died" in results["compile"].note and "--only" in results["compile"].note
    assert results["lab:07_advanced"].verdict == PASS
