"""The workshop on Kubernetes, proven without a cluster.

The values that `workshop-hub helm-values` prints go through what the cluster would do with
them: merged over the chart's defaults and checked against its values schema, as helm does;
mapped onto KubeSpawner by the chart's own jupyterhub_config.py (tests/hub/organizer/z2jh/, release
CHART_VERSION), read from a folder laid out like the hub pod's Secret and ConfigMap; then,
for each profile, KubeSpawner builds the pod it would create, after applying the profile's
override as when an attendee picks it. Every object is validated against the Kubernetes
schemas of KUBERNETES_VERSION.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.config import kube_config as kube_config_module
from kubespawner import KubeSpawner
from kubespawner.spawner import MockObject
from tornado.httpclient import AsyncHTTPClient
from traitlets.config.loader import PyFileConfigLoader

from workshop_hub.access import credentials
from workshop_hub.console.room_sources import USERNAME_ANNOTATION, as_listed_container
from workshop_hub.console.room_view import room_view
from workshop_hub.organizer import cli, kubernetes
from workshop_hub.room.limits import idle_culler_command
from workshop_hub.room.profiles import HOME_DIR, LABEL_INSTANCE, LABEL_PROFILE, WORK_DIR
from workshop_hub.services import CONSOLE_PORT, CONSOLE_SERVICE, CONSOLE_URL_ENV
from workshop_hub.settings import load_settings

CHART_FILES = Path(__file__).parent / "z2jh"
REGISTRY = "registry.example.org/workshop"
# Where the hub pod finds the chart's ConfigMap and Secret.
CHART_MOUNT = "/usr/local/etc/jupyterhub/"
# The names the chart's ConfigMap gives its resources, for a release without a name prefix.
CHART_NAMES = ("hub", "proxy-api", "singleuser", "user-scheduler", "priority", "image-pull-secret")
# A room whose GPUs are each shared four ways. How many GPUs there are is the cluster's
# business: with 2, NVIDIA's device plugin offers 2 x 4 shares.
GPU_ROOM_SHARED_FOUR_WAYS = {"WORKSHOP_GPUS": "auto", "WORKSHOP_ATTENDEES_PER_GPU": "4"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Settings come from each test only."""
    for name in list(os.environ):
        if name.startswith("WORKSHOP_"):
            monkeypatch.delenv(name)


@pytest.fixture
def hub_data(tmp_path, monkeypatch):
    """The hub's volume, where the room code and admin password are made on first start."""
    for name in ("ACCESS_CODE_FILE", "ADMIN_PASSWORD_FILE", "ATTENDEE_PASSWORDS_FILE"):
        monkeypatch.setattr(credentials, name, tmp_path / "hub-data" / name.lower())
    monkeypatch.setattr(credentials, "HUB_DATA_DIR", tmp_path / "hub-data")
    return tmp_path / "hub-data"


def values_for(environ=None, **options) -> dict:
    choices = kubernetes.ClusterChoices(registry=options.pop("registry", REGISTRY), **options)
    return kubernetes.helm_values(load_settings(environ or {}), choices)


def merged_over_defaults(values: dict) -> dict:
    """The values the chart renders with: its defaults, overridden by ours, as helm merges
    them (maps merged key by key; a key left empty, null, is dropped)."""

    def merge(defaults, ours):
        if not (isinstance(defaults, dict) and isinstance(ours, dict)):
            return ours
        merged = {key: value for key, value in defaults.items() if value is not None}
        for key, value in ours.items():
            merged[key] = merge(merged.get(key), value)
        return {key: value for key, value in merged.items() if value is not None}

    defaults = yaml.safe_load((CHART_FILES / "values.yaml").read_text())
    return merge(defaults, values)


def schema() -> dict:
    return yaml.safe_load((CHART_FILES / "values.schema.yaml").read_text())


# The hub pod's environment: Kubernetes sets the Services' ports, the chart the namespace and
# the proxy's token (from its Secret).
CHART_POD_ENVIRONMENT = {
    "HUB_SERVICE_PORT": "8081",
    "PROXY_API_SERVICE_PORT": "8001",
    "POD_NAMESPACE": "workshop",
    "CONFIGPROXY_AUTH_TOKEN": "01" * 32,
    # Never contacted: the tests build pods without a cluster.
    "KUBERNETES_SERVICE_HOST": "127.0.0.1",
    "KUBERNETES_SERVICE_PORT": "443",
}


