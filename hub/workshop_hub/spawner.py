"""DockerSpawner with the workshop's profiles, limits and GPU places."""

from __future__ import annotations

import asyncio
from html import escape

from docker.errors import APIError
from dockerspawner import DockerSpawner
from tornado import web
from traitlets import default

from .disks import DiskError
from .docker_host import (
    explain_gpu_error,
    gpu_container_filters,
    gpu_device_request,
    gpu_holders,
)
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
from .workshop import Workshop


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
        settings = self.workshop.settings
        self.image = profile.image
        host_config = container_limits(settings, profile)
        await self._prepare_work_disk()
        labels = {
            LABEL_INSTANCE: settings.instance,
            LABEL_USER: self.user.name,
            LABEL_PROFILE: profile.slug,
        }
        self.environment = {"WORKSHOP_PROFILE": profile.slug}
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
        self.extra_host_config = host_config
        self.extra_create_kwargs = {"labels": labels}
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
        return started

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
