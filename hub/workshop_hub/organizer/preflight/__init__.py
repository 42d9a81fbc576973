"""`workshop-hub preflight`: is this host ready for the day? Run it the night before.

    docker compose run --rm hub workshop-hub preflight [--json]

It reads the settings exactly as the hub does (it runs in the hub's image, with compose's
environment and .env) and asks the host's Docker what it has: the lab images, memory and
cores against the room size and the per-attendee limits, free disk for the attendees' work
folders, the GPUs when WORKSHOP_GPUS is set (by starting a container on them, as the hub
does), the access code (set, and not guessable), who may read .env; when HTTPS is on, the
domain's DNS and the certificate (the organizer's own) or the ports ACME needs. Then each
lab image runs its own check (`python -m workshop_labs.smoke`) in a container started as the
hub starts an attendee's, with no network; `--no-image-checks` leaves that out for a quick
re-check. One verdict per check, each failure with what to do; the exit status is 1 when
anything would stop the day.

The verdicts (rules.py for the host, tls.py for HTTPS, images.py for the images' own
checks) are pure functions of the settings and of what was found (facts.HostFacts), so each
rule is tested without a host; host.collect is the one place that asks Docker.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from dataclasses import asdict

import docker
from docker.errors import DockerException

from ...room.disks import DiskError
from ...settings import WorkshopSettings, human_size
from .facts import FAIL, PASS, HostFacts, Verdict
from .host import collect
from .images import check_image_runs, run_image_checks
from .rules import (
    check_access_code,
    check_cores,
    check_disk,
    check_env_file_access,
    check_exposure,
    check_gpus,
    check_images,
    check_memory,
    check_port,
    check_warm_room,
)
from .tls import check_acme_ports, check_certificate, check_domain


def verdicts(
    settings: WorkshopSettings, facts: HostFacts, now: datetime.datetime | None = None
) -> list[Verdict]:
    now = now or datetime.datetime.now(datetime.UTC)
    found = [
        Verdict(
            "docker",
            PASS,
            f"Docker {facts.docker_version}, {facts.cores} cores, {human_size(facts.mem_total)}",
        ),
        *check_images(settings, facts),
        check_memory(settings, facts),
        check_warm_room(settings, facts),
        check_cores(settings, facts),
        *check_disk(settings, facts),
        check_gpus(settings, facts),
        check_port(settings, facts),
        check_exposure(settings, facts),
        check_domain(settings, facts),
        *check_certificate(settings, facts, now),
        check_acme_ports(settings, facts),
        check_access_code(settings, facts),
        check_env_file_access(facts),
        *check_image_runs(facts),
    ]
    return [verdict for verdict in found if verdict is not None]


def table(found: list[Verdict]) -> str:
    width = max(len(verdict.check) for verdict in found)
    lines = []
    for verdict in found:
        lines.append(f"{verdict.status.upper():4}  {verdict.check:{width}}  {verdict.detail}")
        if verdict.advice:
            lines.append(f"{'':4}  {'':{width}}  → {verdict.advice}")
    return "\n".join(lines)


def run(
    settings: WorkshopSettings, as_json: bool, image_checks: bool = True, out=sys.stdout
) -> int:
    """Print the verdicts; 1 when any check failed. `image_checks`: run each lab image's
    own check (minutes; its progress goes to stderr)."""
    try:
        client = docker.from_env()
        facts = collect(settings, client, os.environ)
        if image_checks:
            facts.image_checks = run_image_checks(client, settings, facts)
    except (DockerException, DiskError) as error:
        found = [
            Verdict(
                "docker",
                FAIL,
                f"Docker cannot be reached from the hub's container ({error})",
                "start Docker, and run this through compose so the hub's container has "
                "/var/run/docker.sock: docker compose run --rm hub workshop-hub preflight",
            )
        ]
    else:
        found = verdicts(settings, facts)
    failed = any(verdict.status == FAIL for verdict in found)
    if as_json:
        json.dump({"ready": not failed, "checks": [asdict(v) for v in found]}, out, indent=1)
        out.write("\n")
    else:
        out.write(table(found) + "\n")
        out.write("NOT READY: fix each FAIL above, then run this again.\n" if failed else "ready\n")
    return 1 if failed else 0
