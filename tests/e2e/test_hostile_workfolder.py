"""A work folder an attendee made hostile still gives them a ready server, and harms nothing.

Each attendee's work volume is filled before their first start, by a throwaway container of
the lab image running as the attendee (uid 1000), with what a kernel of theirs could have
left there: a FIFO or a folder at a lab's name, links at the names the start step writes and
at a lab's name (to a file outside the work folder), a manifest that is not ours, unreadable
files, a read-only labs folder.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass

import pytest

from .hub_client import Attendee
from .stack import ROOT, progress

WORK_DIR = "/home/jovyan/work"
LABS = sorted(f"{source.stem}.ipynb" for source in (ROOT / "labs").glob("0*.py"))
PRECIOUS = "the attendee's own file\n"
READY_WITHIN_SECONDS = 60


@dataclass(frozen=True)
class Hostile:
    # The attendee's name, one per case: letters only, so that the container and volume names
    # need no escaping (DockerSpawner escapes '-').
    name: str
    prepare: str  # shell, run as the attendee in their work folder before the first start
    notes: tuple[str, ...]  # what the container log must say
    occupied: tuple[str, ...] = ()  # lab names taken by something that is not a regular file
    labs_writable: bool = True


CASES = [
    Hostile(
        "hostilefifo",
        f"mkdir labs && mkfifo labs/{LABS[0]} && mkdir labs/{LABS[1]}",
        (
            f"left {LABS[0]} alone: it is a FIFO, not a regular file",
            f"left {LABS[1]} alone: it is a folder, not a regular file",
        ),
        occupied=(LABS[0], LABS[1]),
    ),
    Hostile(
        "hostilelinks",
        f'printf %s "{PRECIOUS}" > precious.txt && mkdir labs && cd labs'
        f" && ln -s {WORK_DIR}/precious.txt .workshop-labs.json"
        f" && ln -s {WORK_DIR}/precious.txt .workshop-labs.json.tmp"
        f" && ln -s {WORK_DIR}/precious.txt {LABS[2]} && ln -s /etc/passwd {LABS[3]}",
        (
            "set aside the lab manifest .workshop-labs.json as",
            "rebuilt it: it is a symlink, not a regular file",
            f"left {LABS[2]} alone: it is a symlink, not a regular file",
            f"left {LABS[3]} alone: it is a symlink, not a regular file",
        ),
        occupied=(LABS[2], LABS[3]),
    ),
    Hostile(
        "hostilelist",
        "mkdir labs && printf '[]' > labs/.workshop-labs.json",
        ("rebuilt it: it is JSON but not a table of lab hashes",),
    ),
    Hostile(
        "hostiledeep",
        "mkdir labs && python -c \"print('{\\\"a\\\": ' + '[' * 100000 + ']' * 100000 + '}')\""
        " > labs/.workshop-labs.json",
        ("rebuilt it: it is JSON nested too deeply",),
    ),
    Hostile(
        "hostilebytes",
        "mkdir labs && printf '\\377\\376{\\200' > labs/.workshop-labs.json",
        ("rebuilt it: it is not UTF-8 text",),
    ),
    Hostile(
        "hostileunreadable",
        f"mkdir labs && printf null > labs/.workshop-labs.json && echo '{{}}' > labs/{LABS[0]}"
        f" && chmod 000 labs/.workshop-labs.json labs/{LABS[0]}",
        (
            "rebuilt it: it cannot be read (Permission denied)",
            f"left {LABS[0]} alone: it cannot be read (Permission denied)",
        ),
    ),
    Hostile(
        "hostilereadonly",
        "mkdir labs && chmod 555 labs",
        ("could not write", "Permission denied"),
        labs_writable=False,
    ),
]

LOOK_AROUND = f"""
import json, pathlib
work = pathlib.Path({WORK_DIR!r})
labs = sorted(p.name for p in (work / "labs").iterdir()
              if p.suffix == ".ipynb" and p.is_file() and not p.is_symlink())
precious = work / "precious.txt"
print(json.dumps([labs, precious.read_text() if precious.exists() else None]))
"""


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_hostile_work_folder_still_gives_a_ready_server(hub, access_code, lab_images, case):
    volume = f"{hub.project}-user-{case.name}"
    hub.docker.volumes.create(volume)
    hub.docker.containers.run(
        lab_images["cpu"],
        ["sh", "-ec", case.prepare],
        entrypoint=[],
        user="1000:100",
        working_dir=WORK_DIR,
        network_mode="none",
        volumes={volume: {"bind": WORK_DIR, "mode": "rw"}},
        remove=True,
    )
    attendee = Attendee(hub.url, case.name)
    started = time.monotonic()
    try:
        assert attendee.login(access_code).status_code == 200
        attendee.wait_until_ready(timeout=READY_WITHIN_SECONDS)
        progress(f"{case.name}: ready {time.monotonic() - started:.1f} s after login")

        log = hub.attendee_container(case.name).logs().decode()
        for note in case.notes:
            assert note in log, log
        # The step itself coped: the start script's fallback was not needed.
        assert "starting the server anyway" not in log, log

        assert attendee.open_lab().status_code == 200
        result = attendee.run_code(LOOK_AROUND)
        assert result.error is None, result.error
        labs, precious = json.loads(result.stdout)
        expected = [lab for lab in LABS if lab not in case.occupied] if case.labs_writable else []
        assert labs == expected
        if case.name == "hostilelinks":
            assert precious == PRECIOUS
    finally:
        # A failed stop must not hide why the test failed; the stack's teardown removes it.
        with contextlib.suppress(Exception):
            attendee.stop_server()
