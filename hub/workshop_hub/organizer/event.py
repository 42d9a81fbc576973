"""The end of the day: every attendee's work folder exported, then the event wiped.

docker compose exec hub workshop-hub export-work "$PWD/workshop-export"
docker compose run --rm hub workshop-hub wipe-event

An attendee's work folder is the Docker volume `<instance>-user-<name>` (jupyterhub_config.py),
a bind of a loop-mounted disk (disks.py) or, from an older deployment, a plain volume. The
hub reaches the host's Docker through its socket, so both commands work through short helper
containers of the hub's own image, and the folders they name are folders of the Docker host.

`export-work` packs each work folder into `<name>.tar.gz` in a host folder, while the hub
runs; a folder past the size or time limit is cut, into `<name>.partial.tar.gz`, and the
export goes on with the next.

`wipe-event` lists what it will delete, asks, and deletes exactly that: the attendee
servers, work volumes and disks, and the hub's state (users, passwords, progress, secrets).
It stops the hub while it deletes, so it runs in a container of its own (`compose run`), and
starts it again with a new room code.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TextIO

import docker
from docker.errors import APIError, ContainerError, DockerException, NotFound
from docker.types import Mount
from escapism import unescape

from ..access import credentials, roster
from ..console import announcement, hands, instructor_actions, progress, solutions, warm_room
from ..room.disks import DiskError, WorkDisks, disk_paths, instance_folder, is_capped, own_image
from ..room.docker_host import (
    COMPOSE_ONE_OFF_LABEL,
    COMPOSE_PROJECT_LABEL,
    COMPOSE_SERVICE_LABEL,
    own_labels,
    service_filter,
)
from ..room.profiles import LABEL_INSTANCE
from ..services import HUB_SERVICE
from ..settings import USERNAME_PATTERN, WorkshopSettings, human_size
from . import rehearsal

log = logging.getLogger("workshop-hub.event")
# Marks the short containers that pack or list work folders, for a person reading `docker ps`.
LABEL_EVENT_HELPER = "org.pytorch-workshop.event-helper"
# Inside an export helper: the attendee's work folder, and the organizer's host folder.
PACKED_FROM = PurePosixPath("/work-folders")
EXPORT_MOUNT = PurePosixPath("/export")
# $1 the folder holding the work folder, $2 the export folder, $3 the attendee, $4 the size
# limit in bytes, $5 the time limit in seconds. Prints the archive's name, its size, and
# `whole` or the limit that cut the folder (`size`, `time`); a cut folder's archive is
# <attendee>.partial.tar.gz. Written under a temporary name and renamed once complete, so a
# file named <attendee>.tar.gz is always a whole archive; owned like the folder it lands in,
# not by root.
PACK_SCRIPT = r"""
set -eu
from=$1 to=$2 name=$3 size_limit=$4 time_limit=$5
part="$to/$name.tar.gz.part"
trap 'rm -f "$part"' EXIT
# --sparse: tar skips a file's holes (SEEK_HOLE) instead of reading them as zeros, so a
# 15 TiB file of nothing, which costs its owner nothing, takes no time; it is restored as
# sparse. Only tar is stopped at a limit: gzip then reads the end of its input and finishes
# the archive properly, with every file packed before the cut.
# Between them: size_limit bytes pass, and the filter exits 3 if tar had more to give.
# A failing gzip (a full disk, a folder not writable) ends the script here, its message last.
timeout --kill-after=10 "$time_limit" tar --sparse --sort=name -cf - -C "$from" "$name" \
  | { head -c "$size_limit" || exit; [ "$(head -c 1 | wc -c)" -eq 0 ] || exit 3; } \
  | gzip > "$part"
statuses=("${PIPESTATUS[@]}")
tar_status=${statuses[0]} filter_status=${statuses[1]}
if [ "$filter_status" -eq 3 ]; then
  cut=size
elif [ "$filter_status" -ne 0 ]; then
  exit "$filter_status"
elif [ "$tar_status" -eq 124 ] || [ "$tar_status" -eq 137 ]; then
  cut=time  # timeout's statuses: tar stopped, or killed when it did not stop
