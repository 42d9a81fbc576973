"""The real compose stack of this repository, under a test project name and a free port.

Images get test tags and attendee containers a test instance prefix, so the tests never
touch a deployment running on the same machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import requests

from workshop_hub.room import firewall
from workshop_hub.room.disks import DISKS_ROOT, remove_instance_disks
from workshop_hub.settings import SECRETS

ROOT = Path(__file__).resolve().parents[2]
TEST_PREFIX = "wstest"
TEST_IMAGES = {
    "WORKSHOP_HUB_IMAGE": f"{TEST_PREFIX}/hub:latest",
    "WORKSHOP_CPU_IMAGE": f"{TEST_PREFIX}/lab:cpu",
    "WORKSHOP_CUDA_IMAGE": f"{TEST_PREFIX}/lab:cuda",
    "WORKSHOP_PROXY_IMAGE": f"{TEST_PREFIX}/proxy:latest",
}
# While this file exists, the fake NVIDIA hook (.ci/prepare-machine.sh) fails like a broken
# NVIDIA runtime.
BROKEN_HOOK_FLAG = Path("/run/fake-nvidia-broken")
BUILD_LOCK = Path("/tmp/wstest-image-build.lock")
ACCESS_CODE_OF_TESTS = "test-room-code-2026"
# Longer than any compose command of the tests takes (an image build runs elsewhere).
COMPOSE_TIMEOUT_SECONDS = 600
ADMIN_PASSWORD_OF_TESTS = "an-admin-password-long-enough-for-the-hub-1234"


# Set by conftest to pytest's capture manager, so progress reaches the terminal live.
capture_manager = None


def progress(message: str) -> None:
    """Long steps say what they do even while pytest captures output."""
    if capture_manager is None:
        print(f"[e2e] {message}", file=sys.stderr, flush=True)
        return
    with capture_manager.global_and_fixture_disabled():
        print(f"\n[e2e] {message}", file=sys.stderr, flush=True)


def compose_command() -> list[str]:
    """Compose v2 when the docker CLI has it, else docker-compose 1.29."""
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("Neither `docker compose` nor `docker-compose` is installed")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def build_images(log_path: Path) -> None:
    """`compose --profile gpu --profile https build`: every image, progress shown."""
    env = {**os.environ, **TEST_IMAGES}
    profiles = ["--profile", "gpu", "--profile", "https"]
    command = [*compose_command(), "-p", f"{TEST_PREFIX}-build", *profiles, "build"]
    progress(f"building the images with `{' '.join(command)}` (log: {log_path})")
    started = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # One build at a time on a machine: two test runs building the same 6 GB images at once
    # double the disk they need, and the second finds the first's layers cached anyway.
    client = docker.from_env()
    with open(BUILD_LOCK, "a") as lock, open(log_path, "w") as log:
        fcntl.flock(lock, fcntl.LOCK_EX)
        before = _image_ids(client)
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for line in process.stdout:
            log.write(line)
            if line.startswith(("Step ", "Building ", "Successfully tagged")):
                progress(f"  {line.rstrip()[:110]}")
        process.wait()
    if process.returncode != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-40:])
        raise RuntimeError(f"image build failed (exit {process.returncode}):\n{tail}")
    _remove_replaced(client, before, _image_ids(client))
    progress(f"images built in {time.monotonic() - started:.0f} s")


def _image_ids(client: docker.DockerClient) -> dict[str, str]:
    ids = {}
    for tag in TEST_IMAGES.values():
        try:
            ids[tag] = client.images.get(tag).id
        except docker.errors.ImageNotFound:
            pass
    return ids


def _remove_replaced(client, before: dict[str, str], after: dict[str, str]) -> None:
    """Delete the test images a rebuild replaced (a lab image is ~6 GB), keeping the layers the
    new ones share and the build stages' cache, which a `docker image prune` would throw away."""
    for tag, old_id in before.items():
        if after.get(tag) != old_id:
            try:
                client.images.remove(old_id)
            except docker.errors.APIError:
                pass  # still used by a container, or by another tag


def owner_tag() -> str:
    """Part of every test project name: which pytest process owns the objects it creates."""
    return f"{TEST_PREFIX}{os.getpid()}x"


@contextlib.contextmanager
def running(stack: HubStack) -> Iterator[HubStack]:
    """The stack up for the block, then down, unless WORKSHOP_KEEP_TEST_STACKS=1 keeps it
    for debugging."""
    try:
        stack.up()
        yield stack
    finally:
        if os.environ.get("WORKSHOP_KEEP_TEST_STACKS") != "1":
            stack.down()


def organizer_folder(project: str, secrets: dict[str, str]) -> Path:
    """A project folder as an organizer has one: the compose file, and a `.env` only they can
    read with the secret settings, where the hub reads them (compose never passes them)."""
    folder = Path(tempfile.mkdtemp(prefix=f"{project}-"))
    shutil.copy(ROOT / "docker-compose.yml", folder)
    env_file = folder / ".env"
    env_file.touch(mode=0o600)
    env_file.write_text("".join(f"{name}={value}\n" for name, value in secrets.items()))
    return folder


TEST_DISK_LIMIT = "256M"


