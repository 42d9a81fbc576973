"""The venue without internet, for real: the built images saved into one bundle
(scripts/venue-bundle.sh), carried to a second Docker host that has no image at all and no
route out, loaded there, and started with the README's main command; an attendee logs in and
runs torch in a kernel.

The venue machine is a container of this test's own with its own Docker daemon inside
(tests/e2e/venue_machine), on an internal network the test makes (the host forwards nothing
from it out): the host's images and build cache are never removed, and what runs at the venue
can only come from the bundle.
The bundle's size and the save and load times go to reports/venue-bundle.json.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import docker
import pytest
import requests

from .hub_client import Attendee
from .stack import (
    ACCESS_CODE_OF_TESTS,
    BUILD_LOCK,
    ROOT,
    TEST_IMAGES,
    TEST_PREFIX,
    owner_tag,
    progress,
)

VENUE_IMAGE = f"{TEST_PREFIX}/venue-machine:latest"
VENUE_DIR = Path(__file__).parent / "venue_machine"
# The "USB stick": the folder the bundle travels in, mounted into the venue machine.
CARRIED = "/carried"
PROJECT_AT_VENUE = "/srv/workshop"
HUB_PORT = 8000
# A CPU room: the bundle carries the hub and the CPU lab image. No CUDA or proxy image is
# built under these names, so the bundle says it leaves them out (as for an organizer who
# never built them).
CARRIED_IMAGES = {
    "WORKSHOP_HUB_IMAGE": TEST_IMAGES["WORKSHOP_HUB_IMAGE"],
    "WORKSHOP_CPU_IMAGE": TEST_IMAGES["WORKSHOP_CPU_IMAGE"],
    "WORKSHOP_CUDA_IMAGE": f"{TEST_PREFIX}/not-built:cuda",
    "WORKSHOP_PROXY_IMAGE": f"{TEST_PREFIX}/not-built:proxy",
}
# The venue's .env: the carried images, the hub open on the venue machine's network (the
# test reaches it there), smaller limits like the other stacks.
VENUE_SETTINGS = {
    **CARRIED_IMAGES,
    "WORKSHOP_LISTEN_ADDRESS": "0.0.0.0",
    "WORKSHOP_ACCESS_CODE": ACCESS_CODE_OF_TESTS,
    "WORKSHOP_MEM_LIMIT": "1G",
}
STEP_TIMEOUT_S = 1200
# At the venue, before the machine goes: the stack down, its attendee disks (loop mounts in the
# venue machine) unmounted.
TEAR_DOWN = f"""
if cd {PROJECT_AT_VENUE}; then docker rm -f $(docker ps -aq) >/dev/null; docker-compose down -v; fi
grep -o ' /var/lib/pytorch-workshop[^ ]*' /proc/mounts | xargs -r umount
"""
# What a Docker daemon inside a container needs, spelt out: `privileged` also asks for every
# capability, and fails on hosts (like CI's) whose own bounding set lacks one.
DOCKER_INSIDE = {
    # The daemon's namespaces and mounts, its bridges and iptables, the hub's disk helper
    # (nsenter into this machine's mount namespace) and what attendee containers are given.
    "cap_add": ["SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH", "IPC_LOCK"],
    # Nested containers set their own profiles.
    "security_opt": ["apparmor=unconfined", "seccomp=unconfined"],
    # Set here: /proc/sys is read-only inside, and its bridges forward between containers.
    "sysctls": {"net.ipv4.ip_forward": "1"},
    # The loop devices of the attendees' work disks (block major 7) and loop-control.
    "device_cgroup_rules": ["b 7:* rmw", "c 10:237 rmw"],
}


def build_venue_image() -> None:
    """The venue machine's image (Debian's docker.io and docker-compose), cached after the
    first build; under the test images' build lock."""
    progress(f"building {VENUE_IMAGE} (Docker inside; the first time apt downloads ~100 MB)")
    with open(BUILD_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(
            [
                "docker", "build", "-q", "-t", VENUE_IMAGE,
                "--build-arg", f"BASE_IMAGE={os.environ.get('BASE_IMAGE', 'local/bookworm-py')}",
                str(VENUE_DIR),
            ],
            capture_output=True, text=True, timeout=STEP_TIMEOUT_S,
        )  # fmt: skip
    assert result.returncode == 0, f"building {VENUE_IMAGE} failed:\n{result.stderr[-3000:]}"


def run_script(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "venue-bundle.sh"), *args],
        cwd=cwd,
        env={**os.environ, **CARRIED_IMAGES},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=STEP_TIMEOUT_S,
    )
    return result, time.monotonic() - started


