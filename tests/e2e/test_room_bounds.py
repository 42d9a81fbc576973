"""One room code, one stranger with a script: the room stays bounded.

A hub of its own whose work disks live on a small file system of the test's (160M, room for
two 64M disks and the reserve), with a cap of four names: Mallory's script claims names
until refused, starts servers under them and writes their disks full, while Ada saves.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import docker
import pytest
import requests

from workshop_hub.access.throttle import MAX_KEYS
from workshop_hub.room.disks import DISKS_ROOT

from .hub_client import Attendee, SpawnFailed, page_message
from .stack import ACCESS_CODE_OF_TESTS, HubStack, progress

MiB = 1024**2
DISK_LIMIT = 64 * MiB
HOST_DISK_SIZE = 160 * MiB
MAX_NAMES = 4

# Writes into the work folder until ENOSPC, synced, and says how many MiB it wrote.
FILL_WORK_FOLDER = """
import errno, os
written = 0
with open(os.path.expanduser("~/work/filler.bin"), "wb", buffering=0) as f:
    try:
        while True:
            f.write(b"\\1" * 1024**2)
            written += 1
    except OSError as error:
        print("full", errno.errorcode[error.errno], written)
    os.fsync(f.fileno())
"""
# Ada's save: 40 MiB of her own, synced to her disk.
ADA_SAVES = """
import os
with open(os.path.expanduser("~/work/results.bin"), "wb") as f:
    f.write(os.urandom(40 * 1024**2))
    f.flush()
    os.fsync(f.fileno())