def lay_out_chart_mount(values: dict, folder: Path, mount: str = CHART_MOUNT) -> None:
    """`folder` holding what the chart mounts at CHART_MOUNT in the hub pod for `values`: its
    ConfigMap (resource names, the hub's config files) and its Secret (the values merged over
    the defaults, generated secrets). z2jh.py reads them from `mount`, where `folder` is seen.
    """
    rendered = merged_over_defaults(values)
    rendered["Chart"] = {"Name": "jupyterhub", "Version": kubernetes.CHART_VERSION}
    rendered["Release"] = {"Name": "workshop", "Namespace": "workshop"}
    (folder / "secret").mkdir(parents=True)
    (folder / "config").mkdir()
    (folder / "secret" / "values.yaml").write_text(yaml.safe_dump(rendered))
    secrets = {
        "hub.config.JupyterHub.cookie_secret": "ab" * 32,
        "hub.config.CryptKeeper.keys": "cd" * 32,
        **{f"hub.services.{name}.apiToken": "ef" * 32 for name in values["hub"]["services"]},
    }
    for key, value in secrets.items():
        (folder / "secret" / key).write_text(value)
    for name in CHART_NAMES:
        (folder / "config" / name).write_text(name)
    z2jh = (CHART_FILES / "z2jh.py.txt").read_text()
    assert CHART_MOUNT in z2jh
    (folder / "z2jh.py").write_text(z2jh.replace(CHART_MOUNT, mount))
    (folder / "jupyterhub_config.py").write_text(
        (CHART_FILES / "jupyterhub_config.py.txt").read_text()
    )


def unreachable_kube_config() -> str:
    """KubeSpawner makes its API client when it is made, from a kube config; building a pod
    never calls the API, so this one names a cluster that is never contacted."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:6443"}}],
            "users": [{"name": "none", "user": {"token": "never-sent"}}],
            "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
            "current-context": "none",
        }
    )


def chart_config(values: dict, folder: Path, monkeypatch):
    """The hub's configuration as the chart's jupyterhub_config.py makes it from `values`.

    The chart's files run unchanged, except that z2jh.py reads the Secret and ConfigMap from
    `folder` instead of the hub pod's mount point.
    """
    lay_out_chart_mount(values, folder, f"{folder}/")
    for name, value in CHART_POD_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "z2jh", raising=False)
    # The chart switches tornado to its curl client; the other tests keep the default one.
    saved = AsyncHTTPClient._save_configuration()
    try:
        return PyFileConfigLoader("jupyterhub_config.py", path=str(folder)).load_config()
    finally:
        AsyncHTTPClient._restore_configuration(saved)


@pytest.fixture(autouse=True)
def kube_config(tmp_path, monkeypatch):
    path = tmp_path / "kube-config"
    path.write_text(unreachable_kube_config())
    monkeypatch.setattr(kube_config_module, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


def spawner_for(config, username: str = "ada") -> KubeSpawner:
    user = MockObject()
    user.name, user.id, user.url = username, 7, f"/user/{username}/"
    return KubeSpawner(config=config, user=user, _mock=True)


async def pod_for(config, slug: str, username: str = "ada") -> dict:
    """The pod KubeSpawner would create for `username` who picked profile `slug`, as the
    object it sends (pod_object) and as the API reads it (pod), with the work volume's claim."""
    spawner = spawner_for(config, username)
    spawner.user_options = {"profile": slug}
    await spawner.load_user_options()
    pod_object = await spawner.get_pod_manifest()
    async with ApiClient() as api:
        pod = api.sanitize_for_serialization(pod_object)
        pvc = api.sanitize_for_serialization(spawner.get_pvc_manifest())
    return {"pod_object": pod_object, "pod": pod, "pvc": pvc}


def validate(manifest: dict) -> None:
    kubernetes_validate.validate(manifest, kubernetes.KUBERNETES_VERSION, strict=True)


def notebook(pod: dict) -> dict:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")


# --- The values and the chart ------------------------------------------------------------


@pytest.mark.parametrize(
    "environ, options",
    [
        ({}, {}),
        (GPU_ROOM_SHARED_FOUR_WAYS, {}),
        ({"WORKSHOP_GPUS": "auto", "WORKSHOP_OFFER_CPU": "false"}, {"gpu_sharing": "1g.10gb"}),
        (
            {"WORKSHOP_DOMAIN": "hub.example.org", "WORKSHOP_MAX_ATTENDEES": "80"},
            {"storage_class": "fast-ssd"},
        ),
    ],
)
def test_the_chart_accepts_every_key_of_the_values(environ, options):
    values = values_for(environ, **options)
    jsonschema.validate(merged_over_defaults(values), schema())


