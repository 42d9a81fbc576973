#!/usr/bin/env python3
"""Run the smoke test in every lab image, under the limits attendees get, and sum it up.

    .venv/bin/python scripts/run_smoke_tests.py                  # cpu and cuda images
    .venv/bin/python scripts/run_smoke_tests.py --images cuda --gpus 0 --json-dir reports/

Each image runs `scripts/smoke_test.py` (shipped in the image) in a fresh container with the
memory, CPU, pids and /dev/shm limits and the hardening of an attendee container, taken from
the hub's own settings (`.env` and WORKSHOP_* environment variables, as compose reads them).
The cuda image gets the GPUs named by --gpus, else WORKSHOP_GPUS, else those the hub's GPU
probe finds (none when Docker has no NVIDIA runtime); a container given a GPU must be able
to use it (the smoke test's --require-gpu). One table sums up every image; the exit status
is 0 only when all
passed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

try:
    import docker

    from workshop_hub.docker_host import (
        detect_gpu_ids,
        ensure_image,
        explain_gpu_error,
        gpu_device_request,
        probe_gpus,
    )
    from workshop_hub.profiles import (
        WORK_DIR,
        Profile,
        container_limits,
        cpu_profile,
        gpu_memory_fraction,
        gpu_profile,
    )
    from workshop_hub.settings import (
        SettingsError,
        WorkshopSettings,
        load_settings,
        parse_gpus,
        parse_image,
        read_env_file,
    )
except ImportError as missing:
    sys.exit(
        f"{missing}: run this with the project's virtualenv (.venv/bin/python "
        "scripts/run_smoke_tests.py), which has docker-py and the hub package installed"
    )

SMOKE_TEST_IN_IMAGE = "/opt/workshop/scripts/smoke_test.py"
REPO_ROOT = Path(__file__).resolve().parents[1]
# The images hold no solutions (attendees must not read them): the smoke test runs the labs
# solved from the repository's sources, mounted read-only.
LAB_SOURCES_IN_CONTAINER = "/opt/workshop/lab-sources"
# In the work volume: the container's other writable folders are tmpfs, gone once it stops.
REPORT_IN_CONTAINER = f"{WORK_DIR}/smoke-report.json"
SMOKE_LABEL = "org.pytorch-workshop.smoke-test"
DEFAULT_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Flavor:
    name: str
    profile: Callable[[WorkshopSettings], Profile]
    image_setting: str  # the variable behind its image, for error messages


FLAVORS = {
    flavor.name: flavor
    for flavor in [
        Flavor("cpu", cpu_profile, "WORKSHOP_CPU_IMAGE"),
        Flavor("cuda", gpu_profile, "WORKSHOP_CUDA_IMAGE"),
    ]
}


@dataclass
class ImageRun:
    """What happened to one image: `problem` is set when no usable report came back."""

    flavor: str
    image: str
    gpus: tuple[str, ...] = ()
    gpu_note: str = ""
    limits: dict = field(default_factory=dict)
    exit_code: int | None = None
    problem: str | None = None
    report: dict | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and self.report is not None and self.report["ok"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def is_gpu_refusal(error: Exception) -> bool:
    """Whether Docker refused the container because of its GPU request (not, say, a limit)."""
    text = str(getattr(error, "explanation", None) or error).lower()
    return "could not select device driver" in text or "nvidia" in text


def choose_gpus(client, settings, explicit: tuple[str, ...] | None, image: str):
    """(gpu ids, why) for the cuda image.

    Named GPUs (--gpus, WORKSHOP_GPUS) are used as given, so a missing runtime fails loudly.
    Otherwise the hub's own probe finds them; when Docker has no NVIDIA runtime the cuda
    image is still tested, on CPU.
    """
    if explicit is not None:
        return explicit, f"--gpus {','.join(explicit) or 'none'}"
    if isinstance(settings.gpus, tuple) and settings.gpus:
        return settings.gpus, f"WORKSHOP_GPUS={','.join(settings.gpus)}"
    try:
        detected = tuple(detect_gpu_ids(probe_gpus(client, image, None)))
    except RuntimeError as no_runtime:
        return (), f"no GPU: {no_runtime}"
    if not detected:
        return (), "no GPU: the probe container's nvidia-smi lists none"
    return detected, f"detected GPUs {','.join(detected)} (nvidia-smi in a probe container)"


def read_report(container) -> dict | None:
    """The JSON report the smoke test left in the (stopped) container, or None."""
    try:
        chunks, _ = container.get_archive(REPORT_IN_CONTAINER)
    except docker.errors.NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        member = archive.extractfile(Path(REPORT_IN_CONTAINER).name)
        return json.loads(member.read()) if member else None


def stream_output(container, prefix: str) -> None:
    """Show the smoke test's progress and table live: a run takes minutes."""
    pending = b""
    for chunk in container.logs(stream=True, follow=True):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            log(f"{prefix} {line.decode(errors='replace')}")
    if pending:
        log(f"{prefix} {pending.decode(errors='replace')}")


