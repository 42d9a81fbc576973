"""No solution ships in the attendee image before the instructor reveals it: no secret line of
any solution (tests/labs/solution_lines.py says which lines are secret, and why) is in a file
the image copies from this repository, that is the helper package and the notebooks built as
the image builds them. The end-to-end twin, tests/e2e/test_solution_secrecy.py, searches the
image itself."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import pytest

from tests.labs.solution_lines import found_in, normalised, of_lab_or_later, secret_lines
from workshop_labs.notebooks import lab_sources

REPO = Path(__file__).resolve().parents[2]
LAB_SOURCES = lab_sources(REPO / "labs")
# What docker/lab/Dockerfile copies from the repository into the attendee image, besides the
# notebooks it builds; .dockerignore keeps caches and egg-info out of the build context.
SHIPPED = [
    REPO / "labs" / "workshop_labs",
    REPO / "labs" / "START_HERE.md",
    REPO / "docker" / "lab",
    REPO / "docker" / "pip-install.sh",
    REPO / "lab-extension" / "workshop_help",
    REPO / "lab-extension" / "labextension",
]
LEFT_OUT_OF_CONTEXT = {"__pycache__", "workshop_labs.egg-info", ".ipynb_checkpoints"}


@functools.cache
def secrets() -> dict[str, list[str]]:
    return secret_lines(LAB_SOURCES)


def shipped_files(*roots: Path) -> list[Path]:
    files = []
    for root in roots:
        candidates = [root] if root.is_file() else sorted(root.rglob("*"))
        files += [
            path
            for path in candidates
            if path.is_file() and not LEFT_OUT_OF_CONTEXT & set(path.relative_to(REPO).parts)
        ]
    return files


def build_notebooks(outdir: Path, *options: str) -> list[Path]:
    """The notebooks as the image's build stage builds them (scripts/build_notebooks.py)."""
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_notebooks.py"), str(outdir), *options],
        check=True,
        capture_output=True,
    )
    return sorted(outdir.glob("*.ipynb"))


def leaks(files: list[Path], lab_of_file=lambda path: 1) -> dict[str, list[str]]:
    """{file: ["line   (lab N · exercise)", ...]} for each file holding a secret line of lab
    ``lab_of_file(file)`` or a later lab."""
    found = {}
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        hidden = of_lab_or_later(secrets(), lab_of_file(path))
        lines = [f"{line}   ({', '.join(hidden[line])})" for line in found_in(text, hidden)]
        if lines:
            found[str(path.relative_to(REPO) if path.is_relative_to(REPO) else path.name)] = lines
    return found


def describe(found: dict[str, list[str]]) -> str:
    return "\n".join(f"{name}:\n  " + "\n  ".join(lines) for name, lines in found.items())


def test_every_lab_has_secret_lines():
    """Each exercise is more than its starter: were the rule to hide nothing, the tests below
    would prove nothing."""
    exercises = {where for places in secrets().values() for where in places}
    assert {where.split(" · ")[0] for where in exercises} == {f"lab {n}" for n in range(1, 8)}
    assert len(exercises) >= 3 * 7, sorted(exercises)


def test_the_helper_package_holds_no_solution_line():
    found = leaks(shipped_files(*SHIPPED))
    assert not found, (
        "The attendee image ships these lines of hidden solutions (go on with a stand-in that is "
        "not the solution, or check properties, instead of repeating it):\n" + describe(found)
    )


def test_the_attendee_notebooks_hold_no_solution_line(tmp_path: Path):
    """A lab's notebook may show an earlier lab's solutions, revealed by the time it starts."""
    found = leaks(build_notebooks(tmp_path), lab_of_file=lambda path: int(path.name[:2]))
    assert not found, "The attendee notebooks show hidden solutions:\n" + describe(found)


def test_the_search_finds_every_secret_line_in_the_instructors_edition(tmp_path: Path):
    """The control: the same search over the edition with solutions finds each secret line,
    so a solution that slipped into the attendee's notebook would be found too."""
    found = leaks(build_notebooks(tmp_path, "--with-solutions"))
    assert {line.split("   (")[0] for lines in found.values() for line in lines} == set(secrets())


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("        return loss.item()  # a float", "return loss.item()"),
        ("    scaler.update()", "scaler.update()"),
        ('    "model": model.state_dict(),', '"model": model.state_dict(),'),
        ("import math", None),
        ("from torch import nn", None),
        ("    ],", None),
        ("    )", None),
        ("        else:", None),
        ("    return history", None),
        ("    # a comment", None),
        ("", None),
    ],
)
def test_normalised_keeps_what_says_something(line: str, kept: str | None):
    assert normalised(line) == kept
