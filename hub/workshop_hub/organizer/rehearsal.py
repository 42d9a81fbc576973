"""`workshop-hub rehearse`: the room at 09:00, rehearsed the day before on the real hub.

Run inside the hub container (docker compose exec hub workshop-hub rehearse --attendees 30):

1. the floors, alone on the machine: a bare `docker run` of the lab image with the attendees'
   limits until its server answers (and its idle memory), one cell in it as a fresh Python
   process, one bcrypt hash at the hub's cost;
2. the walk-in room: N simulated attendees (`rehearsal-<hex>-<NN>`) log in with the room
   code at the same moment, follow their spawn's progress events (queue place, start), open a
   kernel and run a cell of lab 1 that imports torch, over HTTP and the Jupyter websocket like
   a browser; then they are removed;
3. the warm room (`--rooms`): N other simulated attendees are put on the roster with a
   one-time password each, their servers are started ahead as `workshop-hub warm-room` does
   (timed: the warming), then they all log in with their cards at the same moment, land in
   their running JupyterLab and run the same cell;
4. every simulated attendee is stopped and deleted with its work volume and disk, also after
   a failure, the timeout or Ctrl-C;
5. a table per room on stdout, `report.json` and a timeline per room
   (`timeline-walk-in.png`, `timeline-warm.png`) in the output folder.

Only loopback and the hub's own containers are contacted. The hub's `rehearsal` service token
(REHEARSAL_TOKEN_FILE) lets it stop and delete the users it made.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import math
import os
import re
import secrets
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import docker

from ..access import credentials
from ..access.passwords import PasswordStore, hash_password, one_time_hash
from ..access.sessions import HubApi, ResetFailed
from ..console import warm_room
from ..room import attendee_removal
from ..room import limits as room
from ..room.attendee_removal import RemovalFailed, docker_names
from ..room.disks import DiskError, WorkDisks, own_image
from ..room.docker_host import COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL, own_labels
from ..room.firewall import attendee_network
from ..room.profiles import HOME_DIR, container_limits, cpu_profile, gpu_profile
from ..services import SERVER_PORT
from ..settings import USERNAME_PATTERN, MiB, WorkshopSettings, human_size
from .cell import CellReplies, execute_request

# JupyterHub's proxy, as seen from inside the hub container.
HUB_URL = "http://127.0.0.1:8000"
MAX_REHEARSAL_ATTENDEES = 200
DEFAULT_ATTENDEES = 10
DEFAULT_TIMEOUT_S = 900
# Of the whole run's time, what is kept back for stopping and deleting everyone.
CLEANUP_RESERVE_S = 120
MIN_TIMEOUT_S = CLEANUP_RESERVE_S + 60
OUTPUT_ROOT = credentials.HUB_DATA_DIR / "rehearsals"
NAME_PREFIX = "rehearsal"
WALK_IN, WARM = "walk-in", "warm"
ROOMS = (WALK_IN, WARM)
ROOM_TITLES = {
    WALK_IN: "Walk-in room: the room code at 09:00, every server starts then",
    WARM: "Warm room: rostered, servers started ahead (warm-room), login cards at 09:00",
}
log = logging.getLogger("workshop-hub.rehearsal")
REHEARSAL_NAME = re.compile(rf"{NAME_PREFIX}-[0-9a-f]{{4}}-[0-9]{{2,3}}")
# Marks the floor's bare container, so a person seeing it in `docker ps` knows what it is.
LABEL_REHEARSAL = "org.pytorch-workshop.rehearsal"
# Lab 1's own lines (its first cells that use torch): what an attendee runs first.
FIRST_CELL = (
    "import torch\n"
    "\n"
    "matrix = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])\n"
    "print(matrix.sum().item())\n"
)
FIRST_CELL_OUTPUT = "21.0"
FLOOR_START_TIMEOUT_S = 180
# Warmed servers are left to settle before their attendees arrive (at 09:00 they have had
# minutes): the burst starts once the host is quiet, or after SETTLE_S_PER_SERVER for each
# warmed server, SETTLE_LIMIT_S at most (a host with other servers running is never quiet).
SETTLE_WINDOW_S = 3.0
SETTLE_BUSY_CORES = 0.25
SETTLE_S_PER_SERVER = 4.0
SETTLE_LIMIT_S = 120.0
# Loopback and the attendee network only: never through a proxy from the environment.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class RehearsalError(Exception):
    """The rehearsal cannot run as asked; the message names the cause and the fix."""


class AttendeeFailed(Exception):
    """What went wrong for one simulated attendee: counted in the report, never raised out."""


# --- pure parts: names, events, statistics, the report ---------------------------------------


def rehearsal_names(count: int, token: str | None = None) -> list[str]:
    """`rehearsal-<4 hex>-<NN>`: one token per run, so two runs never share a name."""
    token = token or secrets.token_hex(2)
    names = [f"{NAME_PREFIX}-{token}-{index:02d}" for index in range(1, count + 1)]
    for name in names:
        assert re.fullmatch(USERNAME_PATTERN, name), name
    return names


def parse_event(line: bytes | str) -> dict | None:
    """One `data: {json}` line of a spawn's event stream; None for anything else."""
    text = line.decode(errors="replace") if isinstance(line, bytes) else line
    text = text.strip()
    if not text.startswith("data:"):
        return None
    try:
        event = json.loads(text[len("data:") :])
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def event_phase(event: dict) -> str | None:
    """The phase an event puts an attendee in; None when it says nothing about it."""
    if event.get("failed"):
        return "failed"
    if event.get("ready"):
        return "ready"
    phase = event.get("workshop_phase")
    return phase if phase in ("queued", "starting") else None


