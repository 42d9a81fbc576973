"""An attendee who fills things up: their own work folder, /tmp, the container's log, the room.

Small limits on dedicated stacks keep the tests fast: a 64M work folder and a 32M /tmp on
one, a room of one with a 45 s maximum server age on the other.
"""

from __future__ import annotations

import logging
import tarfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from workshop_hub.room.disks import (
    DISKS_ROOT,
    DiskError,
    WorkDisks,
    disk_paths,
    is_capped,
    remove_instance_disks,
)
from workshop_hub.room.profiles import LOG_FILE_SIZE, LOG_FILES, WORK_DIR
from workshop_hub.settings import parse_size

from .hub_client import Attendee, SpawnFailed, page_message
from .stack import ACCESS_CODE_OF_TESTS, TEST_IMAGES, HubStack, owner_tag, progress

MiB = 1024**2
DISK_LIMIT = 64 * MiB
TMP_SIZE = 32 * MiB
MAX_SERVER_AGE_S = 45


def ready_attendee(stack: HubStack, name: str) -> Attendee:
    attendee = Attendee(stack.url, name)
    assert attendee.login(ACCESS_CODE_OF_TESTS).status_code == 200
    attendee.wait_until_ready()
    assert attendee.open_lab().status_code == 200
    return attendee


@pytest.fixture(scope="module")
def small_stack(lab_images):
    """A hub whose attendees get a 64M work folder and a 32M /tmp."""
    stack = HubStack(
        WORKSHOP_ACCESS_CODE=ACCESS_CODE_OF_TESTS,
        WORKSHOP_DISK_LIMIT=str(DISK_LIMIT),
        WORKSHOP_TMP_SIZE=str(TMP_SIZE),
    )
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="module")
def neighbour(small_stack) -> Attendee:
    """An attendee of the small stack who only saves files."""
    return ready_attendee(small_stack, "neighbour")


# Fills the work folder until ENOSPC, then keeps it full for a while, retrying writes, so the
# neighbour saves while it is full.
FILL_WORK_FOLDER = """
import errno, os, time
path = os.path.expanduser("~/work/filler.bin")
written, full_error = 0, None
# Unbuffered: the refused write raises here, not again when the file closes.
with open(path, "wb", buffering=0) as f:
    try:
        while True:
            f.write(b"\\1" * 1024**2)
            written += 1
    except OSError as error:
        full_error = errno.errorcode[error.errno]
refused = 0
deadline = time.monotonic() + 8
while time.monotonic() < deadline:
    try:
        with open(os.path.expanduser("~/work/more.bin"), "wb", buffering=0) as f:
            f.write(b"\\1" * 1024**2)
            os.fsync(f.fileno())
    except OSError as error:
        refused += error.errno == errno.ENOSPC
    time.sleep(0.5)
for leftover in ("filler.bin", "more.bin"):
    if os.path.exists(os.path.expanduser("~/work/" + leftover)):
        os.remove(os.path.expanduser("~/work/" + leftover))
print("full", full_error, written, "refused", refused)
"""


