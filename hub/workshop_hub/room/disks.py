"""A work folder of fixed size per attendee: an ext4 image file, loop-mounted on the host.

Docker cannot cap a volume on overlay2/ext4 (no `--storage-opt size`, and the local volume
driver refuses `o=loop`), so each attendee's work volume is a bind of a mounted image file:

    /var/lib/pytorch-workshop/<instance>/disks/<volume>.img   WORKSHOP_DISK_LIMIT, allocated
    /var/lib/pytorch-workshop/<instance>/mnt/<volume>         where it is mounted

Before each spawn the hub runs a short helper container (the hub's own image, with
SYS_ADMIN, host PIDs and the loop devices) that creates, grows and mounts the image. It
mounts through `nsenter` into dockerd's mount namespace, so the mount is where dockerd binds
volumes from, whatever the host's mount propagation (`/` is private on some hosts); dockerd
is the pid in Docker's own pid file, never a process found by its name. The volume
`<instance>-user-<name>` keeps its name; it is a local-driver volume of
`type=none,o=bind,device=<mountpoint>`.

A full disk is ENOSPC for its owner only: each image's blocks are allocated when it is made
(or grown), so a host whose disk fills refuses the next new work folder with a clear message
rather than failing writes inside the disks of attendees already at work.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import PurePosixPath

import docker
from docker.errors import APIError, ContainerError, DockerException, NotFound
from docker.types import Mount

from .docker_host import own_container

# On the Docker host: the image files and their mount points, one folder per instance.
DISKS_ROOT = PurePosixPath("/var/lib/pytorch-workshop")
# Marks the helper containers, so a person seeing one in `docker ps` knows what it is.
LABEL_DISK_HELPER = "org.pytorch-workshop.disk-helper"
# The attendee (jovyan in the lab image) owns the root of their file system.
OWNER = "1000:100"

# Where the helper finds dockerd's pid: the host's pid file, bound read-only. Nothing an
# attendee runs can write it or take dockerd's pid, unlike a process name (`/proc/PID/comm`
# is the process's own to set).
HOST_DOCKERD_PID_FILE = "/var/run/docker.pid"
HELPER_DOCKERD_PID_FILE = "/run/host-dockerd.pid"
# Free space kept on the host's disk besides the work folders (Docker, logs, the hub's
# database need room too): a twentieth of the disk, at most this much.
HOST_RESERVE_MAX = 2 * 1024**3
# The helper's exit statuses whose message already names the cause: the pid file names no
# dockerd, the host has no room for another disk, a disk to remove is still in use.
NOT_DOCKERD_EXIT = 3
NO_ROOM_EXIT = 4
IN_USE_EXIT = 5

# Every script acts in dockerd's mount namespace: that is where volumes are bound from.
FIND_DOCKERD = r"""
set -eu
dockerd=$(cat HELPER_PID_FILE)
case $dockerd in ''|*[!0-9]*) echo "Docker's pid file holds no pid" >&2; exit NOT_DOCKERD ;; esac
if [ "$(cat "/proc/$dockerd/comm" 2>/dev/null)" != dockerd ] \
    || [ "$(awk '/^Uid:/ {print $2}' "/proc/$dockerd/status")" != 0 ]; then
  echo "the pid in Docker's pid file ($dockerd) is not a dockerd of root" >&2
  exit NOT_DOCKERD
fi
on_host() { nsenter --target "$dockerd" --mount -- "$@"; }
is_mounted() { cut -d' ' -f5 "/proc/$dockerd/mountinfo" | grep -qxF "$1"; }
# The loop device that holds an image, even one a container still uses after the host's
# mount point was unmounted; empty when none.
loop_device() { on_host losetup --list --noheadings --output NAME --associated "$1" | head -n 1; }
# The kernel lets go of the loop device just after the last unmount: a moment to do so.
let_go() {
  tries=0
  while [ -n "$(loop_device "$1")" ] && [ "$tries" -lt 10 ]; do
    tries=$((tries + 1))
    sleep 0.2
  done
}
""".replace("HELPER_PID_FILE", HELPER_DOCKERD_PID_FILE).replace(
    "NOT_DOCKERD", str(NOT_DOCKERD_EXIT)
)

# $1 image file, $2 mount point, $3 size in bytes. Prints what it did: created, grown,
# larger (the image is above the limit: shrinking could lose files), busy (not grown: a
# container still uses it) or ready. The image's blocks are allocated for real (fallocate):
# a full host then refuses new disks instead of failing writes inside attendees' disks.
PREPARE_SCRIPT = (
    FIND_DOCKERD
    + r"""
