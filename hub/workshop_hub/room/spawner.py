"""DockerSpawner with the workshop's profiles, limits and GPU places."""

from __future__ import annotations

import asyncio
import math
import time
from html import escape
from urllib.parse import urlparse

from docker.errors import APIError
from dockerspawner import DockerSpawner
from tornado import web
from traitlets import default

from ..services import CONSOLE_URL_ENV, announcement_feed_url, console_api_url
from .disks import DiskError
from .docker_host import explain_gpu_error, gpu_container_filters, gpu_device_request, gpu_holders
from .firewall import egress_network
from .gpu import GpusFull, GpuSlots, is_mig_device
from .profiles import (
    LABEL_GPU,
    LABEL_INSTANCE,
    LABEL_PROFILE,
    LABEL_USER,
    WORK_DIR,
    container_limits,
    gpu_memory_fraction,
)
from .spawn_queue import LeftTheLine
from .workshop import Workshop

# Once its turn has come, a server has this long to start (the wait in line is not counted).
START_TIMEOUT_SECONDS = 300
# How often to knock on the new server's port: cheap, and the hub's own wait (exponential,
# up to 5 s between tries) would leave a started server unused for seconds.
SERVER_POLL_SECONDS = 0.1
# How often the spawn page's estimate of the wait is refreshed without any other change.
PROGRESS_REFRESH_SECONDS = 2.0
# CPU weight of a server while it starts, then once it runs (Docker's default). At 09:00 the
# attendees already in run their first `import torch`, which costs more CPU than a start.
# Twice the weight moves the line faster (30 at once on 2 cores: p95 to ready 57 s instead of
# 60) and leaves kernels enough; eight times gave 53 s but made the first cells wait 9-15 s.
STARTING_CPU_SHARES = 2 * 1024
RUNNING_CPU_SHARES = 1024


class SpawnRefused(web.HTTPError):
    """A spawn that cannot happen, with the message JupyterHub shows the attendee.

    An HTTPError, because JupyterHub passes those through to the spawn page (anything else
    that fails within the first second becomes "Unhandled error"); `jupyterhub_message` is
    what its progress events show when the failure comes later.
    """

    def __init__(self, message: str):
        super().__init__(503, message)
        self.jupyterhub_message = message


