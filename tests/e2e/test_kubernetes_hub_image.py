"""The hub image for Kubernetes (docker/hub-kubernetes/Dockerfile) runs the chart's
configuration: built from this checkout on the hub image compose builds, started as the chart
starts it (uid 1000, the chart's ConfigMap and Secret mounted where the chart mounts them, its
volume at /srv/jupyterhub), it initializes JupyterHub with the generated values (this
project's login, the console, the culler) and KubeSpawner there builds each profile's pod. No
cluster: the pods are checked against Kubernetes' schemas here instead of being created.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess

import kubernetes_validate
import pytest

from tests.hub.organizer.test_kubernetes import (
    CHART_MOUNT,
    CHART_POD_ENVIRONMENT,
    GPU_ROOM_SHARED_FOUR_WAYS,
    REGISTRY,
    lay_out_chart_mount,
    unreachable_kube_config,
    values_for,
)
from workshop_hub.organizer import kubernetes
from workshop_hub.services import CONSOLE_SERVICE

from .stack import BUILD_LOCK, ROOT, TEST_IMAGES, TEST_PREFIX, owner_tag, progress

IMAGE = f"{TEST_PREFIX}/hub:kubernetes"
BUILD_TIMEOUT_S = 1200
KUBE_CONFIG = "/tmp/kube-config"
# Run in the hub's container: JupyterHub initialized from the chart's configuration file,
# then the pod of each profile, as KubeSpawner would create it for one attendee.
HUB_SCRIPT = f"""
import asyncio, json, os, pathlib
pathlib.Path({KUBE_CONFIG!r}).write_text(os.environ["KUBE_CONFIG_TEXT"])
from jupyterhub.app import JupyterHub
from kubernetes_asyncio.client import ApiClient
from kubespawner import KubeSpawner
from kubespawner.spawner import MockObject
from workshop_hub.console.solutions import SOLUTIONS_CATALOG, load_catalog

async def main():
    app = JupyterHub()
    await app.initialize(["--config", {CHART_MOUNT + "jupyterhub_config.py"!r}])
    pods = {{}}
    for profile in app.config.KubeSpawner.profile_list:
        user = MockObject()
        user.name, user.id, user.url = "ada", 1, "/user/ada/"
        spawner = KubeSpawner(config=app.config, user=user, _mock=True)
        spawner.user_options = {{"profile": profile["slug"]}}
        await spawner.load_user_options()
        async with ApiClient() as api:
            pods[profile["slug"]] = api.sanitize_for_serialization(await spawner.get_pod_manifest())
    print(json.dumps({{
        "authenticator": type(app.authenticator).__name__,
        "services": sorted(app._service_map),
        "login_page": any(
            pathlib.Path(folder, "login.html").is_file() for folder in app.template_paths
        ),
        "room_code_kept": pathlib.Path("/srv/jupyterhub/data/access-code").is_file(),
        "solutions": len(load_catalog(SOLUTIONS_CATALOG)),
        "pods": pods,
    }}))

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def kubernetes_hub_image(docker_client, lab_images) -> str:
    """Built on the test hub image (lab_images builds every image compose builds), as the
    organizer builds it on theirs; cached layers make reruns fast."""
    progress(f"building {IMAGE} (docker/hub-kubernetes/Dockerfile)")
    with open(BUILD_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(
            [
                "docker", "build", "-q", "-f", "docker/hub-kubernetes/Dockerfile", "-t", IMAGE,
                "--build-arg", f"HUB_IMAGE={TEST_IMAGES['WORKSHOP_HUB_IMAGE']}", ".",
            ],
            cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
        )  # fmt: skip
    assert result.returncode == 0, f"building {IMAGE} failed:\n{result.stderr[-3000:]}"
    return IMAGE


def test_the_hub_image_runs_the_charts_configuration(docker_client, kubernetes_hub_image, tmp_path):
    values = values_for(GPU_ROOM_SHARED_FOUR_WAYS)
    mount = tmp_path / "chart"
    lay_out_chart_mount(values, mount)
    os.chmod(mount, 0o755)
    output = docker_client.containers.run(
        kubernetes_hub_image,
        ["python3", "-c", HUB_SCRIPT],
        name=f"{owner_tag()}-kubernetes-hub",
        environment={
            **CHART_POD_ENVIRONMENT,
            "KUBECONFIG": KUBE_CONFIG,
            "KUBE_CONFIG_TEXT": unreachable_kube_config(),
        },
        volumes={str(mount): {"bind": CHART_MOUNT, "mode": "ro"}},
        # The chart's volume for the hub, writable by its uid 1000.
        tmpfs={"/srv/jupyterhub": "uid=1000,gid=1000"},
        network_mode="none",
        remove=True,
        stderr=False,
    )
    report = json.loads(output.decode().strip().splitlines()[-1])
    assert report["authenticator"] == "WorkshopAuthenticator"
    assert {CONSOLE_SERVICE, "jupyterhub-idle-culler"} <= set(report["services"])
    assert report["login_page"] and report["room_code_kept"]
    assert report["solutions"] > 0
    assert set(report["pods"]) == {"gpu", "cpu"}
    for slug, pod in report["pods"].items():
        kubernetes_validate.validate(pod, kubernetes.KUBERNETES_VERSION, strict=True)
        notebook = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
        assert (
            notebook["image"]
            == f"{REGISTRY}/pytorch-workshop-lab:{'cuda' if slug == 'gpu' else 'cpu'}"
        )
        assert notebook["securityContext"]["runAsUser"] == 1000
    gpu = next(c for c in report["pods"]["gpu"]["spec"]["containers"] if c["name"] == "notebook")
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == "1"
