"""The lines of the solutions that only the hub may show, and where to look for them.

A solution's secret is the code it adds to what the attendee already sees. So a line of a
solution is *secret* when, normalised, it is not trivial and the attendee has not been shown
it before reaching the exercise: it is in no cell above the exercise's solution in the
attendee's notebook (its starter included) and in no earlier lab's notebook. Later labs may
build on a solution: the instructor has revealed it by then.

Normalising a line: strip its indentation and an inline comment (`code  # why`: two spaces
then `#`, as ruff formats it). Trivial lines say nothing about the answer:

* blank lines, comments, imports;
* lines of brackets and commas only (the end of a call spread over lines), and lines that
  end by opening one (`torch.save(`, `return [`): what counts is on the lines that follow;
* a lone keyword (`else:`, `try:`, `pass`), a lone name, or one returned (`return history`);
* a loop that only counts (`for _ in range(repeats):`), a dict entry of a name
  (`"epoch": epoch,`), a constructor that takes nothing (`def __init__(self):`).

Both the unit test (tests/labs/test_solution_secrecy.py) and the image's end-to-end test
(tests/e2e/test_solution_secrecy.py) look for these lines, as whole words, in what the attendee
image ships: a line as written, and as JSON writes it inside a notebook (`"` becomes `\\"`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import nbformat

from workshop_labs.notebooks import (
    SOLUTION_BLOCK,
    attendee_edition,
    build_notebook,
    lab_number,
    solutions_catalog,
    tags,
)

INLINE_COMMENT = re.compile(r"\s{2,}#.*$")
TRIVIAL = re.compile(
    r"""
    [\[\](){},:;]*                                  # brackets and commas only
    | (?:else|try|finally|pass|break|continue):?    # a lone keyword
    | (?:return\s+|yield\s+)?[A-Za-z_]\w*,?         # a name, or a name returned
    | return
    | .*[(\[{]                                      # opens a bracket spread over lines
    | for\ _\ in\ range\(\w+\):                      # a loop that only counts
    | def\ __init__\(self\):                        # a constructor that takes nothing
    | "\w+":\ \w+,?                                  # a dict entry of a name
    """,
    re.VERBOSE,
)
IMPORT = re.compile(r"(?:import|from)\s+[\w.]+")


def normalised(line: str) -> str | None:
    """``line`` without indentation and inline comment; None when it is trivial."""
    text = INLINE_COMMENT.sub("", line).strip()
    if not text or text.startswith("#") or TRIVIAL.fullmatch(text) or IMPORT.match(text):
        return None
    return text


def normalised_lines(text: str) -> set[str]:
    return {kept for line in text.splitlines() if (kept := normalised(line)) is not None}


def _text(cells: Iterable[nbformat.NotebookNode]) -> str:
    return "\n".join(cell.source for cell in cells)


def secret_lines(sources: list[Path]) -> dict[str, list[str]]:
    """{normalised line: ["lab 1 · train_step", ...]} for every secret line of every solution
    in the hub's catalog (``sources`` in course order)."""
    catalog = solutions_catalog(sources)
    secrets: dict[str, list[str]] = {}
    earlier_labs = ""
    for source in sources:
        edition = attendee_edition(build_notebook(source))
        lab = lab_number(edition)
        asks = [index for index, cell in enumerate(edition.cells) if "solution" in tags(cell)]
        for index, entry in zip(asks, catalog[str(lab)], strict=True):
            shown = earlier_labs + _text(edition.cells[:index])
            for block in SOLUTION_BLOCK.findall(entry["markdown"]):
                for line in normalised_lines(block):
                    if not any(pattern in shown for pattern in search_patterns(line)):
                        secrets.setdefault(line, []).append(f"lab {lab} · {entry['exercise']}")
        earlier_labs += _text(edition.cells)
    return secrets


def of_lab_or_later(secrets: dict[str, list[str]], lab: int) -> dict[str, list[str]]:
    """The secrets of lab ``lab`` and later labs: those its notebook must not show."""
    later = {
        line: [where for where in places if int(where.split()[1]) >= lab]
        for line, places in secrets.items()
    }
    return {line: places for line, places in later.items() if places}


def search_patterns(line: str) -> list[str]:
    """How ``line`` reads in a shipped file: as written, and inside a notebook's JSON."""
    in_json = json.dumps(line, ensure_ascii=False)[1:-1]
    return [line] if in_json == line else [line, in_json]


def found_in(text: str, secrets: dict[str, list[str]]) -> list[str]:
    """The secret lines that ``text`` holds as whole words (`grep -w`: `batch_loss = ...` does
    not hold `loss = ...`)."""
    return sorted(
        line
        for line in secrets
        if any(
            re.search(rf"(?<!\w){re.escape(pattern)}(?!\w)", text)
            for pattern in search_patterns(line)
        )
    )
