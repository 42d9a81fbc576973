"""Where the console reads the room (workshop_hub/console/room_sources.py): every page of the
hub's users, read at most every few seconds; attendees' containers and their memory as
`docker stats` counts it; on Kubernetes, attendees' pods read like containers."""

from __future__ import annotations

import json

from kubernetes_asyncio.client import V1ObjectMeta, V1Pod, V1PodStatus
from tornado import web
from tornado.httpserver import HTTPServer

from tests.console_app import serve_on_loopback
from workshop_hub.console import room_sources
from workshop_hub.room.profiles import LABEL_USER


def test_the_running_container_of_the_attendee_is_found_among_the_listed():
    listed = [
        {"Id": "a1", "State": "exited", "Labels": {LABEL_USER: "ada"}},
        {"Id": "b1", "State": "running", "Labels": {LABEL_USER: "bob"}},
        {"Id": "a2", "State": "running", "Labels": {LABEL_USER: "ada"}},
        {"Id": "x", "State": "running", "Labels": None},
    ]
    assert room_sources.running_container_id(listed, "ada") == "a2"
    assert room_sources.running_container_id(listed, "eve") is None


class UsersPages(web.RequestHandler):
    """JupyterHub's paginated users list, for 450 users."""

    served = 0

    def get(self):
        UsersPages.served += 1
        offset, limit = int(self.get_argument("offset")), int(self.get_argument("limit"))
        assert self.request.headers["Authorization"] == "token console-token"
        names = [f"u{i}" for i in range(450)][offset : offset + limit]
        following = offset + limit < 450
        self.finish(
            json.dumps(
                {
                    "items": [{"name": name} for name in names],
                    "_pagination": {"next": {"offset": offset + limit} if following else None},
                }
            )
        )


async def test_every_page_of_users_is_read_and_kept_for_a_moment():
    server = HTTPServer(web.Application([(r".*/users", UsersPages)]))
    base, _ = serve_on_loopback(server)
    try:
        users = room_sources.HubUsers(base.split("/services")[0] + "/hub/api", "console-token")
        listed = await users.users()
        assert [user["name"] for user in listed] == [f"u{i}" for i in range(450)]
        assert UsersPages.served == 3  # pages of 200
        await users.users()  # within REFRESH_SECONDS: no new request
        assert UsersPages.served == 3
    finally:
        server.stop()


class DockerStats:
    """Docker's API as the console calls it: one running and one exited container."""

    def containers(self, all, filters):
        return [
            {"Id": "c1", "State": "running", "Labels": {LABEL_USER: "ada"}},
            {"Id": "c2", "State": "exited", "Labels": {LABEL_USER: "bob"}},
        ]

    def stats(self, container_id, stream):
        stats = {"total_inactive_file": 100 * 2**20}  # page cache that can be dropped
        return {"memory_stats": {"usage": 600 * 2**20, "stats": stats}}


def test_memory_in_use_leaves_out_the_page_cache_and_stopped_containers():
    containers = room_sources.Containers("workshop")
    containers.api = DockerStats()
    containers.sample_memory()
    assert containers.memory == {"ada": 500 * 2**20}


def test_a_pod_reads_like_a_container_under_the_attendees_own_name():
    pod = V1Pod(
        metadata=V1ObjectMeta(
            labels={"hub.jupyter.org/username": "ada-2elovelace"},
            annotations={room_sources.USERNAME_ANNOTATION: "ada.lovelace"},
        ),
        status=V1PodStatus(phase="Running"),
    )
    listed = room_sources.as_listed_container(pod)
    assert listed["State"] == "running" and listed["Labels"][LABEL_USER] == "ada.lovelace"
    assert room_sources.as_listed_container(V1Pod(metadata=pod.metadata))["State"] == "pending"