def hub_answers(base_url: str) -> bool:
    try:
        return requests.get(f"{base_url}/hub/health", timeout=5).status_code == 200
    except requests.RequestException:
        return False


class VenueMachine:
    """The venue's host: commands run in it with `docker exec`, their output shown live."""

    def __init__(self, client: docker.DockerClient, container):
        self.client = client
        self.container = container

    @property
    def address(self) -> str:
        self.container.reload()
        (network,) = self.container.attrs["NetworkSettings"]["Networks"].values()
        return network["IPAddress"]

    def run(self, command: str, workdir: str = "/", check: bool = True) -> tuple[int, str]:
        """`bash -c command` at the venue; returns (exit code, output)."""
        api = self.client.api
        execution = api.exec_create(
            self.container.id,
            ["timeout", str(STEP_TIMEOUT_S), "bash", "-c", command],
            workdir=workdir,
        )
        lines = []
        for chunk in api.exec_start(execution["Id"], stream=True):
            for line in chunk.decode(errors="replace").splitlines():
                lines.append(line)
                progress(f"  venue: {line[:120]}")
        code = api.exec_inspect(execution["Id"])["ExitCode"]
        output = "\n".join(lines)
        if check:
            assert code == 0, f"at the venue, `{command}` exited {code}:\n{output[-4000:]}"
        return code, output

    def cut_off(self) -> bool:
        """Whether the host drops everything the venue machine sends beyond its own network
        (Docker's rule for an internal network), read from the host's firewall rules."""
        self.container.reload()
        (network,) = self.container.attrs["NetworkSettings"]["Networks"].values()
        subnet = self.client.networks.get(network["NetworkID"]).attrs["IPAM"]["Config"][0]
        bridge = f"br-{network['NetworkID'][:12]}"
        rules = subprocess.run(
            ["iptables", "-S", "DOCKER-ISOLATION-STAGE-1"], capture_output=True, text=True
        ).stdout
        return f"-A DOCKER-ISOLATION-STAGE-1 ! -d {subnet['Subnet']} -i {bridge} -j DROP" in rules

    def image_ids(self) -> dict[str, str]:
        _, output = self.run("docker images --no-trunc --format '{{.Repository}}:{{.Tag}} {{.ID}}'")
        return dict(line.split() for line in output.splitlines() if line.strip())


@pytest.fixture(scope="module")
def carried(docker_client, lab_images, tmp_path_factory):
    """The bundle, saved here from the test images; (folder, file name, seconds to save, the
    save's output: its digest on stdout, the organizer's next steps on stderr; the IDs of the
    images it carries, taken as it saves them: other test runs may rebuild the tags later)."""
    folder = tmp_path_factory.mktemp("carried")
    # All on this disk: the bundle (about half the images' size) and, at the venue, the images
    # loaded again, while Docker unpacks each one to a scratch folder before storing its layers.
    # Measured: 15.3 GiB used at the peak for 6.3 GiB of images.
    needed = 2.5 * sum(
        docker_client.images.get(CARRIED_IMAGES[setting]).attrs["Size"]
        for setting in ("WORKSHOP_HUB_IMAGE", "WORKSHOP_CPU_IMAGE")
    )
    free = shutil.disk_usage(folder).free
    assert free > needed, (
        f"the offline venue test needs {needed / 2**30:.0f} GiB free beside {folder}, "
        f"{free / 2**30:.0f} GiB are: free some disk (old test images: docker images)"
    )
    progress("saving the venue bundle (the hub and the CPU lab image, ~6 GB before gzip)")
    saved_ids = {
        CARRIED_IMAGES[setting]: docker_client.images.get(CARRIED_IMAGES[setting]).id
        for setting in ("WORKSHOP_HUB_IMAGE", "WORKSHOP_CPU_IMAGE")
    }
    result, seconds = run_script("save", "workshop.tar", cwd=folder)
    assert result.returncode == 0, result.stderr
    progress(next(line for line in result.stderr.splitlines() if line.startswith("wrote ")))
    yield folder, "workshop.tar", seconds, result, saved_ids
    # 3.4 GiB that pytest would keep for three runs.
    if os.environ.get("WORKSHOP_KEEP_TEST_STACKS") != "1":
        (folder / "workshop.tar").unlink()


