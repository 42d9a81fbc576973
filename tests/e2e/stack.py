"""The real compose stack of this repository, under a test project name and a free port.

Images get test tags and attendee containers a test instance prefix, so the tests never
touch a deployment running on the same machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker
import requests

ROOT = Path(__file__).resolve().parents[2]
TEST_PREFIX = "wstest"
TEST_IMAGES = {
    "WORKSHOP_HUB_IMAGE": f"{TEST_PREFIX}/hub:latest",
    "WORKSHOP_CPU_IMAGE": f"{TEST_PREFIX}/lab:cpu",
    "WORKSHOP_CUDA_IMAGE": f"{TEST_PREFIX}/lab:cuda",
}
# While this file exists, the fake NVIDIA hook (.ci/prepare-machine.sh) fails like a broken
# NVIDIA runtime.
BROKEN_HOOK_FLAG = Path("/run/fake-nvidia-broken")
ACCESS_CODE_OF_TESTS = "test-room-code-2026"
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
    """`compose --profile gpu build`: the hub and both lab flavors, progress shown."""
    env = {**os.environ, **TEST_IMAGES}
    command = [*compose_command(), "-p", f"{TEST_PREFIX}-build", "--profile", "gpu", "build"]
    progress(f"building the images with `{' '.join(command)}` (log: {log_path})")
    started = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
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
    progress(f"images built in {time.monotonic() - started:.0f} s")


class HubStack:
    def __init__(self, **settings: str):
        self.project = f"{TEST_PREFIX}{uuid.uuid4().hex[:6]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            **TEST_IMAGES,
            "WORKSHOP_PORT": str(self.port),
            "WORKSHOP_INSTANCE": self.project,
            **settings,
        }
        self.docker = docker.from_env()

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*compose_command(), "-p", self.project, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
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

    def logs(self) -> str:
        result = self.compose("logs", "--no-color", "hub", check=False)
        return result.stdout + result.stderr

    def hub_exec(self, *command: str) -> subprocess.CompletedProcess:
        return self.compose("exec", "-T", "hub", *command, check=False)

    def attendee_container(self, username: str):
        return self.docker.containers.get(f"{self.project}-{username}")

    def down(self) -> None:
        # Attendee containers first: they hold the network that compose removes.
        for container in self.docker.containers.list(all=True):
            if container.name.startswith(f"{self.project}-"):
                container.remove(force=True)
        self.compose("down", "-v", "--remove-orphans", check=False)
        remove_test_leftovers(self.docker, self.project)


def remove_test_leftovers(client: docker.DockerClient, prefix: str = TEST_PREFIX) -> None:
    """Containers, volumes and networks of test projects (never anything else)."""
    for container in client.containers.list(all=True):
        if container.name.startswith(prefix):
            container.remove(force=True)
    for volume in client.volumes.list():
        if volume.name.startswith(prefix):
            volume.remove(force=True)
    for network in client.networks.list():
        if network.name.startswith(prefix):
            network.remove()