class HubStack:
    def __init__(self, **settings: str):
        self.project = f"{owner_tag()}{uuid.uuid4().hex[:6]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        secrets = {name: settings.pop(name) for name in SECRETS if name in settings}
        # Given secrets (even empty, "generate them") go in a .env of the stack's own: the
        # repository's .env, if a developer has one, must not decide them.
        self.folder = organizer_folder(self.project, secrets) if secrets else ROOT
        self.env = {
            **os.environ,
            **TEST_IMAGES,
            "WORKSHOP_PORT": str(self.port),
            "WORKSHOP_INSTANCE": self.project,
            # Each work disk is allocated in full: small ones, so a run's attendees need a few
            # GB of the host's disk rather than 2 GB each.
            "WORKSHOP_DISK_LIMIT": TEST_DISK_LIMIT,
            **settings,
        }
        self.docker = docker.from_env()

    def compose(
        self,
        *args: str,
        check: bool = True,
        env: dict[str, str] | None = None,
        folder: Path | None = None,
        timeout: float = COMPOSE_TIMEOUT_SECONDS,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess:
        """Run compose on this project; `env` overrides some settings for this command only,
        `folder` is the project folder (the one `./` in the compose file means, with its
        `.env`; default the stack's own). A command that hangs fails the test instead of the
        whole run."""
        folder = folder or self.folder
        result = subprocess.run(
            [
                *compose_command(),
                "-p",
                self.project,
                "-f",
                str(folder / "docker-compose.yml"),
                "--project-directory",
                str(folder),
                *args,
            ],
            cwd=folder,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"compose {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result

    def up(self, timeout: float = 120) -> None:
        progress(f"starting hub {self.project} on {self.url}")
        self.compose("up", "-d", "--no-build", "hub")
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/hub/health", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        raise TimeoutError(f"hub not healthy after {timeout:.0f} s; logs:\n{self.logs()[-4000:]}")

    def restart_hub(self) -> None:
        progress(f"restarting hub {self.project}")
        self.compose("restart", "hub")
        self.wait_healthy()

    def start(self, service: str) -> None:
        """Start one more service of the stack (e.g. the proxy), without waiting for it."""
        progress(f"starting {service} of {self.project}")
        self.compose("up", "-d", "--no-build", "--no-deps", service)

    def logs(self, service: str = "hub") -> str:
        result = self.compose("logs", "--no-color", service, check=False)
        return result.stdout + result.stderr

    def hub_exec(
        self, *command: str, stdin: str | None = None, timeout: float = COMPOSE_TIMEOUT_SECONDS
    ) -> subprocess.CompletedProcess:
        return self.compose(
            "exec", "-T", "hub", *command, check=False, stdin=stdin, timeout=timeout
        )

    def attendee_container(self, username: str):
        return self.docker.containers.get(f"{self.project}-{username}")

    def down(self) -> None:
        # Attendee containers first: they hold the network that compose removes.
        for container in self.docker.containers.list(all=True):
            if container.name.startswith(f"{self.project}-"):
                container.remove(force=True)
        self.compose("down", "-v", "--remove-orphans", check=False)
        remove_test_leftovers(self.docker, self.project)
        # The firewall leaves its rules when stopped (attendees left running stay fenced).
        host = firewall.Host(firewall.detect_backend())
        for family in firewall.HOOKS:
            host.remove(family, self.project)
        if self.folder != ROOT:
            shutil.rmtree(self.folder, ignore_errors=True)


def _left_behind(name: str, prefix: str | None) -> bool:
    """Whether a Docker object belongs to `prefix`, or (no prefix) to a test run that is gone.

    Test projects are named wstest<pid>x<id>, so two test runs on one machine (a developer's
    and CI's) never remove each other's stacks.
    """
    if prefix is not None:
        return name.startswith(prefix)
    owner = re.match(rf"{TEST_PREFIX}(\d+)x", name)
    if owner is None:
        return name.startswith(TEST_PREFIX) and not name.startswith(f"{TEST_PREFIX}-build")
    return not Path(f"/proc/{owner.group(1)}").exists()


def _ignore_gone(remove, **kwargs) -> None:
    try:
        remove(**kwargs)
    except docker.errors.NotFound:
        pass


def remove_test_leftovers(client: docker.DockerClient, prefix: str | None = None) -> None:
    """Containers, volumes and networks of test projects: those of `prefix`, or of dead runs."""
    # Sparse listings, and NotFound ignored: another test run may remove its own objects while
    # this loop looks at them.
    for container in client.containers.list(all=True, sparse=True):
        # A sparse listing has "Names" ("/name"), not "Name".
        if _left_behind(container.attrs["Names"][0].lstrip("/"), prefix):
            _ignore_gone(container.remove, force=True)
    for volume in client.volumes.list():
        if _left_behind(volume.name, prefix):
            _ignore_gone(volume.remove, force=True)
    for network in client.networks.list():
        if _left_behind(network.name, prefix):
            _ignore_gone(network.remove)
    # Attendee work disks: loop mounts on the host, which outlive their volumes.
    if Path(DISKS_ROOT).is_dir():
        for folder in Path(DISKS_ROOT).iterdir():
            if _left_behind(folder.name, prefix):
                remove_instance_disks(client, TEST_IMAGES["WORKSHOP_HUB_IMAGE"], folder.name)