elif [ "$tar_status" -le 1 ]; then
  cut=whole  # tar's 1: a file changed while it was read (its owner is still at work)
else
  exit "$tar_status"
fi
chown --reference="$to" "$part"
whole="$to/$name.tar.gz" partial="$to/$name.partial.tar.gz"
if [ "$cut" = whole ]; then archive=$whole other=$partial; else archive=$partial other=$whole; fi
mv "$part" "$archive"
rm -f "$other"  # one archive per attendee: an earlier export's other kind goes
echo "${archive##*/} $(stat -c %s "$archive") $cut"
"""
WIPE_COMMAND = "docker compose run --rm hub workshop-hub wipe-event"
EXPORT_COMMAND = 'docker compose exec hub workshop-hub export-work "$PWD/workshop-export"'
# What each file of the hub-data volume holds, for the list wipe-event shows.
HUB_STATE_MEANINGS = {
    credentials.ACCESS_CODE_FILE.name: "the room code",
    credentials.ADMIN_PASSWORD_FILE.name: "the admin password",
    credentials.COOKIE_SECRET_FILE.name: "the secret that signs every login",
    credentials.ATTENDEE_PASSWORDS_FILE.name: "every attendee's name and password",
    credentials.REHEARSAL_TOKEN_FILE.name: "the rehearsal's API token",
    progress.PROGRESS_FILE.name: "every exercise check attendees ran",
    hands.HANDS_FILE.name: "every hand raised for help, and who answered it",
    announcement.ANNOUNCEMENT_FILE.name: "the announcement",
    instructor_actions.ACTIONS_LOG.name: "the console's log of instructor actions",
    solutions.REVEALED_FILE.name: "which solutions were revealed",
    rehearsal.OUTPUT_ROOT.name: "rehearsal reports",
    roster.ROSTER_FILE.name: "the roster: names and one-time passwords of the login cards",
    warm_room.WARM_FILE.name: "until when warm servers are kept from the idle culler",
}
# A volume in use by a container that is going away: how often, how long apart to try again.
VOLUME_REMOVE_TRIES = 20
VOLUME_REMOVE_PAUSE_S = 0.5


class EventError(Exception):
    """The command cannot do what was asked; the message names the cause and the fix."""


@dataclass(frozen=True)
class WorkVolume:
    attendee: str
    volume: str
    # A loop-mounted disk of WORKSHOP_DISK_LIMIT (disks.py); else a plain Docker volume.
    capped: bool


def attendee_of_volume(instance: str, volume: str) -> str | None:
    """The attendee whose work volume this is in `instance`, or None when it is not one.

    Volume names carry the name escaped as DockerSpawner escapes it; a name that does not
    escape back to the same volume is not ours: `ws-user-bob-user-ada` is ada's volume of the
    instance `ws-user-bob`, not a volume of `ws`.
    """
    prefix = rehearsal.docker_names(instance, "")[1]
    if not volume.startswith(prefix):
        return None
    try:
        name = unescape(volume[len(prefix) :], escape_char="-")
    except ValueError:
        return None
    if not re.fullmatch(USERNAME_PATTERN, name):
        return None
    return name if rehearsal.docker_names(instance, name)[1] == volume else None


def work_volumes(client: docker.DockerClient, instance: str) -> list[WorkVolume]:
    """Every attendee work volume of `instance`, by attendee name."""
    found = []
    for volume in client.volumes.list():
        attendee = attendee_of_volume(instance, volume.name)
        if attendee is not None:
            capped = is_capped(volume.attrs, disk_paths(instance, volume.name))
            found.append(WorkVolume(attendee, volume.name, capped))
    return sorted(found, key=lambda work: work.attendee)


def _docker() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as error:
        raise EventError(
            f"Docker does not answer ({error}): run this in the hub's container, which has "
            "the Docker socket (docker compose exec hub workshop-hub ...)"
        ) from None
    return client


def _helper(image: str, command: list[str], **options) -> dict:
    """containers.run arguments of a short helper: root (the work files are the attendee's),
    no network, removed when done."""
    return {
        "image": image,
        "command": command,
        "entrypoint": [],
        "user": "0:0",
        "network_mode": "none",
        "labels": {LABEL_EVENT_HELPER: "1"},
        "remove": True,
        **options,
    }


def _helper_failure(error: ContainerError) -> str:
    stderr = error.stderr.decode(errors="replace").strip() if error.stderr else ""
    return stderr.splitlines()[-1] if stderr else f"exit {error.exit_status}"


# --- export ----------------------------------------------------------------------------------

# The size limit is the disk plus a quarter: a full work disk packs into its data plus at most
# one 512-byte tar header per file or folder, and a small ext4 disk (under 512 MB) has one
# inode per 4 KiB, so headers add at most an eighth. Past that the stream is not real data.
EXPORT_SIZE_MARGIN = 4
# The time limit lets gzip pack a folder of that size at 10 MB/s (it packed incompressible
# data at 18 MB/s on one core of a busy 2-core host), and at least 5 minutes.
EXPORT_SLOWEST_BYTES_PER_S = 10 * 1000**2
EXPORT_MIN_TIME_LIMIT_S = 300
# What a cut leaves, for the line that names the attendee.
CUT_MEANING = "holds what was packed before the cut, its last file cut short"


@dataclass(frozen=True)
class ExportLimits:
    """How much of one work folder export-work packs, and for how long, before it cuts it."""

    size_bytes: int
    time_s: float

    def describe(self) -> str:
        return f"at most {human_size(self.size_bytes)} and {self.time_s:g} s each"


def export_limits(
    disk_limit: int, size_bytes: int | None = None, time_s: float | None = None
) -> ExportLimits:
    """The limits for work disks of `disk_limit` bytes (WORKSHOP_DISK_LIMIT), or those given."""
    size_bytes = size_bytes or disk_limit + disk_limit // EXPORT_SIZE_MARGIN
    time_s = time_s or max(
        EXPORT_MIN_TIME_LIMIT_S, math.ceil(size_bytes / EXPORT_SLOWEST_BYTES_PER_S)
    )
    return ExportLimits(size_bytes, time_s)


@dataclass(frozen=True)
class Archive:
    """One attendee's archive in the export folder, as PACK_SCRIPT reports it."""

    attendee: str
    name: str
    size_bytes: int
    # None for a whole folder; else the limit that cut it, "size" or "time".
    cut: str | None

    @classmethod
    def packed(cls, attendee: str, output: str) -> Archive:
        name, size, cut = output.split()[-3:]
        return cls(attendee, name, int(size), None if cut == "whole" else cut)

    def cut_line(self, limits: ExportLimits) -> str:
        """What the organizer reads about a cut folder: which limit, and what the archive holds."""
        limit = {
            "size": f"passed the size limit of {human_size(limits.size_bytes)} (--size-limit)",
            "time": f"took longer than the time limit of {limits.time_s:g} s (--time-limit)",
        }[self.cut]
        return f"      cut: {self.attendee}'s work folder {limit}; {self.name} {CUT_MEANING}"


def pack_command(attendee: str, folders: str, host_folder: str, limits: ExportLimits) -> list[str]:
    """PACK_SCRIPT's command line: `folders` holds the work folder, `host_folder` takes it."""
    arguments = [folders, host_folder, attendee, str(limits.size_bytes), str(limits.time_s)]
    return ["bash", "-c", PACK_SCRIPT, "pack", *arguments]


def check_host_folder(host_folder: str) -> None:
    if not PurePosixPath(host_folder).is_absolute():
        raise EventError(
            f"{host_folder!r} is not an absolute path: name a folder of the Docker host, "
            'e.g. "$PWD/workshop-export"'
        )


def export_work(
    client: docker.DockerClient,
    instance: str,
    helper_image: str,
    host_folder: str,
    disks: WorkDisks | None,
    limits: ExportLimits,
    report: Callable[[str], None] = print,
) -> list[Archive]:
    """Pack every work folder of `instance` into `<attendee>.tar.gz` in `host_folder` (a
    folder of the Docker host, made if missing); returns the archives, one per attendee.

    A folder that passes a limit is cut, and its archive, `<attendee>.partial.tar.gz`, holds
    what was packed until then; the export goes on with the next attendee. `disks` mounts
    each capped disk first: after a host restart nothing is mounted, and the volume would show
    an empty folder. Servers may keep running: a file saved during its attendee's export may
    be missing or older in the archive.
    """
    check_host_folder(host_folder)
    volumes = work_volumes(client, instance)
    if not volumes:
        report(f"No attendee has a work folder in {instance}: nothing to export.")
        return []
    report(
        f"Exporting {len(volumes)} work folders to {host_folder} on the Docker host "
        f"({limits.describe()})"
    )
    archives = []
    for number, work in enumerate(volumes, start=1):
        started = time.monotonic()
        if work.capped and disks is not None:
            try:
                disks.prepare(work.volume)
            except DiskError as error:
                raise EventError(f"{work.attendee}'s work folder cannot be read: {error}") from None
        mounts = {
            work.volume: {"bind": str(PACKED_FROM / work.attendee), "mode": "ro"},
            host_folder: {"bind": str(EXPORT_MOUNT), "mode": "rw"},
        }
        command = pack_command(work.attendee, str(PACKED_FROM), str(EXPORT_MOUNT), limits)
        try:
            output = client.containers.run(**_helper(helper_image, command, volumes=mounts))
        except ContainerError as error:
            raise EventError(
                f"{work.attendee}'s work folder could not be packed into {host_folder} "
                f"({_helper_failure(error)}): check that the folder is writable and its disk "
                "has room; the archives already written are complete"
            ) from None
        except APIError as error:
            raise EventError(
                f"Docker refused the export's helper container ({error.explanation}): "
                f"{host_folder} must be a folder of the Docker host"
            ) from None
        archive = Archive.packed(work.attendee, output.decode())
        report(
            f"[{number}/{len(volumes)}] {archive.name}  {human_size(archive.size_bytes)}  "
            f"({time.monotonic() - started:.1f} s)"
        )
        if archive.cut:
            report(archive.cut_line(limits))
        archives.append(archive)
    cut = [archive.attendee for archive in archives if archive.cut]
    names = f" ({', '.join(cut)})" if cut else ""
    report(
        f"Done: {len(archives)} archives in {host_folder}, one per attendee: "
        f"{len(archives) - len(cut)} whole, {len(cut)} cut{names}"
    )
    return archives


# --- wipe ------------------------------------------------------------------------------------


def disk_images(client: docker.DockerClient, helper_image: str, instance: str) -> list[str]:
    """The disk image files of `instance` on the Docker host (disks.py), by volume name."""
    folder = str(disk_paths(instance, "").image.parent)
    # A mount rather than a bind of `volumes`: Docker would make a missing folder.
    command = ["find", folder, "-maxdepth", "1", "-name", "*.img"]
    mount = Mount(folder, folder, type="bind", read_only=True)
    try:
        output = client.containers.run(**_helper(helper_image, command, mounts=[mount]))
    except APIError as error:
        if "does not exist" in str(error.explanation):
            return []  # no attendee of this instance ever had a disk
        raise
    return sorted(PurePosixPath(line).stem for line in output.decode().split())


def hub_state(data_dir: Path) -> list[Path]:
    """Every entry of the hub-data folder: the event's users, passwords, progress, secrets."""
    return sorted(data_dir.iterdir()) if data_dir.is_dir() else []


def _meaning(entry: Path) -> str:
    # Side files (SQLite's -wal and -journal, a store's .lock) belong to their file.
    for known, meaning in HUB_STATE_MEANINGS.items():
        if entry.name == known or entry.name.startswith((f"{known}-", f"{known}.")):
            return meaning
    return ""


@dataclass(frozen=True)
class WipePlan:
    instance: str
    servers: list[str]
    volumes: list[WorkVolume]
    disks: list[str]
    data_dir: Path
    state: list[Path]
    # The hub's own containers: stopped while it deletes, started again after.
    hub_containers: list[str] = field(default_factory=list)
    # False when .env sets WORKSHOP_ACCESS_CODE: the organizer changes it there.
    new_room_code: bool = True

    def is_empty(self) -> bool:
        return not (self.servers or self.volumes or self.disks or self.state)

    def describe(self) -> str:
        lines = [f"wipe-event deletes, for the event {self.instance!r}, and this cannot be undone:"]

        def section(title: str, items: list[str]) -> None:
            lines.append(f"  {title}: {len(items)}")
            lines.extend(f"    {item}" for item in items)

        section("attendee servers (their containers)", self.servers)
        section(
            "attendee work folders (Docker volumes)",
            [f"{work.volume}  ({work.attendee})" for work in self.volumes],
        )
        section(
            f"work disks in {instance_folder(self.instance)} on the Docker host",
            [str(disk_paths(self.instance, volume).image.name) for volume in self.disks],
        )
        section(
            f"hub state in {self.data_dir}",
            [
                f"{entry.name}{'/' if entry.is_dir() else ''}"
                + (f"  ({_meaning(entry)})" if _meaning(entry) else "")
                for entry in self.state
            ],
        )
        if self.hub_containers:
            lines.append(
                f"The hub ({', '.join(self.hub_containers)}) stops while this runs and starts "
                "again with a new room code, a new admin password (unless .env sets one) and "
                "no users."
            )
        if not self.new_room_code:
            lines.append(
                "WORKSHOP_ACCESS_CODE is set in .env, so the room code stays: change it there "
                "and run `docker compose restart hub` for a new one."
            )
        lines.append("Kept: the images, .env and the HTTPS certificates.")
        return "\n".join(lines)


def plan_wipe(
    client: docker.DockerClient,
    settings: WorkshopSettings,
    disk_listing: list[str],
    data_dir: Path = credentials.HUB_DATA_DIR,
    hub_containers: list[str] | None = None,
) -> WipePlan:
    """What wipe-event would delete for `settings.instance`, and nothing of another instance:
    containers by their instance label, volumes by their escaped name, disks and hub state
    by the instance's own folders."""
    servers = client.containers.list(
        all=True, filters={"label": f"{LABEL_INSTANCE}={settings.instance}"}
    )
    return WipePlan(
        instance=settings.instance,
        servers=sorted(container.name for container in servers),
        volumes=work_volumes(client, settings.instance),
        disks=disk_listing,
        data_dir=data_dir,
        state=hub_state(data_dir),
        hub_containers=hub_containers or [],
        new_room_code=not settings.access_code,
    )


def confirm(plan: WipePlan, answers: TextIO | None, out: TextIO) -> None:
    """Ask for the event's name or `yes`; raise EventError unless that is the answer."""
    print(
        f"Type the event's name ({plan.instance}) or yes to delete all of this: ",
        end="",
        file=out,
        flush=True,
    )
    answer = answers.readline() if answers is not None and not answers.closed else ""
    if not answer:
        print(file=out)
        raise EventError(
            "Nothing was deleted: wipe-event asks before it deletes, and nothing answered "
            f"on standard input. Run it in a terminal ({WIPE_COMMAND}), or add --yes."
        )
    if not answers.isatty():
        print(file=out)  # a terminal shows the typed answer's newline; a pipe does not
    if answer.strip() not in (plan.instance, "yes"):
        raise EventError(
            f"Nothing was deleted: the answer was {answer.strip()!r}, not {plan.instance!r} "
            "or 'yes'."
        )


def _remove_volume(client: docker.DockerClient, volume: str) -> None:
    for _ in range(VOLUME_REMOVE_TRIES):
        try:
            client.volumes.get(volume).remove()
            return
        except NotFound:
            return
        except APIError:
            time.sleep(VOLUME_REMOVE_PAUSE_S)  # a server going away still holds it a moment
    client.volumes.get(volume).remove()


def carry_out(
    client: docker.DockerClient,
    plan: WipePlan,
    disks: WorkDisks | None,
    report: Callable[[str], None] = print,
) -> str | None:
    """Delete exactly what `plan` lists; return the new room code (None when .env sets it).

    The hub is stopped first, so nobody starts a server, claims a name or writes the hub's
    state while it goes, and started again last, when it makes its new secrets.
    """
    hubs = [client.containers.get(name) for name in plan.hub_containers]
    for hub in hubs:
        report(f"stopping the hub ({hub.name})")
        hub.stop(timeout=30)
    try:
        return _delete(client, plan, disks, report)
    except (DockerException, DiskError) as error:
        reason = str(getattr(error, "explanation", None) or error).strip()
        raise EventError(
            f"wipe-event stopped part way ({reason}): run it again, it lists what is left"
        ) from None
    finally:
        # Also after a failure: the room keeps its hub, and the error says what is left.
        for hub in hubs:
            report(f"starting the hub ({hub.name})")
            hub.start()


def _delete(client, plan: WipePlan, disks: WorkDisks | None, report) -> str | None:
    for name in plan.servers:
        try:
            client.containers.get(name).remove(force=True)
        except NotFound:
            pass  # it ended by itself meanwhile
    report(f"attendee servers: {len(plan.servers)} removed")
    for number, work in enumerate(plan.volumes, start=1):
        _remove_volume(client, work.volume)
        report(f"work folders: {number}/{len(plan.volumes)} removed ({work.attendee})")
    if plan.disks:
        with ThreadPoolExecutor(max_workers=8) as pool:
            for number, _ in enumerate(pool.map(disks.remove, plan.disks), start=1):
                report(f"work disks: {number}/{len(plan.disks)} removed")
    for entry in plan.state:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)
    report(f"hub state: {len(plan.state)} entries removed from {plan.data_dir}")
    if not plan.new_room_code:
        return None
    code = credentials.generate_access_code()
    credentials.store(plan.data_dir / credentials.ACCESS_CODE_FILE.name, code)
    return code