def test_a_full_work_folder_is_enospc_for_its_owner_only(small_stack, neighbour):
    filler = ready_attendee(small_stack, "filler")
    saved, health = [], []
    with ThreadPoolExecutor(1) as pool:
        filling = pool.submit(filler.run_code, FILL_WORK_FOLDER, 120)
        # The neighbour saves a notebook-sized file every half second while the disk is full.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not filling.done():
            name = f"saved-{len(saved)}.txt"
            content = "x" * 200_000
            response = neighbour.api(
                "PUT",
                f"contents/{name}",
                json={"type": "file", "format": "text", "content": content},
            )
            saved.append((name, response.status_code))
            health.append(requests.get(f"{small_stack.url}/hub/health", timeout=10).status_code)
            time.sleep(0.5)
        result = filling.result()
    assert result.error is None, result.error
    _, full_error, written, _, refused = result.stdout.split()
    progress(f"filler wrote {written} MiB before {full_error}; {len(saved)} saves meanwhile")
    assert full_error == "ENOSPC"
    assert 0.7 * DISK_LIMIT / MiB <= int(written) <= DISK_LIMIT / MiB
    assert int(refused) >= 5, "the full folder did not refuse writes while it stayed full"
    assert len(saved) >= 5 and all(status == 201 for _, status in saved), saved
    assert set(health) == {200}
    for name, _ in saved:
        assert len(neighbour.api("GET", f"contents/{name}").json()["content"]) == 200_000
    for line in small_stack.logs().splitlines():
        if "work disk" in line:
            progress(f"hub: {line.split('] ', 1)[-1]}")
    # On the host: the image file never grows past the limit, and all of it was allocated
    # when it was made (ext4 adds a block or two of its own for the file's extent tree).
    image = Path(disk_paths(small_stack.project, f"{small_stack.project}-user-filler").image)
    assert image.stat().st_size == DISK_LIMIT
    assert DISK_LIMIT <= image.stat().st_blocks * 512 <= DISK_LIMIT + 64 * 1024


def test_the_root_is_read_only_and_tmp_is_capped_yet_a_lab_runs(small_stack, neighbour):
    result = neighbour.run_code(
        "import errno, json, os, pathlib\n"
        "for path in ('/etc/x', '/opt/venv/x', '/x'):\n"
        "    try:\n"
        "        open(path, 'w')\n"
        "        print(path, 'WRITABLE')\n"
        "    except OSError as error:\n"
        "        print(path, errno.errorcode[error.errno])\n"
        "written = 0\n"
        "try:\n"
        "    with open('/tmp/big', 'wb') as f:\n"
        "        while True:\n"
        "            f.write(bytes(1024**2)); f.flush(); written += 1\n"
        "except OSError as error:\n"
        "    print('tmp', errno.errorcode[error.errno], written)\n"
        "os.remove('/tmp/big')\n"
        "work = os.statvfs(os.path.expanduser('~/work'))\n"
        "print('work', work.f_blocks * work.f_frsize)\n"
        # The attendee's own copy of lab 1, its first code cells, as JupyterLab runs them.
        "notebook = pathlib.Path('~/work/labs/01_intro_to_pytorch.ipynb').expanduser()\n"
        "cells = json.loads(notebook.read_text())['cells']\n"
        "cells = [cell for cell in cells if cell['cell_type'] == 'code']\n"
        "for cell in cells[:5]:\n"
        "    outcome = get_ipython().run_cell(''.join(cell['source']))\n"
        "    assert outcome.success, outcome.error_in_exec or outcome.error_before_exec\n"
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2]); plt.savefig(os.path.expanduser('~/work/plot.png'))\n"
        "print('lab ok', os.path.getsize(os.path.expanduser('~/work/plot.png')) > 0)\n",
        timeout=300,
    )
    assert result.error is None, result.error
    lines = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines() if " " in line)
    assert lines["/etc/x"] == lines["/opt/venv/x"] == lines["/x"] == "EROFS", result.stdout
    tmp_error, tmp_written = lines["tmp"].split()
    assert tmp_error == "ENOSPC" and int(tmp_written) <= TMP_SIZE / MiB
    assert 0.7 * DISK_LIMIT <= int(lines["work"]) <= DISK_LIMIT
    assert lines["lab"] == "ok True"
    container = small_stack.attendee_container("neighbour")
    assert container.attrs["HostConfig"]["ReadonlyRootfs"] is True


