"""The end of the day on a stack of its own: an attendee downloads their work from JupyterLab,
the organizer exports every work folder and wipes the event, and the room opens again with a
new room code and nothing of the day left."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from workshop_hub.room.disks import DISKS_ROOT, disk_paths

from .conftest import MAIN_STACK_LIMITS
from .hub_client import Attendee, page_message
from .stack import HubStack, progress, running

# A name that DockerSpawner escapes ('-' is '-2d' in Docker's names), as many are.
ATTENDEE = "eve-lyn"
NOTE = "What I learnt today: tensors, autograd, nn.Module.\n"


@pytest.fixture(scope="module")
def event_hub(lab_images):
    """A stack of this module's own: the wipe deletes the users and secrets that the session's
    shared stack keeps for every other test."""
    settings = {
        **MAIN_STACK_LIMITS,
        # A disk of 1 GB: ext4 file systems under 512 MB have 1 KiB blocks, whose files
        # stop at 4 TiB, and the export test writes a 15 TiB one.
        "WORKSHOP_DISK_LIMIT": "1G",
    }
    with running(
        HubStack(WORKSHOP_ACCESS_CODE="", WORKSHOP_ADMIN_PASSWORD="", **settings)
    ) as stack:
        yield stack


def room_code(stack: HubStack) -> str:
    result = stack.hub_exec("workshop-hub", "access-code")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def eve(event_hub) -> Attendee:
    """An attendee with the labs and a file of her own in her work folder."""
    attendee = Attendee(event_hub.url, ATTENDEE)
    assert attendee.login(room_code(event_hub)).status_code == 200
    attendee.wait_until_ready()
    assert attendee.open_lab().status_code == 200
    saved = attendee.api(
        "PUT", "contents/my-notes.txt", json={"type": "file", "format": "text", "content": NOTE}
    )
    assert saved.status_code in (200, 201), saved.text
    return attendee


def lab_notebooks(attendee: Attendee) -> list[str]:
    listing = attendee.api("GET", "contents/labs").json()["content"]
    notebooks = [item["name"] for item in listing if item["name"].endswith(".ipynb")]
    assert len(notebooks) == 7, notebooks
    return notebooks


def work_volume(stack: HubStack) -> str:
    (volume,) = [
        volume.name
        for volume in stack.docker.volumes.list()
        if volume.name.startswith(f"{stack.project}-user-")
    ]
    return volume


def test_an_attendee_downloads_all_their_work_as_one_archive(eve):
    # What "Download as an archive" on the file browser's root folder asks for.
    response = eve.http.get(
        eve.user_url("directories/"),
        params={
            "archiveToken": "end-of-day",
            "archiveFormat": "zip",
            "followSymlinks": "true",
            "downloadHidden": "false",
            "_xsrf": eve._server_xsrf(),
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text[:500]
    assert response.headers["Content-Disposition"] == "attachment; filename=work.zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = set(archive.namelist())
        assert archive.read("work/my-notes.txt").decode() == NOTE
    for notebook in lab_notebooks(eve):
        assert f"work/labs/{notebook}" in names


def test_the_organizer_exports_one_archive_per_attendee(event_hub, eve, tmp_path):
    folder = tmp_path / "export"
    result = event_hub.hub_exec("workshop-hub", "export-work", str(folder))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    progress(f"export-work:\n{result.stdout}")
    assert f"[1/1] {ATTENDEE}.tar.gz" in result.stdout
    assert [path.name for path in folder.iterdir()] == [f"{ATTENDEE}.tar.gz"]
    with tarfile.open(folder / f"{ATTENDEE}.tar.gz") as archive:
        names = set(archive.getnames())
        assert archive.extractfile(f"{ATTENDEE}/my-notes.txt").read().decode() == NOTE
    for notebook in lab_notebooks(eve):
        assert f"{ATTENDEE}/labs/{notebook}" in names


# What eve's kernel leaves in her work folder: 15 TiB of holes, which cost her nothing (ext4's
# largest file is 16 TiB), and a file of real work; prints the real file's digest.
SPARSE_AND_REAL = """
import hashlib, os
with open("huge-sparse.bin", "wb") as huge:
    huge.truncate(15 * 2**40)
real = os.urandom(1_000_000)
with open("real-work.bin", "wb") as work:
    work.write(real)