print("saved", os.path.getsize(os.path.expanduser("~/work/results.bin")) // 1024**2)
"""


def host_free(path: Path) -> int:
    found = subprocess.run(
        ["df", "-B1", "--output=avail", str(path)], capture_output=True, text=True, check=True
    )
    return int(found.stdout.split()[-1])


@pytest.fixture(scope="module")
def bounded_room(lab_images, tmp_path_factory):
    """The hub, its disks on a small file system mounted where the hub keeps them."""
    stack = HubStack(
        WORKSHOP_ACCESS_CODE=ACCESS_CODE_OF_TESTS,
        WORKSHOP_DISK_LIMIT=str(DISK_LIMIT),
        WORKSHOP_MAX_NAMES=str(MAX_NAMES),
    )
    backing = tmp_path_factory.mktemp("host-disk") / "disks.ext4"
    subprocess.run(["truncate", "-s", str(HOST_DISK_SIZE), str(backing)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(backing)], check=True)
    folder = DISKS_ROOT / stack.project
    Path(folder).mkdir(parents=True)
    subprocess.run(["mount", "-o", "loop", str(backing), str(folder)], check=True)
    try:
        stack.up()
        yield stack, Path(folder)
    finally:
        stack.down()
        subprocess.run(["umount", str(folder)], check=True)
        Path(folder).rmdir()


def test_a_script_cannot_claim_more_names_than_the_room_holds(bounded_room):
    stack, _ = bounded_room
    ada = Attendee(stack.url, "ada")
    assert ada.login(ACCESS_CODE_OF_TESTS).status_code == 200
    ada.wait_until_ready()
    # Past two disks the host's disk is full: a claim still succeeds, its server does not
    # start (503, the next test's subject).
    claimed, refused = [], None
    for number in range(1, 10):
        bot = Attendee(stack.url, f"bot{number}")
        response = bot.login(ACCESS_CODE_OF_TESTS)
        if response.status_code == 403:
            refused = (bot.name, page_message(response.text))
            break
        claimed.append((bot.name, response.status_code))
    progress(f"the script claimed {claimed}, then was refused: {refused}")
    assert len(claimed) == MAX_NAMES - 1
    assert refused is not None
    assert "Every name of this room is taken" in refused[1]


def test_disks_written_full_never_fail_a_neighbours_save(bounded_room, tmp_path):
    stack, host_folder = bounded_room
    ada = Attendee(stack.url, "ada")
    assert ada.login().status_code == 200
    ada.wait_until_ready()
    assert ada.open_lab().status_code == 200  # the server's own login, for its kernels
    bots = [Attendee(stack.url, f"bot{number}") for number in range(1, MAX_NAMES)]
    started, refusals = [], []
    for bot in bots:
        response = bot.login()
        if response.status_code == 503:
            refusals.append(page_message(response.text))
            continue
        assert response.status_code == 200, response.status_code
        try:
            bot.wait_until_ready()
            assert bot.open_lab().status_code == 200
            started.append(bot)
        except SpawnFailed as failure:
            refusals.append(str(failure))
    progress(
        f"{len(started)} of the script's servers started; {len(refusals)} refused: "
        f"{refusals[:1]}; {host_free(host_folder) / MiB:.0f} MiB free on the host's disk"
    )
    # The host's disk holds two disks: Ada's and one of the script's.
    assert len(started) == 1 and len(refusals) == MAX_NAMES - 2
    assert all("not enough for a work folder" in message for message in refusals)
    with ThreadPoolExecutor(len(started) + 1) as pool:
        fills = [pool.submit(bot.run_code, FILL_WORK_FOLDER, 120) for bot in started]
        fills = [fill.result() for fill in fills]
        saved = ada.run_code(ADA_SAVES, 120)
    for fill in fills:
        assert fill.error is None and fill.stdout.split()[:2] == ["full", "ENOSPC"], fill
    assert (saved.error, saved.stdout) == (None, "saved 40\n")
    assert requests.get(f"{stack.url}/hub/health", timeout=10).status_code == 200

    # The control: a disk that is not allocated up front (a sparse image, as the disks were)
    # made on the host's disk now cannot take what Ada just saved.
    free = host_free(host_folder)
    assert free < 40 * MiB, f"{free} bytes are still free: the control proves nothing"
    sparse = host_folder / "sparse-control.img"
    mountpoint = tmp_path / "sparse"
    mountpoint.mkdir()
    subprocess.run(["truncate", "-s", str(DISK_LIMIT), str(sparse)], check=True)
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(sparse)], check=True)
        subprocess.run(["mount", "-o", "loop", str(sparse), str(mountpoint)], check=True)
        wrote = subprocess.run(
            [
                "dd",
                "if=/dev/urandom",
                f"of={mountpoint}/results.bin",
                "bs=1M",
                "count=40",
                "conv=fsync",
            ],
            capture_output=True,
            text=True,
        )
        progress(
            f"control, a sparse disk: dd exit {wrote.returncode}: {wrote.stderr.strip()[-120:]}"
        )
        assert wrote.returncode != 0
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False)
        sparse.unlink()


# What strangers send in the flood below: eight 90 MB bodies each to the console and to the
# hub's login, and this many distinct names, each a failed login: more than the login
# throttle's table holds (workshop_hub/access/throttle.py), so it is full and forgets the oldest.
LARGE_BODY = 90 * 10**6
LARGE_BODIES = 8
FLOOD_NAMES = MAX_KEYS + 10_000


def hub_container(stack: HubStack):
    return next(
        container
        for container in docker.from_env().containers.list()
        if container.labels.get("com.docker.compose.project") == stack.project
        and container.labels.get("com.docker.compose.service") == "hub"
    )


def working_set(container_id: str) -> int:
    """The container's memory as `docker stats` shows it: usage less inactive page cache."""
    for folder in (
        Path(f"/sys/fs/cgroup/memory/docker/{container_id}"),  # cgroup v1
        Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope"),  # v2, systemd
        Path(f"/sys/fs/cgroup/docker/{container_id}"),  # v2, cgroupfs
    ):
        if (folder / "memory.usage_in_bytes").exists():
            stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines())
            usage = int((folder / "memory.usage_in_bytes").read_text())
            return usage - int(stat["total_inactive_file"])
        if (folder / "memory.current").exists():
            stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines())
            return int((folder / "memory.current").read_text()) - int(stat["inactive_file"])
    raise AssertionError(f"no memory cgroup found for container {container_id}")


