"""How fast the instructor's console answers for a full room, measured against a running hub.

    python scripts/benchmark_console.py --url http://127.0.0.1:8000 --admin-token TOKEN \\
        [--attendees 200] [--checks 20] [--reads 20]

Makes N attendees (bench-001 ...) through the hub's REST API, has each report CHECKS exercise
checks to the console with a token of their own (as their kernels do), then reads the room
(`/services/console/api/room`, what the page polls) READS times and prints the response
times. The attendees it made are deleted at the end, their progress stays in the book.
"""

from __future__ import annotations

import argparse
import statistics
import sys
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


def report_checks(hub: str, admin: dict, name: str, checks: int) -> None:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the hub, e.g. http://127.0.0.1:8000")
    parser.add_argument("--admin-token", required=True, help="an admin's API token (hub/token)")
    parser.add_argument("--attendees", type=int, default=200)
    parser.add_argument("--checks", type=int, default=20, help="checks each attendee reports")
    parser.add_argument("--reads", type=int, default=20, help="times the room is read")
    args = parser.parse_args(argv)
    hub, admin = args.url.rstrip("/"), {"Authorization": f"token {args.admin_token}"}

    started = time.perf_counter()
    names = make_attendees(hub, admin, args.attendees)
    try:
        with ThreadPoolExecutor(8) as pool:
            for done, _ in enumerate(
                pool.map(lambda n: report_checks(hub, admin, n, args.checks), names), 1
            ):
                if done % 20 == 0 or done == len(names):
                    print(
                        f"  {done}/{len(names)} attendees reported {args.checks} checks each",
                        flush=True,
                    )
        print(f"made the room in {time.perf_counter() - started:.1f} s")
        seconds, size = [], 0
        for _ in range(args.reads):
            began = time.perf_counter()
            room = requests.get(f"{hub}/{CONSOLE}api/room", headers=admin, timeout=60)
            room.raise_for_status()
            seconds.append(time.perf_counter() - began)
            size = len(room.content)
            time.sleep(0.2)
        rows = len(room.json()["rows"])
    finally:
        for name in names:
            requests.delete(f"{hub}/hub/api/users/{name}", headers=admin, timeout=60)
    ordered = sorted(seconds)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    print(
        f"room of {rows} attendees × {args.checks} checks: api/room answered in "
        f"p50 {statistics.median(seconds) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"max {max(seconds) * 1000:.0f} ms over {len(seconds)} reads ({size / 1024:.0f} KiB each)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
