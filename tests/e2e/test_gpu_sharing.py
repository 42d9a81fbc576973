"""GPU places shared fairly, end to end, on a host whose NVIDIA hook is the fake one.

dockerd here runs with a stand-in `nvidia-container-runtime-hook` (.ci/prepare-machine.sh):
containers with a GPU device request start and get NVIDIA_VISIBLE_DEVICES, without CUDA.
Creating /run/fake-nvidia-broken makes that hook fail, as a broken NVIDIA runtime does.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest
import requests
import websocket

from workshop_hub.room.profiles import LABEL_GPU

from .hub_client import Attendee, SpawnFailed
from .stack import ACCESS_CODE_OF_TESTS, BROKEN_HOOK_FLAG, HubStack, progress

# Device ids as an organizer copies them from `nvidia-smi -L`: a MIG slice in the form older
# drivers print, and a GPU UUID in mixed case. The fake hook accepts any id.
MIG_SLICE = "MIG-GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee/1/0"
GPU_UUID = "GPU-0e1ff5b3-6B6C-4a62-8e6b-6d1b7a7c0c11"
# The room size sized from this small machine's memory would refuse servers before the GPU
# places run out; these tests are about the places. The servers use little memory.
ROOM_FOR_EVERY_TEST_ATTENDEE = "20"


def visible_devices(stack: HubStack, username: str) -> str:
    """NVIDIA_VISIBLE_DEVICES as the attendee's server and kernels see it.

    Docker puts it in the environment of the container's first process (not in its config,
    nor in `docker exec` sessions), and the Jupyter server and kernels inherit it from there.
    """
    result = stack.attendee_container(username).exec_run(["cat", "/proc/1/environ"])
    variables = dict(
        item.split("=", 1) for item in result.output.decode().split("\0") if "=" in item
    )
    return variables.get("NVIDIA_VISIBLE_DEVICES", "")


@pytest.fixture(scope="module")
def fake_gpu_runtime(lab_images, docker_client):
    """Fails the test, saying what to do, when dockerd cannot start GPU containers at all."""
    BROKEN_HOOK_FLAG.unlink(missing_ok=True)
    try:
        docker_client.containers.run(
            lab_images["cuda"],
            ["true"],
            entrypoint=[],
            remove=True,
            device_requests=[{"driver": "", "device_ids": ["0"], "capabilities": [["gpu"]]}],
        )
    except Exception as error:  # noqa: BLE001 - the message below says what to do
        pytest.fail(
            f"Docker cannot start GPU containers here ({error}). Start dockerd with the fake "
            "NVIDIA hook on its PATH, as .ci/prepare-machine.sh does.",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def gpu_hub(fake_gpu_runtime):
    stack = HubStack(
        WORKSHOP_ACCESS_CODE=ACCESS_CODE_OF_TESTS,
        WORKSHOP_GPUS="0,1",
        WORKSHOP_ATTENDEES_PER_GPU="2",
        WORKSHOP_MAX_ATTENDEES=ROOM_FOR_EVERY_TEST_ATTENDEE,
    )
    try:
        stack.up()
        yield stack
    finally:
        BROKEN_HOOK_FLAG.unlink(missing_ok=True)
        stack.down()


def logged_in(stack: HubStack, name: str) -> Attendee:
    attendee = Attendee(stack.url, name)
    assert attendee.login(ACCESS_CODE_OF_TESTS).status_code == 200
    return attendee


def test_gpu_places_are_shared_fairly_and_survive_a_hub_restart(gpu_hub):
    form = logged_in(gpu_hub, "gpu0").spawn_form().text
    assert 'value="gpu" checked' in form and "4 of 4 GPU places free" in form

    first_four = [logged_in(gpu_hub, f"gpu{i}") for i in range(4)]
    for attendee in first_four:
        attendee.start_server(profile="gpu")
    assert [visible_devices(gpu_hub, f"gpu{i}") for i in range(4)] == ["0", "1", "0", "1"]

    first_four[0].open_lab()
    inside = first_four[0].run_code(
        "import os; print(os.environ['NVIDIA_VISIBLE_DEVICES'], "
        "os.environ['WORKSHOP_GPU_MEMORY_FRACTION'])"
    )
    assert inside.stdout.split() == ["0", "0.5"]

    # The fifth is told plainly, and starts on CPU instead.
    fifth = logged_in(gpu_hub, "late")
    form = fifth.spawn_form().text
    assert 'value="gpu" disabled' in form and "All 4 GPU places are taken" in form
    with pytest.raises(SpawnFailed, match="All 4 GPU places are taken"):
        fifth.start_server(profile="gpu")
    fifth.start_server(profile="cpu")
    assert visible_devices(gpu_hub, "late") == ""

    # The organizer's view of who holds which GPU.
    table = gpu_hub.hub_exec("workshop-hub", "gpus").stdout
    assert "gpu0, gpu2" in table and "gpu1, gpu3" in table

    # A hub restart keeps every assignment: still full, same devices.
    gpu_hub.restart_hub()
    assert [visible_devices(gpu_hub, f"gpu{i}") for i in range(4)] == ["0", "1", "0", "1"]
    with pytest.raises(SpawnFailed, match="GPU places are taken"):
        logged_in(gpu_hub, "after-restart").start_server(profile="gpu")

    # Stopping one frees its place for the next attendee, on the same GPU.
    first_four[1].stop_server()
    next_one = logged_in(gpu_hub, "next")
    next_one.start_server(profile="gpu")
    assert visible_devices(gpu_hub, "next") == "1"


def container_env(stack: HubStack, username: str) -> dict[str, str]:
    config_env = stack.attendee_container(username).attrs["Config"]["Env"]
    return dict(item.split("=", 1) for item in config_env)


def wait_for_free_places(attendee: Attendee, expected: str, timeout: float = 20) -> None:
    """Until the attendee's spawn form shows `expected` (e.g. '1 of 3 GPU places free')."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if expected in attendee.spawn_form().text:
            return
        time.sleep(0.5)
    raise AssertionError(
        f"the spawn form never said {expected!r} within {timeout:.0f} s:\n"
        f"{attendee.spawn_form().text[-1500:]}"
    )