async def post_large_bodies(url: str) -> list[str]:
    """LARGE_BODIES posts of LARGE_BODY bytes at once, streamed; how each ended."""

    async def chunks():
        chunk = b"x" * 1024**2
        for _ in range(LARGE_BODY // len(chunk)):
            yield chunk

    async def post(session: aiohttp.ClientSession) -> str:
        try:
            headers = {"Content-Length": str(LARGE_BODY // 1024**2 * 1024**2)}
            async with session.post(url, data=chunks(), headers=headers) as response:
                return str(response.status)
        except (aiohttp.ClientError, OSError) as error:
            return type(error).__name__

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        return await asyncio.gather(*(post(session) for _ in range(LARGE_BODIES)))


async def try_names(base_url: str) -> Counter:
    """FLOOD_NAMES failed logins, each with a new name, 32 at a time, as a browser posts the
    form (with its XSRF cookie)."""
    statuses: Counter = Counter()
    # unsafe: the hub is reached by address, whose cookies aiohttp otherwise drops.
    jar = aiohttp.CookieJar(unsafe=True)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, cookie_jar=jar) as session:
        async with session.get(f"{base_url}/hub/login") as response:
            await response.read()
        xsrf = next(cookie.value for cookie in session.cookie_jar if cookie.key == "_xsrf")
        names = iter(range(FLOOD_NAMES))

        async def worker() -> None:
            for number in names:
                form = {
                    # The longest name the hub accepts: each one a new key for its throttle.
                    "username": f"n{number:07d}{secrets.token_hex(12)}",
                    "password": "not-the-password",
                    "room_code": "not-the-room-code",
                    "_xsrf": xsrf,
                }
                try:
                    async with session.post(f"{base_url}/hub/login", data=form) as response:
                        await response.read()
                        statuses[response.status] += 1
                except (aiohttp.ClientError, OSError) as error:
                    statuses[type(error).__name__] += 1

        await asyncio.gather(*(worker() for _ in range(32)))
    return statuses


def test_floods_of_bodies_and_names_stay_within_the_hubs_memory(bounded_room):
    stack, _ = bounded_room
    container = hub_container(stack)
    limit = container.attrs["HostConfig"]["Memory"]
    assert limit > 0, "the hub has no memory limit"
    started_at = container.attrs["State"]["StartedAt"]
    at_rest = working_set(container.id)
    samples, health = [], []
    flooding = threading.Event()
    flooding.set()

    def watch() -> None:
        while flooding.is_set():
            samples.append(working_set(container.id))
            try:
                answered = requests.get(f"{stack.url}/hub/health", timeout=5).status_code
            except requests.RequestException as error:
                answered = type(error).__name__
            health.append(answered)
            time.sleep(0.5)

    watcher = threading.Thread(target=watch)
    watcher.start()
    flood_started = time.monotonic()
    try:
        bodies = asyncio.run(
            _both(
                post_large_bodies(f"{stack.url}/services/console/api/progress"),
                post_large_bodies(f"{stack.url}/hub/login"),
            )
        )
        bodies_done = time.monotonic() - flood_started
        names = asyncio.run(try_names(stack.url))
    finally:
        flooding.clear()
        watcher.join()
    elapsed = time.monotonic() - flood_started
    peak = max(samples)
    progress(
        f"hub memory: {at_rest / MiB:.0f} MiB at rest, peak {peak / MiB:.0f} MiB under the "
        f"flood (limit {limit / MiB:.0f} MiB); {LARGE_BODIES}+{LARGE_BODIES} bodies of "
        f"{LARGE_BODY / 10**6:.0f} MB in {bodies_done:.1f} s: console {bodies[0]}, login "
        f"{bodies[1]}; {FLOOD_NAMES} names in {elapsed - bodies_done:.0f} s: {dict(names)}; "
        f"/hub/health {Counter(health)}"
    )
    # The control: everything was sent and refused, not lost on the way.
    assert sum(names.values()) == FLOOD_NAMES
    assert set(names) <= {403, 429}, names
    # Refused as they came: 400 from the hub's own server, 503 from its proxy when the
    # console hung up; never read whole (not even one of them fits in what memory grew by).
    for outcome in bodies[0] + bodies[1]:
        assert outcome in {"400", "413", "503", "ClientOSError", "ServerDisconnectedError"}
    assert peak - at_rest < LARGE_BODY
    # The hub held: under its limit with room to spare, answering throughout, never restarted.
    assert peak < limit / 2
    assert set(health) == {200}, Counter(health)
    container.reload()
    assert container.attrs["State"]["StartedAt"] == started_at
    assert not container.attrs["State"]["OOMKilled"]


async def _both(first, second):
    return await asyncio.gather(first, second)
