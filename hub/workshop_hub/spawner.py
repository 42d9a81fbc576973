"""DockerSpawner with the workshop's profiles, limits and GPU places."""

from __future__ import annotations

from html import escape

from docker.errors import APIError
from dockerspawner import DockerSpawner
from tornado import web
from traitlets import default

from .docker_host import explain_gpu_error, gpu_device_request
from .gpu import GpusFull
from .profiles import (
    LABEL_GPU,
    LABEL_INSTANCE,
    LABEL_PROFILE,
    LABEL_USER,
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

    def _options_form(self, spawner=None) -> str:
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

    def options_from_form(self, formdata):
        slug = (formdata.get("profile") or [self.workshop.profiles[0].slug])[0]
        if self.workshop.profile(slug) is None:
            offered = ", ".join(profile.slug for profile in self.workshop.profiles)
            raise web.HTTPError(
                400, f"There is no profile {slug!r} here; choose one of: {offered}."
            )
        if slug == "gpu" and self.workshop.gpu_slots.free_places() == 0:
            raise web.HTTPError(409, str(GpusFull(self.workshop.gpu_slots.capacity)))
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
        labels = {
            LABEL_INSTANCE: settings.instance,
            LABEL_USER: self.user.name,
            LABEL_PROFILE: profile.slug,
        }
        self.environment = {"WORKSHOP_PROFILE": profile.slug}
        if profile.slug == "gpu":
            try:
                device = self.workshop.gpu_slots.acquire(self.user.name)
            except GpusFull as full:
                raise SpawnRefused(str(full)) from None
            host_config["device_requests"] = [gpu_device_request([device])]
            labels[LABEL_GPU] = device
            self.environment["WORKSHOP_GPU_MEMORY_FRACTION"] = str(gpu_memory_fraction(settings))
            self.log.info("GPU %s assigned to %s", device, self.user.name)
        self.extra_host_config = host_config
        self.extra_create_kwargs = {"labels": labels}
        try:
            return await super().start()
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

    async def stop(self, now=False):
        try:
            await super().stop(now=now)
        finally:
            self._release_gpu()

    def _release_gpu(self) -> None:
        if self.workshop.gpu_slots is not None:
            device = self.workshop.gpu_slots.release(self.user.name)
            if device is not None:
                self.log.info("GPU %s released by %s", device, self.user.name)