def percentile(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    lower, upper = math.floor(position), math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def ratio(value: float | None, floor: float | None) -> float | None:
    if value is None or not floor:
        return None
    return value / floor


def stats_memory(stats: dict) -> int | None:
    """A container's memory as `docker stats` shows it: usage less the inactive page cache."""
    memory = stats.get("memory_stats") or {}
    usage = memory.get("usage")
    if usage is None:
        return None
    details = memory.get("stats") or {}
    # cgroup v1 names it total_inactive_file, v2 inactive_file (Docker's CLI does the same).
    for key in ("total_inactive_file", "inactive_file"):
        if key in details and details[key] < usage:
            return usage - details[key]
    return usage


def stats_cpu_seconds(stats: dict) -> float | None:
    usage = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
    return None if usage is None else usage / 1e9


def process_role(arguments: list[str]) -> str | None:
    """'hub' for the jupyterhub process, 'proxy' for configurable-http-proxy, else None."""
    names = [os.path.basename(argument) for argument in arguments[:2]]
    if "configurable-http-proxy" in names:
        return "proxy"
    if "jupyterhub" in names:
        return "hub"
    return None


def cpu_model(cpuinfo: str) -> str:
    found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    return found.group(1).strip() if found else "unknown"


def counter_line(phases: list[str]) -> str:
    """'12/30 ready, 3 starting, 15 queued': the live view of the burst."""
    total = len(phases)
    ready = sum(phase in ("ready", "done") for phase in phases)
    parts = [f"{ready}/{total} ready ({phases.count('done')} ran the cell)"]
    parts += [f"{phases.count(phase)} {phase}" for phase in ("starting", "queued", "logging in")]
    parts.append(f"{phases.count('failed')} failed")
    return ", ".join(parts)


@dataclass
class AttendeeRecord:
    name: str
    phase: str = "logging in"
    # Durations in seconds; None when the attendee did not get that far.
    login_s: float | None = None
    queue_wait_s: float | None = None
    server_start_s: float | None = None
    login_to_ready_s: float | None = None
    first_cell_s: float | None = None
    # From the attendee container's cgroup, right after ready.
    container_cpu_s: float | None = None
    memory_idle_bytes: int | None = None
    memory_torch_bytes: int | None = None
    # Moments in seconds from the burst's start.
    login_at: float | None = None
    spawn_at: float | None = None
    ready_at: float | None = None
    cell_done_at: float | None = None
    failed_at: float | None = None
    failure: str | None = None
    cell_output: str | None = None


def timeline_segments(record: AttendeeRecord) -> list[tuple[str, float, float]]:
    """(phase, start, end) bars of one attendee: login, queued, starting, ready → cell done."""
    segments = []
    if record.login_at is not None:
        end = record.spawn_at if record.spawn_at is not None else record.failed_at
        if end is not None:
            segments.append(("login", record.login_at, end))
    if record.spawn_at is not None:
        started = record.spawn_at + (record.queue_wait_s or 0.0)
        end = record.ready_at if record.ready_at is not None else record.failed_at
        if record.queue_wait_s:
            segments.append(("queued", record.spawn_at, min(started, end or started)))
        if end is not None and end > started:
            segments.append(("starting", started, end))
    if record.ready_at is not None:
        end = record.cell_done_at if record.cell_done_at is not None else record.failed_at
        if end is not None:
            segments.append(("ready → cell done", record.ready_at, end))
    return segments


@dataclass(frozen=True)
class Metric:
    label: str
    unit: str
    field: str
    floor: str | None  # key in the floors, or None where nothing is a floor


METRICS = (
    Metric("login", "s", "login_s", "login_s"),
    Metric("queue wait", "s", "queue_wait_s", None),
    Metric("server start", "s", "server_start_s", "server_start_s"),
    # The goal for one attendee alone: login → ready near a bare container's start.
    Metric("login → ready", "s", "login_to_ready_s", "server_start_s"),
    Metric("first cell", "s", "first_cell_s", "first_cell_s"),
    Metric("CPU per spawn: container", "CPU-s", "container_cpu_s", "container_cpu_s"),
    Metric("CPU per spawn: total", "CPU-s", "total_cpu_s", "container_cpu_s"),
    Metric("memory: idle attendee", "MiB", "memory_idle_bytes", "memory_idle_bytes"),
    Metric("memory: attendee with torch", "MiB", "memory_torch_bytes", None),
)


def _scaled(value: float | None, unit: str) -> float | None:
    return None if value is None else value / MiB if unit == "MiB" else value


def build_report(
    records: list[AttendeeRecord],
    floors: dict,
    hub_usage: dict,
    host: dict,
) -> dict:
    """Everything the rehearsal learnt, as one JSON-ready dict (the table is made from it)."""
    count = len(records)
    hub_cpu_per_spawn = (
        hub_usage["hub_cpu_s"] / count if count and hub_usage.get("hub_cpu_s") is not None else None
    )
    columns = {metric.field: [] for metric in METRICS}
    for record in records:
        if record.failure is not None:
            continue
        for metric in METRICS:
            if metric.field == "total_cpu_s":
                value = (
                    record.container_cpu_s + hub_cpu_per_spawn
                    if record.container_cpu_s is not None and hub_cpu_per_spawn is not None
                    else None
                )
            else:
                value = getattr(record, metric.field)
            if value is not None:
                columns[metric.field].append(_scaled(value, metric.unit))
    metrics = {}
    for metric in METRICS:
        values = columns[metric.field]
        floor = _scaled(floors.get(metric.floor), metric.unit) if metric.floor else None
        p50, p95, worst = (percentile(values, f) for f in (0.5, 0.95, 1.0))
        metrics[metric.field] = {
            "label": metric.label,
            "unit": metric.unit,
            "count": len(values),
            "p50": p50,
            "p95": p95,
            "max": worst,
            "floor": floor,
            "p50_ratio": ratio(p50, floor),
            "max_ratio": ratio(worst, floor),
        }
    ready = [record.ready_at for record in records if record.ready_at is not None]
    # Moments count from the burst's start, when the first request went out.
    makespan = max(ready) if ready else None
    total_cpu = metrics["total_cpu_s"]["p50"]
    cpu_floor = count * total_cpu / host["cores"] if total_cpu and host.get("cores") else None
    return {
        "attendees": count,
        "host": host,
        "floors": floors,
        "metrics": metrics,
        "hub": {
            "cpu_s_per_spawn": hub_cpu_per_spawn,
            **{key: value for key, value in hub_usage.items()},
        },
        "failures": [
            {"name": record.name, "message": record.failure}
            for record in records
            if record.failure is not None
        ],
        "makespan_s": makespan,
        "cpu_floor_s": cpu_floor,
        "makespan_ratio": ratio(makespan, cpu_floor),
        "first_ready_s": min(ready) if ready else None,
        "records": [asdict(record) for record in records],
    }


def _number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _size(value: int | float | None) -> str:
    return "n/a" if value is None else human_size(value)


def render_table(report: dict) -> str:
    """The report as the organizer reads it on the terminal."""
    host = report["host"]
    concurrency = host.get("spawn_concurrency")
    lines = [
        f"Rehearsal: {report['attendees']} attendees on {host['cores']} cores, "
        f"{human_size(host['memory_bytes'])}, {host['cpu_model']}; spawn concurrency: "
        f"{concurrency if concurrency is not None else 'not reported'}",
        "",
        f"{'':34}{'p50':>9}{'p95':>9}{'max':>9}{'floor':>9}{'p50/floor':>11}{'max/floor':>11}",
    ]
    for metric in report["metrics"].values():
        lines.append(
            f"{metric['label'] + ' (' + metric['unit'] + ')':34}"
            + "".join(
                f"{_number(metric[key], 1 if metric['unit'] == 'MiB' else 2):>9}"
                for key in ("p50", "p95", "max", "floor")
            )
            + f"{_times(metric['p50_ratio']):>11}{_times(metric['max_ratio']):>11}"
        )
    hub = report["hub"]
    lines += [
        "",
        f"hub CPU per spawn:        {_number(hub.get('cpu_s_per_spawn'))} CPU-s "
        f"(jupyterhub and configurable-http-proxy across the burst ÷ {report['attendees']})",
        f"hub memory (jupyterhub):  {_size(hub.get('hub_rss_bytes'))} (peak RSS)",
        f"proxy memory (CHP):       {_size(hub.get('proxy_rss_bytes'))} (peak RSS)",
    ]
    if hub.get("https_proxy_memory_bytes") is not None:
        lines.append(f"https proxy container:    {_size(hub['https_proxy_memory_bytes'])}")
    lines += [
        f"first attendee ready:     {_number(report['first_ready_s'], 1)} s",
        f"burst makespan:           {_number(report['makespan_s'], 1)} s, "
        f"{_times(report['makespan_ratio'])} the CPU floor of "
        f"{_number(report['cpu_floor_s'], 1)} s (N × one spawn's CPU-s ÷ cores)",
        f"failures:                 {len(report['failures'])}",
    ]
    warming = report.get("warming")
    if warming is not None:
        lines.insert(
            -1,
            f"warming (ahead of time):  {_number(warming['seconds'], 1)} s for "
            f"{warming['ready']} servers, {_times(warming['ratio'])} the CPU floor of "
            f"{_number(warming['cpu_floor_s'], 1)} s (N × one spawn's CPU-s ÷ cores); then "
            f"{_number(warming.get('settled_s'), 0)} s until the host was quiet",
        )
    lines += [f"  {failure['name']}: {failure['message']}" for failure in report["failures"]]
    return "\n".join(lines)


def render_comparison(rooms: dict) -> str:
    """The two rooms side by side, p50 (p95), for what an attendee feels at 09:00."""
    lines = [f"{'side by side, p50 (p95)':34}{WALK_IN:>20}{WARM:>20}"]
    for field in ("login_to_ready_s", "first_cell_s"):
        cells = []
        for room_name in ROOMS:
            metric = rooms[room_name]["metrics"][field]
            cells.append(f"{_number(metric['p50'])} ({_number(metric['p95'])}) s")
        label = rooms[WALK_IN]["metrics"][field]["label"]
        lines.append(f"{label:34}" + "".join(f"{cell:>20}" for cell in cells))
    return "\n".join(lines)


def draw_timeline(
    records: list[AttendeeRecord], makespan: float | None, path: Path, title: str = "Rehearsal"
) -> None:
    """One bar per attendee: login, queued, starting, ready → cell done."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {
        "login": "#9e9e9e",
        "queued": "#f4a261",
        "starting": "#2a6f97",
        "ready → cell done": "#52b788",
    }
    figure, axes = plt.subplots(figsize=(10, 2.2 + 0.28 * len(records)))
    shown = set()
    for row, record in enumerate(records):
        for phase, start, end in timeline_segments(record):
            axes.barh(
                row,
                end - start,
                left=start,
                color=colours[phase],
                label=None if phase in shown else phase,
            )
            shown.add(phase)
        if record.failure is not None and record.failed_at is not None:
            axes.plot(
                record.failed_at,
                row,
                "x",
                color="#c1121f",
                label=None if "failed" in shown else "failed",
            )
            shown.add("failed")
    axes.set_yticks(range(len(records)), [record.name for record in records], fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("seconds from the burst start")
    axes.set_title(
        f"{title}\n{len(records)} attendee{'' if len(records) == 1 else 's'}, makespan "
        f"{'n/a' if makespan is None else f'{makespan:.1f} s'}",
        fontsize=10,
    )
    axes.set_xlim(left=0)
    handles, labels = axes.get_legend_handles_labels()
    order = [*colours, "failed"]
    shown_in_order = sorted(
        zip(labels, handles, strict=True), key=lambda item: order.index(item[0])
    )
    figure.legend(
        [handle for _, handle in shown_in_order],
        [label for label, _ in shown_in_order],
        loc="lower center",
        ncol=5,
        fontsize=8,
    )
    # Room at the bottom for the legend, below the axis label.
    figure.tight_layout(rect=(0, 0.35 / figure.get_figheight(), 1, 1))
    figure.savefig(path, dpi=100)
    plt.close(figure)


# --- Docker and the hub's processes ------------------------------------------------------------

_per_thread = threading.local()


def _docker() -> docker.DockerClient:
    """This thread's own client: docker-py's sessions are not thread-safe (see disks.py)."""
    client = getattr(_per_thread, "client", None)
    if client is None:
        client = _per_thread.client = docker.from_env()
    return client


def container_stats(name: str) -> dict:
    """One sample of a container's cgroup accounting (Docker's stats API, one-shot)."""
    return _docker().api.stats(name, stream=False, one_shot=True)


def hub_processes() -> dict[str, int]:
    """pid of the jupyterhub and configurable-http-proxy processes in this container."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # ended meanwhile
        role = process_role([argument.decode(errors="replace") for argument in arguments])
        if role is not None and role not in found:
            found[role] = int(entry.name)
    return found


