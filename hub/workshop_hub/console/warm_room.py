"""Warm the room: the rostered attendees' servers are running before anyone logs in.

`workshop-hub warm-room` (or the console at WORKSHOP_WARM_AT each day) asks the hub to start
the server of every rostered attendee who has not used their login card yet. The servers go
through the same line as everyone's (spawn_queue.py): WORKSHOP_SPAWN_CONCURRENCY at a time, at
the pace the host allows. Until WORKSHOP_WARM_HOLD has passed, the console tells the hub that
each warm server is in use (JupyterHub's activity API, as a server's own activity reports
do), so the idle culler leaves it for its attendee; an attendee who logs in uses their card,
and from then on their server is like anyone's. A warm server whose attendee never comes is
culled as idle once the hold is over.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..access import credentials
from ..access.passwords import PasswordStore
from ..access.roster import rostered_unused_names
from ..access.sessions import HubApi, ResetFailed
from .room_view import server_state

WARM_FILE = credentials.HUB_DATA_DIR / "warm-room.json"
# Start requests in flight at once: the hub answers each within its slow_spawn_timeout
# (10 s) and the line does the pacing, so this only keeps the requests themselves few.
REQUESTS_AT_ONCE = 8
POLL_SECONDS = 2.0
# How often the console renews a warm server's activity: well inside any idle timeout (the
# shortest WORKSHOP_IDLE_TIMEOUT is a minute) and the culler's own interval.
TOUCH_SECONDS = 30.0

log = logging.getLogger("workshop.warm_room")


class WarmRoomError(Exception):
    """The room could not be warmed; the message says why and what to do."""


@dataclass(frozen=True)
class WarmResult:
    ready: list[str]
    failed: dict[str, str]
    seconds: float
    hold_until: float


def _state(user: dict) -> str:
    """The default server's state as the console names it (running, queued, stopping,
    stopped...), from a user model of the REST API."""
    return server_state(user, has_container=False)[0]


async def _start(api: HubApi, name: str, options: dict, gate: asyncio.Semaphore) -> str | None:
    """Ask for `name`'s server (making the user first); None, or why it was refused."""
    async with gate:
        try:
            try:
                await api.call("POST", f"/users/{quote(name)}")
            except ResetFailed as failed:
                if failed.status != 409:  # 409: the user exists already
                    raise
            user = await api.call("GET", f"/users/{quote(name)}")
            if _state(user) != "stopped":
                return None
            await api.call("POST", f"/users/{quote(name)}/server", options)
        except ResetFailed as failed:
            if failed.status == 400 and "already" in str(failed):
                return None  # started by its attendee meanwhile
            return str(failed)
    return None


async def warm_room(
    api: HubApi,
    names: list[str],
    hold_seconds: float,
    profile: str | None = None,
    progress: Callable[[str], None] = print,
    timeout: float = 3600.0,
    warm_file: Path | None = WARM_FILE,
) -> WarmResult:
    """Start every server of `names` through the hub's line and wait until each is ready (or
    failed); then hold them from the idle culler for `hold_seconds` (written to `warm_file`;
    None for a rehearsal, which must not change the day's hold)."""
    started = time.monotonic()
    gate = asyncio.Semaphore(REQUESTS_AT_ONCE)
    options = {"profile": profile} if profile else {}
    progress(f"asking the hub for {len(names)} servers (they start in line, like everyone's)")
    refusals = await asyncio.gather(*(_start(api, name, options, gate) for name in names))
    failed = {name: why for name, why in zip(names, refusals, strict=True) if why}
    waiting = [name for name in names if name not in failed]
    ready: list[str] = []
    shown = None
    while waiting and time.monotonic() - started < timeout:
        states = await asyncio.gather(
            *(api.call("GET", f"/users/{quote(name)}") for name in waiting)
        )
        for name, user in zip(list(waiting), states, strict=True):
            state = _state(user)
            if state == "running":
                ready.append(name)
                waiting.remove(name)
            elif state == "stopped":
                failed[name] = "its server stopped while starting (the hub's log says why)"
                waiting.remove(name)
        line = f"{len(ready)} of {len(names)} ready, {len(waiting)} starting or in line"
        if line != shown:
            progress(line)
            shown = line
        if waiting:
            await asyncio.sleep(POLL_SECONDS)
    for name in waiting:
        failed[name] = f"not ready after {timeout:.0f} s"
    hold_until = time.time() + hold_seconds
    if warm_file is not None:
        remember_hold(hold_until, warm_file)
    return WarmResult(ready, failed, time.monotonic() - started, hold_until)


def remember_hold(hold_until: float, warm_file: Path = WARM_FILE) -> None:
    """Until when warm servers are kept from the culler (read by the console)."""
    warm_file.parent.mkdir(parents=True, exist_ok=True)
    credentials.write_atomically(
        warm_file, json.dumps({"hold_until": hold_until}) + "\n", mode=0o600
    )


def hold_until(warm_file: Path = WARM_FILE) -> float:
    """The end of the current hold, 0 when there is none (or the file cannot be read)."""
    try:
        return float(json.loads(warm_file.read_text(encoding="utf-8"))["hold_until"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def warm_names(store: PasswordStore, users: list[dict]) -> set[str]:
    """Rostered attendees whose server is up (or starting) and who have not logged in yet."""
    waiting = rostered_unused_names(store)
    return {user["name"] for user in users if user["name"] in waiting and _state(user) != "stopped"}


async def keep_warm_servers(api: HubApi, store: PasswordStore, users: Callable) -> int:
    """Report activity for each warm server while the hold lasts; how many were kept."""
    if time.time() >= hold_until():
        return 0
    now = datetime.datetime.now(datetime.UTC).isoformat()
    kept = 0
    for name in sorted(warm_names(store, await users())):
        body = {"last_activity": now, "servers": {"": {"last_activity": now}}}
        try:
            await api.call("POST", f"/users/{quote(name)}/activity", body)
            kept += 1
        except ResetFailed as failed:
            log.warning("could not keep %s's warm server from the culler: %s", name, failed)
    return kept


def next_warm_time(warm_at: str, now: datetime.datetime) -> datetime.datetime:
    """The next moment at WORKSHOP_WARM_AT ('HH:MM+HH:MM'), today's if it is still to come."""
    clock = datetime.time.fromisoformat(warm_at)
    today = now.astimezone(clock.tzinfo).date()
    moment = datetime.datetime.combine(today, clock)
    return moment if moment > now else moment + datetime.timedelta(days=1)


async def warm_every_day(
    warm_at: str,
    warm: Callable,
    clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
) -> None:
    """Run `warm()` at WORKSHOP_WARM_AT each day (the console's background task)."""
    while True:
        now = clock()
        moment = next_warm_time(warm_at, now)
        log.info("warming the room at %s", moment.isoformat())
        await asyncio.sleep((moment - now).total_seconds())
        try:
            await warm()
        except (WarmRoomError, ResetFailed) as error:
            log.error("warming the room failed: %s", error)