def _hub_containers(client: docker.DockerClient) -> list[str]:
    """The running hub containers of this command's compose project.

    Refuses when this command is not a `compose run` container of the hub service: inside
    the hub itself it would stop itself, and outside compose it cannot tell its project.
    """
    labels = own_labels(client)
    one_off = labels.get(COMPOSE_ONE_OFF_LABEL) == "True"
    if labels.get(COMPOSE_SERVICE_LABEL) != HUB_SERVICE or not one_off:
        raise EventError(
            "wipe-event stops the hub while it deletes, so it runs in a container of its "
            f"own: {WIPE_COMMAND}"
        )
    hubs = client.containers.list(
        filters=service_filter(HUB_SERVICE, labels[COMPOSE_PROJECT_LABEL])
    )
    return sorted(hub.name for hub in hubs)


# --- the commands --------------------------------------------------------------------------


def _work_disks(client: docker.DockerClient, settings: WorkshopSettings, usage: str) -> WorkDisks:
    """The hub's work disks, with the hub's image for the helpers: this runs in the hub's."""
    try:
        helper_image = own_image(client)
    except DiskError:
        raise EventError(f"This command runs in the hub's container: {usage}") from None
    return WorkDisks(client, helper_image, settings.instance, settings.disk_limit, log)


def export_work_command(
    settings: WorkshopSettings,
    host_folder: str,
    size_bytes: int | None = None,
    time_s: float | None = None,
) -> None:
    check_host_folder(host_folder)
    client = _docker()
    disks = _work_disks(client, settings, EXPORT_COMMAND)
    export_work(
        client,
        settings.instance,
        disks.helper_image,
        host_folder,
        disks,
        export_limits(settings.disk_limit, size_bytes, time_s),
        # A line as each attendee is done: a cut folder takes minutes.
        lambda line: print(line, flush=True),
    )


def wipe_event_command(
    settings: WorkshopSettings, yes: bool, answers: TextIO | None, out: TextIO
) -> None:
    client = _docker()
    hubs = _hub_containers(client)
    disks = _work_disks(client, settings, WIPE_COMMAND)
    listing = disk_images(client, disks.helper_image, settings.instance)
    plan = plan_wipe(client, settings, listing, hub_containers=hubs)
    print(plan.describe(), file=out)
    if plan.is_empty():
        print("Nothing to delete.", file=out)
        return
    if not yes:
        confirm(plan, answers, out)
    code = carry_out(client, plan, disks, report=lambda line: print(line, file=out, flush=True))
    if code is not None:
        print(f"New room code: {code}", file=out)
    if not hubs:
        print("The hub was not running: start it with `docker compose up -d`.", file=out)
