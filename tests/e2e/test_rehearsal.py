"""`workshop-hub rehearse` against the main stack: it runs, reports every figure, and leaves
nothing behind. Fields are checked, never speed."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import requests

from workshop_hub.access import credentials
from workshop_hub.organizer.rehearsal import docker_names
from workshop_hub.room.disks import DISKS_ROOT

from .stack import progress

OUTPUT = "/srv/jupyterhub/data/rehearsals/test"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _hub_file(hub, path: str) -> bytes:
    result = hub.hub_exec("base64", "-w0", path)
    assert result.returncode == 0, result.stderr
    return base64.b64decode(result.stdout)


def test_bad_input_gets_one_line(hub):
    result = hub.hub_exec("workshop-hub", "rehearse", "--attendees", "0")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "--attendees must be between 1 and" in result.stderr


def test_rehearsal_of_two_rooms_of_two_attendees_reports_and_cleans_up(hub):
    result = hub.hub_exec("workshop-hub", "rehearse", "--attendees", "2", "--output", OUTPUT)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    progress(f"rehearsal of 2 attendees in each room:\n{result.stdout}")
    for expected in (
        "Walk-in room",
        "Warm room",
        "p50/floor",
        "login → ready",
        "first cell",
        "burst makespan",
        "warming (ahead of time)",
        "side by side",
        "docker cp",
    ):
        assert expected in result.stdout, result.stdout
    # The live counter went to stderr, once per room; the warming said how far it got.
    assert result.stderr.count("2/2 ready (2 ran the cell)") == 2, result.stderr
    assert "2 of 2 ready, 0 starting or in line" in result.stderr, result.stderr

    report = json.loads(_hub_file(hub, f"{OUTPUT}/report.json"))
    assert report["attendees"] == 2 and report["cleanup_problems"] == []
    for key, floor in report["floors"].items():
        assert floor > 0, key
    assert report["host"]["cores"] > 0 and report["host"]["memory_bytes"] > 0
    assert sorted(report["rooms"]) == ["walk-in", "warm"]
    names = []
    for room_name, room in report["rooms"].items():
        assert room["failures"] == [], room_name
        room_names = [record["name"] for record in room["records"]]
        assert len(room_names) == 2 and all(n.startswith("rehearsal-") for n in room_names)
        names += room_names
        for record in room["records"]:
            assert record["failure"] is None
            assert record["cell_output"] == "21.0"
        for key, metric in room["metrics"].items():
            assert metric["count"] == 2, (room_name, key)
            assert None not in (metric["p50"], metric["p95"], metric["max"]), (room_name, key)
            if metric["floor"] is not None:
                assert metric["p50_ratio"] is not None and metric["max_ratio"] is not None, key
        assert room["metrics"]["server_start_s"]["floor"] > 0
        assert room["metrics"]["memory_idle_bytes"]["floor"] > 0
        assert room["makespan_s"] > 0 and room["cpu_floor_s"] > 0
        assert room["first_ready_s"] > 0
        assert room["hub"]["cpu_s_per_spawn"] > 0
        assert room["hub"]["hub_rss_bytes"] > 0 and room["hub"]["proxy_rss_bytes"] > 0
        timeline = _hub_file(hub, f"{OUTPUT}/timeline-{room_name}.png")
        assert timeline.startswith(PNG_SIGNATURE)
    assert len(set(names)) == 4  # two rooms, four simulated attendees
    # The warm room's servers were up before its burst: no queue, no start during it.
    warm = report["rooms"]["warm"]
    assert warm["warming"]["ready"] == 2 and warm["warming"]["seconds"] > 0
    assert warm["warming"]["ratio"] is not None
    assert warm["metrics"]["queue_wait_s"]["max"] == 0
    assert warm["metrics"]["server_start_s"]["max"] == 0

    # Nothing left behind: users, containers (the floor's too), volumes, disks.
    token = hub.hub_exec("cat", str(credentials.REHEARSAL_TOKEN_FILE)).stdout.strip()
    users = requests.get(
        f"{hub.url}/hub/api/users", headers={"Authorization": f"token {token}"}, timeout=30
    )
    assert users.status_code == 200, users.text
    assert not [user["name"] for user in users.json() if user["name"].startswith("rehearsal-")]
    made = [docker_names(hub.project, name) for name in names]
    containers = [container.name for container in hub.docker.containers.list(all=True)]
    volumes = [volume.name for volume in hub.docker.volumes.list()]
    for container, volume in made:
        assert container not in containers and volume not in volumes
    # Nor the floor's container, nor anything else a rehearsal named.
    ours = [name for name in containers + volumes if name.startswith(hub.project)]
    assert not [name for name in ours if "rehearsal" in name], ours
    # The disks were made (so their absence now means they were removed).
    logs = hub.logs()
    for _, volume in made:
        assert f"work disk {volume} created" in logs
    disks = Path(DISKS_ROOT) / hub.project
    assert not [path.name for path in disks.glob("*/*rehearsal*")]
