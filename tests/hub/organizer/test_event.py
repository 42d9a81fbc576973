"""The end of the day: exporting work folders and wiping the event, against the real Docker
daemon with volumes and containers of the tests' own instance, and hub state in tmp dirs."""

from __future__ import annotations

import errno
import gzip
import io
import os
import subprocess
import tarfile
import time
import uuid
from shlex import quote

import pytest

from workshop_hub.access import credentials
from workshop_hub.organizer import cli, event
from workshop_hub.organizer.rehearsal import docker_names
from workshop_hub.room.profiles import LABEL_INSTANCE
from workshop_hub.settings import COMPOSE_SETTINGS, load_settings

# The prefix of the end-to-end tests' objects: a run that dies leaves nothing that the next
# test run (tests/e2e/stack.py remove_test_leftovers) does not remove.
TEST_PREFIX = "wstest"


def test_a_volume_belongs_to_the_attendee_whose_escaped_name_it_carries():
    assert event.attendee_of_volume("room", "room-user-ada") == "ada"
    assert event.attendee_of_volume("room", "room-user-jean-2dluc-2ex") == "jean-luc.x"
    # Not a work volume of `room`: the hub's own volume, another instance's, a bad escape.
    assert event.attendee_of_volume("room", "room_hub-data") is None
    assert event.attendee_of_volume("room", "room2-user-ada") is None
    assert event.attendee_of_volume("room", "room-user-bob-user-ada") is None
    assert event.attendee_of_volume("room", "room-user-") is None
    assert event.attendee_of_volume("room", "room-user-ADA") is None


def test_an_export_folder_must_be_an_absolute_path_of_the_docker_host():
    with pytest.raises(event.EventError, match="not an absolute path.*PWD"):
        event.check_host_folder("export")
    event.check_host_folder("/srv/export")


def _plan(tmp_path, **overrides) -> event.WipePlan:
    fields = {
        "instance": "room",
        "servers": ["room-ada"],
        "volumes": [event.WorkVolume("ada", "room-user-ada", capped=True)],
        "disks": ["room-user-ada"],
        "data_dir": tmp_path,
        "state": [],
        **overrides,
    }
    return event.WipePlan(**fields)


def test_the_list_names_every_thing_it_deletes_and_what_it_keeps(tmp_path):
    (tmp_path / "attendee-passwords").write_text("x")
    (tmp_path / "progress.sqlite-wal").write_text("x")
    (tmp_path / "attendee-passwords.lock").write_text("")
    (tmp_path / "rehearsals").mkdir()
    (tmp_path / "organizer-notes.txt").write_text("x")
    plan = _plan(tmp_path, state=event.hub_state(tmp_path), hub_containers=["room-hub-1"])
    text = plan.describe()
    assert "'room'" in text and "cannot be undone" in text
    assert "attendee servers (their containers): 1\n    room-ada" in text
    assert "room-user-ada  (ada)" in text
    assert "/var/lib/pytorch-workshop/room on the Docker host: 1\n    room-user-ada.img" in text
    assert "attendee-passwords  (every attendee's name and password)" in text
    assert "progress.sqlite-wal  (every exercise check attendees ran)" in text
    assert "attendee-passwords.lock  (every attendee's name and password)" in text
    assert "rehearsals/  (rehearsal reports)" in text
    # An entry of unknown meaning is listed, by name, since it is deleted too.
    assert "    organizer-notes.txt\n" in text
    assert "room-hub-1" in text and "new room code" in text
    assert "Kept: the images, .env" in text


def test_a_room_code_from_env_is_said_to_stay(tmp_path):
    text = _plan(tmp_path, new_room_code=False).describe()
    assert "WORKSHOP_ACCESS_CODE is set in .env, so the room code stays" in text


@pytest.mark.parametrize("answer", ["room\n", "yes\n", "  room  \n"])
def test_the_event_name_or_yes_confirms(tmp_path, answer):
    out = io.StringIO()
    event.confirm(_plan(tmp_path), io.StringIO(answer), out)
    assert "Type the event's name (room) or yes" in out.getvalue()


@pytest.mark.parametrize("answer", ["no\n", "\n", "y\n", "Room\n", "room2\n"])
def test_any_other_answer_deletes_nothing(tmp_path, answer):
    with pytest.raises(event.EventError, match="Nothing was deleted: the answer was"):
        event.confirm(_plan(tmp_path), io.StringIO(answer), io.StringIO())