def test_a_disk_in_use_is_never_resized_and_its_removal_says_so(lab_images, docker_client, caplog):
    """A container still holding a disk (a server that outlived its hub, a stuck copy): its
    file system is neither checked nor resized under it, nor mounted a second time, and
    removing the disk refuses with what to do instead of doing nothing."""
    instance = f"{owner_tag()}busy{uuid.uuid4().hex[:6]}"
    hub_image = TEST_IMAGES["WORKSHOP_HUB_IMAGE"]
    caplog.set_level(logging.INFO, logger="test-disks")
    disks = WorkDisks(docker_client, hub_image, instance, 32 * MiB, logging.getLogger("test-disks"))
    volume = f"{instance}-user-ada"
    held = disk_paths(instance, volume).mountpoint
    holder = None
    try:
        disks.prepare(volume)
        capped_volume_files(docker_client, volume, f"echo kept > {WORK_DIR}/kept.txt")
        holder = docker_client.containers.run(
            hub_image,
            ["sleep", "600"],
            entrypoint=[],
            detach=True,
            network_mode="none",
            volumes={str(held): {"bind": "/held", "mode": "rw"}},
        )
        disks.limit = 48 * MiB
        disks.prepare(volume)
        assert "keeps its size for now" in caplog.text and "busy" in caplog.text
        # One file system, not a second mount of it: what the holder writes, the volume shows.
        holder.exec_run(["sh", "-c", "echo from-holder > /held/holder.txt"], user="1000:100")
        df = capped_volume_files(
            docker_client,
            volume,
            f"cat {WORK_DIR}/kept.txt {WORK_DIR}/holder.txt; df -B1 {WORK_DIR}",
        )
        assert df.startswith("kept\nfrom-holder\n")
        assert int(df.splitlines()[-1].split()[1]) < 32 * MiB  # not grown
        docker_client.volumes.get(volume).remove()
        with pytest.raises(DiskError, match="still in use by a container: stop it"):
            disks.remove(volume)
        assert Path(disk_paths(instance, volume).image).exists()
        # The control: once the holder is gone the same removal works.
        holder.remove(force=True)
        holder = None
        disks.remove(volume)
        assert not Path(disk_paths(instance, volume).image).exists()
    finally:
        if holder is not None:
            holder.remove(force=True)
        for leftover in docker_client.volumes.list():
            if leftover.name.startswith(instance):
                leftover.remove(force=True)
        remove_instance_disks(docker_client, hub_image, instance)


# A kernel's double-forked daemon that names processes `dockerd`, forking (and reaping) until
# told to stop: each new process takes the next pid, so one soon sorts before the real
# dockerd's. It keeps the newest of them alive.
DOCKERD_IMPOSTORS = """
import os, signal, time
stop = os.path.expanduser("~/work/stop-impostors")
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        alive = []
        while not os.path.exists(stop):
            pid = os.fork()
            if pid == 0:
                with open("/proc/self/comm", "w") as comm:
                    comm.write("dockerd")
                time.sleep(3600)
                os._exit(0)
            alive.append(pid)
            if len(alive) > 300:
                oldest = alive.pop(0)
                os.kill(oldest, signal.SIGKILL)
                os.waitpid(oldest, 0)
        os._exit(0)
    os._exit(0)
os.wait()
print("forking")
"""
# How the disk helper used to find dockerd: the first process, in /proc's glob order, whose
# name is dockerd. The control: run in a helper with host pids, it picks an impostor.
NAME_SELECTION = "grep -lxs dockerd /proc/[0-9]*/comm | head -n 1 | cut -d/ -f3"


def dockerd_by_name(docker_client) -> int:
    output = docker_client.containers.run(
        TEST_IMAGES["WORKSHOP_HUB_IMAGE"],
        ["sh", "-c", NAME_SELECTION],
        entrypoint=[],
        pid_mode="host",
        network_mode="none",
        remove=True,
    )
    return int(output.decode().strip())