def test_a_gpu_place_follows_the_container_however_it_ends(fake_gpu_runtime):
    stack = HubStack(
        WORKSHOP_ACCESS_CODE=ACCESS_CODE_OF_TESTS,
        WORKSHOP_GPUS=f"{MIG_SLICE},{GPU_UUID}",
        WORKSHOP_ATTENDEES_PER_GPU="2",
        WORKSHOP_MAX_ATTENDEES=ROOM_FOR_EVERY_TEST_ATTENDEE,
    )
    try:
        stack.up()
        # A MIG slice takes one attendee, whatever WORKSHOP_ATTENDEES_PER_GPU says.
        watcher = logged_in(stack, "watcher")
        assert "3 of 3 GPU places free" in watcher.spawn_form().text
        assert "MIG slices, one attendee each" in stack.logs()

        ada, bob, cy = (logged_in(stack, name) for name in ("ada", "bob", "cy"))
        for attendee in (ada, bob, cy):
            attendee.start_server(profile="gpu")
        # The ids reach Docker and the NVIDIA runtime exactly as the organizer wrote them.
        assert [visible_devices(stack, name) for name in ("ada", "bob", "cy")] == [
            MIG_SLICE,
            GPU_UUID,
            GPU_UUID,
        ]
        ada_container = stack.attendee_container("ada")
        assert ada_container.labels[LABEL_GPU] == MIG_SLICE
        requested = ada_container.attrs["HostConfig"]["DeviceRequests"][0]["DeviceIDs"]
        assert requested == [MIG_SLICE]
        # The slice's memory is ada's alone; bob shares his GPU with cy.
        assert container_env(stack, "ada")["WORKSHOP_GPU_MEMORY_FRACTION"] == "1.0"
        assert container_env(stack, "bob")["WORKSHOP_GPU_MEMORY_FRACTION"] == "0.5"
        assert "All 3 GPU places are taken" in watcher.spawn_form().text

        table = stack.hub_exec("workshop-hub", "gpus").stdout
        assert MIG_SLICE in table and "bob, cy" in table

        # ada kills PID 1: her kernel and server die with the container, which Docker removes;
        # JupyterHub never calls stop() for it.
        assert ada.open_lab().status_code == 200
        killed = time.monotonic()
        try:
            ada.run_code("import os; os.kill(1, 15)", timeout=20)
        except (requests.RequestException, websocket.WebSocketException, OSError):
            pass  # the kernel may die before it answers; what counts is what follows
        wait_for_free_places(watcher, "1 of 3 GPU places free")
        progress(f"ada's GPU place was free {time.monotonic() - killed:.1f} s after the kill")
        table = stack.hub_exec("workshop-hub", "gpus").stdout
        assert "ada" not in table and "bob, cy" in table

        # Another attendee takes the place: the MIG slice, the only one free.
        dee = logged_in(stack, "dee")
        dee.start_server(profile="gpu")
        assert visible_devices(stack, "dee") == MIG_SLICE

        # bob uses File > Shut Down: the server exits without the hub asking.
        bob.open_lab()
        assert bob.api("POST", "shutdown").status_code == 200
        wait_for_free_places(watcher, "1 of 3 GPU places free")
        table = stack.hub_exec("workshop-hub", "gpus").stdout
        assert "bob" not in table and "cy" in table and "dee" in table
    finally:
        stack.down()


@contextmanager
def one_gpu_hub():
    stack = HubStack(WORKSHOP_ACCESS_CODE=ACCESS_CODE_OF_TESTS, WORKSHOP_GPUS="0")
    try:
        stack.up()
        yield stack
    finally:
        BROKEN_HOOK_FLAG.unlink(missing_ok=True)
        stack.down()


def test_gpu_spawn_docker_refuses_gets_a_readable_error(fake_gpu_runtime):
    with one_gpu_hub() as stack:
        attendee = logged_in(stack, "unlucky")
        BROKEN_HOOK_FLAG.touch()
        with pytest.raises(SpawnFailed) as failed:
            attendee.start_server(profile="gpu")
        BROKEN_HOOK_FLAG.unlink()
        message = str(failed.value)
        assert "Docker refused to start a container with a GPU" in message
        assert "Start on CPU instead" in message
        assert "Traceback" not in message
        # The failed spawn gave its GPU place back.
        attendee.start_server(profile="gpu")
        assert visible_devices(stack, "unlucky") == "0"


def test_without_a_working_nvidia_runtime_only_cpu_is_offered(fake_gpu_runtime):
    BROKEN_HOOK_FLAG.touch()
    with one_gpu_hub() as stack:
        assert "GPU profile NOT offered, CPU only" in stack.logs()
        # One profile left, so no form: logging in starts a CPU server straight away.
        attendee = logged_in(stack, "cpuonly")
        attendee.wait_until_ready()
        assert stack.attendee_container("cpuonly").attrs["HostConfig"]["DeviceRequests"] in (
            None,
            [],
        )
