"""How fast the instructor's console answers for a full room, measured against a running hub.

    python scripts/benchmark_console.py --url http://127.0.0.1:8000 --admin-token TOKEN \\
        [--attendees 200] [--checks 20] [--reads 20] [--hands 20] [--container NAME]

Makes N attendees (bench-001 ...) through the hub's REST API, has each report CHECKS exercise
checks to the console with a token of their own (as their kernels do), then reads the room
(`/services/console/api/room`, what the page polls) READS times and prints the response
times.

Then the help loop, as a room with JupyterLab open keeps it busy: every attendee holds a
request for notices open (`api/notices`, what the help panel waits on), HANDS of them raise a
hand, and the instructor's page reads the queue (`api/hands`, every second) and the room
READS times; then one announcement wakes every waiting attendee, and the time until each has
it is printed. With `--container` (the hub's container: hub, proxy and console) it also prints
the CPU that container used during that phase, from Docker's own counters.

The attendees it made are deleted at the end; their progress and hands stay in the book.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from workshop_labs.notebooks import lab_sources, solutions_catalog

CONSOLE = "services/console/"
PREFIX = "bench-"
# Reports name the course's own exercises, as kernels do: the console refuses any other.
EXERCISES = [
    (int(lab), entry["exercise"])
    for lab, entries in solutions_catalog(lab_sources(Path(__file__).parents[1] / "labs")).items()
    for entry in entries
]
# The hub refuses tokens without an end (JupyterHub.token_expires_in_max_seconds).
TOKEN_SECONDS = 3600


def make_attendees(hub: str, admin: dict, count: int) -> list[str]:
    names = [f"{PREFIX}{i:03d}" for i in range(1, count + 1)]
    response = requests.post(
        f"{hub}/hub/api/users", json={"usernames": names}, headers=admin, timeout=60
    )
    if response.status_code not in (201, 409):
        raise SystemExit(
            f"could not make the attendees: {response.status_code} {response.text[:200]}"
        )
    return names


def report_checks(hub: str, admin: dict, name: str, checks: int) -> dict:
    """Report ``checks`` checks as ``name``'s kernel does; the attendee's own headers."""
    token = requests.post(
        f"{hub}/hub/api/users/{name}/tokens",
        json={"note": "console benchmark", "expires_in": TOKEN_SECONDS},
        headers=admin,
        timeout=60,
    ).json()["token"]
    mine = {"Authorization": f"token {token}"}
    for index in range(checks):
        lab, exercise = EXERCISES[index * len(EXERCISES) // checks % len(EXERCISES)]
        report = {
            "lab": lab,
            "exercise": exercise,
            "passed": index % 3 != 0,
            "reason": "`batch` has shape (64, 64) but the exercise needs (32, 64)",
        }
        requests.post(
            f"{hub}/{CONSOLE}api/progress", json=report, headers=mine, timeout=60
        ).raise_for_status()
    return mine


def percentiles(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return (
        f"p50 {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"max {ordered[-1] * 1000:.0f} ms over {len(ordered)}"
    )


def timed_reads(hub: str, admin: dict, path: str, reads: int, pause: float) -> list[float]:
    """Read ``path`` as the instructor's page does, ``reads`` times; each answer's seconds."""
    seconds = []
    for _ in range(reads):
        began = time.perf_counter()
        requests.get(f"{hub}/{CONSOLE}{path}", headers=admin, timeout=60).raise_for_status()
        seconds.append(time.perf_counter() - began)
        time.sleep(pause)
    return seconds


class ConsoleCPU:
    """CPU seconds the hub's container used (the console runs there), from Docker's counters."""

    def __init__(self, container: str | None):
        self.container = None
        if container:
            import docker  # only with --container: the benchmark also runs without Docker

            self.container = docker.from_env().containers.get(container)

    def used(self) -> float:
        if self.container is None:
            return 0.0
        stats = self.container.stats(stream=False)
        return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9


def wait_for_notices(hub: str, headers: dict, ready: threading.Barrier, woken: list) -> None:
    """Hold a request for notices open, as an open JupyterLab does; note when news arrives."""
    first = requests.get(f"{hub}/{CONSOLE}api/notices", headers=headers, timeout=60).json()
    query = {"after": first["seq"], "boot": first["boot"], "wait": 25}
    ready.wait()
    while True:
        news = requests.get(
            f"{hub}/{CONSOLE}api/notices", params=query, headers=headers, timeout=60
        ).json()
        if news["notices"]:
            woken.append(time.perf_counter())
            return
        query["after"] = news["seq"]


def help_loop(hub: str, admin: dict, attendees: dict[str, dict], args) -> None:
    """Every attendee waits for notices, some raise hands, the instructor reads the queue and
    the room, then one announcement reaches everyone."""
    cpu = ConsoleCPU(args.container)
    woken: list[float] = []
    # Everyone waits before the clock starts; a thread that failed breaks it within a minute.
    ready = threading.Barrier(len(attendees) + 1, timeout=60)
    with ThreadPoolExecutor(len(attendees)) as waiting:
        held = [
            waiting.submit(wait_for_notices, hub, headers, ready, woken)
            for headers in attendees.values()
        ]
        ready.wait()
        cpu_before, began = cpu.used(), time.perf_counter()
        for name in list(attendees)[: args.hands]:
            hand = {"kind": "stuck", "note": "my loss does not go down", "notebook": "lab1.ipynb"}
            requests.post(
                f"{hub}/{CONSOLE}api/hand", json=hand, headers=attendees[name], timeout=60
            ).raise_for_status()
        queue = timed_reads(hub, admin, "api/hands", args.reads, pause=1.0)
        room = timed_reads(hub, admin, "api/room", args.reads, pause=0.2)
        cpu_seconds, wall = cpu.used() - cpu_before, time.perf_counter() - began
        announced = time.perf_counter()
        response = requests.post(
            f"{hub}/{CONSOLE}api/announcement",
            json={"text": "Benchmark: break until 10:45"},
            headers=admin,
            timeout=60,
        )
        response.raise_for_status()
        for future in held:
            future.result(timeout=60)
    # Leave the instructors' queue and the hub's banner as they were.
    for headers in list(attendees.values())[: args.hands]:
        requests.delete(f"{hub}/{CONSOLE}api/hand", headers=headers, timeout=60)
    requests.post(
        f"{hub}/{CONSOLE}api/announcement", json={"text": ""}, headers=admin, timeout=60
    ).raise_for_status()
    print(
        f"help loop, {len(attendees)} attendees waiting for notices, {args.hands} hands up: "
        f"api/hands {percentiles(queue)} reads; api/room {percentiles(room)} reads"
    )
    print(
        f"an announcement reached all {len(woken)} waiting attendees: "
        f"{percentiles([when - announced for when in woken])} attendees"
    )
    if args.container:
        print(
            f"the hub's container (hub, proxy, console) used {cpu_seconds:.1f} CPU seconds "
            f"in {wall:.0f} s ({cpu_seconds / wall:.0%} of one core) while they waited"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the hub, e.g. http://127.0.0.1:8000")
    parser.add_argument("--admin-token", required=True, help="an admin's API token (hub/token)")
    parser.add_argument("--attendees", type=int, default=200)
    parser.add_argument("--checks", type=int, default=20, help="checks each attendee reports")
    parser.add_argument("--reads", type=int, default=20, help="times the room is read")
    parser.add_argument("--hands", type=int, default=20, help="attendees who raise a hand")
    parser.add_argument(
        "--container", help="the hub's container (the console's CPU is read from Docker)"
    )
    args = parser.parse_args(argv)
    hub, admin = args.url.rstrip("/"), {"Authorization": f"token {args.admin_token}"}

    started = time.perf_counter()
    names = make_attendees(hub, admin, args.attendees)
    try:
        attendees: dict[str, dict] = {}
        with ThreadPoolExecutor(8) as pool:
            reported = pool.map(lambda n: (n, report_checks(hub, admin, n, args.checks)), names)
            for done, (name, headers) in enumerate(reported, 1):
                attendees[name] = headers
                if done % 20 == 0 or done == len(names):
                    print(
                        f"  {done}/{len(names)} attendees reported {args.checks} checks each",
                        flush=True,
                    )
        print(f"made the room in {time.perf_counter() - started:.1f} s", flush=True)
        seconds = timed_reads(hub, admin, "api/room", args.reads, pause=0.2)
        room = requests.get(f"{hub}/{CONSOLE}api/room", headers=admin, timeout=60)
        rows, size = len(room.json()["rows"]), len(room.content)
        print(
            f"room of {rows} attendees × {args.checks} checks: api/room answered in "
            f"{percentiles(seconds)} reads ({size / 1024:.0f} KiB each)",
            flush=True,
        )
        help_loop(hub, admin, attendees, args)
    finally:
        for name in names:
            requests.delete(f"{hub}/hub/api/users/{name}", headers=admin, timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