def test_every_key_the_values_may_set_is_documented_by_the_chart():
    documented = schema()
    for path in kubernetes.CHART_KEYS:
        node = documented
        for key in path.split("."):
            assert key in node.get("properties", {}), f"{path}: not in the chart's schema"
            node = node["properties"][key]


def test_a_key_outside_the_list_is_a_mistake_of_this_module():
    with pytest.raises(KeyError, match="singleuser.memory.limit"):
        kubernetes._nest({"singleuser.memory.limit": "2G"})


def test_the_schema_refuses_a_key_the_chart_does_not_know():
    values = values_for()
    values["singleuser"]["memoryLimit"] = "2G"
    with pytest.raises(jsonschema.ValidationError, match="memoryLimit"):
        jsonschema.validate(merged_over_defaults(values), schema())


def test_the_idle_culler_gets_the_timeouts_of_one_machine(tmp_path, monkeypatch, hub_data):
    settings = {"WORKSHOP_IDLE_TIMEOUT": "45m", "WORKSHOP_MAX_SERVER_AGE": "8h"}
    config = chart_config(values_for(settings), tmp_path / "chart", monkeypatch)
    culler = next(s for s in config.JupyterHub.services if s["name"] == "jupyterhub-idle-culler")
    on_docker = idle_culler_command(load_settings(settings))
    options = [arg for arg in on_docker if arg.startswith("--")]
    assert options == ["--timeout=2700", "--max-age=28800", "--cull-every=300"]
    assert set(options) <= set(culler["command"])


def test_the_hub_logs_attendees_in_as_on_one_machine(tmp_path, monkeypatch, hub_data):
    config = chart_config(values_for(), tmp_path / "chart", monkeypatch)
    assert config.JupyterHub.authenticator_class == "workshop_hub.access.auth.WorkshopAuthenticator"
    # Instructors are not JupyterHub admins, and their names cannot be claimed.
    assert config.WorkshopAuthenticator.instructors == ["instructor"]
    roles = {role["name"]: role for role in config.JupyterHub.load_roles}
    assert roles["admin"]["users"] == [] and roles["instructor"]["users"] == ["instructor"]
    assert {"instructor", "admin", "console"} <= config.WorkshopAuthenticator.reserved_names
    assert (hub_data / "instructors-ever.json").exists()
    # Made on first start, kept on the hub's volume, the same at the next start.
    room_code = config.WorkshopAuthenticator.room_code
    assert room_code == credentials.ACCESS_CODE_FILE.read_text().strip()
    assert len(config.WorkshopAuthenticator.admin_password) >= 32
    again = chart_config(values_for(), tmp_path / "chart-again", monkeypatch)
    assert again.WorkshopAuthenticator.room_code == room_code
    assert callable(config.JupyterHub.template_vars["announcement"])


# The organizer's secrets, in .env for Docker and in their Kubernetes Secret for the chart.
SECRETS_OF_THE_ROOM = {
    "WORKSHOP_ACCESS_CODE": "code-of-the-room",
    "WORKSHOP_ADMIN_PASSWORD": "admin-password-of-the-room-0123456789",
}


def test_the_values_hold_no_secret_but_name_the_organizers_secret():
    values = values_for(SECRETS_OF_THE_ROOM)
    text = yaml.safe_dump(values)
    for value in SECRETS_OF_THE_ROOM.values():
        assert value not in text
    environment = values["hub"]["extraEnv"]
    assert environment == {
        name: {
            "valueFrom": {
                "secretKeyRef": {"name": kubernetes.SECRET_NAME, "key": name, "optional": True}
            }
        }
        for name in SECRETS_OF_THE_ROOM
    }
    # The chart lists them in the hub's container with the key as the name (its implicit
    # notation): each must be a valid EnvVar there.
    validate(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "hub"},
            "spec": {
                "containers": [
                    {
                        "name": "hub",
                        "image": "hub",
                        "env": [{"name": name, **entry} for name, entry in environment.items()],
                    }
                ]
            },
        }
    )