def process_uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def test_a_kernel_named_dockerd_steers_no_disk(small_stack, neighbour, docker_client, tmp_path):
    real_dockerd = int(Path("/var/run/docker.pid").read_text())
    mallory = ready_attendee(small_stack, "impostor")
    assert mallory.run_code(DOCKERD_IMPOSTORS).stdout.strip() == "forking"
    started = time.monotonic()
    try:
        # Until an impostor is the process a selection by name picks (the pids wrap around).
        while True:
            names = processes_named_dockerd()
            if names and names[0] != str(real_dockerd):
                break
            assert time.monotonic() - started < 300, "no impostor sorted first in 300 s"
            time.sleep(0.2)
        mallory.api(
            "PUT", "contents/stop-impostors", json={"type": "file", "format": "text", "content": ""}
        )
        picked = dockerd_by_name(docker_client)
        impostors = len(processes_named_dockerd()) - 1
        progress(
            f"{impostors} impostors named dockerd after {time.monotonic() - started:.0f} s; "
            f"the selection by name picks pid {picked} (uid {process_uid(picked)}), "
            f"the real dockerd is {real_dockerd}"
        )
        assert picked != real_dockerd and process_uid(picked) == 1000  # the control

        # The next attendee's spawn mounts their disk where dockerd binds volumes from.
        newcomer = ready_attendee(small_stack, "newcomer")
        saved = newcomer.api(
            "PUT", "contents/mine.txt", json={"type": "file", "format": "text", "content": "mine"}
        )
        assert saved.status_code == 201
        disk = disk_paths(small_stack.project, f"{small_stack.project}-user-newcomer")
        assert f" {disk.mountpoint} " in Path(f"/proc/{real_dockerd}/mountinfo").read_text()
        assert Path(disk.mountpoint, "mine.txt").read_text() == "mine"

        # A disk grows, in the host's mount namespace.
        log = logging.getLogger("test-disks")
        instance = f"{owner_tag()}grow{uuid.uuid4().hex[:6]}"
        disks = WorkDisks(docker_client, TEST_IMAGES["WORKSHOP_HUB_IMAGE"], instance, 32 * MiB, log)
        volume = f"{instance}-user-a"
        try:
            disks.prepare(volume)
            capped_volume_files(docker_client, volume, f"echo kept > {WORK_DIR}/kept.txt")
            disks.limit = 48 * MiB
            disks.prepare(volume)
            df = capped_volume_files(
                docker_client, volume, f"cat {WORK_DIR}/kept.txt; df -B1 {WORK_DIR}"
            )
            assert df.startswith("kept\n") and int(df.splitlines()[-1].split()[1]) > 36 * MiB
        finally:
            docker_client.volumes.get(volume).remove(force=True)
            remove_instance_disks(docker_client, TEST_IMAGES["WORKSHOP_HUB_IMAGE"], instance)
        assert not Path(DISKS_ROOT, instance).exists()

        # The organizer's export reads every disk.
        export = tmp_path / "export"
        result = small_stack.hub_exec("workshop-hub", "export-work", str(export))
        assert result.returncode == 0, result.stdout + result.stderr
        with tarfile.open(export / "newcomer.tar.gz") as archive:
            member = archive.extractfile("newcomer/mine.txt")
            assert member is not None and member.read() == b"mine"
    finally:
        mallory.stop_server()
    assert processes_named_dockerd() == [str(real_dockerd)], "impostors outlived their server"


def processes_named_dockerd() -> list[str]:
    """Pids of the processes named dockerd, in the order a shell's /proc glob lists them."""
    return sorted(
        path.parent.name for path in Path("/proc").glob("[0-9]*/comm") if _read(path) == "dockerd\n"
    )


def _read(path: Path) -> str:
    """A /proc file of a process that may just have ended: empty then."""
    try:
        return path.read_text()
    except OSError:
        return ""