class WorkshopSpawner(DockerSpawner):
    # The Workshop this hub serves, set once in jupyterhub_config.py. A class attribute, not
    # a config trait: traitlets deep-copies config values per spawner, and every spawner must
    # share the one table of GPU places.
    workshop: Workshop | None = None
    # What the spawn page shows once the turn has come: (message, percent), and how long
    # the spawn waited in line.
    _stage: tuple[str, int] | None = None
    _queue_wait: float = 0.0

    async def _options_form(self, spawner=None) -> str:
        if self.workshop.gpu_slots is not None:
            await self._refresh_gpu_places()
        return self._profile_form()

    def _profile_form(self) -> str:
        """Radio buttons, one per profile; no form at all when there is only one."""
        if len(self.workshop.profiles) < 2:
            return ""
        choices = []
        for profile in self.workshop.profiles:
            note, available = "", True
            slots = self.workshop.gpu_slots
            if profile.slug == "gpu" and slots is not None:
                free = slots.free_places()
                available = free > 0
                note = (
                    f"{free} of {slots.capacity} GPU places free."
                    if available
                    else f"All {slots.capacity} GPU places are taken: start on CPU, or try "
                    "again later."
                )
            choices.append((profile, note, available))
        default = next((profile.slug for profile, _, available in choices if available), None)
        items = [
            f'<div class="radio"><label><input type="radio" name="profile" '
            f'value="{profile.slug}"{" checked" if profile.slug == default else ""}'
            f"{'' if available else ' disabled'}> <b>{escape(profile.display_name)}</b>: "
            f"{escape(profile.description)} <strong>{escape(note)}</strong></label></div>"
            for profile, note, available in choices
        ]
        return "<p>Where should your labs run?</p>\n" + "\n".join(items)

    @default("options_form")
    def _default_options_form(self):
        # A callable, so free GPU places are counted when the form is shown.
        return self._options_form

    @default("post_stop_hook")
    def _default_post_stop_hook(self):
        # JupyterHub runs it after every stop, also when poll() found the server gone (then
        # stop() is never called): an attendee who shut their server down frees the place.
        return WorkshopSpawner._release_gpu

    def options_from_form(self, formdata):
        slug = (formdata.get("profile") or [self.workshop.profiles[0].slug])[0]
        if self.workshop.profile(slug) is None:
            offered = ", ".join(profile.slug for profile in self.workshop.profiles)
            raise web.HTTPError(
                400, f"There is no profile {slug!r} here; choose one of: {offered}."
            )
        return {"profile": slug}

    def _chosen_profile(self):
        slug = self.user_options.get("profile") or self.workshop.profiles[0].slug
        profile = self.workshop.profile(slug)
        if profile is None:
            offered = ", ".join(profile.slug for profile in self.workshop.profiles)
            raise SpawnRefused(f"There is no profile {slug!r} here; choose one of: {offered}.")
        return profile

    async def start(self):
        profile = self._chosen_profile()
        queue = self.workshop.spawn_queue
        self._stage = None
        self.log.info(
            "Spawn of %s joins the line (%d waiting, %d starting)",
            self.user.name,
            queue.waiting,
            queue.starting,
        )
        try:
            async with queue.turn(self.user.name) as place:
                self._queue_wait = place.waited
                # Both lines are read by the burst test: turns overlap at most the limit.
                self.log.info(
                    "Spawn turn of %s begins after %.1f s in line (%d waiting)",
                    self.user.name,
                    place.waited,
                    queue.waiting,
                )
                try:
                    return await asyncio.wait_for(
                        self._start_server(profile), START_TIMEOUT_SECONDS
                    )
                finally:
                    self.log.info("Spawn turn of %s ends", self.user.name)
        except LeftTheLine as left:
            self.log.info("%s left the line: %s", self.user.name, left)
            raise SpawnRefused(str(left)) from None
        except TimeoutError:
            raise SpawnRefused(
                f"Your server did not start within {START_TIMEOUT_SECONDS} s. Try again; if it "
                "happens again, show this message to the instructor."
            ) from None

    async def _start_server(self, profile):
        settings = self.workshop.settings
        self._enter_stage("Preparing your work folder", 35)
        self.image = profile.image
        host_config = container_limits(settings, profile)
        await self._prepare_work_disk()
        labels = {
            LABEL_INSTANCE: settings.instance,
            LABEL_USER: self.user.name,
            LABEL_PROFILE: profile.slug,
        }
        # The kernel reports each exercise check there and asks for solutions (labs/workshop_labs).
        self.environment = {"WORKSHOP_PROFILE": profile.slug, CONSOLE_URL_ENV: console_api_url()}
        # JupyterLab shows the instructor's announcement among its news notifications.
        self.args = [f"--LabApp.news_url={announcement_feed_url()}"]
        if profile.slug == "gpu":
            try:
                device = (await self._refresh_gpu_places()).acquire(self.user.name)
            except GpusFull as full:
                raise SpawnRefused(str(full)) from None
            host_config["device_requests"] = [gpu_device_request([device])]
            labels[LABEL_GPU] = device
            # A MIG slice's memory is the attendee's alone; a shared GPU's is split.
            fraction = 1.0 if is_mig_device(device) else gpu_memory_fraction(settings)
            self.environment["WORKSHOP_GPU_MEMORY_FRACTION"] = str(fraction)
            self.log.info("GPU %s assigned to %s", device, self.user.name)
        host_config["cpu_shares"] = STARTING_CPU_SHARES
        self.extra_host_config = host_config
        self.extra_create_kwargs = {"labels": labels}
        self._enter_stage("Starting your container", 50)
        try:
            started = await super().start()
        except APIError as error:
            self._release_gpu()
            if profile.slug == "gpu":
                raise SpawnRefused(
                    explain_gpu_error(error) + " Start on CPU instead: every lab runs there."
                ) from None
            reason = str(error.explanation or error).strip()
            raise SpawnRefused(
                f"Docker could not start your server ({reason}). Try again in a minute; "
                "if it persists, show this message to the instructor."
            ) from None
        except BaseException:
            self._release_gpu()
            raise
        if profile.slug == "gpu":
            self.workshop.gpu_slots.confirm(self.user.name)
        self._enter_stage("Starting JupyterLab", 70)
        await self._wait_for_server(started)
        await self._run_at_normal_priority()
        return started

    async def _run_at_normal_priority(self) -> None:
        try:
            await self.docker("update_container", self.container_id, cpu_shares=RUNNING_CPU_SHARES)
        except APIError as error:
            # Only the share of CPU under contention is at stake, never the server itself.
            self.log.warning("%s's server keeps its start-up CPU weight: %s", self.user.name, error)

    async def _wait_for_server(self, started) -> None:
        """Until the new server accepts connections, so the turn ends when its start's work
        is done and JupyterHub's own check finds it at the first try."""
        if isinstance(started, str):
            address = urlparse(started)
            host, port = address.hostname, address.port
        else:
            host, port = started
        deadline = time.monotonic() + self.http_timeout
        attempts = 0
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                attempts += 1
                # Now and then, whether the container is still there to wait for.
                if attempts % 20 == 0 and await self.poll() is not None:
                    raise SpawnRefused(
                        "Your server stopped while starting. Try again; if it happens again, "
                        "show this message to the instructor."
                    ) from None
                await asyncio.sleep(SERVER_POLL_SECONDS)
                continue
            writer.close()
            return
        # JupyterHub's own wait (http_timeout) reports a server that never answers.

    # --- what the spawn page shows -------------------------------------------------------

    def _enter_stage(self, message: str, percent: int) -> None:
        self._stage = (message, percent)
        self.workshop.spawn_queue.notify()

    async def progress(self):
        """The spawn page's events: the place in line, then the steps of the start.

        Extra fields (`workshop_phase`, `queue_position`, `queue_wait_estimate`, `queue_wait`)
        are for programs that follow the events, such as `workshop-hub rehearse`.
        """
        queue = self.workshop.spawn_queue
        name = self.user.name
        first_position = None
        last = None
        with queue.watching(name):
            while True:
                position = queue.position(name)
                stage = self._stage
                if position is not None:
                    first_position = first_position or position
                    estimate = queue.estimated_wait(position)
                    event = {
                        "progress": 5 + 25 * (first_position - position) // first_position,
                        "message": _place_in_line(position, estimate),
                        "workshop_phase": "queued",
                        "queue_position": position,
                        "queue_wait_estimate": round(estimate, 1),
                    }
                elif stage is not None:
                    message, percent = stage
                    event = {
                        "progress": percent,
                        "message": message,
                        "workshop_phase": "starting",
                        "queue_wait": round(self._queue_wait, 2),
                    }
                else:
                    event = None
                if event is not None and event != last:
                    yield event
                    last = event
                await queue.changed(PROGRESS_REFRESH_SECONDS)

    async def poll(self):
        """None while the server runs, else why it stopped.

        A start that the hub never saw finish (it restarted meanwhile) left no container id
        in the saved state: "not running", so the attendee's page starts it again at once,
        instead of JupyterHub waiting http_timeout for a server whose address it never
        learnt. That start replaces the half-started container (DockerSpawner.remove).
        """
        if not self.container_id:
            return 0
        return await super().poll()

    async def remove_object(self):
        """Remove the container, also a running one: one left by a start the hub never saw
        finish is in the way of the next start, and DockerSpawner's own removal lets a
        running container stay (Docker answers 409, which it takes for "already removing")."""
        try:
            await self.docker("remove_container", self.object_id, v=True, force=True)
        except APIError as error:
            if error.status_code not in (404, 409):  # gone, or being removed already
                raise

    async def create_object(self):
        """The container; with WORKSHOP_ATTENDEE_INTERNET also on the egress network, joined
        before it starts so that its route out is there from the first process."""
        created = await super().create_object()
        if self.workshop.settings.attendee_internet:
            egress = egress_network(self.workshop.settings.instance)
            try:
                await self.docker("connect_container_to_network", created["Id"], egress)
            except APIError:
                # Never left behind: the next start would reuse it without the network.
                await self.docker("remove_container", created["Id"], force=True)
                raise
        return created

    async def _prepare_work_disk(self) -> None:
        """Mount the attendee's capped work folder (WORKSHOP_DISK_LIMIT) under their volume."""
        volume = next(name for name, bind in self.volume_binds.items() if bind["bind"] == WORK_DIR)
        try:
            await asyncio.to_thread(self.workshop.disks.prepare, volume)
        except DiskError as error:
            raise SpawnRefused(
                f"Your work folder could not be prepared: {error}. Show this message to the "
                "instructor."
            ) from None

    async def _refresh_gpu_places(self) -> GpuSlots:
        """The table of GPU places, after freeing the places of containers that are gone."""
        slots = self.workshop.gpu_slots
        listing = slots.begin_listing()
        containers = await self.docker(
            "containers", all=True, filters=gpu_container_filters(self.workshop.settings.instance)
        )
        for holder, device in slots.reconcile(gpu_holders(containers), listing).items():
            self.log.info("GPU %s freed: the container of %s is gone", device, holder)
        return slots

    def _release_gpu(self) -> None:
        if self.workshop.gpu_slots is not None:
            device = self.workshop.gpu_slots.release(self.user.name)
            if device is not None:
                self.log.info("GPU %s released by %s", device, self.user.name)


def _ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        return f"{number}th"
    return f"{number}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th') }"


def _place_in_line(position: int, estimate: float) -> str:
    """ "You are 12th in line, about 40 s", the wait rounded up to 5 s (never "about 0 s")."""
    seconds = max(5, 5 * math.ceil(estimate / 5))
    wait = f"about {seconds} s" if seconds < 120 else f"about {math.ceil(seconds / 60)} min"
    where = "next in line" if position == 1 else f"{_ordinal(position)} in line"
    return f"You are {where}, {wait}. Keep this page open to keep your place."