def test_the_secrets_in_the_hub_pods_environment_are_the_hubs(tmp_path, monkeypatch, hub_data):
    values = values_for(SECRETS_OF_THE_ROOM)
    # What the kubelet sets from the organizer's Secret (hub.extraEnv).
    for name, value in SECRETS_OF_THE_ROOM.items():
        monkeypatch.setenv(name, value)
    config = chart_config(values, tmp_path / "chart", monkeypatch)
    assert config.WorkshopAuthenticator.room_code == SECRETS_OF_THE_ROOM["WORKSHOP_ACCESS_CODE"]
    assert (
        config.WorkshopAuthenticator.admin_password
        == SECRETS_OF_THE_ROOM["WORKSHOP_ADMIN_PASSWORD"]
    )
    assert not credentials.ACCESS_CODE_FILE.exists()


def test_a_secret_the_hub_cannot_use_stops_it_naming_the_secret(tmp_path, monkeypatch, hub_data):
    monkeypatch.setenv("WORKSHOP_ACCESS_CODE", "workshop")
    with pytest.raises(SystemExit) as stopped:
        chart_config(values_for(), tmp_path / "chart", monkeypatch)
    message = str(stopped.value)
    assert f"Secret {kubernetes.SECRET_NAME}" in message and "at least 12" in message
    assert "=workshop" not in message


@pytest.mark.parametrize("dot_env_sets_them", [False, True])
def test_the_command_says_how_to_make_the_secret(monkeypatch, capsys, dot_env_sets_them):
    if dot_env_sets_them:
        for name, value in SECRETS_OF_THE_ROOM.items():
            monkeypatch.setenv(name, value)
    assert cli.main(["helm-values", "--registry", REGISTRY]) == 0
    captured = capsys.readouterr()
    command = kubernetes.secret_command()
    assert command in captured.err and "# The room code and admin password" in captured.out
    assert command.startswith(
        f"kubectl --namespace workshop create secret generic {kubernetes.SECRET_NAME} "
    )
    # One key per variable the hub pod takes from the Secret, each value left to type.
    keys = re.findall(r"--from-literal=(\w+)=(\S*)", command)
    assert keys == [(name, "") for name in values_for()["hub"]["extraEnv"]]
    for value in SECRETS_OF_THE_ROOM.values():
        assert value not in captured.out + captured.err
    assert ("Your settings set WORKSHOP_ACCESS_CODE" in captured.err) == dot_env_sets_them


def test_the_console_is_a_service_of_the_hub_that_attendees_reach(tmp_path, monkeypatch, hub_data):
    values = values_for()
    config = chart_config(values, tmp_path / "chart", monkeypatch)
    console = next(s for s in config.JupyterHub.services if s["name"] == CONSOLE_SERVICE)
    assert console["command"] == ["python3", "-m", "workshop_hub.console.service"]
    assert console["url"] == f"http://hub:{CONSOLE_PORT}"
    # It lists the attendees' pods with the hub pod's access to the Kubernetes API.
    assert console["environment"] == {
        "WORKSHOP_INSTANCE": "pytorch-workshop",
        "KUBERNETES_SERVICE_HOST": CHART_POD_ENVIRONMENT["KUBERNETES_SERVICE_HOST"],
        "KUBERNETES_SERVICE_PORT": "443",
        "POD_NAMESPACE": "workshop",
    }
    role = next(r for r in config.JupyterHub.load_roles if r["name"] == CONSOLE_SERVICE)
    assert role["services"] == [CONSOLE_SERVICE]
    # The chart opens only the hub's API port between pods; the console's port is added to
    # the hub's Service and to the policies of the attendees, the proxy and the hub.
    assert {"name": "console", "port": CONSOLE_PORT, "targetPort": CONSOLE_PORT} in values["hub"][
        "service"
    ]["extraPorts"]
    for rules in (
        values["singleuser"]["networkPolicy"]["egress"],
        values["proxy"]["chp"]["networkPolicy"]["egress"],
        values["hub"]["networkPolicy"]["ingress"],
    ):
        assert [{"port": CONSOLE_PORT}] in [rule["ports"] for rule in rules]
    # The hub's own services call its API through its Service, back into its own pod.
    own_pod = {
        "from": [{"podSelector": {"matchLabels": {"component": "hub"}}}],
        "ports": [
            {"port": 8081},
            {"port": CONSOLE_PORT},
        ],
    }
    assert own_pod in values["hub"]["networkPolicy"]["ingress"]


