"""A work folder of fixed size per attendee: an ext4 image file, loop-mounted on the host.

Docker cannot cap a volume on overlay2/ext4 (no `--storage-opt size`, and the local volume
driver refuses `o=loop`), so each attendee's work volume is a bind of a mounted image file:

    /var/lib/pytorch-workshop/<instance>/disks/<volume>.img   sparse, WORKSHOP_DISK_LIMIT
    /var/lib/pytorch-workshop/<instance>/mnt/<volume>         where it is mounted

Before each spawn the hub runs a short helper container (the hub's own image, with
SYS_ADMIN, host PIDs and the loop devices) that creates, grows and mounts the image. It
mounts through `nsenter` into dockerd's mount namespace, so the mount is where dockerd binds
volumes from, whatever the host's mount propagation (`/` is private on some hosts). The
volume `<instance>-user-<name>` keeps its name; it is a local-driver volume of
`type=none,o=bind,device=<mountpoint>`. A full disk is ENOSPC for its owner only.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import PurePosixPath

import docker
from docker.errors import APIError, ContainerError, DockerException, NotFound

from .docker_host import own_container

# On the Docker host: the image files and their mount points, one folder per instance.
DISKS_ROOT = PurePosixPath("/var/lib/pytorch-workshop")
# Marks the helper containers, so a person seeing one in `docker ps` knows what it is.
LABEL_DISK_HELPER = "org.pytorch-workshop.disk-helper"
# The attendee (jovyan in the lab image) owns the root of their file system.
OWNER = "1000:100"

# Both scripts act in dockerd's mount namespace: that is where volumes are bound from.
FIND_DOCKERD = r"""
set -eu
dockerd=$(grep -lxs dockerd /proc/[0-9]*/comm | head -n 1 | cut -d/ -f3)
if [ -z "$dockerd" ]; then
  echo "no dockerd process is visible to the disk helper (is Docker rootless?)" >&2
  exit 3
fi
on_host() { nsenter --target "$dockerd" --mount -- "$@"; }
"""

# $1 image file, $2 mount point, $3 size in bytes. Prints what it did: created, grown,
# larger (the image is above the limit: shrinking could lose files) or ready.
PREPARE_SCRIPT = (
    FIND_DOCKERD
    + r"""
image=$1 mountpoint=$2 size=$3
mkdir -p "${image%/*}"
on_host mkdir -p "$mountpoint"
# One spawn at a time per disk, even across hub restarts.
exec 9>>"$image.lock"
flock 9
# An empty work folder: no lost+found beside the labs (e2fsck makes one again when needed).
drop_lost_found() { debugfs -w -R "rmdir lost+found" "$1" >/dev/null 2>&1 || true; }
is_mounted() { cut -d' ' -f5 "/proc/$dockerd/mountinfo" | grep -qxF "$mountpoint"; }
state=ready
if [ ! -e "$image" ]; then
  truncate -s "$size" "$image.new"
  mkfs.ext4 -q -F -m 0 -E root_owner=OWNER "$image.new"
  drop_lost_found "$image.new"
  mv "$image.new" "$image"
  state=created
elif [ "$(stat -c %s "$image")" -lt "$size" ]; then
  # The attendee's last container may still be letting go of it for a moment.
  tries=0
  while is_mounted && ! on_host umount "$mountpoint" 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 20 ]; then on_host umount "$mountpoint"; fi
    sleep 0.5
  done
  truncate -s "$size" "$image"
  # Exit 1: e2fsck corrected something (such as a missing lost+found); only 2+ is an error.
  e2fsck -f -p "$image" >/dev/null || [ $? -le 1 ]
  resize2fs "$image" >/dev/null
  drop_lost_found "$image"
  state=grown
elif [ "$(stat -c %s "$image")" -gt "$size" ]; then
  state=larger
fi
if ! is_mounted; then on_host mount -o loop,nosuid,nodev "$image" "$mountpoint"; fi
echo "$state"
""".replace("OWNER", OWNER)
)

# $1 instance folder. Unmounts every disk of the instance and deletes the folder.
REMOVE_SCRIPT = (
    FIND_DOCKERD
    + r"""
folder=$1
for mountpoint in $(cut -d' ' -f5 "/proc/$dockerd/mountinfo" | grep "^$folder/mnt/" || true); do
  on_host umount "$mountpoint"
done
on_host rm -rf "$folder"
"""
)

# $1 image file, $2 mount point. Unmounts one disk and deletes it (a rehearsal's attendee).
REMOVE_DISK_SCRIPT = (
    FIND_DOCKERD
    + r"""
image=$1 mountpoint=$2
if cut -d' ' -f5 "/proc/$dockerd/mountinfo" | grep -qxF "$mountpoint"; then
  on_host umount "$mountpoint"
fi
on_host rm -rf "$mountpoint" "$image" "$image.lock"
"""
)


class DiskError(RuntimeError):
    """A work folder could not be prepared; the message names the cause and the fix."""


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
    allowed in its device cgroup.

    `folder` is bound at the same path inside as on the host, so one path serves both sides.
    """
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
        "labels": {LABEL_DISK_HELPER: "1"},
        "remove": True,
        "stdout": True,
        "stderr": True,
    }


def _helper_error(error: ContainerError) -> str:
    stderr = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else ""
    return stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {error.exit_status}"


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
            if state == "larger":
                self.log.warning(
                    "%s is larger than WORKSHOP_DISK_LIMIT (%d bytes) and keeps its size: "
                    "shrinking could lose files",
                    volume,
                    self.limit,
                )
            self._bind_volume(volume, paths)
        self.log.info(
            "work disk %s %s in %.0f ms", volume, state, (time.monotonic() - started) * 1000
        )

    def remove(self, volume: str) -> None:
        """Unmount and delete the disk behind `volume` (the volume must be gone or unused)."""
        paths = disk_paths(self.instance, volume)
        command = ["sh", "-c", REMOVE_DISK_SCRIPT, "remove-disk", str(paths.image)]
        with self._lock(volume):
            self.client.containers.run(
                **_helper_run(self.helper_image, [*command, str(paths.mountpoint)])
            )

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
        try:
            output = self.client.containers.run(**_helper_run(self.helper_image, command, folder))
        except ContainerError as error:
            raise DiskError(
                f"the work folder's disk could not be mounted ({_helper_error(error)}): the hub "
                f"needs loop devices and {DISKS_ROOT} on the Docker host"
            ) from None
        except DockerException as error:
            reason = str(getattr(error, "explanation", None) or error).strip()
            raise DiskError(f"the disk helper container did not run ({reason})") from None
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
    client.containers.run(
        **_helper_run(helper_image, ["sh", "-c", REMOVE_SCRIPT, "remove", str(folder)])
    )
