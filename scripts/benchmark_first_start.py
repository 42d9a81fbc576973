"""A fresh clone's first `docker compose up -d`, with cold caches, until the hub serves.

    python3 scripts/benchmark_first_start.py [--compare REF] [--keep-images]

For this checkout's commit (and REF's, side by side, when asked) the repository is cloned into
a temporary folder, every image that `up` builds is built without Docker's layer cache (as on
a machine that never built them; the base image stays, as after the README's set-up), then
`up -d` starts the stack and the clock stops when the hub answers /hub/health. Each clone
builds under image and project names of its own, so a running deployment and the tests'
cache are never touched; its images and stack are removed afterwards.

Goal: 300 s or less on a 2-core machine. BASE_IMAGE and CPU_TORCH_INDEX_URL are passed on
from this machine's set-up.
Needs Docker and about 15 GB free per checkout while it runs.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 300.0
SERVE_TIMEOUT_S = 300
# The services a default `up -d` builds, one per image (firewall shares the hub's image).
BUILT_SERVICES = ("hub", "lab-cpu")


def compose_command() -> list[str]:
    """Compose v2 when the docker CLI has it, else docker-compose 1.29."""
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    return ["docker", "compose"] if probe.returncode == 0 else ["docker-compose"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def clone(ref: str, folder: Path) -> str:
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(folder)], check=True)
    subprocess.run(["git", "-C", str(folder), "checkout", "--quiet", ref], check=True)
    return subprocess.run(
        ["git", "-C", str(folder), "log", "-1", "--format=%h %s"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()[:72]  # fmt: skip


def hub_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hub/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def image_ids() -> set[str]:
    listed = subprocess.run(
        ["docker", "images", "-aq", "--no-trunc"], capture_output=True, text=True
    )
    return set(listed.stdout.split())


def remove_images_made_since(before: set[str]) -> None:
    """This run's images and the layers of its builds, and nothing else: `docker image prune`
    would also throw away the build cache of every other checkout's multi-stage builds."""
    made = image_ids() - before
    # Children first: an image whose child is still there cannot go.
    for _ in range(3):
        if not made:
            return
        subprocess.run(["docker", "rmi", "-f", *made], capture_output=True)
        made &= image_ids()


def first_start(ref: str, label: str, keep_images: bool) -> dict:
    """Seconds to build (cold) and to serve, for one commit."""
    project = f"firststart{label}"
    port = free_port()
    environment = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": project,
        "WORKSHOP_INSTANCE": project,
        "WORKSHOP_PORT": str(port),
        "WORKSHOP_HUB_IMAGE": f"{project}/hub:latest",
        "WORKSHOP_CPU_IMAGE": f"{project}/lab:cpu",
        "WORKSHOP_CUDA_IMAGE": f"{project}/lab:cuda",
        "WORKSHOP_PROXY_IMAGE": f"{project}/proxy:latest",
    }
    compose = compose_command()
    with tempfile.TemporaryDirectory(prefix="first-start-") as workdir:
        folder = Path(workdir) / "checkout"
        commit = clone(ref, folder)
        say(f"[{label}] {commit}: building {', '.join(BUILT_SERVICES)} with no cache")

        def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
            return subprocess.run(
                [*compose, *args], cwd=folder, env=environment, check=True, **kwargs
            )

        images_before = image_ids()
        started = time.monotonic()
        try:
            for service in BUILT_SERVICES:
                step = time.monotonic()
                run("build", "--no-cache", service, stdout=subprocess.DEVNULL)
                say(f"[{label}]   {service} built in {time.monotonic() - step:.0f} s")
            built = time.monotonic()
            run("up", "-d", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while not hub_answers(port):
                if time.monotonic() - built > SERVE_TIMEOUT_S:
                    raise SystemExit(f"[{label}] the hub did not answer in {SERVE_TIMEOUT_S} s")
                time.sleep(1)
            served = time.monotonic()
            say(f"[{label}]   serving {served - built:.0f} s after the builds")
        finally:
            run("down", "-v", "--remove-orphans", stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)  # fmt: skip
            if not keep_images:
                remove_images_made_since(images_before)
    return {"commit": commit, "build_s": built - started, "serve_s": served - built}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", metavar="REF", help="also measure this commit, first")
    parser.add_argument("--keep-images", action="store_true", help="leave the built images")
    options = parser.parse_args()
    head = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    runs = [("before", options.compare)] if options.compare else []
    runs.append(("now", head))
    results = {label: first_start(ref, label, options.keep_images) for label, ref in runs}
    print(f"\n{'':8}{'build (cold)':>14}{'until served':>14}{'total':>9}  commit")
    for label, figures in results.items():
        total = figures["build_s"] + figures["serve_s"]
        print(
            f"{label:8}{figures['build_s']:>12.0f} s{figures['serve_s']:>12.0f} s"
            f"{total:>7.0f} s  {figures['commit']}"
        )
    now = results["now"]["build_s"] + results["now"]["serve_s"]
    if "before" in results:
        before = results["before"]["build_s"] + results["before"]["serve_s"]
        print(f"now / before: {now / before:.2f}")
    print(f"{'PASS' if now <= GOAL_S else 'FAIL'}  first start {now:.0f} s (goal ≤ {GOAL_S:.0f} s)")


if __name__ == "__main__":
    main()