# --- The pods KubeSpawner makes ------------------------------------------------------------


async def test_a_cpu_attendee_gets_the_limits_and_hardening_of_one_machine(
    tmp_path, monkeypatch, hub_data
):
    config = chart_config(values_for({}, storage_class="fast-ssd"), tmp_path / "chart", monkeypatch)
    made = await pod_for(config, "cpu")
    pod, pvc = made["pod"], made["pvc"]
    validate(pod)
    validate(pvc)
    container = notebook(pod)
    assert container["image"] == f"{REGISTRY}/pytorch-workshop-lab:cpu"
    assert container["resources"]["limits"] == {"cpu": 2.0, "memory": 2 * 1024**3}
    assert container["resources"]["requests"] == {"cpu": 0.5, "memory": 2 * 1024**3}
    # The lab image's start script seeds the labs, then runs the server; tini stays PID 1.
    assert container["args"][0] == kubernetes.LAB_START_COMMAND
    assert "command" not in container
    assert any(arg.startswith("--LabApp.news_url=http://hub:") for arg in container["args"])
    security = container["securityContext"]
    assert security["runAsUser"] == 1000 and security["runAsGroup"] == 100
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["fsGroup"] == 100
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    labels = pod["metadata"]["labels"]
    assert labels[LABEL_INSTANCE] == "pytorch-workshop"
    assert pod["metadata"]["annotations"][USERNAME_ANNOTATION] == "ada"
    assert labels[LABEL_PROFILE] == "cpu"
    # The chart's network policy for attendees selects their pods by these labels, and lets
    # only pods with the last one reach the hub.
    assert (labels["component"], labels["app"], labels["release"]) == (
        "singleuser-server",
        "jupyterhub",
        "workshop",
    )
    assert labels["hub.jupyter.org/network-access-hub"] == "true"
    assert pod["metadata"]["name"] == "pytorch-workshop-ada"
    environment = {item["name"]: item["value"] for item in container["env"]}
    assert environment["WORKSHOP_PROFILE"] == "cpu"
    assert environment["JUPYTERHUB_ROOT_DIR"] == WORK_DIR
    assert environment[CONSOLE_URL_ENV] == f"http://hub:{CONSOLE_PORT}/services/console/api/"
    assert "WORKSHOP_GPU_MEMORY_FRACTION" not in environment
    assert not any(name.startswith("nvidia.com/") for name in container["resources"]["limits"])
    assert pvc["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert pvc["spec"]["storageClassName"] == "fast-ssd"
    assert pvc["metadata"]["name"] == "pytorch-workshop-user-ada"


async def test_the_attendees_folders_are_the_same_as_on_one_machine(
    tmp_path, monkeypatch, hub_data
):
    settings = {"WORKSHOP_SHM_SIZE": "1G", "WORKSHOP_TMP_SIZE": "300M"}
    config = chart_config(values_for(settings), tmp_path / "chart", monkeypatch)
    pod = (await pod_for(config, "cpu"))["pod"]
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in notebook(pod)["volumeMounts"]}
    in_memory = {
        "/dev/shm": "1Gi",
        "/tmp": "300Mi",
        HOME_DIR: "64Mi",
    }
    for path, size in in_memory.items():
        assert volumes[mounts[path]]["emptyDir"] == {"medium": "Memory", "sizeLimit": size}
    work = volumes[mounts[WORK_DIR]]
    assert work["persistentVolumeClaim"]["claimName"] == "pytorch-workshop-user-ada"


@pytest.mark.parametrize(
    "environ, options, resource, fraction",
    [
        (GPU_ROOM_SHARED_FOUR_WAYS, {}, "nvidia.com/gpu", "0.25"),
        ({"WORKSHOP_GPUS": "auto", "WORKSHOP_ATTENDEES_PER_GPU": "1"}, {}, "nvidia.com/gpu", "1.0"),
        ({"WORKSHOP_GPUS": "auto"}, {"gpu_sharing": "1g.10gb"}, "nvidia.com/mig-1g.10gb", "1.0"),
    ],
)
async def test_a_gpu_attendee_asks_the_device_plugin_for_one_share(
    tmp_path, monkeypatch, hub_data, environ, options, resource, fraction
):
    config = chart_config(values_for(environ, **options), tmp_path / "chart", monkeypatch)
    pod = (await pod_for(config, "gpu"))["pod"]
    validate(pod)
    container = notebook(pod)
    assert container["image"] == f"{REGISTRY}/pytorch-workshop-lab:cuda"
    limits = container["resources"]["limits"]
    assert limits == {"cpu": 4.0, "memory": 6 * 1024**3, resource: "1"}
    environment = {item["name"]: item["value"] for item in container["env"]}
    assert environment["WORKSHOP_GPU_MEMORY_FRACTION"] == fraction
    assert environment["WORKSHOP_PROFILE"] == "gpu"
    assert pod["metadata"]["labels"][LABEL_PROFILE] == "gpu"
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


