"""Each lab image's own check (`python -m workshop_labs.smoke`) in a container started as the
preflight starts it, as the hub starts an attendee's: the hub's limits and hardening, no
network. Here the labs run solved from the repository's sources, mounted read-only, in
strict mode; the preflight itself runs the attendee notebooks (tests/e2e/test_preflight.py).

Needs Docker; conftest's `lab_images` builds the test images. On the CI host (no GPU) the
fake nvidia-container-runtime-hook from .ci/prepare-machine.sh lets a container with a GPU
request start, with NVIDIA_VISIBLE_DEVICES set but no CUDA behind it;
/run/fake-nvidia-broken makes it fail like a host whose NVIDIA runtime is broken.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from docker.types import Mount

from workshop_hub.organizer.preflight.facts import ImageCheck
from workshop_hub.organizer.preflight.images import run_image_check
from workshop_hub.room.profiles import cpu_profile, gpu_profile
from workshop_hub.settings import load_settings
from workshop_labs.notebooks import lab_sources
from workshop_labs.smoke import cli as smoke_cli

from .stack import BROKEN_HOOK_FLAG, TEST_PREFIX, owner_tag, progress

REPO = Path(__file__).resolve().parents[2]
# The report lists the system checks in the order the smoke test plans them.
STATIC_CHECKS = [check.name for check in smoke_cli.STATIC_CHECKS]
LAB_UID = 1000
# The repository's lab sources, which hold the solutions the images leave out.
LAB_SOURCES = "/opt/workshop/lab-sources"
SOURCES_MOUNT = Mount(LAB_SOURCES, str(REPO / "labs"), type="bind", read_only=True)


def settings_for(lab_images: dict[str, str], **values: str):
    """The hub's settings pointed at the test images; containers named with the test prefix,
    so leftovers get cleaned up."""
    return load_settings(
        {
            **os.environ,
            "WORKSHOP_CPU_IMAGE": lab_images["cpu"],
            "WORKSHOP_CUDA_IMAGE": lab_images["cuda"],
            "WORKSHOP_INSTANCE": owner_tag(),
            **values,
        }
    )


@pytest.fixture
def check_image(docker_client, lab_images):
    """Run the image check of one profile ("cpu" or "gpu") under these settings."""

    def run(slug: str, *arguments: str, gpus=(), **values: str) -> ImageCheck:
        settings = settings_for(lab_images, **values)
        profile = cpu_profile(settings) if slug == "cpu" else gpu_profile(settings)
        setting = "WORKSHOP_CPU_IMAGE" if slug == "cpu" else "WORKSHOP_CUDA_IMAGE"
        return run_image_check(
            docker_client,
            settings,
            setting,
            profile,
            list(gpus),
            lambda line: progress(f"[{slug}] {line}"),
            arguments=arguments,
            mounts=(SOURCES_MOUNT,),
        )

    return run


def checks_of(run: ImageCheck) -> dict[str, dict]:
    assert run.problem is None, f"{run.problem}: {run.advice}"
    return {check["name"]: check for check in run.report["checks"]}


@pytest.mark.parametrize("slug", ["cpu", "gpu"])
def test_every_check_passes_under_attendee_limits(check_image, lab_images, slug):
    run = check_image(slug, "--labs-dir", LAB_SOURCES)
    settings = settings_for(lab_images)
    profile = cpu_profile(settings) if slug == "cpu" else gpu_profile(settings)
    checks = checks_of(run)
    names = list(checks)
    assert names[: len(STATIC_CHECKS)] == STATIC_CHECKS
    labs = [name for name in names if name.startswith("lab:")]
    assert len(labs) == len(lab_sources(REPO / "labs")), names
    for name, check in checks.items():
        if name in {"gpu", "amp_cuda"}:
            assert check["verdict"] == "skip" and "no CUDA" in check["note"], check
        else:
            # The whole note: pytest would cut a dict's repr short, and with it the cause.
            assert check["verdict"] == "pass", f"{name}: {check['verdict']}\n{check['note']}"
        if name in labs:
            assert check["figures"]["edition"] == "solved source, strict", check
    assert run.report["ok"] is True
    # The container ran under exactly the limits an attendee's container gets.
    system = checks["system"]["figures"]
    assert system["uid"] == LAB_UID
    assert system["memory_limit_bytes"] == profile.mem_limit
    assert system["pids_max"] == settings.pids_limit
    assert system["shm_bytes"] == settings.shm_size
    assert system["cpu_quota_cores"] == profile.cpu_limit
    assert system["image_flavor"] == ("cpu" if slug == "cpu" else "cuda")


def test_gpu_request_reaches_the_cuda_container(check_image):
    run = check_image("gpu", "--only", "system,gpu", gpus=["1"])
    assert run.problem is None, f"the fake NVIDIA hook is not on dockerd's PATH? {run}"
    gpu = checks_of(run)["gpu"]
    assert gpu["figures"]["NVIDIA_VISIBLE_DEVICES"] == "1"
    # A container given a GPU must be able to use it; the fake hook gives it none.
    assert gpu["verdict"] == "fail"
    assert "GPU required (--require-gpu)" in gpu["note"]
    assert "NVIDIA_VISIBLE_DEVICES=1" in gpu["note"]
    assert run.report["ok"] is False


@pytest.fixture
def broken_nvidia_runtime():
    BROKEN_HOOK_FLAG.touch()
    yield
    BROKEN_HOOK_FLAG.unlink(missing_ok=True)


def test_broken_nvidia_runtime_is_explained(check_image, broken_nvidia_runtime):
    run = check_image("gpu", "--only", "system", gpus=["1"])
    assert run.report is None
    assert run.problem == "a container on GPU 1 was refused"
    assert "NVIDIA Container Toolkit" in run.advice


def test_tiny_shm_fails_the_dataloader_check(check_image):
    run = check_image("cpu", "--only", "system,dataloader", WORKSHOP_SHM_SIZE="1M")
    checks = checks_of(run)
    assert checks["system"]["figures"]["shm_bytes"] == 1024**2
    dataloader = checks["dataloader"]
    assert dataloader["verdict"] == "fail"
    assert "/dev/shm is 1.0 MiB" in dataloader["note"]


@pytest.fixture
def image_with_broken_torchvision(docker_client, lab_images):
    """The cpu image with torchvision's compiled ops removed: what a torchvision built for
    another torch looks like at run time (`operator torchvision::nms does not exist`), made
    offline so the test needs no package index."""
    client = docker_client
    base = client.images.get(lab_images["cpu"])
    user = base.attrs["Config"].get("User") or "root"
    tag = f"{TEST_PREFIX}/lab:broken-torchvision"
    dockerfile = f"""
