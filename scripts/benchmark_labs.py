"""Time every lab, solutions applied, in quick and full mode, against the course's goals.

    python scripts/benchmark_labs.py [--modes quick,full] [--labs 01,03] [--keep DIR]

With --keep, each executed notebook (its outputs hold every figure and measured number) and
times.json (each run's start and end, seconds since the epoch, to line up with a GPU memory
log) are written to DIR.

Goals: all labs together in quick mode under 180 s (the test suite), and each lab's full-mode
"Run All" within its share of the lab's minutes in the day (workshop_labs.course), on 2 CPU
cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from workshop_labs import course, runtime
from workshop_labs.notebooks import (
    LabFailed,
    apply_solutions,
    build_notebook,
    execute,
    exercise_cells,
    lab_sources,
    sections,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
QUICK_TOTAL_GOAL_S = 180.0
KERNEL_TIMEOUT_S = 1200  # a cell that takes longer than this has hung


def run(source: Path, quick: bool, keep: Path | None = None) -> tuple[float, str]:
    """Seconds to execute the lab in a fresh kernel, and 'ok' or 'FAILED' (error on stderr)."""
    nb = apply_solutions(build_notebook(source))
    started_at, start = time.time(), time.perf_counter()
    with tempfile.TemporaryDirectory() as cwd:
        try:
            executed = execute(nb, quick=quick, timeout=KERNEL_TIMEOUT_S, cwd=cwd)
            status = "ok"
        except LabFailed as failure:
            executed, status = None, "FAILED"
            print(str(failure), file=sys.stderr)
    seconds = time.perf_counter() - start
    if keep is not None:
        mode = "quick" if quick else "full"
        if executed is not None:
            nbformat.write(executed, keep / f"{source.stem}.{mode}.ipynb")
        _record_time(keep / "times.json", f"{source.stem}.{mode}", started_at, status)
    return seconds, status


def _record_time(path: Path, run_name: str, started_at: float, status: str) -> None:
    times = json.loads(path.read_text()) if path.exists() else {}
    times[run_name] = {"start": started_at, "end": time.time(), "status": status}
    path.write_text(json.dumps(times, indent=2) + "\n")


def lab_table(
    sources: list[Path], modes: list[str], times: dict[tuple[str, str], tuple[float, str]]
) -> str:
    """One row per lab: its sections, exercises and minutes in the day, each mode's run time
    and, for a full run, its share of the lab's minutes."""
    header = ["lab", "sections", "exercises", "minutes", *[f"{mode} run" for mode in modes]]
    if "full" in modes:
        header.append("share of minutes")
    rows = [header]
    for source in sources:
        nb = build_notebook(source)
        lab = int(source.name[:2])
        minutes = course.MINUTES_IN_THE_DAY[lab]
        row = [source.name, str(len(sections(nb))), str(len(exercise_cells(nb.cells)))]
        row.append(str(minutes))
        for mode in modes:
            seconds, status = times[(source.name, mode)]
            row.append(f"{seconds:.1f} s" if status == "ok" else "FAILED")
        if "full" in modes:
            row.append(f"{times[(source.name, 'full')][0] / (minutes * 60):.1%}")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="quick,full", help="comma-separated: quick, full")
    parser.add_argument("--labs", default="", help="comma-separated lab numbers, e.g. 01,03")
    parser.add_argument("--labs-dir", type=Path, default=REPO_ROOT / "labs")
    parser.add_argument("--keep", type=Path, help="write executed notebooks and times.json here")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := set(modes) - {"quick", "full"}:
        parser.error(f"unknown mode(s) {sorted(unknown)}: use quick and/or full")
    wanted = {n.strip().zfill(2) for n in args.labs.split(",") if n.strip()}
    sources = [s for s in lab_sources(args.labs_dir) if not wanted or s.name[:2] in wanted]
    if not sources:
        parser.error(f"no lab matches --labs {args.labs!r} in {args.labs_dir}")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)

    # One work folder for the whole benchmark (labs reuse each other's outputs), its own:
    # never the attendee's ~/work/outputs, nor another run's beside it.
    own_work_dir = None
    if not os.environ.get(runtime.WORK_DIR_ENV):
        own_work_dir = tempfile.TemporaryDirectory(prefix="benchmark-labs-work-")
        os.environ[runtime.WORK_DIR_ENV] = own_work_dir.name
    times: dict[tuple[str, str], tuple[float, str]] = {}
    for mode in modes:
        for source in sources:
            print(f"running {source.name} in {mode} mode ...", flush=True)
            seconds, status = run(source, quick=mode == "quick", keep=args.keep)
            times[(source.name, mode)] = (seconds, status)
            print(f"  {seconds:7.1f} s  {status}", flush=True)

    print()
    print(lab_table(sources, modes, times))

    print()
    verdicts = []
    if "quick" in modes:
        total = sum(times[(s.name, "quick")][0] for s in sources)
        ok = total < QUICK_TOTAL_GOAL_S and all(
            times[(s.name, "quick")][1] == "ok" for s in sources
        )
        verdicts.append(ok)
        print(
            f"{'PASS' if ok else 'FAIL'}  quick mode, {len(sources)} labs together: "
            f"{total:.1f} s (goal < {QUICK_TOTAL_GOAL_S:.0f} s)"
        )
    if "full" in modes:
        for source in sources:
            seconds, status = times[(source.name, "full")]
            lab = int(source.name[:2])
            goal = course.full_run_goal_seconds(lab)
            ok = status == "ok" and seconds < goal
            verdicts.append(ok)
            print(
                f"{'PASS' if ok else 'FAIL'}  full mode, {source.name}: {seconds:.1f} s "
                f"(goal < {goal:.0f} s: {course.RUN_SHARE_OF_THE_LAB:.0%} of its "
                f"{course.MINUTES_IN_THE_DAY[lab]} minutes in the day)"
            )
    if own_work_dir is not None:
        own_work_dir.cleanup()
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