@pytest.fixture(scope="module")
def venue(docker_client, carried):
    """A venue machine with Docker and no image, on an internal network, the bundle's folder
    mounted as a stick would be."""
    build_venue_image()
    name = f"{owner_tag()}venue"
    network = docker_client.networks.create(name, internal=True)
    folder, *_ = carried
    container = docker_client.containers.run(
        VENUE_IMAGE,
        name=name,
        detach=True,
        network=name,
        volumes={
            str(folder): {"bind": CARRIED, "mode": "rw"},
            name: {"bind": "/var/lib/docker", "mode": "rw"},
            # Its daemon makes the cgroups of its containers (the attendees' limits).
            "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
        },
        **DOCKER_INSIDE,
    )
    machine = VenueMachine(docker_client, container)
    try:
        deadline = time.monotonic() + 120
        while b"venue machine ready" not in container.logs():
            container.reload()
            assert container.status == "running", container.logs().decode()[-3000:]
            assert time.monotonic() < deadline, container.logs().decode()[-3000:]
            time.sleep(1)
        yield machine
    finally:
        if os.environ.get("WORKSHOP_KEEP_TEST_STACKS") != "1":
            # The stack down first: its attendee disks are loop mounts in the venue machine.
            machine.run(TEAR_DOWN, check=False)
            container.remove(force=True, v=True)
            # Its daemon's cgroups, made on the host's hierarchy (tests/e2e/venue_machine).
            for parent in Path("/sys/fs/cgroup").glob(f"*/venue-{container.id[:12]}"):
                for cgroup in sorted(parent.rglob("*/"), key=lambda p: -len(p.parts)):
                    cgroup.rmdir()
                parent.rmdir()
            docker_client.volumes.get(name).remove(force=True)
            network.remove()


def test_the_venue_starts_from_the_bundle_alone(carried, venue):
    folder, bundle_name, save_seconds, saved, saved_ids = carried
    digest = saved.stdout.strip()
    bundle_size = (folder / bundle_name).stat().st_size

    # The venue machine: Docker, no image, no way out.
    assert venue.image_ids() == {}
    assert venue.cut_off(), "Docker forwards the venue machine's traffic out of its network"

    # The organizer's steps, as the save's last lines say: the scripts out of the bundle once
    # its checksums match the digest, then load with that digest.
    take_scripts = next(
        line.strip().rstrip(")")
        for line in saved.stderr.splitlines()
        if line.strip().startswith(f"tar -xf {bundle_name} ")
    )
    assert digest in take_scripts, take_scripts
    venue.run(take_scripts, CARRIED)
    started = time.monotonic()
    venue.run(
        f"bash scripts/venue-bundle.sh load {bundle_name} {PROJECT_AT_VENUE} --digest {digest}",
        CARRIED,
    )
    load_seconds = time.monotonic() - started

    # The same images as saved here, by ID: nothing was built or pulled at the venue.
    loaded = venue.image_ids()
    assert {image: loaded.get(image) for image in saved_ids} == saved_ids, loaded

    # The README's main command, with the venue's settings in .env; nothing else.
    env_file = "\n".join(f"{name}={value}" for name, value in VENUE_SETTINGS.items())
    venue.run(f"printf '%s\\n' '{env_file}' > .env", PROJECT_AT_VENUE)
    started = time.monotonic()
    venue.run("docker-compose up -d", PROJECT_AT_VENUE)
    assert venue.image_ids() == loaded, "compose built or pulled an image at the venue"

    # An attendee at the venue: logs in, gets a server, runs torch.
    attendee = Attendee(f"http://{venue.address}:{HUB_PORT}", "venue-kim")
    deadline = time.monotonic() + 180
    while not hub_answers(attendee.base_url):
        if time.monotonic() > deadline:
            _, logs = venue.run("docker-compose logs --no-color hub", PROJECT_AT_VENUE, check=False)
            pytest.fail(f"the hub at the venue did not answer in 180 s:\n{logs[-4000:]}")
        time.sleep(2)
    response = attendee.login(ACCESS_CODE_OF_TESTS)
    assert response.status_code == 200, response.text[-2000:]
    attendee.wait_until_ready()
    assert attendee.open_lab().status_code == 200
    result = attendee.run_code("import torch; print(torch.arange(4).sum().item())")
    assert result.error is None and result.stdout.strip() == "6", result
    first_kernel_seconds = time.monotonic() - started

    figures = {
        "bundle_bytes": bundle_size,
        "bundle_gib": round(bundle_size / 2**30, 2),
        "images": [CARRIED_IMAGES["WORKSHOP_HUB_IMAGE"], CARRIED_IMAGES["WORKSHOP_CPU_IMAGE"]],
        "save_seconds": round(save_seconds, 1),
        "load_seconds": round(load_seconds, 1),
        "up_to_first_kernel_seconds": round(first_kernel_seconds, 1),
    }
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports" / "venue-bundle.json").write_text(json.dumps(figures, indent=2) + "\n")
    progress(f"venue bundle: {figures}")
