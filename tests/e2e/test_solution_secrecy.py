"""The CPU lab image holds no solution before the instructor reveals it: every regular file
under /opt/workshop, and a work folder seeded as at an attendee's first start, is searched for
every secret line of the hub's catalog of solutions (tests/labs/solution_lines.py says which
lines are secret; tests/labs/test_solution_secrecy.py is the same search over the repository).

Needs Docker; conftest's `lab_images` builds the test images.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.labs.solution_lines import of_lab_or_later, search_patterns, secret_lines
from workshop_labs.notebooks import lab_sources

REPO = Path(__file__).resolve().parents[2]
WORK = "/tmp/secrecy-work"
# Seed a work folder as start-workshop does, then print `file:match` for every pattern found.
SEARCH = (
    'printf "%s\\n" "$PATTERNS" > /tmp/patterns'
    f" && python -m workshop_labs.workfolder --labs /opt/workshop/labs --work {WORK}"
    " && { grep -rFwo --binary-files=text -f /tmp/patterns"
    f" /opt/workshop {WORK}; test $? -le 1; }}"
)
NOTEBOOK = re.compile(r"/(\d\d)_[^/]*\.ipynb$")


def test_the_lab_image_ships_no_solution_line(docker_client, lab_images):
    secrets = secret_lines(lab_sources(REPO / "labs"))
    line_of = {pattern: line for line in secrets for pattern in search_patterns(line)}
    output = docker_client.containers.run(
        lab_images["cpu"],
        ["sh", "-c", SEARCH],
        entrypoint=[],
        environment={"PATTERNS": "\n".join(line_of)},
        network_disabled=True,
        remove=True,
        stdout=True,
        stderr=True,
    ).decode()
    found = {}
    for hit in output.splitlines():
        path, _, pattern = hit.partition(":")
        notebook = NOTEBOOK.search(path)
        # A lab's notebook may show an earlier lab's solutions, revealed by the time it starts.
        hidden = of_lab_or_later(secrets, int(notebook.group(1)) if notebook else 1)
        line = line_of.get(pattern)
        if line in hidden:
            found.setdefault(path, set()).add(f"{line}   ({', '.join(hidden[line])})")
    assert not found, "The lab image ships lines of hidden solutions:\n" + "\n".join(
        f"{path}:\n  " + "\n  ".join(sorted(lines)) for path, lines in sorted(found.items())
    )