def remove_container(client, name: str) -> None:
    try:
        client.containers.get(name).remove(force=True, v=True)
    except docker.errors.NotFound:
        pass


def run_in_container(
    client, run: ImageRun, profile: Profile, smoke_args: list[str], settings, timeout_s: float
) -> None:
    name = f"{settings.instance}-smoke-{run.flavor}"
    remove_container(client, name)  # left over by an interrupted run
    command = ["python", SMOKE_TEST_IN_IMAGE, "--json", REPORT_IN_CONTAINER, *smoke_args]
    command += ["--labs-dir", LAB_SOURCES_IN_CONTAINER]
    environment = {}
    if run.gpus:
        command.append("--require-gpu")
        # The same share of GPU memory an attendee gets, so the labs run as they will.
        environment["WORKSHOP_GPU_MEMORY_FRACTION"] = str(gpu_memory_fraction(settings))
    log(f"[{run.flavor}] starting {run.image} with {describe_limits(settings, profile)}")
    try:
        container = client.containers.run(
            run.image,
            command,
            name=name,
            detach=True,
            labels={SMOKE_LABEL: run.flavor},
            environment=environment,
            # Labs must run offline; no network proves nothing is downloaded.
            network_mode="none",
            # Named devices only: test the GPUs the hub hands out, never 'all'.
            device_requests=[gpu_device_request(list(run.gpus))] if run.gpus else [],
            # A throwaway work volume where an attendee has theirs (removed with the container).
            mounts=[
                docker.types.Mount(WORK_DIR, None, type="volume"),
                docker.types.Mount(
                    LAB_SOURCES_IN_CONTAINER,
                    str(REPO_ROOT / "labs"),
                    type="bind",
                    read_only=True,
                ),
            ],
            **run.limits,
        )
    except docker.errors.APIError as error:
        remove_container(client, name)  # created, but refused at start
        if run.gpus and is_gpu_refusal(error):
            run.problem = f"GPU {','.join(run.gpus)} requested: {explain_gpu_error(error)}"
        else:
            run.problem = f"the container did not start: {error.explanation or error}"
        return
    timed_out = threading.Event()

    def kill_hung_container() -> None:
        timed_out.set()
        try:
            container.kill()
        except docker.errors.APIError:
            pass  # it exited on its own meanwhile

    watchdog = threading.Timer(timeout_s, kill_hung_container)
    watchdog.start()
    try:
        stream_output(container, f"[{run.flavor}]")
        run.exit_code = container.wait()["StatusCode"]
        container.reload()
        run.report = read_report(container)
        if timed_out.is_set():
            run.problem = f"killed after {timeout_s:g} s (--timeout): a check hung"
        elif container.attrs["State"].get("OOMKilled"):
            run.problem = (
                f"killed by the {profile.mem_limit / 1024**3:g} GB memory limit (OOM): "
                "raise WORKSHOP_MEM_LIMIT / WORKSHOP_GPU_MEM_LIMIT or make the labs smaller"
            )
        elif run.report is None:
            run.problem = (
                f"exited {run.exit_code} without a report: is {SMOKE_TEST_IN_IMAGE} in the "
                "image? (rebuild it)"
            )
        elif (run.exit_code == 0) != run.report["ok"]:
            run.problem = (
                f"exit status {run.exit_code} contradicts the report (ok={run.report['ok']})"
            )
    finally:
        watchdog.cancel()
        container.remove(force=True, v=True)


def describe_limits(settings, profile: Profile) -> str:
    """From the settings, not the docker-py arguments, whose keys are the hub's business."""
    return (
        f"{profile.mem_limit / 1024**3:g} GB memory, {profile.cpu_limit:g} CPUs, "
        f"{settings.pids_limit} pids, {settings.shm_size / 1024**2:g} MB /dev/shm"
    )


def smoke_test_image(client, flavor: Flavor, image: str, setting: str, settings, args) -> ImageRun:
    profile = flavor.profile(settings)
    run = ImageRun(flavor.name, image, limits=container_limits(settings, profile))
    try:
        ensure_image(client, setting, image)
    except SettingsError as missing:
        run.problem = str(missing)
        return run
    if flavor.name == "cuda":
        run.gpus, run.gpu_note = choose_gpus(client, settings, args.gpus, image)
        log(f"[cuda] GPUs: {run.gpu_note}")
    run_in_container(client, run, profile, smoke_arguments(args), settings, args.timeout)
    return run


