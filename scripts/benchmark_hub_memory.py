"""How much memory the hub's container needs for a room, measured on a running hub.

    python scripts/benchmark_hub_memory.py --url http://127.0.0.1:8000 --container HUB \\
        --token "$(docker compose exec -T hub cat /srv/jupyterhub/data/organizer-token)" \\
        [--attendees 200] [--servers 40]

Samples the hub container's memory (as `docker stats` shows it: usage less inactive page
cache) at rest; after ATTENDEES attendees (bench-mem-NNN) exist, each with a token and ten
exercise checks reported to the console; and while SERVERS of them have a running server,
all started at once through the hub's queue. Prints each figure, what one running server adds,
and the estimate for every attendee's server running. Deletes what it made at the end (users,
servers, work volumes and disks). Needs Docker on this host and the hub's organizer token.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import docker
import requests

from workshop_hub.room.attendee_removal import docker_names
from workshop_hub.room.disks import WorkDisks
from workshop_hub.settings import load_settings

PREFIX = "bench-mem-"
MiB = 1024**2


def container_environment(container) -> dict[str, str]:
    """The hub's settings as its container has them (WORKSHOP_INSTANCE names the volumes)."""
    pairs = (entry.partition("=") for entry in container.attrs["Config"]["Env"])
    return {key: value for key, _, value in pairs if key.startswith("WORKSHOP_") and value}


def working_set(container) -> int:
    """The container's memory as `docker stats` shows it."""
    memory = container.stats(stream=False)["memory_stats"]
    inactive = memory["stats"].get("total_inactive_file", memory["stats"].get("inactive_file", 0))
    return memory["usage"] - inactive


class Sampler:
    """The container's peak memory since the last `phase`, sampled in the background."""

    def __init__(self, container):
        self.container = container
        self.peak = 0
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while self._running:
            self.peak = max(self.peak, working_set(self.container))

    def phase(self) -> int:
        """The peak of the phase that ends now; the next phase starts from now."""
        peak, self.peak = max(self.peak, working_set(self.container)), 0
        return peak

    def stop(self) -> None:
        self._running = False
        self._thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the hub, e.g. http://127.0.0.1:8000")
    parser.add_argument("--container", required=True, help="the hub's container (docker ps)")
    parser.add_argument("--token", required=True, help="the hub's organizer token")
    parser.add_argument("--attendees", type=int, default=200)
    parser.add_argument("--servers", type=int, default=40, help="attendees whose server runs")
    args = parser.parse_args(argv)
    hub = args.url.rstrip("/")
    api = requests.Session()
    api.headers["Authorization"] = f"token {args.token}"
    client = docker.from_env()
    container = client.containers.get(args.container)
    instance = load_settings(container_environment(container), env_file=None).instance
    names = [f"{PREFIX}{number:03d}" for number in range(1, args.attendees + 1)]
    sampler = Sampler(container)
    figures = {"at rest": sampler.phase()}
    print(f"at rest: {figures['at rest'] / MiB:.0f} MiB", flush=True)
    try:
        made = api.post(f"{hub}/hub/api/users", json={"usernames": names}, timeout=120)
        if made.status_code not in (201, 409):
            raise SystemExit(f"could not make the attendees: {made.status_code} {made.text[:200]}")
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda name: report_checks(hub, api, name), names))
        figures[f"{args.attendees} attendees, 10 checks each"] = sampler.phase()
        started = time.monotonic()
        with ThreadPoolExecutor(args.servers) as pool:
            for done, _ in enumerate(
                pool.map(lambda name: start_server(hub, api, name), names[: args.servers]), 1
            ):
                if done % 10 == 0 or done == args.servers:
                    print(f"  {done}/{args.servers} servers ready", flush=True)
        print(f"{args.servers} servers started in {time.monotonic() - started:.0f} s")
        time.sleep(10)  # the hub's activity reports and the culler's first round
        figures[f"and {args.servers} servers running"] = sampler.phase()
    finally:
        sampler.stop()
        print("deleting what this made…", flush=True)
        clean_up(hub, api, client, container.image.id, instance, names)
    for label, peak in figures.items():
        print(f"  {label:36} {peak / MiB:7.0f} MiB")
    with_users = figures[f"{args.attendees} attendees, 10 checks each"]
    per_server = (figures[f"and {args.servers} servers running"] - with_users) / args.servers
    print(
        f"each running server adds {per_server / MiB:.1f} MiB; all {args.attendees} running: "
        f"about {(with_users + per_server * args.attendees) / MiB:.0f} MiB"
    )
    return 0


def report_checks(hub: str, api: requests.Session, name: str) -> None:
    token = api.post(
        f"{hub}/hub/api/users/{name}/tokens",
        json={"note": "memory benchmark", "expires_in": 3600},
        timeout=60,
    ).json()["token"]
    for number in range(10):
        requests.post(
            f"{hub}/services/console/api/progress",
            json={"lab": 1, "exercise": "batch", "passed": number % 2 == 0},
            headers={"Authorization": f"token {token}"},
            timeout=60,
        )


def start_server(hub: str, api: requests.Session, name: str) -> None:
    api.post(f"{hub}/hub/api/users/{name}/server", timeout=60)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        server = api.get(f"{hub}/hub/api/users/{name}", timeout=60).json()["servers"].get("")
        if server and server.get("ready"):
            return
        time.sleep(2)
    raise SystemExit(f"{name}'s server was not ready after 10 minutes")


def clean_up(hub, api, client, helper_image: str, instance: str, names: list[str]) -> None:
    for name in names:
        api.delete(f"{hub}/hub/api/users/{name}/server", timeout=60)
    disks = WorkDisks(client, helper_image, instance, 0, None)
    for name in names:
        for _ in range(60):
            if api.delete(f"{hub}/hub/api/users/{name}", timeout=60).status_code in (204, 404):
                break
            time.sleep(1)
        _, volume = docker_names(instance, name)
        try:
            client.volumes.get(volume).remove(force=True)
            disks.remove(volume)
        except docker.errors.NotFound:
            pass


if __name__ == "__main__":
    sys.exit(main())
