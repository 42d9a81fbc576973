"""The labs themselves: each run top to bottom in a fresh kernel, quick mode, within a budget.

Two editions can be run. The lab sources (``0*_*.py``, the repository's ``labs/``) run with
every exercise solved, in strict mode, so a broken solution or check fails. The notebooks
attendees get (``0*_*.ipynb``, the lab image's attendee edition) run as they are: each
unsolved exercise goes on with its stand-in, as an attendee's "Run All" does.
"""

from __future__ import annotations

import math
import os
import time
from functools import partial
from pathlib import Path

from workshop_labs.smoke.core import Check, Failed, Options, progress

DEFAULT_LAB_BUDGET_S = 120
LAB_PREFIX = "lab:"
LAB_GROUP = "labs"
# Set by the lab image: where its attendee notebooks are.
NOTEBOOKS_DIR_ENV = "WORKSHOP_NOTEBOOKS_DIR"


def lab_files(folder: Path) -> list[Path]:
    """The lab sources in `folder`, else its notebooks, in lab order."""
    from workshop_labs import notebooks

    return notebooks.lab_sources(folder) or sorted(folder.glob("0*_*.ipynb"))


def default_labs_dir() -> Path | None:
    """This checkout's lab sources natively; in the image (which holds no sources), the
    attendee notebooks."""
    from workshop_labs import notebooks

    candidates = [notebooks.default_labs_dir()]
    if os.environ.get(NOTEBOOKS_DIR_ENV):
        candidates.append(Path(os.environ[NOTEBOOKS_DIR_ENV]))
    return next((folder for folder in candidates if lab_files(folder)), None)


def check_lab(path: Path, options: Options, figures: dict) -> str:
    from workshop_labs import notebooks

    strict = path.suffix == ".py"
    figures["lab"] = str(path)
    figures["edition"] = "solved source, strict" if strict else "attendee notebook"
    figures["budget_seconds"] = options.lab_budget_s
    progress(
        f"labs: executing {path.name} ({figures['edition']}, quick mode, "
        f"budget {options.lab_budget_s:g} s)"
    )
    start = time.perf_counter()
    if strict:
        notebook = notebooks.apply_solutions(notebooks.build_notebook(path))
    else:
        import nbformat

        notebook = nbformat.read(path, as_version=4)
    try:
        notebooks.execute(
            notebook,
            quick=True,
            timeout=math.ceil(options.lab_budget_s),
            cwd=os.environ.get("WORKSHOP_WORK_DIR"),
            strict=strict,
        )
    except notebooks.LabFailed as error:
        raise Failed(str(error)) from None
    seconds = time.perf_counter() - start
    figures["seconds"] = round(seconds, 2)
    if seconds > options.lab_budget_s:
        raise Failed(
            f"took {seconds:.0f} s, over its {options.lab_budget_s:g} s budget: the machine is "
            "too slow or too loaded for the course (or raise --lab-budget)"
        )
    return f"ran in {seconds:.1f} s (budget {options.lab_budget_s:g} s, {figures['edition']})"


def lab_checks(labs_dir: Path | None) -> list[Check]:
    """One check per lab, or a single failing check saying why there are none."""

    def cannot_run(reason: str) -> list[Check]:
        def fail(options: Options, figures: dict) -> str:
            raise Failed(reason)

        return [Check(LAB_GROUP, LAB_GROUP, fail)]

    try:
        folder = labs_dir or default_labs_dir()
        files = lab_files(folder) if folder is not None else []
    except Exception as error:
        return cannot_run(
            f"the labs' helper package workshop_labs cannot be used ({error}): "
            "install it with `pip install -e labs` (the image installs it)"
        )
    if not files:
        where = folder or "this checkout's labs/ or $" + NOTEBOOKS_DIR_ENV
        return cannot_run(
            f"no lab sources (0*_*.py) or notebooks (0*_*.ipynb) in {where}: pass --labs-dir "
            "with the repository's labs/ or the image's notebooks (/opt/workshop/labs)"
        )
    return [
        Check(f"{LAB_PREFIX}{path.stem}", LAB_GROUP, partial(check_lab, path)) for path in files
    ]
