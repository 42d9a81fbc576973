"""Each lab image's own check (`python -m workshop_labs.smoke`), run in a container started
as the hub starts an attendee's, with no network, and its verdict."""

from __future__ import annotations

import io
import json
import sys
import tarfile
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import PurePosixPath

import docker
from docker.errors import APIError, NotFound
from docker.types import Mount

from ...room.docker_host import detect_gpu_ids, explain_gpu_error, gpu_device_request
from ...room.gpu import is_mig_device
from ...room.profiles import WORK_DIR, Profile, container_limits, gpu_memory_fraction
from ...settings import WorkshopSettings, human_size
from .facts import FAIL, PASS, WARN, HostFacts, ImageCheck, Verdict, lab_images

# The image's own check, and where it leaves its report: in the work volume, as the
# container's other writable folders are tmpfs, gone once it stops.
IMAGE_CHECK_MODULE = "workshop_labs.smoke"
IMAGE_CHECK_REPORT = PurePosixPath(WORK_DIR) / "smoke-report.json"
IMAGE_CHECK_LABEL = "org.pytorch-workshop.preflight"
# All seven labs in quick mode take a few minutes; far more means a check hung.
IMAGE_CHECK_TIMEOUT_S = 1800


def check_image_runs(facts: HostFacts) -> list[Verdict]:
    """Each lab image's own check, run under an attendee's limits: one verdict per image."""
    verdicts = []
    for run in facts.image_checks or []:
        name = f"image check {run.image}"
        if run.problem is not None:
            verdicts.append(Verdict(name, FAIL, run.problem, run.advice))
            continue
        checks = run.report["checks"]
        counts = Counter(check["verdict"] for check in checks)
        summary = ", ".join(f"{count} {verdict}" for verdict, count in counts.items())
        on = f" on GPU {','.join(run.gpus)}" if run.gpus else ""
        detail = f"{summary} in {run.report['seconds']:.0f} s{on}, attendee limits, no network"
        failed = [check for check in checks if check["verdict"] == FAIL]
        warned = [check for check in checks if check["verdict"] == WARN]
        if not failed and not warned:
            verdicts.append(Verdict(name, PASS, detail))
            continue
        reasons = "; ".join(
            f"{check['name']}: {check['note'].strip().splitlines()[0]}"
            for check in failed or warned
        )
        rerun = (
            f"see one in full: docker run --rm --network none {run.image} "
            f"python -m {IMAGE_CHECK_MODULE} --only {(failed or warned)[0]['name']}"
        )
        verdicts.append(Verdict(name, FAIL if failed else WARN, detail, f"{reasons} ({rerun})"))
    return verdicts


def _stream(container, say: Callable[[str], None]) -> None:
    """Pass the check's progress on line by line: all seven labs take minutes."""
    pending = b""
    for chunk in container.logs(stream=True, follow=True):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            say(line.decode(errors="replace"))
    if pending:
        say(pending.decode(errors="replace"))


def _read_report(container) -> dict | None:
    """The JSON report the check left in the (stopped) container, or None."""
    try:
        chunks, _ = container.get_archive(str(IMAGE_CHECK_REPORT))
    except NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        member = archive.extractfile(IMAGE_CHECK_REPORT.name)
        return json.loads(member.read()) if member else None


def _remove(client: docker.DockerClient, name: str) -> None:
    try:
        client.containers.get(name).remove(force=True, v=True)
    except NotFound:
        pass


def run_image_check(
    client: docker.DockerClient,
    settings: WorkshopSettings,
    setting: str,
    profile: Profile,
    gpus: list[str],
    say: Callable[[str], None],
    arguments: tuple[str, ...] = (),
    mounts: tuple[Mount, ...] = (),
    timeout_s: float = IMAGE_CHECK_TIMEOUT_S,
) -> ImageCheck:
    """Run `python -m workshop_labs.smoke` in `profile`'s image, in a container with the
    limits and hardening of an attendee's (the hub's own container_limits), a throwaway work
    volume where theirs would be, the GPUs `gpus` (then a missing GPU fails), and no
    network, which proves that nothing is downloaded. `arguments` go to the check."""
    run = ImageCheck(profile.image, list(gpus))
    name = f"{settings.instance}-preflight-{profile.slug}"
    _remove(client, name)  # left by an interrupted run
    command = ["python", "-m", IMAGE_CHECK_MODULE, "--json", str(IMAGE_CHECK_REPORT), *arguments]
    environment = {"WORKSHOP_PROFILE": profile.slug}
    if gpus:
        command.append("--require-gpu")
        # The share of GPU memory an attendee gets: a MIG slice's is theirs alone.
        whole = all(is_mig_device(device) for device in gpus)
        environment["WORKSHOP_GPU_MEMORY_FRACTION"] = str(
            1.0 if whole else gpu_memory_fraction(settings)
        )
    on = f" on GPU {','.join(gpus)}" if gpus else ""
    say(f"starting {profile.image}{on} under an attendee's limits, no network")
    try:
        container = client.containers.run(
            profile.image,
            command,
            name=name,
            detach=True,
            labels={IMAGE_CHECK_LABEL: profile.slug},
            environment=environment,
            network_mode="none",
            device_requests=[gpu_device_request(gpus)] if gpus else [],
            mounts=[Mount(WORK_DIR, None, type="volume"), *mounts],
            **container_limits(settings, profile),
        )
    except APIError as error:
        _remove(client, name)  # created, but refused at start
        if gpus:
            run.problem = f"a container on GPU {','.join(gpus)} was refused"
            run.advice = explain_gpu_error(error)
        else:
            run.problem = f"the container did not start: {error.explanation or error}"
            run.advice = f"rebuild the image (`docker compose build`) or fix {setting}"
        return run
    timed_out = threading.Event()

    def kill_hung_container() -> None:
        timed_out.set()
        try:
            container.kill()
        except APIError:
            pass  # it exited on its own meanwhile

    watchdog = threading.Timer(timeout_s, kill_hung_container)
    watchdog.start()
    try:
        _stream(container, say)
        exit_code = container.wait()["StatusCode"]
        container.reload()
        run.report = _read_report(container)
    finally:
        watchdog.cancel()
        container.remove(force=True, v=True)
    if timed_out.is_set():
        run.problem = f"killed after {timeout_s:g} s: a check hung"
        run.advice = "the output above shows the last step; run the check by hand to see it"
    elif container.attrs["State"].get("OOMKilled"):
        run.problem = f"killed by the {human_size(profile.mem_limit)} memory limit (OOM)"
        run.advice = "raise WORKSHOP_MEM_LIMIT / WORKSHOP_GPU_MEM_LIMIT"
    elif run.report is None:
        run.problem = f"exited {exit_code} without a report"
        run.advice = f"is {IMAGE_CHECK_MODULE} in the image? Rebuild it (`docker compose build`)"
    return run


def run_image_checks(
    client: docker.DockerClient, settings: WorkshopSettings, facts: HostFacts
) -> list[ImageCheck]:
    """The own check of each lab image the settings need and this host has, one at a time."""
    runs = []
    for setting, profile in lab_images(settings).items():
        if profile.image not in facts.images:
            continue  # its missing image is a verdict already
        gpus = []
        if profile.slug == "gpu" and settings.gpus == "auto":
            gpus = detect_gpu_ids(facts.gpu_listing or "")
        elif profile.slug == "gpu":
            gpus = list(settings.gpus)

        def say(line: str, flavor: str = profile.slug) -> None:
            print(f"[preflight {flavor}] {line}", file=sys.stderr, flush=True)

        runs.append(run_image_check(client, settings, setting, profile, gpus, say))
    return runs