async def test_the_gpu_room_offers_both_profiles_gpu_first(tmp_path, monkeypatch, hub_data):
    values = values_for(GPU_ROOM_SHARED_FOUR_WAYS)
    profiles = values["singleuser"]["profileList"]
    assert [profile["slug"] for profile in profiles] == ["gpu", "cpu"]
    assert "shared with up to 3 others" in profiles[0]["description"]
    config = chart_config(values, tmp_path / "chart", monkeypatch)
    # No choice made: KubeSpawner starts the first profile, as the hub's form preselects it.
    spawner = spawner_for(config, "bo")
    await spawner.load_user_options()
    assert spawner.image.endswith(":cuda")


async def test_the_console_finds_each_attendees_pod_and_profile(tmp_path, monkeypatch, hub_data):
    config = chart_config(values_for(GPU_ROOM_SHARED_FOUR_WAYS), tmp_path / "chart", monkeypatch)
    # A name KubeSpawner escapes in labels ("ada-2elovelace"); the console knows it as is.
    pod = (await pod_for(config, "gpu", username="ada.lovelace"))["pod_object"]
    listed = as_listed_container(pod)
    assert listed["State"] == "pending"
    attendee = {"name": "ada.lovelace", "kind": "user", "servers": {"": {"ready": True}}}
    (row,) = room_view([attendee], [listed], {}, {}, now=0.0)["rows"]
    assert (row["name"], row["server"], row["profile"]) == ("ada.lovelace", "running", "gpu")


# --- Network, placeholders, other objects --------------------------------------------------