image=$1 mountpoint=$2 size=$3
mkdir -p "${image%/*}"
on_host mkdir -p "$mountpoint"
# One spawn at a time per disk, even across hub restarts.
exec 9>>"$image.lock"
flock 9
# allocate BYTES FILE: BYTES more on the host's disk for FILE, keeping the reserve free.
allocate() {
  set -- "$1" "$2" $(df -B1 --output=avail,size "${image%/*}" | tail -n 1)
  reserve=$(($4 / 20))
  if [ "$reserve" -gt RESERVE_MAX ]; then reserve=RESERVE_MAX; fi
  if [ $(($3 - $1)) -lt "$reserve" ]; then
    echo "the Docker host has $(numfmt --to=iec "$3") free under ${image%/*}:" \
      "not enough for a work folder of $(numfmt --to=iec "$1") and a reserve of" \
      "$(numfmt --to=iec "$reserve")" >&2
    exit NO_ROOM
  fi
  fallocate -l "$size" "$2"
}
allocated() { echo $(($(stat -c %b "$1") * $(stat -c %B "$1"))); }
# An empty work folder: no lost+found beside the labs (e2fsck makes one again when needed).
drop_lost_found() { debugfs -w -R "rmdir lost+found" "$1" >/dev/null 2>&1 || true; }
state=ready
if [ ! -e "$image" ]; then
  rm -f "$image.new"
  allocate "$size" "$image.new"
  # Zeroing punches holes in an image file: mkfs zeroes its tables and journal now (not
  # the kernel later, once mounted, as lazy init would), and the holes are filled again.
  mkfs.ext4 -q -F -m 0 -E root_owner=OWNER,nodiscard,lazy_itable_init=0,lazy_journal_init=0 \
    "$image.new"
  drop_lost_found "$image.new"
  fallocate -l "$size" "$image.new"
  mv "$image.new" "$image"
  state=created
elif [ "$(stat -c %s "$image")" -lt "$size" ]; then
  # The attendee's last container may still be letting go of it for a moment.
  tries=0
  while is_mounted "$mountpoint" && ! on_host umount "$mountpoint" 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 20 ]; then break; fi
    sleep 0.5
  done
  let_go "$image"
  # Checking or resizing a file system that is mounted anywhere would corrupt it.
  if is_mounted "$mountpoint" || [ -n "$(loop_device "$image")" ]; then
    state=busy
  else
    allocate $((size - $(allocated "$image"))) "$image"
    # Exit 1: e2fsck corrected something (such as a missing lost+found); only 2+ is an error.
    e2fsck -f -p "$image" >/dev/null || [ $? -le 1 ]
    resize2fs "$image" >/dev/null
    drop_lost_found "$image"
    fallocate -l "$size" "$image"
    state=grown
  fi
elif [ "$(stat -c %s "$image")" -gt "$size" ]; then
  state=larger
elif [ "$(allocated "$image")" -lt "$size" ]; then
  # A sparse image of an older version: its blocks are taken now, while the host has room.
  ( allocate $((size - $(allocated "$image"))) "$image" ) || state=sparse
fi
if ! is_mounted "$mountpoint"; then
  # A loop device still in use (by a container of the attendee) is mounted again as it is:
  # a second loop device would mount the same file system twice and corrupt it.
  device=$(loop_device "$image")
  if [ -n "$device" ]; then
    on_host mount -o nosuid,nodev "$device" "$mountpoint"
  else
    on_host mount -o loop,nosuid,nodev "$image" "$mountpoint"
  fi
fi
echo "$state"
""".replace("OWNER", OWNER)
    .replace("RESERVE_MAX", str(HOST_RESERVE_MAX))
    .replace("NO_ROOM", str(NO_ROOM_EXIT))
)

# $1 instance folder. Unmounts every disk of the instance and deletes the folder.
REMOVE_SCRIPT = (
    FIND_DOCKERD
    + r"""
folder=$1
for mountpoint in $(cut -d' ' -f5 "/proc/$dockerd/mountinfo" | grep "^$folder/mnt/" || true); do
  on_host umount "$mountpoint"
done
# The folder itself may be a disk the organizer mounted for the work folders: it stays.
on_host find "$folder" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
if ! is_mounted "$folder"; then on_host rmdir "$folder"; fi
if on_host test -e "$folder/disks"; then
  echo "$folder/disks is still there after removing it" >&2
  exit 1
fi
"""
)

# $1 image file, $2 mount point. Unmounts one disk and deletes it (a rehearsal's attendee).
REMOVE_DISK_SCRIPT = (
    FIND_DOCKERD
    + r"""
image=$1 mountpoint=$2
if is_mounted "$mountpoint"; then on_host umount "$mountpoint"; fi
let_go "$image"
if [ -n "$(loop_device "$image")" ]; then
  echo "$image is still in use by a container: stop it, then remove the disk again" >&2
  exit IN_USE
