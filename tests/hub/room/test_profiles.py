import docker

from workshop_hub.room.docker_host import detect_gpu_ids, explain_gpu_error, gpu_device_request
from workshop_hub.room.profiles import (
    HOME_DIR,
    HOME_TMPFS_SIZE,
    WORK_DIR,
    container_limits,
    cpu_profile,
    gpu_memory_fraction,
    gpu_profile,
)
from workshop_hub.settings import load_settings


def test_container_limits_are_the_settings_and_drop_every_privilege():
    settings = load_settings({"WORKSHOP_MEM_LIMIT": "1G", "WORKSHOP_CPU_LIMIT": "1.5"})
    limits = container_limits(settings, cpu_profile(settings))
    assert limits["mem_limit"] == limits["memswap_limit"] == 1024**3
    assert limits["cpu_quota"] / limits["cpu_period"] == 1.5
    assert limits["pids_limit"] == 512
    assert limits["shm_size"] == 512 * 1024**2
    assert limits["cap_drop"] == ["ALL"]
    assert limits["security_opt"] == ["no-new-privileges"]


def test_only_sized_memory_folders_are_writable_and_logs_are_capped():
    settings = load_settings({"WORKSHOP_TMP_SIZE": "100M"})
    limits = container_limits(settings, cpu_profile(settings))
    assert limits["read_only"] is True
    assert limits["tmpfs"]["/tmp"] == f"size={100 * 1024**2},mode=1777,exec"
    # $HOME is the attendee's (uid 1000), sized, with the work volume below it.
    assert limits["tmpfs"][HOME_DIR].startswith(f"size={HOME_TMPFS_SIZE},uid=1000,gid=100")
    assert WORK_DIR.startswith(f"{HOME_DIR}/")
    assert limits["log_config"] == {
        "type": "json-file",
        "config": {"max-size": "10m", "max-file": "2"},
    }
    assert limits["oom_score_adj"] == 1000


def test_limits_are_accepted_by_docker_host_config():
    settings = load_settings({})
    config = docker.types.HostConfig(
        version="1.41",
        device_requests=[gpu_device_request(["1"])],
        **container_limits(settings, gpu_profile(settings)),
    )
    assert config["Memory"] == 6 * 1024**3
    assert config["ReadonlyRootfs"] is True
    assert config["Tmpfs"]["/tmp"] == f"size={256 * 1024**2},mode=1777,exec"
    assert config["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "10m", "max-file": "2"},
    }
    assert config["OomScoreAdj"] == 1000
    assert config["DeviceRequests"][0]["DeviceIDs"] == ["1"]
    assert config["DeviceRequests"][0]["Capabilities"] == [["gpu"]]


def test_gpu_profile_describes_sharing():
    settings = load_settings({"WORKSHOP_ATTENDEES_PER_GPU": "3"})
    assert "1/3 of a GPU" in gpu_profile(settings).description
    assert gpu_memory_fraction(settings) == 0.3333


def test_gpu_profile_of_mig_slices_promises_memory_of_ones_own():
    settings = load_settings({"WORKSHOP_ATTENDEES_PER_GPU": "3"})
    description = gpu_profile(settings, mig_slices=True).description
    assert "of your own (MIG" in description and "shared" not in description


def test_nvidia_smi_listing_parsing():
    listing = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)\nGPU 1: NVIDIA H100 (UUID: GPU-2)\n"
    assert detect_gpu_ids(listing) == ["0", "1"]
    assert detect_gpu_ids("") == []


def test_missing_nvidia_runtime_is_explained():
    error = docker.errors.APIError(
        "500", explanation='could not select device driver "" with capabilities: [[gpu]]'
    )
    message = explain_gpu_error(error)
    assert message.startswith("Docker on this host has no NVIDIA runtime")
    assert "NVIDIA Container Toolkit" in message and "WORKSHOP_GPUS" in message