def test_without_standard_input_it_refuses_and_says_how_to_run_it(tmp_path):
    with open(os.devnull) as empty:
        with pytest.raises(event.EventError) as refused:
            event.confirm(_plan(tmp_path), empty, io.StringIO())
    message = str(refused.value)
    assert "Nothing was deleted" in message and "nothing answered" in message
    assert event.WIPE_COMMAND in message and "--yes" in message
    closed = io.StringIO()
    closed.close()
    for answers in (None, closed):
        with pytest.raises(event.EventError, match="nothing answered"):
            event.confirm(_plan(tmp_path), answers, io.StringIO())


@pytest.fixture
def default_settings(monkeypatch):
    """The CLI reads its settings from the environment: none set, as out of the box."""
    for name in list(os.environ):
        if name.startswith("WORKSHOP_"):
            monkeypatch.delenv(name)


def test_the_cli_refuses_a_relative_export_folder_in_one_line(capsys, default_settings):
    assert cli.main(["export-work", "workshop-export"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "not an absolute path" in error


def test_the_cli_refuses_a_limit_it_cannot_read_with_the_hint(capsys, default_settings):
    with pytest.raises(SystemExit) as refused:
        cli.main(["export-work", "--time-limit", "soon", "/srv/export"])
    assert refused.value.code == 2
    assert "--time-limit: use a duration such as" in capsys.readouterr().err


def test_the_export_limits_follow_the_disk_limit():
    GiB = 1024**3
    # A full disk and its tar headers fit; gzip at 10 MB/s, and at least 5 minutes.
    assert event.export_limits(2 * GiB) == event.ExportLimits(GiB * 5 // 2, 300)
    assert event.export_limits(40 * GiB).time_s == 5369  # 50 GiB at 10 MB/s, rounded up
    # The organizer's own; a larger size gives a longer time.
    assert event.export_limits(2 * GiB, 3 * GiB, 60) == event.ExportLimits(3 * GiB, 60)
    assert event.export_limits(2 * GiB, 50 * GiB).time_s == 5369


# --- the pack step, with this machine's GNU tar --------------------------------------------

SPARSE_TiB = 15


def _largest_sparse_file(path) -> int:
    """A file of holes only, 15 TiB where the file system allows it, else the largest it
    does (ext4 takes up to 16 TiB); returns its apparent size."""
    size = SPARSE_TiB * 1024**4
    with open(path, "wb") as file:
        while True:
            try:
                file.truncate(size)
                return size
            except OSError as error:
                if error.errno != errno.EFBIG:
                    raise
                size //= 2


def _pack(folders, export, attendee: str, limits: event.ExportLimits):
    """PACK_SCRIPT run here as the helper runs it; the archive and the seconds it took."""
    export.mkdir(exist_ok=True)
    started = time.monotonic()
    command = event.pack_command(attendee, str(folders), str(export), limits)
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return event.Archive.packed(attendee, result.stdout), time.monotonic() - started


@pytest.fixture
def sparse_folder(tmp_path):
    """mallory's work folder: a file of holes only, and a file of real work."""
    folder = tmp_path / "work-folders" / "mallory"
    folder.mkdir(parents=True)
    size = _largest_sparse_file(folder / "huge.bin")
    (folder / "real.bin").write_bytes(os.urandom(300_000))
    return folder, size


# Roomy enough for the real file; far below the sparse file's apparent size.
SPARSE_TEST_LIMITS = event.ExportLimits(size_bytes=10 * 1024**2, time_s=30)


def test_a_sparse_file_is_packed_without_reading_its_holes(sparse_folder, tmp_path):
    folder, size = sparse_folder
    archive, seconds = _pack(folder.parent, tmp_path / "export", "mallory", SPARSE_TEST_LIMITS)
    assert archive == event.Archive("mallory", "mallory.tar.gz", archive.size_bytes, None)
    assert seconds < 5 and archive.size_bytes < 400_000
    restored = tmp_path / "restored"
    restored.mkdir()
    subprocess.run(["tar", "-xzf", tmp_path / "export" / archive.name], cwd=restored, check=True)
    assert (restored / "mallory/real.bin").read_bytes() == (folder / "real.bin").read_bytes()
    # Restored sparse: the same apparent size, no data.
    huge = (restored / "mallory/huge.bin").stat()
    assert huge.st_size == size and huge.st_blocks == 0


def test_without_sparse_the_same_folder_is_cut_at_the_time_limit(
    sparse_folder, tmp_path, monkeypatch
):
    """The control: tar reading the holes as zeros gets nowhere near the end in 2 s."""
    folder, _ = sparse_folder
    reading_holes = event.PACK_SCRIPT.replace("tar --sparse ", "tar ")
    assert reading_holes != event.PACK_SCRIPT
    monkeypatch.setattr(event, "PACK_SCRIPT", reading_holes)
    limits = event.ExportLimits(size_bytes=SPARSE_TiB * 1024**4, time_s=2)
    archive, seconds = _pack(folder.parent, tmp_path / "export", "mallory", limits)
    assert archive.cut == "time" and archive.name == "mallory.partial.tar.gz"
    assert 2 <= seconds < 15
    assert archive.cut_line(limits) == (
        "      cut: mallory's work folder took longer than the time limit of 2 s "
        "(--time-limit); mallory.partial.tar.gz holds what was packed before the cut, its "
        "last file cut short"
    )
    # Cut, yet a whole gzip stream: it reads to its end.
    with gzip.open(tmp_path / "export" / archive.name) as stream:
        while stream.read(1024**2):
            pass


def test_a_folder_past_the_size_limit_keeps_the_files_packed_before_the_cut(tmp_path):
    folder = tmp_path / "work-folders" / "bob"
    folder.mkdir(parents=True)
    # tar packs by name: the notes, then the data the cut falls in, then what never came.
    (folder / "a-notes.txt").write_text("bob's notes")
    (folder / "b-data.bin").write_bytes(os.urandom(1024**2))
    (folder / "c-later.txt").write_text("after the cut")
    export = tmp_path / "export"
    export.mkdir()
    (export / "bob.tar.gz").write_text("an earlier export's archive")
    limits = event.ExportLimits(size_bytes=256 * 1024, time_s=30)
    archive, _ = _pack(folder.parent, export, "bob", limits)
    assert archive.cut == "size"
    # One archive per attendee: the earlier one is gone, not left to be taken for this one's.
    assert sorted(path.name for path in export.iterdir()) == ["bob.partial.tar.gz"]
    assert "passed the size limit of 256.0 KiB (--size-limit); bob.partial.tar.gz" in (
        archive.cut_line(limits)
    )
    restored = tmp_path / "restored"
    restored.mkdir()
    extract = subprocess.run(
        ["tar", "-xzf", export / archive.name], cwd=restored, capture_output=True, text=True
    )
    # GNU tar extracts everything there is, then says the archive ends early.
    assert "Unexpected EOF in archive" in extract.stderr
    assert (restored / "bob/a-notes.txt").read_text() == "bob's notes"
    assert 0 < (restored / "bob/b-data.bin").stat().st_size < 256 * 1024
    assert not (restored / "bob/c-later.txt").exists()


# --- with the real Docker daemon ---------------------------------------------------------


@pytest.fixture
def docker_client():
    import docker

    return docker.from_env()


@pytest.fixture
def helper_image() -> str:
    """The base of every image: it has sh, tar and find, like the hub's image."""
    return os.environ.get("BASE_IMAGE") or COMPOSE_SETTINGS["BASE_IMAGE"][0]


@pytest.fixture
def instance(docker_client):
    """An instance of this test's own; every volume and container named after it is removed."""
    name = f"{TEST_PREFIX}{os.getpid()}x{uuid.uuid4().hex[:6]}"
    yield name
    for container in docker_client.containers.list(all=True):
        if container.name.startswith(name):
            container.remove(force=True)
    for volume in docker_client.volumes.list():
        if volume.name.startswith(name):
            volume.remove(force=True)


def _work_volume(client, image: str, instance: str, attendee: str, files: dict[str, str]):
    """A plain work volume of `attendee` holding `files`, written by a container as the hub's
    attendees write theirs."""
    volume = docker_names(instance, attendee)[1]
    client.volumes.create(volume)
    script = "; ".join(
        f"mkdir -p $(dirname {quote('/work/' + path)}) && printf %s {quote(text)} > "
        f"{quote('/work/' + path)}"
        for path, text in files.items()
    )
    client.containers.run(
        image, ["sh", "-c", script], volumes={volume: {"bind": "/work"}}, remove=True
    )
    return volume


# The limits of the default disk.
LIMITS = event.export_limits(load_settings({}).disk_limit)


def _settings(instance: str, **environ: str):
    return load_settings({"WORKSHOP_INSTANCE": instance, **environ})


@pytest.mark.e2e
def test_each_attendee_gets_one_archive_of_their_work_folder(
    docker_client, helper_image, instance, tmp_path
):
    _work_volume(
        docker_client,
        helper_image,
        instance,
        "ada",
        {"labs/01_intro.ipynb": "{}", "notes.txt": "ada's notes", ".hidden": "kept"},
    )
    _work_volume(docker_client, helper_image, instance, "jean-luc", {"notes.txt": "jl"})
    # Another instance's attendee with a name that looks like one of ours.
    _work_volume(docker_client, helper_image, f"{instance}-user-x", "ada", {"notes.txt": "no"})
    lines = []
    archives = event.export_work(
        docker_client, instance, helper_image, str(tmp_path / "export"), None, LIMITS, lines.append
    )
    assert [(archive.attendee, archive.cut) for archive in archives] == [
        ("ada", None),
        ("jean-luc", None),
    ]
    assert sorted(path.name for path in (tmp_path / "export").iterdir()) == [
        "ada.tar.gz",
        "jean-luc.tar.gz",
    ]
    with tarfile.open(tmp_path / "export" / "ada.tar.gz") as archive:
        names = archive.getnames()
        assert {"ada/labs/01_intro.ipynb", "ada/notes.txt", "ada/.hidden"} <= set(names)
        assert archive.extractfile("ada/notes.txt").read() == b"ada's notes"
    # Owned like the folder it landed in, which Docker made for it.
    folder = (tmp_path / "export").stat()
    archive_stat = (tmp_path / "export" / "ada.tar.gz").stat()
    assert (archive_stat.st_uid, archive_stat.st_gid) == (folder.st_uid, folder.st_gid)
    assert lines[0].startswith("Exporting 2 work folders to")
    assert lines[1].startswith("[1/2] ada.tar.gz") and lines[2].startswith("[2/2] jean-luc")
    assert lines[3].startswith("Done: 2 archives in") and lines[3].endswith("2 whole, 0 cut")


# Each cut test's limits, and an attendee's data that passes them: 96 MB of random bytes
# take gzip seconds (18 MB/s on a busy 2-core host), far more than the 1 s time limit.
CUT_BY = {
    "size": event.ExportLimits(size_bytes=1024**2, time_s=60),
    "time": event.ExportLimits(size_bytes=1024**3, time_s=1),
}


@pytest.mark.e2e
@pytest.mark.parametrize("limit", CUT_BY)
def test_a_folder_past_a_limit_is_cut_and_the_export_goes_on(
    docker_client, helper_image, instance, tmp_path, limit
):
    for attendee in ("ada", "bob", "carol"):
        _work_volume(docker_client, helper_image, instance, attendee, {"a-notes.txt": attendee})
    docker_client.containers.run(
        helper_image,
        ["sh", "-c", "head -c 96M /dev/urandom > /work/b-data.bin"],
        volumes={docker_names(instance, "bob")[1]: {"bind": "/work"}},
        remove=True,
    )
    export = tmp_path / "export"
    lines = []
    archives = event.export_work(
        docker_client, instance, helper_image, str(export), None, CUT_BY[limit], lines.append
    )
    assert [(archive.name, archive.cut) for archive in archives] == [
        ("ada.tar.gz", None),
        ("bob.partial.tar.gz", limit),
        ("carol.tar.gz", None),
    ]
    assert lines[2].startswith("[2/3] bob.partial.tar.gz")
    assert lines[3].startswith("      cut: bob's work folder ") and f"--{limit}-limit" in lines[3]
    assert lines[4].startswith("[3/3] carol.tar.gz")
    assert lines[5].endswith("one per attendee: 2 whole, 1 cut (bob)")
    with tarfile.open(export / "carol.tar.gz") as archive:
        assert archive.extractfile("carol/a-notes.txt").read() == b"carol"
    # What bob's archive holds before the cut reads back, as a stream that ends early.
    with tarfile.open(export / "bob.partial.tar.gz", "r|gz") as archive:
        assert archive.next().name == "bob"
        notes = archive.next()
        assert notes.name == "bob/a-notes.txt"
        assert archive.extractfile(notes).read() == b"bob"


@pytest.mark.e2e
def test_with_no_work_folders_there_is_nothing_to_export(
    docker_client, helper_image, instance, tmp_path
):
    lines = []
    archives = event.export_work(
        docker_client, instance, helper_image, "/x", None, LIMITS, lines.append
    )
    assert archives == []
    assert lines == [f"No attendee has a work folder in {instance}: nothing to export."]


@pytest.mark.e2e
def test_an_instance_without_disks_lists_none(docker_client, helper_image, instance):
    assert event.disk_images(docker_client, helper_image, instance) == []


@pytest.fixture
def hub_data(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("jupyterhub.sqlite", "access-code", "attendee-passwords", "progress.sqlite"):
        (data / name).write_text("event state")
    (data / "rehearsals" / "2026").mkdir(parents=True)
    return data


@pytest.mark.e2e
def test_the_wipe_plan_holds_this_instance_only(docker_client, helper_image, instance, hub_data):
    ours = _work_volume(docker_client, helper_image, instance, "ada", {"a.txt": "a"})
    other_instance = f"{instance}-user-bob"
    theirs = _work_volume(docker_client, helper_image, other_instance, "ada", {"a.txt": "b"})
    for owner in (instance, other_instance):
        docker_client.containers.create(
            helper_image, ["true"], name=f"{owner}-ada", labels={LABEL_INSTANCE: owner}
        )
    plan = event.plan_wipe(docker_client, _settings(instance), [], hub_data)
    assert plan.servers == [f"{instance}-ada"]
    assert [work.volume for work in plan.volumes] == [ours]
    assert theirs not in plan.describe() and f"{other_instance}-ada" not in plan.describe()
    assert [entry.name for entry in plan.state] == [
        "access-code",
        "attendee-passwords",
        "jupyterhub.sqlite",
        "progress.sqlite",
        "rehearsals",
    ]
    assert plan.new_room_code and not plan.is_empty()
    set_code = event.plan_wipe(
        docker_client, _settings(instance, WORKSHOP_ACCESS_CODE="a-room-code-2026"), [], hub_data
    )
    assert not set_code.new_room_code


@pytest.mark.e2e
def test_the_wipe_deletes_what_it_listed_and_nothing_else(
    docker_client, helper_image, instance, hub_data
):
    listed = _work_volume(docker_client, helper_image, instance, "ada", {"a.txt": "a"})
    docker_client.containers.create(
        helper_image,
        ["sleep", "60"],
        name=f"{instance}-ada",
        labels={LABEL_INSTANCE: instance},
        volumes={listed: {"bind": "/work"}},
    ).start()
    plan = event.plan_wipe(docker_client, _settings(instance), [], hub_data)
    # Made after the list was shown: not deleted.
    later = _work_volume(docker_client, helper_image, instance, "bob", {"b.txt": "b"})
    (hub_data / "written-later.txt").write_text("x")
    old_code = (hub_data / "access-code").read_text()
    lines = []
    code = event.carry_out(docker_client, plan, None, lines.append)
    volumes = [volume.name for volume in docker_client.volumes.list()]
    assert listed not in volumes and later in volumes
    assert f"{instance}-ada" not in [c.name for c in docker_client.containers.list(all=True)]
    assert sorted(entry.name for entry in hub_data.iterdir()) == [
        "access-code",
        "written-later.txt",
    ]
    assert code and code != old_code
    assert credentials.load_or_create(hub_data / "access-code", lambda: "") == code
    assert "work folders: 1/1 removed (ada)" in lines
    assert f"hub state: 5 entries removed from {hub_data}" in lines


@pytest.mark.e2e
def test_outside_a_compose_run_container_the_wipe_says_how_to_run_it(capsys, default_settings):
    assert cli.main(["wipe-event", "--yes"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and event.WIPE_COMMAND in error


@pytest.mark.e2e
def test_a_wipe_that_fails_part_way_says_so_and_starts_the_hub_again(
    docker_client, helper_image, instance, hub_data, monkeypatch
):
    volume = _work_volume(docker_client, helper_image, instance, "ada", {"a.txt": "a"})
    # Not an attendee server (no instance label), so not in the list: it keeps the volume busy.
    docker_client.containers.run(
        helper_image,
        ["sleep", "60"],
        name=f"{instance}-other",
        detach=True,
        volumes={volume: {"bind": "/work"}},
    )
    # Stops at once when asked, as the hub does (under tini, as the hub runs).
    hub = docker_client.containers.run(
        helper_image, ["sleep", "60"], name=f"{instance}-hub", detach=True, init=True
    )
    plan = event.plan_wipe(
        docker_client, _settings(instance), [], hub_data, hub_containers=[hub.name]
    )
    monkeypatch.setattr(event, "VOLUME_REMOVE_TRIES", 1)
    lines = []
    with pytest.raises(event.EventError, match="stopped part way .*run it again"):
        event.carry_out(docker_client, plan, None, lines.append)
    hub.reload()
    assert hub.status == "running"
    assert lines[0] == f"stopping the hub ({hub.name})"
    assert lines[-1] == f"starting the hub ({hub.name})"
    # The hub's state stays until the work folders are gone: a second run lists it again.
    assert (hub_data / "jupyterhub.sqlite").exists()