fi
on_host rm -rf "$mountpoint" "$image" "$image.lock"
if on_host test -e "$image"; then echo "$image is still there after removing it" >&2; exit 1; fi
""".replace("IN_USE", str(IN_USE_EXIT))
)


# What the prepare script's states other than created, grown and ready mean (% the limit).
STATE_WARNINGS = {
    "larger": "is larger than WORKSHOP_DISK_LIMIT (%d bytes) and keeps its size: shrinking "
    "could lose files",
    "busy": "keeps its size for now (WORKSHOP_DISK_LIMIT is %d bytes): a container still "
    "uses it, and a file system in use is never checked or resized; it grows at a later start",
    "sparse": "stays sparse (WORKSHOP_DISK_LIMIT is %d bytes): the Docker host has no room to "
    "allocate it, so it may fail writes when the host's disk fills",
}


class DiskError(RuntimeError):
    """A work folder could not be prepared; the message names the cause and the fix."""


class NoRoomForDisk(DiskError):
    """The Docker host's disk cannot hold another work folder and its reserve."""


@dataclass(frozen=True)
class DiskPaths:
    image: PurePosixPath
    mountpoint: PurePosixPath


def instance_folder(instance: str) -> PurePosixPath:
    return DISKS_ROOT / instance


def disk_paths(instance: str, volume: str) -> DiskPaths:
    """Where the disk behind work volume `volume` lives on the Docker host."""
    folder = instance_folder(instance)
    return DiskPaths(folder / "disks" / f"{volume}.img", folder / "mnt" / volume)


def bind_volume_options(paths: DiskPaths) -> dict[str, str]:
    """Local-driver options that make a named volume the mounted disk."""
    return {"type": "none", "o": "bind", "device": str(paths.mountpoint)}


def is_capped(volume_attrs: dict, paths: DiskPaths) -> bool:
    """Whether an existing volume already is this disk (not an uncapped one from before)."""
    return (volume_attrs.get("Options") or {}) == bind_volume_options(paths)


def own_image(client: docker.DockerClient) -> str:
    """The image of the container this code runs in (the hub): it has the disk tools."""
    container = own_container(client)
    if container is None:
        raise DiskError(
            "the hub must run in its container to prepare work folders: start it with "
            "`docker compose up -d`"
        )
    return container.image.id


def _helper_run(image: str, command: list[str], folder: PurePosixPath | None = None) -> dict:
    """containers.run arguments of a helper: host PIDs (for nsenter), loop devices, no network.

    Only the capabilities it uses rather than `privileged`, which also fails on hosts whose
    dockerd lacks a capability: SYS_ADMIN to mount, SYS_CHROOT and SYS_PTRACE to enter
    dockerd's mount namespace; the loop devices (block 7, loop-control char 10:237) are
    allowed in its device cgroup. Docker's pid file tells it which process is dockerd.

    `folder` is bound at the same path inside as on the host, so one path serves both sides.
    """
    pid_file = Mount(HELPER_DOCKERD_PID_FILE, HOST_DOCKERD_PID_FILE, type="bind", read_only=True)
    return {
        "image": image,
        "command": command,
        "entrypoint": [],
        "cap_add": ["SYS_ADMIN", "SYS_CHROOT", "SYS_PTRACE"],
        "device_cgroup_rules": ["b 7:* rwm", "c 10:237 rwm"],
        "security_opt": ["apparmor=unconfined"],
        "pid_mode": "host",
        "network_mode": "none",
        "user": "0:0",
        "volumes": {str(folder): {"bind": str(folder), "mode": "rw"}} if folder else {},
        "mounts": [pid_file],
        "labels": {LABEL_DISK_HELPER: "1"},
        "remove": True,
        "stdout": True,
        "stderr": True,
    }


def _helper_error(error: ContainerError) -> str:
    stderr = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else ""
    return stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {error.exit_status}"


def run_helper(
    client: docker.DockerClient,
    image: str,
    command: list[str],
    folder: PurePosixPath | None = None,
) -> bytes:
    """Run a disk helper (see _helper_run); its failure as a DiskError that says what to do."""
    try:
        return client.containers.run(**_helper_run(image, command, folder))
    except ContainerError as error:
        reason = _helper_error(error)
        if error.exit_status == NO_ROOM_EXIT:
            raise NoRoomForDisk(
                f"{reason}: the organizer frees space on the Docker host or lowers "
                "WORKSHOP_DISK_LIMIT; the instructor can delete attendees who left (the "
                "console's Delete)"
            ) from None
        if error.exit_status == IN_USE_EXIT:
            raise DiskError(reason) from None
        if error.exit_status == NOT_DOCKERD_EXIT:
            raise DiskError(
                f"{reason}: the disk helper finds dockerd by its pid file, "
                f"{HOST_DOCKERD_PID_FILE} on the Docker host (dockerd's default --pidfile)"
            ) from None
        raise DiskError(
            f"the work folder's disk helper failed ({reason}): the hub needs loop devices "
            f"and {DISKS_ROOT} on the Docker host"
        ) from None
    except DockerException as error:
        reason = str(getattr(error, "explanation", None) or error).strip()
        raise DiskError(f"the disk helper container did not run ({reason})") from None


