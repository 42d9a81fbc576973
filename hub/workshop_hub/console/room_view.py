"""What the instructor's console shows: one row per attendee and a summary of the room.

Built from three sources the console already has, so it keeps no state of its own: the hub's
user list (server state and last activity, from JupyterHub's REST API), Docker's container
list (profile and GPU, from the labels the spawner sets) and the progress book. Pure
functions of those, so the ordering rules are tested without a hub.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime

from ..access.names import INSTRUCTOR_ROLE
from ..room.profiles import LABEL_GPU, LABEL_PROFILE, LABEL_USER
from .progress import LABS, ExerciseState

# Failing the same check for longer than this is "stuck": such attendees come first.
STUCK_AFTER_SECONDS = 5 * 60
# How many exercises the summary lists as "failing most right now".
MOST_FAILED_SHOWN = 5


@dataclass
class AttendeeRow:
    name: str
    server: str  # queued, starting, running, stopping or stopped
    profile: str  # "cpu", "gpu" or "" when no container exists
    gpu: str  # the GPU (index or MIG id) the attendee holds, or ""
    started: float | None  # when the server started (epoch seconds)
    last_activity: float | None
    memory_bytes: int | None  # the container's memory in use, last sampled
    lab: int | None  # the lab of the attendee's last check
    stuck_since: float | None  # the oldest current failure, None when nothing fails
    stuck_on: str  # "lab N · exercise" of that failure
    stuck_reason: str
    exercises: list[dict] = field(default_factory=list)

    def as_json(self) -> dict:
        return asdict(self)


def _epoch(timestamp: str | None) -> float | None:
    """JupyterHub's ISO 8601 times ('2026-11-27T09:00:00.123456Z') as epoch seconds."""
    if not timestamp:
        return None
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def server_state(user: Mapping, has_container: bool) -> tuple[str, dict]:
    """The default server's state as the console names it, and the hub's model of it."""
    server = (user.get("servers") or {}).get("", {})
    pending = server.get("pending") or user.get("pending")
    if pending == "spawn":
        # The container is made when the attendee's turn comes (spawn_queue.py): a spawn
        # without one still waits in line.
        return ("starting" if has_container else "queued"), server
    if pending == "stop":
        return "stopping", server
    if server.get("ready"):
        return "running", server
    return "stopped", server


def container_labels(containers: Iterable[Mapping]) -> dict[str, Mapping]:
    """username -> labels of their container (Docker's container list, any state)."""
    return {
        labels[LABEL_USER]: labels
        for container in containers
        if (labels := container.get("Labels") or {}).get(LABEL_USER)
    }


def attendee_row(
    user: Mapping,
    labels: Mapping,
    states: list[ExerciseState],
    memory_bytes: int | None,
    now: float,
    warm: bool = False,
) -> AttendeeRow:
    server, model = server_state(user, has_container=bool(labels))
    if warm and server == "running":
        server = "warm"  # started by warm-room; its rostered attendee has not logged in yet
    failing = [state for state in states if not state.passed]
    oldest = min(failing, key=lambda state: state.failing_since or now, default=None)
    last = max(states, key=lambda state: state.last_tried, default=None)
    return AttendeeRow(
        name=user["name"],
        server=server,
        profile=labels.get(LABEL_PROFILE, ""),
        gpu=labels.get(LABEL_GPU, "") if server in ("running", "warm", "starting") else "",
        started=_epoch(model.get("started")),
        last_activity=_epoch(user.get("last_activity")),
        memory_bytes=memory_bytes if server in ("running", "warm") else None,
        lab=last.lab if last else None,
        stuck_since=oldest.failing_since if oldest else None,
        stuck_on=f"lab {oldest.lab} · {oldest.exercise}" if oldest else "",
        stuck_reason=oldest.reason if oldest else "",
        exercises=[state.as_json() for state in states],
    )


def needs_help_first(row: AttendeeRow, now: float) -> tuple:
    """Sort key: stuck longest first, then anyone failing, then by name."""
    stuck_for = now - row.stuck_since if row.stuck_since is not None else -1.0
    return (-(stuck_for >= STUCK_AFTER_SECONDS), -stuck_for, row.name)


def room_view(
    users: Iterable[Mapping],
    containers: Iterable[Mapping],
    standings: Mapping[str, list[ExerciseState]],
    memory: Mapping[str, int],
    now: float,
    warm: frozenset[str] = frozenset(),
) -> dict:
    """The console's whole page as JSON: the summary on top, then the rows. Admins (the hub's
    user models say who) are instructors, not attendees: they get no row."""
    labels = container_labels(containers)
    rows = [
        attendee_row(
            user,
            labels.get(user["name"], {}),
            standings.get(user["name"], []),
            memory.get(user["name"]),
            now,
            warm=user["name"] in warm,
        )
        for user in users
        if user.get("kind", "user") == "user"
        and not user.get("admin")
        and INSTRUCTOR_ROLE not in user.get("roles", ())
    ]
    rows.sort(key=lambda row: needs_help_first(row, now))
    failing_now = Counter(
        (state["lab"], state["exercise"])
        for row in rows
        for state in row.exercises
        if not state["passed"]
    )
    return {
        "summary": {
            "attendees": len(rows),
            "servers": dict(Counter(row.server for row in rows)),
            "stuck": sum(1 for row in rows if needs_help_first(row, now)[0] == -1),
            "on_lab": {str(lab): sum(1 for row in rows if row.lab == lab) for lab in LABS},
            "failing_most": [
                {"lab": lab, "exercise": exercise, "attendees": count}
                for (lab, exercise), count in failing_now.most_common(MOST_FAILED_SHOWN)
            ],
        },
        "stuck_after_seconds": STUCK_AFTER_SECONDS,
        "now": now,
        "rows": [row.as_json() for row in rows],
    }