def network_policy(name: str, rules: dict, pod_labels: dict) -> dict:
    """A NetworkPolicy in the chart's form (templates/*/netpol.yaml) holding our rules."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": {
            "podSelector": {"matchLabels": pod_labels},
            "policyTypes": ["Ingress", "Egress"],
            **rules,
        },
    }


def test_the_network_rules_and_service_ports_are_valid_kubernetes_objects():
    values = values_for()
    hub_labels = {"component": "hub"}
    objects = [
        network_policy("hub", {"ingress": values["hub"]["networkPolicy"]["ingress"]}, hub_labels),
        network_policy(
            "singleuser",
            {"egress": values["singleuser"]["networkPolicy"]["egress"]},
            {"component": "singleuser-server"},
        ),
        network_policy(
            "proxy",
            {"egress": values["proxy"]["chp"]["networkPolicy"]["egress"]},
            {"component": "proxy"},
        ),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "hub"},
            "spec": {
                "selector": hub_labels,
                "ports": [{"name": "hub", "port": 8081}, *values["hub"]["service"]["extraPorts"]],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "user-placeholder-0"},
            "spec": {
                "containers": [
                    {
                        "name": "pause",
                        "image": "registry.k8s.io/pause:3.10.1",
                        "resources": values["scheduling"]["userPlaceholder"]["resources"],
                    }
                ]
            },
        },
    ]
    for manifest in objects:
        validate(manifest)


@pytest.mark.parametrize("internet", [False, True])
def test_attendees_never_reach_the_metadata_server_nor_private_ranges(internet):
    values = values_for({"WORKSHOP_ATTENDEE_INTERNET": str(internet).lower()})
    policy = values["singleuser"]["networkPolicy"]
    assert policy["enabled"] is True
    assert policy["egressAllowRules"] == {
        "cloudMetadataServer": False,
        "privateIPs": False,
        "nonPrivateIPs": internet,
    }


def test_placeholders_keep_room_for_the_whole_room_before_it_arrives():
    values = values_for({"WORKSHOP_GPUS": "auto"}, attendees=120)
    placeholders = values["scheduling"]["userPlaceholder"]
    assert placeholders["replicas"] == 120
    # As large as the largest attendee (the GPU profile's 6 GB), so one always fits its place.
    assert placeholders["resources"]["requests"] == {"cpu": 1.0, "memory": "6Gi"}
    assert values["scheduling"]["podPriority"]["enabled"] is True
    assert values["prePuller"]["pullProfileListImages"] is True
    assert (
        values_for({"WORKSHOP_MAX_ATTENDEES": "45"})["scheduling"]["userPlaceholder"]["replicas"]
        == 45
    )
    assert values_for()["scheduling"]["userPlaceholder"]["replicas"] == kubernetes.DEFAULT_ATTENDEES


def test_a_room_size_set_caps_the_servers_as_on_one_machine():
    hub = values_for({"WORKSHOP_MAX_ATTENDEES": "45"})["hub"]
    assert hub["activeServerLimit"] == 45
    assert hub["templateVars"]["max_attendees"] == 45
    # auto sizes a room from one host's memory: a cluster's nodes decide instead.
    assert "activeServerLimit" not in values_for()["hub"]


def test_images_already_in_a_registry_are_kept():
    values = values_for({"WORKSHOP_CPU_IMAGE": "ghcr.io/example/lab:cpu-2026"})
    override = values["singleuser"]["profileList"][0]["kubespawner_override"]
    assert override["image"] == "ghcr.io/example/lab:cpu-2026"
    assert values["hub"]["image"] == {
        "name": f"{REGISTRY}/pytorch-workshop-hub",
        "tag": "kubernetes",
    }


def test_a_domain_turns_on_the_charts_https():
    https = values_for({"WORKSHOP_DOMAIN": "hub.example.org"})["proxy"]["https"]
    assert https == {"enabled": True, "type": "letsencrypt", "hosts": ["hub.example.org"]}
    assert "https" not in values_for()["proxy"]


# --- The command ----------------------------------------------------------------------------


def test_the_command_prints_values_and_what_the_cluster_needs(monkeypatch, capsys):
    for name, value in GPU_ROOM_SHARED_FOUR_WAYS.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["helm-values", "--registry", REGISTRY]) == 0
    out = capsys.readouterr().out
    assert f"--version {kubernetes.CHART_VERSION}" in out
    assert "replicas: 4" in out and "podPidsLimit: 512" in out
    assert yaml.safe_load(out) == values_for(GPU_ROOM_SHARED_FOUR_WAYS)


def refusal(monkeypatch, capsys, environ: dict, *options: str) -> str:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        cli.main(["helm-values", *options])
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err
    return captured.err


@pytest.mark.parametrize("name", list(kubernetes.NOT_ON_KUBERNETES))
def test_settings_of_one_machine_are_refused_with_the_way_out(monkeypatch, capsys, name):
    value = {"WORKSHOP_LISTEN_ADDRESS": "0.0.0.0", "WORKSHOP_PORT": "8080"}.get(name, "4")
    if name == "WORKSHOP_TLS_CERT":
        value = "/etc/ssl/hub.pem"
    error = refusal(monkeypatch, capsys, {name: value}, "--registry", REGISTRY)
    assert f"{name} is set" in error and f"-e {name}=" in error


@pytest.mark.parametrize(
    "environ, options, expected",
    [
        ({"WORKSHOP_GPUS": "0,1"}, [], "-e WORKSHOP_GPUS=auto"),
        ({}, ["--registry", ""], "--registry registry.example.org/workshop"),
        ({}, ["--registry", "Not A Registry"], "push them there"),
        ({}, ["--gpu-sharing", "time-slicing"], "WORKSHOP_GPUS=auto"),
        ({"WORKSHOP_GPUS": "auto"}, ["--gpu-sharing", "half"], "such as 1g.10gb"),
        ({"WORKSHOP_GPUS": "auto"}, ["--gpu-sharing", "whole"], "WORKSHOP_ATTENDEES_PER_GPU=1"),
        (
            {"WORKSHOP_GPUS": "auto", "WORKSHOP_ATTENDEES_PER_GPU": "1"},
            ["--gpu-sharing", "time-slicing"],
            "--gpu-sharing whole",
        ),
        ({}, ["--storage-class", "Fast SSD"], "kubectl get storageclass"),
        ({}, ["--attendees", "0"], "from 1 to 100000"),
    ],
)
def test_options_the_cluster_cannot_use_are_refused(
    monkeypatch, capsys, environ, options, expected
):
    arguments = options if "--registry" in options else ["--registry", REGISTRY, *options]
    assert expected in refusal(monkeypatch, capsys, environ, *arguments)