def test_printing_a_gigabyte_to_the_container_log_stays_under_its_cap(hub, ada):
    container = hub.attendee_container("ada")
    assert container.attrs["HostConfig"]["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": LOG_FILE_SIZE, "max-file": str(LOG_FILES)},
    }
    assert container.attrs["HostConfig"]["OomScoreAdj"] == 1000
    # PID 1's stdout is the container's log; a kernel's own output goes to the notebook.
    started = time.monotonic()
    result = ada.run_code(
        "import os\n"
        "line = b'x' * 16383 + b'\\n'\n"
        "fd = os.open('/proc/1/fd/1', os.O_WRONLY)\n"
        "for _ in range(1024**3 // len(line)):\n"
        "    os.write(fd, line)\n"
        "os.close(fd)\n"
        "print(open('/proc/self/oom_score_adj').read().strip())\n",
        timeout=540,
    )
    assert result.error is None, result.error
    assert result.stdout.strip() == "1000"
    log_path = Path(container.attrs["LogPath"])
    files = [path for path in log_path.parent.iterdir() if path.name.startswith(log_path.name)]
    total = sum(path.stat().st_size for path in files)
    progress(
        f"1 GiB printed in {time.monotonic() - started:.0f} s; log files {len(files)}, "
        f"{total / MiB:.1f} MiB"
    )
    assert 1 <= len(files) <= LOG_FILES
    # A rotation happens after the line that crosses max-size: one line of slack per file.
    assert total <= LOG_FILES * (parse_size(LOG_FILE_SIZE) + 64 * 1024)
    assert ada.run_code("print(6 * 7)").stdout.strip() == "42"


@pytest.fixture(scope="module")
def room_of_one(lab_images):
    stack = HubStack(
        WORKSHOP_ACCESS_CODE=ACCESS_CODE_OF_TESTS,
        WORKSHOP_MAX_ATTENDEES="1",
        WORKSHOP_MAX_SERVER_AGE=f"{MAX_SERVER_AGE_S}s",
        WORKSHOP_IDLE_TIMEOUT="1h",
    )
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


def test_a_full_room_says_so_and_a_busy_server_is_stopped_at_its_maximum_age(room_of_one):
    assert "Room size: 1 servers at once (WORKSHOP_MAX_ATTENDEES)" in room_of_one.logs()
    busy = ready_attendee(room_of_one, "busy")
    started = time.monotonic()
    loop_ended_after = []

    def busy_loop() -> None:
        try:
            busy.run_code("while True:\n    pass\n", timeout=MAX_SERVER_AGE_S + 120)
        except Exception:  # noqa: BLE001 (the culler takes the kernel away mid-run)
            pass
        loop_ended_after.append(time.monotonic() - started)

    threading.Thread(target=busy_loop, daemon=True).start()

    late = Attendee(room_of_one.url, "late")
    response = late.login(ACCESS_CODE_OF_TESTS)
    message = page_message(response.text)
    progress(f"second attendee saw HTTP {response.status_code}: {message}")
    assert response.status_code == 429
    assert message.startswith("The room is full All 1 places on this machine are in use")
    assert "Try again in a few minutes" in message and "Traceback" not in response.text
    with pytest.raises(SpawnFailed, match="HTTP 429"):
        late.start_server()

    # The same login in a session of its own: the busy loop's thread uses busy's.
    watcher = Attendee(room_of_one.url, "busy")
    watcher.http.cookies.update(busy.http.cookies)
    while watcher.server_info()["servers"] and time.monotonic() - started < MAX_SERVER_AGE_S + 90:
        time.sleep(2)
    age = time.monotonic() - started
    progress(f"busy server culled after {age:.0f} s (maximum age {MAX_SERVER_AGE_S} s)")
    assert not watcher.server_info()["servers"], "the busy server outlived its maximum age"
    assert age >= MAX_SERVER_AGE_S - 5
    # Busy to the end: the kernel's loop ran until the culler stopped the server.
    assert loop_ended_after and loop_ended_after[0] >= MAX_SERVER_AGE_S - 5
    # The place is free again.
    late.start_server()
    assert late.open_lab().status_code == 200


def capped_volume_files(client, volume: str, command: str, user: str = "1000:100") -> str:
    """Run `command` as the attendee (uid 1000) with `volume` at WORK_DIR."""
    output = client.containers.run(
        TEST_IMAGES["WORKSHOP_HUB_IMAGE"],
        ["sh", "-c", command],
        entrypoint=[],
        user=user,
        network_mode="none",
        volumes={volume: {"bind": WORK_DIR, "mode": "rw"}},
        remove=True,
    )
    return output.decode()


