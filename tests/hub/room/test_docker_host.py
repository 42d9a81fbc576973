import docker
import pytest

from workshop_hub.room.docker_host import (
    GPU_HOLDING_STATES,
    detect_gpu_ids,
    gpu_container_filters,
    gpu_device_request,
    gpu_holders,
)
from workshop_hub.room.profiles import LABEL_GPU, LABEL_INSTANCE, LABEL_USER

MIG_SLICE = "MIG-GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee/1/0"
GPU_UUID = "GPU-5d5ba0d6-D33D-2b2c-524d-9e3d8d2b8a77"

# `nvidia-smi -L` on a host whose GPU 0 is split into two MIG slices and GPU 1 is not.
MIXED_LISTING = """\
GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)
  MIG 1g.5gb      Device  0: (UUID: MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f)
  MIG 3g.20gb     Device  1: (UUID: MIG-cba663e8-9bed-5b7e-8e3e-d63fea2ca9ae)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-0e1ff5b3-6b6c-4a62-8e6b-6d1b7a7c0c11)
"""


def summary(user: str, device: str | None, state: str) -> dict:
    """One container as Docker's list API (`APIClient.containers`) describes it."""
    labels = {LABEL_INSTANCE: "ws", LABEL_USER: user}
    if device is not None:
        labels[LABEL_GPU] = device
    return {"Names": [f"/ws-{user}"], "Labels": labels, "State": state}


def test_plain_gpus_are_detected_by_index():
    listing = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)\nGPU 1: NVIDIA H100 (UUID: GPU-2)\n"
    assert detect_gpu_ids(listing) == ["0", "1"]
    assert detect_gpu_ids("") == []


def test_mig_slices_are_handed_out_instead_of_the_gpu_they_split():
    assert detect_gpu_ids(MIXED_LISTING) == [
        "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f",
        "MIG-cba663e8-9bed-5b7e-8e3e-d63fea2ca9ae",
        "1",
    ]


def test_mig_ids_of_older_drivers_are_kept_whole():
    listing = (
        "GPU 0: A100-SXM4-40GB (UUID: GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee)\n"
        f"  MIG 1g.5gb Device 0: (UUID: {MIG_SLICE})\n"
    )
    assert detect_gpu_ids(listing) == [MIG_SLICE]


def test_gpu_holders_counts_only_containers_that_run():
    containers = [
        summary("ada", "0", "running"),
        summary("bob", MIG_SLICE, "paused"),  # frozen, still holding GPU memory
        summary("cy", "1", "exited"),  # killed PID 1; removal pending
        summary("dee", "1", "created"),  # never started
        summary("eve", "0", "dead"),
        summary("fay", None, "running"),  # a CPU attendee
    ]
    assert gpu_holders(containers) == {"ada": "0", "bob": MIG_SLICE}


@pytest.mark.parametrize("state", sorted(GPU_HOLDING_STATES))
def test_every_holding_state_keeps_the_place(state):
    assert gpu_holders([summary("ada", GPU_UUID, state)]) == {"ada": GPU_UUID}


def test_gpu_holders_skips_containers_without_labels():
    assert gpu_holders([{"Names": ["/other"], "Labels": None, "State": "running"}]) == {}


def test_listing_filter_names_this_deployment_and_the_gpu_label():
    assert gpu_container_filters("ws") == {"label": [f"{LABEL_INSTANCE}=ws", LABEL_GPU]}


@pytest.mark.parametrize("device_id", ["1", GPU_UUID, MIG_SLICE])
def test_device_requests_carry_the_id_unchanged(device_id):
    config = docker.types.HostConfig(
        version="1.41", device_requests=[gpu_device_request([device_id])]
    )
    assert config["DeviceRequests"][0]["DeviceIDs"] == [device_id]