class WorkDisks:
    """The capped work folders of one hub, prepared before each spawn."""

    def __init__(
        self,
        client: docker.DockerClient,
        helper_image: str,
        instance: str,
        limit: int,
        log: logging.Logger,
    ):
        self.helper_image = helper_image
        self.instance = instance
        self.limit = limit
        self.log = log
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._api_version = client.api.api_version
        self._per_thread = threading.local()

    @property
    def client(self) -> docker.DockerClient:
        """This thread's own Docker client. Spawns prepare disks in many threads at once, and
        one shared client fails under that: requests' sessions are not thread-safe, and
        docker-py closes connection pools (one per URL, 25 at most) that other threads still
        use (seen with thirty spawns at once)."""
        client = getattr(self._per_thread, "client", None)
        if client is None:
            client = docker.DockerClient(
                version=self._api_version, **docker.utils.kwargs_from_env()
            )
            self._per_thread.client = client
        return client

    def _lock(self, volume: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(volume, threading.Lock())

    def prepare(self, volume: str) -> None:
        """Make `volume` a mounted disk of the limit's size; blocking, so run it in a thread."""
        started = time.monotonic()
        paths = disk_paths(self.instance, volume)
        with self._lock(volume):
            state = self._mount(paths)
            if state in STATE_WARNINGS:
                self.log.warning("%s %s", volume, STATE_WARNINGS[state] % self.limit)
            self._bind_volume(volume, paths)
        self.log.info(
            "work disk %s %s in %.0f ms", volume, state, (time.monotonic() - started) * 1000
        )

    def remove(self, volume: str) -> None:
        """Unmount and delete the disk behind `volume` (the volume must be gone or unused)."""
        paths = disk_paths(self.instance, volume)
        command = ["sh", "-c", REMOVE_DISK_SCRIPT, "remove-disk", str(paths.image)]
        with self._lock(volume):
            run_helper(self.client, self.helper_image, [*command, str(paths.mountpoint)])

    def _mount(self, paths: DiskPaths) -> str:
        # Only the image files: a view of the mounts would keep a loop device busy (and its
        # old size) after the script unmounts it on the host to grow it.
        folder = paths.image.parent
        command = [
            "sh",
            "-c",
            PREPARE_SCRIPT,
            "prepare-disk",
            str(paths.image),
            str(paths.mountpoint),
            str(self.limit),
        ]
        output = run_helper(self.client, self.helper_image, command, folder)
        return output.decode().strip().splitlines()[-1]

    def _bind_volume(self, volume: str, paths: DiskPaths) -> None:
        try:
            existing = self.client.volumes.get(volume)
        except NotFound:
            existing = None
        if existing is not None:
            if is_capped(existing.attrs, paths):
                return
            if not self._migrate(existing, paths):
                return
        self.client.volumes.create(volume, driver="local", driver_opts=bind_volume_options(paths))

    def _migrate(self, old, paths: DiskPaths) -> bool:
        """Copy an uncapped volume of an older deployment onto the disk, then drop it.

        False (the old volume stays in use, uncapped) when its files do not fit.
        """
        self.log.info("moving %s onto its capped disk", old.name)
        try:
            self.client.containers.run(
                self.helper_image,
                ["sh", "-c", "cp -a /old/. /new/ || { rm -rf /new/* /new/.[!.]*; exit 1; }"],
                entrypoint=[],
                user="0:0",
                network_mode="none",
                volumes={
                    old.name: {"bind": "/old", "mode": "ro"},
                    str(paths.mountpoint): {"bind": "/new", "mode": "rw"},
                },
                labels={LABEL_DISK_HELPER: "1"},
                remove=True,
            )
            old.remove()
        except (ContainerError, APIError) as error:
            self.log.warning(
                "%s stays uncapped: its files could not move onto a %d-byte disk (%s); raise "
                "WORKSHOP_DISK_LIMIT or remove files, it is tried again at the next start",
                old.name,
                self.limit,
                _helper_error(error) if isinstance(error, ContainerError) else error,
            )
            return False
        return True


def remove_instance_disks(client: docker.DockerClient, helper_image: str, instance: str) -> None:
    """Unmount and delete every disk of `instance` (its volumes must be gone or unused)."""
    folder = instance_folder(instance)
    run_helper(client, helper_image, ["sh", "-c", REMOVE_SCRIPT, "remove", str(folder)])
