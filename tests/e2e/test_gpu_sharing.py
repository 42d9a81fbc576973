"""GPU places shared fairly, end to end, on a host whose NVIDIA hook is the fake one.

dockerd here runs with a stand-in `nvidia-container-runtime-hook` (.ci/prepare-machine.sh):
containers with a GPU device request start and get NVIDIA_VISIBLE_DEVICES, without CUDA.
Creating /run/fake-nvidia-broken makes that hook fail, as a broken NVIDIA runtime does.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from .hub_client import Attendee, SpawnFailed
from .stack import ACCESS_CODE_OF_TESTS, BROKEN_HOOK_FLAG, HubStack


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
