"""The end of the day: exporting work folders and wiping the event, against the real Docker
daemon with volumes and containers of the tests' own instance, and hub state in tmp dirs."""

from __future__ import annotations

import io
import os
import tarfile
import uuid
from shlex import quote

import pytest

from workshop_hub import cli, credentials, event
from workshop_hub.profiles import LABEL_INSTANCE
from workshop_hub.rehearsal import docker_names
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
    exported = event.export_work(
        docker_client, instance, helper_image, str(tmp_path / "export"), None, lines.append
    )
    assert exported == ["ada", "jean-luc"]
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


@pytest.mark.e2e
def test_with_no_work_folders_there_is_nothing_to_export(
    docker_client, helper_image, instance, tmp_path
):
    lines = []
    assert event.export_work(docker_client, instance, helper_image, "/x", None, lines.append) == []
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
