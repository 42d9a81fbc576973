"""Where the console reads the room from: the hub's REST API and Docker.

Both are read at most every REFRESH_SECONDS, whatever the number of instructors watching,
so a console left open on three laptops costs the hub one user list per interval. Memory in
use comes from Docker's stats of each running attendee container; sampling 200 containers
takes a while, so it runs in the background and the console shows the last sample.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

import docker
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from ..room.profiles import LABEL_INSTANCE, LABEL_USER

REFRESH_SECONDS = 3.0
# KubeSpawner's annotation of an attendee's pod with their name as the hub knows it (its labels
# hold an escaped form).
USERNAME_ANNOTATION = "hub.jupyter.org/username"
MEMORY_SAMPLE_SECONDS = 15.0
# Docker answers a one-shot stats call in about a second per container: sample in parallel.
MEMORY_SAMPLERS = 16
PAGE_SIZE = 200  # JupyterHub's largest page of users

log = logging.getLogger("workshop.console")


def running_container_id(listed: list[dict], attendee: str) -> str | None:
    """The id of the attendee's running container in `listed` (Containers.listed()), or None."""
    for container in listed:
        labels = container.get("Labels") or {}
        if labels.get(LABEL_USER) == attendee and container.get("State") == "running":
            return container["Id"]
    return None


class HubUsers:
    """Every user with their servers, from JupyterHub's REST API with the service's token."""

    def __init__(self, api_url: str | None = None, token: str | None = None):
        self.api_url = (api_url or os.environ["JUPYTERHUB_API_URL"]).rstrip("/")
        self.token = token or os.environ["JUPYTERHUB_API_TOKEN"]
        self._users: list[dict] = []
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    async def users(self) -> list[dict]:
        async with self._lock:
            if time.monotonic() - self._read_at >= REFRESH_SECONDS:
                self._users = await self._read_all()
                self._read_at = time.monotonic()
            return self._users

    async def _read_all(self) -> list[dict]:
        users: list[dict] = []
        client = AsyncHTTPClient()
        while True:
            request = HTTPRequest(
                f"{self.api_url}/users?offset={len(users)}&limit={PAGE_SIZE}",
                headers={
                    "Authorization": f"token {self.token}",
                    "Accept": "application/jupyterhub-pagination+json",
                },
            )
            page = json.loads((await client.fetch(request)).body)
            users.extend(page["items"])
            if not page["_pagination"].get("next"):
                return users


class Containers:
    """This deployment's attendee containers, and a background sample of their memory."""

    def __init__(self, instance: str):
        self.instance = instance
        self.memory: dict[str, int] = {}
        self.memory_sampled_at: float | None = None
        self._listed: list[dict] = []
        self._listed_at = 0.0
        self._pool = ThreadPoolExecutor(MEMORY_SAMPLERS, thread_name_prefix="memory")

    @functools.cached_property
    def api(self) -> docker.APIClient:
        # Made on first use: the console starts even while Docker is briefly away.
        return docker.APIClient()

    def listed(self) -> list[dict]:
        if time.monotonic() - self._listed_at >= REFRESH_SECONDS:
            filters = {"label": f"{LABEL_INSTANCE}={self.instance}"}
            self._listed = self.api.containers(all=True, filters=filters)
            self._listed_at = time.monotonic()
        return self._listed

    def _memory_of(self, container_id: str) -> int | None:
        try:
            stats = self.api.stats(container_id, stream=False)
        except docker.errors.DockerException:
            return None  # it stopped meanwhile
        memory = stats.get("memory_stats") or {}
        details = memory.get("stats") or {}
        # As `docker stats` counts it: the page cache that can be dropped is not in use.
        reclaimable = details.get("total_inactive_file", details.get("inactive_file", 0))
        return memory["usage"] - reclaimable if "usage" in memory else None

    def sample_memory(self) -> None:
        running = [c for c in self.listed() if c.get("State") == "running"]
        names = [c["Labels"].get(LABEL_USER, "") for c in running]
        usage = self._pool.map(self._memory_of, [c["Id"] for c in running])
        self.memory = {
            name: used for name, used in zip(names, usage, strict=True) if name and used is not None
        }
        self.memory_sampled_at = time.time()

    async def sample_memory_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, self.sample_memory)
            except docker.errors.DockerException as error:
                log.warning("cannot read the attendees' memory from Docker: %s", error)
            await asyncio.sleep(MEMORY_SAMPLE_SECONDS)


def as_listed_container(pod) -> dict:
    """An attendee's pod (kubernetes_asyncio's V1Pod) as the console reads Docker's container
    listing: its state and its labels, the attendee's name among them."""
    labels = {
        **(pod.metadata.labels or {}),
        LABEL_USER: pod.metadata.annotations[USERNAME_ANNOTATION],
    }
    phase = pod.status.phase if pod.status else None
    return {"State": (phase or "Pending").lower(), "Labels": labels}


class AttendeePods:
    """Where the console reads the room's servers on Kubernetes: this deployment's pods, in
    the hub's namespace (the chart lets the hub list them). Read at most every
    REFRESH_SECONDS, like Docker's containers. Memory in use would need the cluster's metrics
    API, which the chart does not let the hub read: the console shows none."""

    def __init__(self, instance: str, namespace: str | None = None):
        self.selector = f"{LABEL_INSTANCE}={instance}"
        self.namespace = namespace or os.environ.get("POD_NAMESPACE", "default")
        self.memory: dict[str, int] = {}
        self.memory_sampled_at: float | None = None
        self._listed: list[dict] = []
        self._listed_at = 0.0

    async def _pods(self) -> list:
        from kubernetes_asyncio import client, config

        config.load_incluster_config()
        async with client.ApiClient() as api:
            listing = await client.CoreV1Api(api).list_namespaced_pod(
                self.namespace, label_selector=self.selector
            )
        return listing.items

    def listed(self) -> list[dict]:
        """Called from a worker thread, as Docker's listing is."""
        if time.monotonic() - self._listed_at >= REFRESH_SECONDS:
            self._listed = [as_listed_container(pod) for pod in asyncio.run(self._pods())]
            self._listed_at = time.monotonic()
        return self._listed

    async def sample_memory_forever(self) -> None:
        """Nothing to sample (see the class)."""
