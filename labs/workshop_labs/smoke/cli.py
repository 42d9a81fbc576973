"""The command line: choose the checks, run them in order, print the table, keep the report."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from workshop_labs.smoke import core, report
from workshop_labs.smoke.amp import check_amp_cpu, check_amp_cuda
from workshop_labs.smoke.compiler import check_compile
from workshop_labs.smoke.core import FAIL, PASS, Check, Options, Result, Verdict, progress
from workshop_labs.smoke.dataloader import check_dataloader
from workshop_labs.smoke.gpu import check_gpu
from workshop_labs.smoke.kernel import check_kernel
from workshop_labs.smoke.labs import DEFAULT_LAB_BUDGET_S, LAB_GROUP, LAB_PREFIX, lab_checks
from workshop_labs.smoke.system import check_system
from workshop_labs.smoke.versions import check_pins, check_versions

STATIC_CHECKS = [
    Check("system", "system", check_system),
    Check("versions", "versions", check_versions),
    Check("pins", "versions", check_pins),
    Check("gpu", "gpu", check_gpu),
    Check("amp_cpu", "amp", check_amp_cpu),
    Check("amp_cuda", "amp", check_amp_cuda),
    Check("dataloader", "runtime", check_dataloader),
    Check("kernel", "runtime", check_kernel),
    Check("compile", "runtime", check_compile),
]


def selected(check: Check, only: list[str], skip: list[str]) -> bool:
    """A token selects a check by its name, its group, or a name prefix ('lab:02')."""

    def matches(token: str) -> bool:
        return token in (check.name, check.group) or check.name.startswith(token + "_")

    wanted = not only or any(matches(token) for token in only)
    return wanted and not any(matches(token) for token in skip)


def plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Check]:
    known = {name for check in STATIC_CHECKS for name in (check.name, check.group)} | {"labs"}
    for token in args.only + args.skip:
        if token not in known and not token.startswith(LAB_PREFIX):
            parser.error(f"unknown check {token!r}; choose from {', '.join(sorted(known))}, lab:NN")
    checks = [check for check in STATIC_CHECKS if selected(check, args.only, args.skip)]
    # Finding the labs imports workshop_labs.notebooks: only do it when a lab may run.
    wants_labs = "labs" not in args.skip and (
        not args.only or any(t == "labs" or t.startswith(LAB_PREFIX) for t in args.only)
    )
    if wants_labs:
        labs = [
            check for check in lab_checks(args.labs_dir) if selected(check, args.only, args.skip)
        ]
        lab_tokens = [token for token in args.only if token.startswith(LAB_PREFIX)]
        if lab_tokens and not labs:
            parser.error(f"no lab matches {', '.join(lab_tokens)}")
        checks += labs
    return checks


def run_check(check: Check, options: Options) -> Result:
    figures: dict = {}
    error = None
    start = time.perf_counter()
    try:
        verdict, note = PASS, check.run(options, figures)
    except Verdict as outcome:
        verdict, note = outcome.verdict, str(outcome)
    except Exception as unexpected:
        verdict, note = FAIL, f"{type(unexpected).__name__}: {unexpected}"
        error = traceback.format_exc()
    seconds = round(time.perf_counter() - start, 2)
    progress(f"{check.name}: {verdict} ({seconds:.1f} s)")
    return Result(check.name, check.group, verdict, note, seconds, figures, error)


def run_checks(checks: list[Check], options: Options) -> list[Result]:
    return [run_check(check, options) for check in checks]


def run_in_a_child_process(checks: list[Check], options: Options) -> list[Result]:
    """Run `checks` in a process of their own that ends before the labs start.

    The system checks import torch, compile a model and touch the GPU; in this process they
    would keep that memory (0.79 GB measured in the CPU image) for the whole run, and under
    an attendee's 2 GB limit lab 7's three torch processes then got the kernel killed. A
    crash in one of them (a segfault, the memory limit) also ends only that process: it is
    reported as a failure of the checks it took down, and the labs still run.
    """
    if not checks:
        return []
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing inherited
    try:
        with ProcessPoolExecutor(
            max_workers=1, mp_context=spawn, initializer=core.keep_clock, initargs=(core.STARTED,)
        ) as pool:
            return pool.submit(run_checks, checks, options).result()
    except BrokenProcessPool:
        note = (
            "the process running the system checks died (killed by the memory limit or a "
            "crash in torch): run `python -m workshop_labs.smoke --only NAME` for each check "
            "to find the one that takes it down"
        )
        progress(note)
        return [Result(check.name, check.group, FAIL, note, 0.0) for check in checks]


def run_with_scratch_work_dir(checks: list[Check], options: Options) -> list[Result]:
    """Labs save artifacts for later labs in WORKSHOP_WORK_DIR; give them a scratch folder so
    a smoke test never writes into an attendee's work, and run them in course order, after
    the system checks (run in a child process: see run_in_a_child_process)."""
    with tempfile.TemporaryDirectory(prefix="smoke-work-") as scratch:
        previous = os.environ.get("WORKSHOP_WORK_DIR")
        os.environ["WORKSHOP_WORK_DIR"] = scratch
        labs = [check for check in checks if check.group == LAB_GROUP]
        system = [check for check in checks if check.group != LAB_GROUP]
        try:
            return run_in_a_child_process(system, options) + run_checks(labs, options)
        finally:
            if previous is None:
                os.environ.pop("WORKSHOP_WORK_DIR")
            else:
                os.environ["WORKSHOP_WORK_DIR"] = previous


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, argparse.ArgumentParser]:
    def names(text: str) -> list[str]:
        return [token.strip() for token in text.split(",") if token.strip()]

    parser = argparse.ArgumentParser(
        prog="python -m workshop_labs.smoke",
        description="Smoke test of a lab environment: can an attendee do the whole course here?",
        epilog="Checks: system, versions (versions, pins), gpu, amp (amp_cpu, amp_cuda), "
        "runtime (dataloader, kernel), labs (lab:NN_name). Exit status 0 only when none failed.",
    )
    parser.add_argument("--json", type=Path, help="also write the full report to this file")
    parser.add_argument(
        "--require-gpu", action="store_true", help="fail (not skip) when there is no usable GPU"
    )
    parser.add_argument("--only", type=names, default=[], help="comma-separated checks or groups")
    parser.add_argument("--skip", type=names, default=[], help="comma-separated checks or groups")
    parser.add_argument("--constraints", type=Path, help="pins to compare with (constraints.txt)")
    parser.add_argument(
        "--labs-dir",
        type=Path,
        help="lab sources (0*_*.py: solved, strict) or attendee notebooks (0*_*.ipynb: as "
        "attendees run them); default: this checkout's labs/, else the image's notebooks",
    )
    parser.add_argument(
        "--lab-budget",
        type=float,
        default=DEFAULT_LAB_BUDGET_S,
        metavar="SECONDS",
        help=f"time each lab may take in quick mode (default {DEFAULT_LAB_BUDGET_S})",
    )
    return parser.parse_args(argv), parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, parser = parse_args(argv)
    options = Options(args.require_gpu, args.constraints, args.lab_budget)
    checks = plan(args, parser)
    results = run_with_scratch_work_dir(checks, options)
    print(report.render_table(results), flush=True)
    found = report.build_report(results, options, argv)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(found, indent=2, default=str) + "\n")
    return 0 if found["ok"] else 1