def test_disks_grow_migrate_and_survive_thirty_spawns_at_once(lab_images, docker_client, caplog):
    instance = f"{owner_tag()}disks{uuid.uuid4().hex[:6]}"
    hub_image = TEST_IMAGES["WORKSHOP_HUB_IMAGE"]
    log = logging.getLogger("test-disks")
    caplog.set_level(logging.INFO, logger="test-disks")
    disks = WorkDisks(docker_client, hub_image, instance, 32 * MiB, log)
    volumes = [f"{instance}-user-a{number}" for number in range(30)]
    try:
        # Thirty attendees pressing start at once, plus each of them twice more.
        started = time.monotonic()
        with ThreadPoolExecutor(30) as pool:
            list(pool.map(disks.prepare, volumes + volumes[:5] + volumes[:5]))
        wall = time.monotonic() - started
        done = [r.getMessage() for r in caplog.records if r.getMessage().startswith("work disk")]
        timings = [float(message.rsplit(" in ", 1)[1].split()[0]) for message in done]
        progress(
            f"40 disk preparations, 30 new, at once: {wall:.1f} s wall, "
            f"median {sorted(timings)[len(timings) // 2]:.0f} ms, max {max(timings):.0f} ms"
        )
        states = [message.split()[3] for message in done]
        assert states.count("created") == 30 and len(states) == 40
        for volume in volumes:
            attrs = docker_client.volumes.get(volume).attrs
            assert is_capped(attrs, disk_paths(instance, volume))
        caplog.clear()
        started = time.monotonic()
        disks.prepare(volumes[0])
        progress(f"an existing disk is ready in {(time.monotonic() - started) * 1000:.0f} ms")

        # A raised limit grows the disk and keeps its files.
        first = volumes[0]
        capped_volume_files(docker_client, first, f"echo kept > {WORK_DIR}/kept.txt")
        disks.limit = 48 * MiB
        disks.prepare(first)
        df = capped_volume_files(
            docker_client, first, f"cat {WORK_DIR}/kept.txt; df -B1 {WORK_DIR}"
        )
        assert df.startswith("kept\n")
        # ext4 keeps a few MB of each disk for itself: a 32M disk shows 27M.
        assert int(df.splitlines()[-1].split()[1]) > 36 * MiB

        # A volume of an older deployment moves onto its disk with its files...
        old = f"{instance}-user-old"
        docker_client.volumes.create(old)
        # As the lab image leaves a new volume: the attendee's.
        capped_volume_files(
            docker_client,
            old,
            f"echo mine > {WORK_DIR}/notes.txt; chown -R 1000:100 {WORK_DIR}",
            "0",
        )
        disks.prepare(old)
        assert is_capped(docker_client.volumes.get(old).attrs, disk_paths(instance, old))
        assert capped_volume_files(docker_client, old, f"cat {WORK_DIR}/notes.txt") == "mine\n"
        # ...unless its files do not fit: then it stays, uncapped, with a warning.
        big = f"{instance}-user-big"
        docker_client.volumes.create(big)
        capped_volume_files(docker_client, big, f"head -c 60M /dev/zero > {WORK_DIR}/big.bin", "0")
        disks.prepare(big)
        assert not is_capped(docker_client.volumes.get(big).attrs, disk_paths(instance, big))
        assert "stays uncapped" in caplog.text
        assert capped_volume_files(docker_client, big, f"ls {WORK_DIR}") == "big.bin\n"
    finally:
        for volume in docker_client.volumes.list():
            if volume.name.startswith(instance):
                volume.remove(force=True)
        remove_instance_disks(docker_client, hub_image, instance)
    mounts = Path("/proc/self/mountinfo").read_text()
    assert f"{DISKS_ROOT}/{instance}" not in mounts
    assert not Path(f"{DISKS_ROOT}/{instance}").exists()