def smoke_arguments(args) -> list[str]:
    passed = []
    for option, value in (("--only", args.only), ("--skip", args.skip)):
        if value:
            passed += [option, value]
    if args.lab_budget is not None:
        passed += ["--lab-budget", str(args.lab_budget)]
    return passed


def summary_table(runs: list[ImageRun]) -> str:
    """Checks down, images across; the reasons for everything that did not pass below."""
    names: list[str] = []
    for run in runs:
        for check in (run.report or {}).get("checks", []):
            if check["name"] not in names:
                names.append(check["name"])
    verdicts = [{c["name"]: c for c in (run.report or {}).get("checks", [])} for run in runs]
    width = max([len("container"), *map(len, names)])
    header = f"{'check':<{width}}  " + "  ".join(f"{run.flavor:<7}" for run in runs)
    lines = [header, "-" * len(header)]
    container_cells = ["FAIL" if run.problem else "PASS" for run in runs]
    lines.append(f"{'container':<{width}}  " + "  ".join(f"{c:<7}" for c in container_cells))
    for name in names:
        cells = [checks.get(name, {}).get("verdict", "-").upper() for checks in verdicts]
        lines.append(f"{name:<{width}}  " + "  ".join(f"{cell:<7}" for cell in cells))
    lines.append("")
    for run in runs:
        gpus = f" · {run.gpu_note}" if run.gpu_note else ""
        lines.append(f"{run.flavor}: {run.image}{gpus}")
        if run.problem:
            lines.append(f"  container FAIL: {run.problem}")
        for check in (run.report or {}).get("checks", []):
            if check["verdict"] != "pass":
                reason = check["note"].strip().splitlines()[0] if check["note"].strip() else ""
                lines.append(f"  {check['name']} {check['verdict'].upper()}: {reason}")
    failed = [run.flavor for run in runs if not run.ok]
    lines += ["", f"FAILED: {', '.join(failed)}" if failed else "OK: every image passed"]
    return "\n".join(lines)


def write_reports(runs: list[ImageRun], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for run in runs:
        path = folder / f"smoke-{run.flavor}.json"
        path.write_text(json.dumps(run.__dict__, indent=2, default=str) + "\n")
        log(f"report: {path}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    def flavors(text: str) -> list[str]:
        chosen = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
        unknown = sorted(set(chosen) - set(FLAVORS))
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(FLAVORS)}")
        return chosen

    def gpus(text: str) -> tuple[str, ...]:
        parsed = parse_gpus(text)
        if parsed == "auto":
            raise argparse.ArgumentTypeError("name device ids such as 0 or 0,1, or none")
        return parsed

    def override(text: str) -> tuple[str, str]:
        flavor, _, image = text.partition("=")
        if flavor not in FLAVORS or not image:
            raise argparse.ArgumentTypeError(
                f"use FLAVOR=IMAGE with FLAVOR one of {', '.join(FLAVORS)}"
            )
        return flavor, parse_image(image)

    def wrap(parse):
        def parse_or_explain(text: str):
            try:
                return parse(text)
            except ValueError as error:
                raise argparse.ArgumentTypeError(str(error)) from None

        return parse_or_explain

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--images", type=flavors, default=list(FLAVORS), help="cpu,cuda (default both)"
    )
    parser.add_argument(
        "--gpus",
        type=wrap(gpus),
        help="device ids for the cuda image, e.g. 0 or 0,1; none for no GPU",
    )
    parser.add_argument("--json-dir", type=Path, help="write smoke-FLAVOR.json reports here")
    parser.add_argument("--only", help="passed to smoke_test.py: checks or groups to run")
    parser.add_argument("--skip", help="passed to smoke_test.py: checks or groups to skip")
    parser.add_argument(
        "--lab-budget", type=float, help="passed to smoke_test.py (seconds per lab)"
    )
    parser.add_argument(
        "--image-override",
        type=wrap(override),
        action="append",
        default=[],
        metavar="FLAVOR=IMAGE",
        help="test another image than the settings name, e.g. cpu=my-lab:test",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per image"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        # As docker compose does: .env beside docker-compose.yml, the environment wins.
        settings = load_settings({**read_env_file(REPO_ROOT / ".env"), **os.environ})
    except SettingsError as error:
        log(f"invalid setting: {error}")
        return 2
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        log(f"cannot reach Docker ({error}): start the Docker daemon, or set DOCKER_HOST")
        return 2
    overrides = dict(args.image_override)
    runs = []
    for name in args.images:
        flavor = FLAVORS[name]
        image = overrides.get(name, flavor.profile(settings).image)
        setting = f"--image-override {name}" if name in overrides else flavor.image_setting
        runs.append(smoke_test_image(client, flavor, image, setting, settings, args))
    print(summary_table(runs), flush=True)
    if args.json_dir:
        write_reports(runs, args.json_dir)
    return 0 if all(run.ok for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