FROM {lab_images["cpu"]}
USER root
RUN python -c "import pathlib, torchvision; \\
[p.unlink() for p in pathlib.Path(torchvision.__file__).parent.glob('_C*.so')]"
USER {user}
"""
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    yield tag
    client.images.remove(tag, force=True)


def test_broken_torchvision_fails_the_versions_check(check_image, image_with_broken_torchvision):
    run = check_image("cpu", "--only", "versions", WORKSHOP_CPU_IMAGE=image_with_broken_torchvision)
    checks = checks_of(run)
    assert checks["versions"]["verdict"] == "fail"
    assert "torchvision does not work with torch" in checks["versions"]["note"]
    assert checks["pins"]["verdict"] == "pass"


# What every attendee's kernel and server import at start, and lab 7's torchrun three times.
IMPORTED_AT_START = ("torch", "torchvision", "numpy", "matplotlib", "jupyterlab", "ipykernel")


@pytest.mark.parametrize("slug", ["cpu", "gpu"])
def test_the_image_ships_its_packages_compiled(docker_client, lab_images, slug):
    """Attendees cannot write to /opt/venv, so a module without its .pyc is compiled again in
    every process at every import: torch's import took 6.2 s instead of 2.4 s, and lab 7's
    three torch processes no longer fitted in an attendee's 2 GB, when the installer skipped
    the compile step."""
    script = (
        "import importlib.util, pathlib, sys\n"
        "site = pathlib.Path(next(p for p in sys.path if p.endswith('site-packages')))\n"
        f"for name in {IMPORTED_AT_START!r}:\n"
        "    sources = list((site / name).rglob('*.py'))\n"
        "    caches = [pathlib.Path(importlib.util.cache_from_source(str(s))) for s in sources]\n"
        "    bare = [c for c in caches if not c.exists()]\n"
        "    print(name, len(sources), len(bare))\n"
    )  # fmt: skip
    image = lab_images["cpu" if slug == "cpu" else "cuda"]
    output = docker_client.containers.run(
        image, ["python", "-c", script], user=str(LAB_UID), network_disabled=True, remove=True
    ).decode()
    counts = {
        name: (int(total), int(bare)) for name, total, bare in map(str.split, output.splitlines())
    }
    progress(f"[{slug}] modules without bytecode: {counts}")
    for name, (total, bare) in counts.items():
        assert total > 0, f"{name} is not installed in {image}"
        # torch keeps a test helper written for Python 3.12 that 3.11 cannot compile.
        assert bare <= max(1, total // 100), f"{bare} of {total} modules of {name} have no .pyc"