print(hashlib.sha256(real).hexdigest())
"""


def test_a_sparse_file_of_15_tib_costs_the_export_seconds(event_hub, eve, tmp_path):
    ran = eve.run_code(SPARSE_AND_REAL)
    assert ran.error is None, ran.error
    digest = ran.stdout.strip()
    folder = tmp_path / "export"
    started = time.monotonic()
    result = event_hub.hub_exec("workshop-hub", "export-work", str(folder))
    seconds = time.monotonic() - started
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    progress(f"export-work of a 15 TiB sparse file, {seconds:.1f} s:\n{result.stdout}")
    # Reading the holes as zeros would take about 40 hours (4 GiB took 39 s).
    assert seconds < 60
    assert f"[1/1] {ATTENDEE}.tar.gz" in result.stdout and "1 whole, 0 cut" in result.stdout
    archive_path = folder / f"{ATTENDEE}.tar.gz"
    assert archive_path.stat().st_size < 20 * 1024**2
    with tarfile.open(archive_path) as archive:
        huge = archive.getmember(f"{ATTENDEE}/huge-sparse.bin")
        assert huge.issparse() and huge.size == 15 * 2**40
        real = archive.extractfile(f"{ATTENDEE}/real-work.bin").read()
    assert hashlib.sha256(real).hexdigest() == digest


def wipe_event(stack: HubStack, shell_command: str):
    """`docker compose run --rm hub ...` as docs/organizers.md tells organizers, with stdin as the
    shell command gives it."""
    return stack.compose("run", "--rm", "-T", "hub", "sh", "-c", shell_command, check=False)


def test_the_wipe_deletes_nothing_without_a_confirmation(event_hub, eve):
    volume = work_volume(event_hub)
    no_stdin = wipe_event(event_hub, "workshop-hub wipe-event < /dev/null")
    assert no_stdin.returncode == 1, no_stdin.stdout + no_stdin.stderr
    assert "nothing answered on standard input" in no_stdin.stderr
    assert "--yes" in no_stdin.stderr and "Traceback" not in no_stdin.stderr
    # What it would delete, listed all the same.
    assert f"{volume}  ({ATTENDEE})" in no_stdin.stdout
    assert "jupyterhub.sqlite" in no_stdin.stdout and "attendee-passwords" in no_stdin.stdout
    wrong = wipe_event(event_hub, "echo no | workshop-hub wipe-event")
    assert wrong.returncode == 1 and "Nothing was deleted" in wrong.stderr
    inside_the_hub = event_hub.hub_exec("workshop-hub", "wipe-event", "--yes")
    assert inside_the_hub.returncode == 1 and "docker compose run --rm hub" in (
        inside_the_hub.stderr
    )
    assert volume in [volume.name for volume in event_hub.docker.volumes.list()]
    assert NOTE in eve.run_code("print(open('my-notes.txt').read())").stdout


def test_after_the_wipe_the_work_is_gone_and_a_new_room_code_is_in_force(event_hub, eve):
    volume = work_volume(event_hub)
    disk = disk_paths(event_hub.project, volume)
    assert Path(disk.image).exists()
    old_code = room_code(event_hub)
    wiped = wipe_event(event_hub, f"echo {event_hub.project} | workshop-hub wipe-event")
    assert wiped.returncode == 0, f"{wiped.stdout}\n{wiped.stderr}"
    progress(f"wipe-event:\n{wiped.stdout}")
    new_code = wiped.stdout.split("New room code: ")[1].split()[0]
    event_hub.wait_healthy()

    assert not [v.name for v in event_hub.docker.volumes.list() if v.name == volume]
    assert not Path(disk.image).exists() and not os.path.ismount(disk.mountpoint)
    assert not list((Path(DISKS_ROOT) / event_hub.project / "disks").glob("*.img"))
    assert room_code(event_hub) == new_code != old_code

    stranger = Attendee(event_hub.url, "newcomer")
    refused = stranger.login(old_code)
    assert refused.status_code == 403
    assert "room code is not right" in page_message(refused.text)
    # Eve's name and password are gone with the hub's users.
    assert Attendee(event_hub.url, ATTENDEE).login().status_code == 403
    assert stranger.login(new_code).status_code == 200
    stranger.wait_until_ready()
    assert stranger.open_lab().status_code == 200
    assert "my-notes.txt" not in str(stranger.api("GET", "contents").json())