def host_busy_cores(stat: str) -> tuple[float, float]:
    """(busy, total) CPU time in ticks from /proc/stat's first line (the whole host)."""
    ticks = [int(value) for value in stat.splitlines()[0].split()[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle and iowait
    return sum(ticks) - idle, sum(ticks)


async def settle(limit_s: float, progress=lambda line: None) -> float:
    """Wait until the host is quiet (under SETTLE_BUSY_CORES busy for SETTLE_WINDOW_S), as a
    warm room is by the time people arrive; the seconds it took (at most `limit_s`)."""
    started = time.monotonic()
    before = host_busy_cores(Path("/proc/stat").read_text())
    while time.monotonic() - started < limit_s:
        await asyncio.sleep(SETTLE_WINDOW_S)
        after = host_busy_cores(Path("/proc/stat").read_text())
        busy = (after[0] - before[0]) / max(after[1] - before[1], 1) * (os.cpu_count() or 1)
        before = after
        if busy < SETTLE_BUSY_CORES:
            break
        progress(f"warm room: settling, {busy:.1f} cores busy")
    return time.monotonic() - started


def process_usage(pid: int) -> tuple[float, int] | None:
    """(CPU seconds used so far, resident memory in bytes) of one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    # utime and stime: fields 14 and 15 of stat, counted after the command name.
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return cpu, int(rss.group(1)) * 1024 if rss else 0


class HubSampler:
    """CPU of the hub's processes across the burst, and their peak memory."""

    def __init__(self):
        self.pids = hub_processes()
        self.start = {role: process_usage(pid) for role, pid in self.pids.items()}
        self.peak_rss = dict.fromkeys(self.pids, 0)
        self.last = dict(self.start)

    def sample(self) -> None:
        for role, pid in self.pids.items():
            usage = process_usage(pid)
            if usage is not None:
                self.last[role] = usage
                self.peak_rss[role] = max(self.peak_rss[role], usage[1])

    def result(self) -> dict:
        self.sample()
        spent = [
            self.last[role][0] - self.start[role][0]
            for role in self.pids
            if self.start.get(role) and self.last.get(role)
        ]
        return {
            "hub_cpu_s": sum(spent) if spent else None,
            "hub_rss_bytes": self.peak_rss.get("hub") or None,
            "proxy_rss_bytes": self.peak_rss.get("proxy") or None,
        }


def https_proxy_memory() -> int | None:
    """Memory of the compose `proxy` service (HTTPS) of this hub's project, when it runs."""
    client = _docker()
    project = own_labels(client).get(COMPOSE_PROJECT_LABEL)
    if not project:
        return None
    filters = {"label": [f"{COMPOSE_PROJECT_LABEL}={project}", f"{COMPOSE_SERVICE_LABEL}=proxy"]}
    for container in client.containers.list(filters=filters):
        return stats_memory(container_stats(container.id))
    return None


def host_facts(settings: WorkshopSettings, info: dict) -> dict:
    try:
        model = cpu_model(Path("/proc/cpuinfo").read_text())
    except OSError:
        model = "unknown"
    # The hub's spawn queue reports its concurrency from the settings and the cores (when
    # this hub has one: older hubs start every spawn at once).
    concurrency_of = getattr(room, "spawn_concurrency", None)
    return {
        "cores": info["NCPU"],
        "memory_bytes": info["MemTotal"],
        "cpu_model": model,
        "spawn_concurrency": concurrency_of(settings, info["NCPU"]) if concurrency_of else None,
    }


def room_size(settings: WorkshopSettings, info: dict) -> int:
    profiles = [cpu_profile(settings)] + ([gpu_profile(settings)] if settings.gpus else [])
    return room.max_attendees(settings, profiles, info["MemTotal"])


# --- the floors ------------------------------------------------------------------------------


def _wait_for_api(url: str, container, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with _direct.open(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        container.reload()
        if container.status == "exited":
            tail = container.logs(tail=5).decode(errors="replace").strip()
            raise RehearsalError(f"the bare lab container exited: {tail}")
        time.sleep(0.1)
    raise RehearsalError(f"the bare lab container did not answer within {FLOOR_START_TIMEOUT_S} s")


def measure_floors(settings: WorkshopSettings, progress) -> dict:
    """What the machine needs for one server and one cell with nothing else running."""
    client = _docker()
    started = time.monotonic()
    hash_password(secrets.token_urlsafe(12))
    login_floor = time.monotonic() - started

    network = attendee_network(settings.instance)
    token = secrets.token_hex(16)
    progress(f"floor: a bare {settings.cpu_image} container with the attendees' limits")
    started = time.monotonic()
    container = client.containers.run(
        settings.cpu_image,
        [
            "jupyter",
            "lab",
            "--ip=0.0.0.0",
            f"--port={SERVER_PORT}",
            "--no-browser",
            f"--IdentityProvider.token={token}",
        ],
        name=f"{settings.instance}-{NAME_PREFIX}-floor-{secrets.token_hex(2)}",
        detach=True,
        network=network,
        # The home is a tmpfs (as for attendees) without the work folder the image starts in.
        working_dir=HOME_DIR,
        labels={LABEL_REHEARSAL: "floor"},
        **container_limits(settings, cpu_profile(settings)),
    )
    try:
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
        _wait_for_api(
            f"http://{address}:{SERVER_PORT}/api?token={token}",
            container,
            started + FLOOR_START_TIMEOUT_S,
        )
        server_start = time.monotonic() - started
        stats = container_stats(container.id)
        started = time.monotonic()
        exit_code, output = container.exec_run(["python", "-c", FIRST_CELL])
        first_cell = time.monotonic() - started
        if exit_code != 0 or FIRST_CELL_OUTPUT not in output.decode(errors="replace"):
            raise RehearsalError(
                f"lab 1's first cell failed in a bare lab container: {output.decode()[-300:]}"
            )
    finally:
        container.remove(force=True)
    floors = {
        "login_s": login_floor,
        "server_start_s": server_start,
        "first_cell_s": first_cell,
        "container_cpu_s": stats_cpu_seconds(stats),
        "memory_idle_bytes": stats_memory(stats),
    }
    progress(
        f"floor: server answers after {server_start:.1f} s, idle "
        f"{_size(floors['memory_idle_bytes'])}, "
        f"first cell {first_cell:.1f} s, login hash {login_floor * 1000:.0f} ms"
    )
    return floors


# --- one simulated attendee --------------------------------------------------------------------


def _cookie(session: aiohttp.ClientSession, name: str, path: str) -> str:
    for morsel in session.cookie_jar:
        if morsel.key == name and morsel["path"] == path:
            return morsel.value
    return ""


def page_message(page: str) -> str:
    """The error a person reads on a hub page (the login form's error, the spawn form's alert,
    or the error box), whole, as one line of text; else the page's last words."""
    for pattern in (
        r'<p class="login_error">(.*?)</p>',
        r'class="spawn-error-msg[^"]*">(.*?)</p>',
        r'<div class="error">(.*?)</div>',
    ):
        found = re.search(pattern, page, re.DOTALL)
        if found:
            return _text_of(found.group(1))
    return _text_of(page)[-300:]


def _text_of(markup: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


class Burst:
    """N attendees pressing start together, with the live counter on stderr."""

    def __init__(self, settings, names, room_code, profile, hub_url, progress):
        self.settings = settings
        self.records = [AttendeeRecord(name) for name in names]
        self.room_code = room_code
        self.profile = profile
        self.hub_url = hub_url
        self.progress = progress
        self.started = 0.0
        self._last_line = ""

    def now(self) -> float:
        return time.monotonic() - self.started

    def show(self, record: AttendeeRecord, phase: str) -> None:
        record.phase = phase
        line = counter_line([record.phase for record in self.records])
        if line != self._last_line:
            self._last_line = line
            self.progress(f"{self.now():6.1f} s  {line}")

    async def run(self) -> None:
        self.started = time.monotonic()
        await asyncio.gather(*(self.attend(record) for record in self.records))

    def give_up(self, why: str) -> None:
        """The time is up: whoever has not finished failed."""
        for record in self.records:
            if record.phase not in ("done", "failed"):
                record.failure, record.failed_at = why, self.now()
                record.phase = "failed"

    async def attend(self, record: AttendeeRecord) -> None:
        jar = aiohttp.CookieJar(unsafe=True)  # the hub is an IP address: 127.0.0.1
        # No per-request limit: a long queue keeps the event stream open; --timeout bounds it.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
        async with aiohttp.ClientSession(
            base_url=self.hub_url, cookie_jar=jar, timeout=timeout
        ) as session:
            try:
                await self._attend(session, record)
                self.show(record, "done")
            except Exception as error:  # counted in the report, whatever it is; never raised
                known = isinstance(error, AttendeeFailed)
                record.failure = str(error) if known else f"{type(error).__name__}: {error}"
                record.failed_at = self.now()
                self.show(record, "failed")

    async def _attend(self, session: aiohttp.ClientSession, record: AttendeeRecord) -> None:
        next_url = await self._log_in(session, record)
        await self._until_ready(session, record, next_url)
        record.login_to_ready_s = record.ready_at - record.login_at
        container, _ = docker_names(self.settings.instance, record.name)
        idle = await asyncio.to_thread(container_stats, container)
        record.container_cpu_s = stats_cpu_seconds(idle)
        record.memory_idle_bytes = stats_memory(idle)
        await self._run_first_cell(session, record)
        with_torch = await asyncio.to_thread(container_stats, container)
        record.memory_torch_bytes = stats_memory(with_torch)

    def room_code_of(self, name: str) -> str:
        """What the attendee types in the room-code box: the room's code."""
        return self.room_code

    async def _log_in(self, session: aiohttp.ClientSession, record: AttendeeRecord) -> str:
        """The login form with a password of their own; where the hub sends them next."""
        async with session.get("/hub/login") as response:
            await response.read()
        record.login_at = self.now()
        form = {
            "username": record.name,
            "password": secrets.token_urlsafe(16),
            "room_code": self.room_code_of(record.name),
            "_xsrf": _cookie(session, "_xsrf", "/hub/"),
        }
        async with session.post("/hub/login", data=form, allow_redirects=False) as response:
            page = await response.text()
            if response.status != 302:
                raise AttendeeFailed(
                    f"login refused (HTTP {response.status}): {page_message(page)}"
                )
            next_url = response.headers["Location"]
        record.spawn_at = self.now()
        record.login_s = record.spawn_at - record.login_at
        return next_url

    async def _until_ready(
        self, session: aiohttp.ClientSession, record: AttendeeRecord, next_url: str
    ) -> None:
        """Press start and follow the spawn until the server is ready."""
        await self._press_start(session, record.name, next_url)
        self.show(record, "starting")
        await self._follow_progress(session, record)
        record.server_start_s = record.ready_at - record.spawn_at - record.queue_wait_s

    async def _press_start(self, session: aiohttp.ClientSession, name: str, next_url: str) -> None:
        if self.profile:
            request = session.post(
                f"/hub/spawn/{name}",
                data={"profile": self.profile, "_xsrf": _cookie(session, "_xsrf", "/hub/")},
            )
        else:
            # With one profile, following the hub's redirect after login starts the server.
            request = session.get(next_url)
        async with request as response:
            page = await response.text()
            if response.status >= 400:
                raise AttendeeFailed(
                    f"start refused (HTTP {response.status}): {page_message(page)}"
                )
            if 'name="profile"' in page:
                raise AttendeeFailed("the hub shows a profile form: rehearse with --profile cpu")

    async def _follow_progress(self, session: aiohttp.ClientSession, record: AttendeeRecord):
        """The spawn page's event stream, until ready or failed."""
        url = f"/hub/api/users/{record.name}/server/progress"
        async with session.get(url, headers={"Accept": "text/event-stream"}) as response:
            if response.status != 200:
                text = (await response.text())[:300]
                raise AttendeeFailed(f"no spawn progress (HTTP {response.status}): {text}")
            async for line in response.content:
                event = parse_event(line)
                if event is None:
                    continue
                if "queue_wait" in event and record.queue_wait_s is None:
                    record.queue_wait_s = float(event["queue_wait"])
                phase = event_phase(event)
                if phase == "failed":
                    raise AttendeeFailed(event.get("message") or "spawn failed")
                if phase == "ready":
                    record.ready_at = self.now()
                    if record.queue_wait_s is None:
                        record.queue_wait_s = 0.0  # a hub without a queue, or no wait
                    self.show(record, "ready")
                    return
                if phase is not None:
                    self.show(record, phase)
        raise AttendeeFailed("the spawn's event stream ended before the server was ready")

    async def _run_first_cell(self, session: aiohttp.ClientSession, record: AttendeeRecord):
        """Open JupyterLab (the server's OAuth handshake), then run lab 1's cell in a new kernel
        over the websocket, as JupyterLab does."""
        name = record.name
        async with session.get(f"/user/{name}/lab") as response:
            await response.read()
            if response.status != 200:
                raise AttendeeFailed(f"JupyterLab did not open (HTTP {response.status})")
        started = self.now()
        headers = {"X-XSRFToken": _cookie(session, "_xsrf", f"/user/{name}/")}
        async with session.post(
            f"/user/{name}/api/kernels", json={"name": "python3"}, headers=headers
        ) as response:
            if response.status != 201:
                raise AttendeeFailed(f"no kernel (HTTP {response.status})")
            kernel = (await response.json())["id"]
        output = await self._execute(session, f"/user/{name}/api/kernels/{kernel}/channels")
        record.cell_done_at = self.now()
        record.first_cell_s = record.cell_done_at - started
        record.cell_output = output.strip()
        if FIRST_CELL_OUTPUT not in output:
            raise AttendeeFailed(f"lab 1's cell printed {output.strip()[:200]!r}")

    async def _execute(self, session: aiohttp.ClientSession, channels: str) -> str:
        request = execute_request(FIRST_CELL, NAME_PREFIX)
        replies = CellReplies(request)
        async with session.ws_connect(channels) as socket_:
            await socket_.send_json(request)
            async for message in socket_:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                if replies.add(json.loads(message.data)):
                    if replies.error:
                        raise AttendeeFailed(f"lab 1's cell raised {replies.error}")
                    return replies.output
        raise AttendeeFailed("the kernel's websocket closed before the cell finished")


class WarmBurst(Burst):
    """N rostered attendees whose servers run already, logging in with their cards together:
    each lands in their JupyterLab with no spawn page, then runs the same cell."""

    def __init__(self, settings, cards, profile, hub_url, progress):
        super().__init__(settings, list(cards), "", profile, hub_url, progress)
        self.cards = cards

    def room_code_of(self, name: str) -> str:
        """A rostered attendee types their card's one-time password there."""
        return self.cards[name]

    async def _until_ready(
        self, session: aiohttp.ClientSession, record: AttendeeRecord, next_url: str
    ) -> None:
        """Follow the hub to JupyterLab: the server runs already, no spawn page on the way."""
        async with session.get(next_url) as response:
            await response.read()
            visited = [str(step.url) for step in response.history] + [str(response.url)]
            if response.status != 200 or f"/user/{record.name}/" not in str(response.url):
                raise AttendeeFailed(f"did not land in JupyterLab (HTTP {response.status})")
            if any("/hub/spawn" in url for url in visited):
                raise AttendeeFailed("the server was not warm: the hub showed its spawn page")
        record.ready_at = self.now()
        record.queue_wait_s, record.server_start_s = 0.0, 0.0
        self.show(record, "ready")


def put_on_roster(names: list[str], store: PasswordStore) -> dict[str, str]:
    """Each simulated attendee held with a one-time password, as `roster add` holds them
    (the organizer's roster file is left alone); name -> the card's password."""
    cards = {name: credentials.generate_access_code() for name in names}
    for name, card in cards.items():
        if not store.claim(name, one_time_hash(card)):
            raise RehearsalError(f"{name} is taken already: run the rehearsal again")
    return cards


# --- cleanup ---------------------------------------------------------------------------------


async def rehearsal_users(api: HubApi) -> list[str]:
    try:
        users = await api.call("GET", "/users")
    except ResetFailed as error:
        raise RehearsalError(
            f"the hub refused the rehearsal's token ({error}): restart the hub "
            "(docker compose up -d) so it knows the rehearsal service"
        ) from None
    return [user["name"] for user in users if REHEARSAL_NAME.fullmatch(user["name"])]


async def clean_up(settings, names, api: HubApi, deadline: float, progress) -> list[str]:
    """Every simulated attendee gone: user, server, container, volume, disk. Problems listed."""
    client = _docker()
    disks = WorkDisks(client, own_image(client), settings.instance, settings.disk_limit, log)
    store = PasswordStore(credentials.ATTENDEE_PASSWORDS_FILE)
    problems = []
    removed = 0
    limit = asyncio.Semaphore(8)

    def remove_storage(name: str) -> None:
        # In a worker thread, with that thread's own Docker client.
        attendee_removal.remove_storage(_docker(), disks, settings.instance, name, store)

    async def remove(name: str) -> None:
        nonlocal removed
        async with limit:
            try:
                await attendee_removal.delete_hub_user(api, name, deadline)
                await asyncio.to_thread(remove_storage, name)
            except (
                RemovalFailed,
                ResetFailed,
                DiskError,
                OSError,
                docker.errors.DockerException,
            ) as error:
                problems.append(f"{name}: {error}")
            removed += 1
            progress(f"cleanup: {removed}/{len(names)} simulated attendees removed")

    await asyncio.gather(*(remove(name) for name in names))
    return problems


# --- the whole run ---------------------------------------------------------------------------


def default_output() -> Path:
    return OUTPUT_ROOT / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def check_request(settings: WorkshopSettings, attendees: int, timeout: float, info: dict) -> None:
    """Bad input, as one line naming the fix."""
    most = min(MAX_REHEARSAL_ATTENDEES, room_size(settings, info))
    if not 1 <= attendees <= most:
        raise RehearsalError(
            f"--attendees must be between 1 and {most} (the room size, at most "
            f"{MAX_REHEARSAL_ATTENDEES}); got {attendees}"
        )
    if timeout < MIN_TIMEOUT_S:
        raise RehearsalError(f"--timeout must be at least {MIN_TIMEOUT_S} s; got {timeout:g}")


def read_token() -> str:
    try:
        return credentials.REHEARSAL_TOKEN_FILE.read_text().strip()
    except FileNotFoundError:
        raise RehearsalError(
            "the hub has no rehearsal token yet: restart it with this version "
            "(docker compose up -d), then run this again"
        ) from None


def check_hub(hub_url: str) -> None:
    try:
        with _direct.open(f"{hub_url}/hub/health", timeout=10) as response:
            if response.status == 200:
                return
    except (urllib.error.URLError, OSError) as error:
        reason = error
    else:
        reason = f"HTTP {response.status}"
    raise RehearsalError(
        f"the hub does not answer at {hub_url} ({reason}): start it (docker compose up -d) and "
        "run this inside it: docker compose exec hub workshop-hub rehearse"
    )


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _rehearse(
    settings, attendees, timeout, output, profile, room_code, hub_url, rooms=ROOMS
) -> dict:
    run_deadline = time.monotonic() + timeout
    token = read_token()
    info = await asyncio.to_thread(lambda: _docker().info())
    host = host_facts(settings, info)
    api = HubApi(f"{hub_url}/hub/api", token)
    leftovers = await rehearsal_users(api)
    if leftovers:
        _progress(f"removing {len(leftovers)} simulated attendees of an earlier rehearsal")
        await clean_up(settings, leftovers, api, time.monotonic() + 120, _progress)
    floors = await asyncio.to_thread(measure_floors, settings, _progress)
    # Each room gets its share of the time, cleanup included.
    share = (run_deadline - time.monotonic()) / len(rooms)
    reports, problems = {}, []
    for room_name in rooms:
        names = rehearsal_names(attendees)
        room_deadline = time.monotonic() + share
        try:
            reports[room_name] = await _rehearse_room(
                room_name,
                settings,
                names,
                floors,
                host,
                api,
                profile,
                room_code,
                hub_url,
                room_deadline,
            )
        finally:
            _progress(f"cleanup: stopping and deleting {len(names)} simulated attendees")
            cleanup = await clean_up(
                settings, names, api, max(room_deadline, time.monotonic() + 60), _progress
            )
            for problem in cleanup:
                _progress(f"cleanup problem: {problem}")
            problems += cleanup
        draw_timeline(
            reports[room_name]["records_objects"],
            reports[room_name]["makespan_s"],
            output_path(output, f"timeline-{room_name}.png"),
            ROOM_TITLES[room_name],
        )
    for report in reports.values():
        del report["records_objects"]
    if WARM in reports:
        compare_warming_with_spawns(reports, attendees, host)
    report = {"attendees": attendees, "host": host, "floors": floors, "rooms": reports}
    report["cleanup_problems"] = problems
    (output / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def compare_warming_with_spawns(reports: dict, attendees: int, host: dict) -> None:
    """The warming's goal: within 2x of N x one spawn's CPU-s / cores, the floor of a burst's
    makespan. One spawn's CPU-s is the walk-in room's (a start through the hub, measured in
    this run), else the warm room's own."""
    warming = reports[WARM]["warming"]
    spawn_cpu = reports.get(WALK_IN, reports[WARM])["metrics"]["total_cpu_s"]["p50"]
    cores = host.get("cores")
    floor = attendees * spawn_cpu / cores if spawn_cpu and cores else None
    warming["cpu_floor_s"] = floor
    warming["ratio"] = ratio(warming["seconds"], floor)


def output_path(output: Path, name: str) -> Path:
    output.mkdir(parents=True, exist_ok=True)
    return output / name


async def _rehearse_room(
    room_name, settings, names, floors, host, api, profile, room_code, hub_url, deadline
) -> dict:
    """One room's burst (the warm room's warming first), measured like the other's."""
    warming = None
    if room_name == WARM:
        store = PasswordStore(credentials.ATTENDEE_PASSWORDS_FILE)
        cards = await asyncio.to_thread(put_on_roster, names, store)
        _progress(f"warm room: starting {len(names)} rostered servers ahead, in line")
        warmed = await warm_room.warm_room(
            api,
            names,
            0,
            profile,
            _progress,
            timeout=max(deadline - CLEANUP_RESERVE_S - time.monotonic(), 1),
            warm_file=None,
        )
        settled = await settle(
            min(SETTLE_S_PER_SERVER * len(names), SETTLE_LIMIT_S), progress=_progress
        )
        warming = {
            "seconds": warmed.seconds,
            "ready": len(warmed.ready),
            "failed": warmed.failed,
            "settled_s": settled,
        }
        burst = WarmBurst(settings, cards, profile, hub_url, _progress)
        _progress(f"burst: {len(names)} rostered attendees log in with their cards now")
    else:
        burst = Burst(settings, names, room_code, profile, hub_url, _progress)
        _progress(f"burst: {len(names)} simulated attendees press start now")
    sampler = HubSampler()
    sampling = asyncio.create_task(_sample_every_second(sampler))
    try:
        await asyncio.wait_for(burst.run(), max(deadline - CLEANUP_RESERVE_S - time.monotonic(), 1))
    except TimeoutError:
        burst.give_up("not done within its share of --timeout")
    finally:
        sampling.cancel()
    hub_usage = sampler.result()
    hub_usage["https_proxy_memory_bytes"] = await asyncio.to_thread(https_proxy_memory)
    report = build_report(burst.records, floors, hub_usage, host)
    if warming is not None:
        report["warming"] = warming
        report["failures"] += [
            {"name": name, "message": f"not warm: {why}"} for name, why in warmed.failed.items()
        ]
    report["records_objects"] = burst.records
    return report


async def _sample_every_second(sampler: HubSampler) -> None:
    while True:
        sampler.sample()
        await asyncio.sleep(1)


def rehearse(
    settings: WorkshopSettings,
    attendees: int,
    timeout: float,
    output: Path | None,
    profile: str | None,
    room_code: str,
    hub_url: str = HUB_URL,
    rooms: tuple[str, ...] = ROOMS,
) -> int:
    """Run the rehearsal; 0 when every simulated attendee ran the cell, 2 when some failed."""
    try:
        info = _docker().info()
    except docker.errors.DockerException as error:
        raise RehearsalError(
            f"Docker does not answer ({error}): run this inside the hub container, "
            "docker compose exec hub workshop-hub rehearse"
        ) from None
    check_request(settings, attendees, timeout, info)
    check_hub(hub_url)
    output = output or default_output()
    # Ctrl-C cancels the run and the cleanup still happens (asyncio.run handles SIGINT so),
    # also where the shell started this command with SIGINT ignored (a `docker exec` without
    # a terminal).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        report = asyncio.run(
            _rehearse(settings, attendees, timeout, output, profile, room_code, hub_url, rooms)
        )
    except KeyboardInterrupt:
        _progress("rehearsal interrupted; its simulated attendees were stopped and deleted")
        return 130
    for room_name, room_report in report["rooms"].items():
        print(f"== {ROOM_TITLES[room_name]}")
        print(render_table(room_report))
        print()
    if len(report["rooms"]) == len(ROOMS):
        print(render_comparison(report["rooms"]))
        print()
    print(f"report.json and the timelines are in {output} (the hub-data volume). Copy them out:")
    print(f'  docker cp "$(docker compose ps -q hub)":{output} .')
    failed = any(room_report["failures"] for room_report in report["rooms"].values())
    return 2 if failed or report["cleanup_problems"] else 0
