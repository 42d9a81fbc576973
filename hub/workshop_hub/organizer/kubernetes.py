"""The same workshop on Kubernetes: Zero to JupyterHub's values from this deployment's settings.

`workshop-hub helm-values` reads the settings as the hub does and prints the values of the
Zero to JupyterHub chart (z2jh), version CHART_VERSION: KubeSpawner gets the profiles, limits
and hardening that WorkshopSpawner gives Docker containers, the chart gets the idle culler,
the network policy, the pre-puller and user placeholders, and the hub (this package, in the
image that docker/hub-kubernetes/Dockerfile builds) keeps this project's login
and the instructor's console, which finds the attendees' servers among the pods
(AttendeePods) instead of Docker's containers.

The room code and the admin password never go into the values (helm keeps those in a Secret
that anyone who can read the release sees, and values.yaml files get copied around): the hub
pod takes them from a Secret of the organizer's own, SECRET_NAME, which the command says how
to make (secret_command).

What only the cluster can say is an option of the command, not a setting: the registry the
images are pushed to, how GPUs are shared (whole, time-sliced by NVIDIA's device plugin, or
MIG slices), the storage class. Settings that only make sense on one machine are refused
when they are set (NOT_ON_KUBERNETES), never dropped without a word.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from ..access import credentials
from ..access.auth import max_names
from ..access.exposure import limit_request_bodies
from ..access.names import (
    INSTRUCTOR_ROLE,
    NameConflict,
    check_no_attendee_holds,
    remember_instructors,
    reserved_names,
)
from ..access.passwords import MIN_PASSWORD_LENGTH, PasswordStore
from ..console import announcement
from ..console import service as console
from ..room.limits import cull_every
from ..room.profiles import (
    HOME_DIR,
    HOME_TMPFS_SIZE,
    LABEL_INSTANCE,
    LABEL_PROFILE,
    START_PAGE_URL,
    WORK_DIR,
    Profile,
    gpu_memory_fraction,
    offered_profiles,
)
from ..services import (
    CONSOLE_PORT,
    CONSOLE_SERVICE,
    CONSOLE_URL_ENV,
    HUB_API_PORT,
    announcement_feed_url,
    console_api_url,
)
from ..settings import (
    SECRETS,
    USERNAME_PATTERN,
    USERNAME_RULE,
    SettingsError,
    WorkshopSettings,
    format_size,
    read_secrets,
)

# The chart release these values were checked against (its values.schema.yaml and its hub's
# jupyterhub_config.py, kept under tests/hub/organizer/z2jh/), and the Kubernetes release whose
# schemas the pods and policies it makes were validated against (the chart needs 1.28 or newer).
CHART_VERSION = "4.4.0"
KUBERNETES_VERSION = "1.33.0"
# Where docs/kubernetes.md installs the chart.
NAMESPACE = "workshop"
# The organizer's Secret with the secret settings, one key per setting name (WORKSHOP_...).
# Optional: without it, or with a key empty, the hub generates the value on its volume.
SECRET_NAME = "workshop-secrets"

# Every key of the chart these values set. hub.config, hub.services, hub.loadRoles,
# templateVars, extraEnv, profileList and the network policies' rule lists hold free-form
# content under them (traitlets, KubeSpawner's traits, Kubernetes objects).
CHART_KEYS = (
    "hub.image.name",
    "hub.image.tag",
    "hub.config",
    "hub.extraConfig",
    "hub.extraEnv",
    "hub.templatePaths",
    "hub.templateVars",
    "hub.activeServerLimit",
    "hub.services",
    "hub.loadRoles",
    "hub.service.extraPorts",
    "hub.networkPolicy.ingress",
    "proxy.chp.networkPolicy.egress",
    "proxy.https.enabled",
    "proxy.https.type",
    "proxy.https.hosts",
    "singleuser.image.name",
    "singleuser.image.tag",
    "singleuser.cmd",
    "singleuser.defaultUrl",
    "singleuser.podNameTemplate",
    "singleuser.uid",
    "singleuser.fsGid",
    "singleuser.allowPrivilegeEscalation",
    "singleuser.extraEnv",
    "singleuser.extraLabels",
    "singleuser.profileList",
    "singleuser.storage.capacity",
    "singleuser.storage.homeMountPath",
    "singleuser.storage.dynamic.pvcNameTemplate",
    "singleuser.storage.dynamic.storageClass",
    "singleuser.storage.extraVolumes",
    "singleuser.storage.extraVolumeMounts",
    "singleuser.networkPolicy.enabled",
    "singleuser.networkPolicy.egressAllowRules.cloudMetadataServer",
    "singleuser.networkPolicy.egressAllowRules.privateIPs",
    "singleuser.networkPolicy.egressAllowRules.nonPrivateIPs",
    "singleuser.networkPolicy.egress",
    "cull.enabled",
    "cull.timeout",
    "cull.every",
    "cull.maxAge",
    "prePuller.hook.enabled",
    "prePuller.continuous.enabled",
    "prePuller.pullProfileListImages",
    "scheduling.podPriority.enabled",
    "scheduling.userPlaceholder.enabled",
    "scheduling.userPlaceholder.replicas",
    "scheduling.userPlaceholder.resources",
)

# The hub image for the chart (docker/hub-kubernetes/Dockerfile), as the organizer
# tags it before pushing it to their registry.
KUBERNETES_HUB_IMAGE = "pytorch-workshop-hub:kubernetes"
# Where that image keeps the hub's page templates: the chart mounts the hub's own volume at
# /srv/jupyterhub, over the templates' place in the Docker hub image.
KUBERNETES_TEMPLATES_DIR = "/usr/local/share/workshop-hub/templates"
# The lab image's start script: it seeds the labs into ~/work/labs, then runs the server.
# KubeSpawner passes it as the container's arguments, so the image's tini stays PID 1.
LAB_START_COMMAND = "start-workshop"
# The room at 09:00 when WORKSHOP_MAX_ATTENDEES is auto (a host's memory, meaningless on a
# cluster): the room the defaults are sized for (docs/organizers.md, Capacity).
DEFAULT_ATTENDEES = 30
# CPU a pod is guaranteed, as a share of its limit. Labs use their cores in bursts: on one
# machine 30 attendees with 2 cores each share 16 cores, about a quarter each.
CPU_GUARANTEE_SHARE = 0.25
# Sharing modes of --gpu-sharing besides a MIG profile, and the MIG profiles' form (1g.10gb,
# 3g.40gb, 1c.3g.40gb), which NVIDIA's device plugin ("mixed" strategy) offers as the
# resource nvidia.com/mig-<profile>.
WHOLE_GPUS, TIME_SLICING = "whole", "time-slicing"
MIG_PROFILE = re.compile(r"(?:[1-7]c\.)?[1-7]g\.[0-9]+gb")
GPU_RESOURCE = "nvidia.com/gpu"
# A registry host with an optional port and path, as `docker push` takes it.
REGISTRY = re.compile(
    r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
)
STORAGE_CLASS = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
# The chart's label of the hub's pod, and of the pods it lets reach the hub (attendees, proxy).
HUB_COMPONENT = {"component": "hub"}
HUB_ACCESS_LABEL = "hub.jupyter.org/network-access-hub"
# What a process in the hub's pod needs to call the Kubernetes API (kubernetes_asyncio's
# in-cluster configuration, its namespace from the chart), which JupyterHub does not pass on to
# the services it starts.
IN_CLUSTER_ENVIRONMENT = ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "POD_NAMESPACE")
# Run by the hub pod at start (hub.extraConfig), after the chart's own configuration.
EXTRA_CONFIG = "from workshop_hub.organizer.kubernetes import configure_hub\n\nconfigure_hub(c)\n"

# Settings of one machine that a cluster has no use for: set, each is refused with why.
NOT_ON_KUBERNETES = {
    "WORKSHOP_LISTEN_ADDRESS": "the chart's proxy-public Service publishes the hub",
    "WORKSHOP_PORT": "the chart's proxy-public Service publishes the hub on ports 80 and 443",
    "WORKSHOP_TLS_CERT": (
        "the chart's proxy serves your certificate from a Kubernetes TLS Secret "
        "(proxy.https.type: secret)"
    ),
    "WORKSHOP_SPAWN_CONCURRENCY": (
        "servers wait in line only on one machine; the cluster's scheduler starts them on "
        "every node at once"
    ),
}


class NotForKubernetes(ValueError):
    """A setting or option the chart cannot use; the message names it and the fix."""


@dataclass(frozen=True)
class ClusterChoices:
    """What only the cluster can say: the options of `workshop-hub helm-values`."""

    registry: str
    gpu_sharing: str | None = None  # WHOLE_GPUS, TIME_SLICING or a MIG profile; None: derived
    storage_class: str | None = None
    attendees: int | None = None  # None: WORKSHOP_MAX_ATTENDEES, or DEFAULT_ATTENDEES


def refuse_one_machine_settings(environ: Mapping[str, str], settings: WorkshopSettings) -> None:
    """Refuse settings that are set and mean something on one machine only."""
    for name, why in NOT_ON_KUBERNETES.items():
        if environ.get(name, "").strip():
            raise NotForKubernetes(
                f"{name} is set, but on Kubernetes {why}: run the command with -e {name}= "
                "(docker compose run --rm -e ...), your .env can keep it for Docker"
            )
    if isinstance(settings.gpus, tuple) and settings.gpus:
        raise NotForKubernetes(
            f"WORKSHOP_GPUS={','.join(settings.gpus)} names the devices of one machine; on "
            "Kubernetes NVIDIA's device plugin hands them out: run the command with "
            "-e WORKSHOP_GPUS=auto"
        )


def _quantity(size: int) -> str:
    """Bytes as a Kubernetes quantity: 2Gi, 512Mi, or plain bytes (Docker's 2G, binary too)."""
    size_text = format_size(size)
    return size_text if size_text.isdigit() else f"{size_text}i"


def _has_registry(image: str) -> bool:
    """Whether the image's name starts with a registry host (ghcr.io/..., host:5000/...)."""
    first, _, rest = image.partition("/")
    return bool(rest) and ("." in first or ":" in first or first == "localhost")


def pushed_image(image: str, registry: str) -> str:
    """Where the cluster pulls `image` from: as named when it names a registry, else pushed
    to `registry` under its local name."""
    return image if _has_registry(image) else f"{registry}/{image}"


def _name_and_tag(image: str) -> tuple[str, str]:
    name, colon, tag = image.rpartition(":")
    if not colon or "/" in tag:
        return image, "latest"
    return name, tag


def _gpu_sharing(settings: WorkshopSettings, chosen: str | None) -> str:
    per_gpu = settings.attendees_per_gpu
    sharing = chosen or (WHOLE_GPUS if per_gpu == 1 else TIME_SLICING)
    if sharing == WHOLE_GPUS and per_gpu > 1:
        raise NotForKubernetes(
            f"--gpu-sharing {WHOLE_GPUS} gives each GPU attendee a GPU of their own, but "
            f"WORKSHOP_ATTENDEES_PER_GPU={per_gpu}: run with -e WORKSHOP_ATTENDEES_PER_GPU=1, "
            f"or use --gpu-sharing {TIME_SLICING}"
        )
    if sharing == TIME_SLICING and per_gpu == 1:
        raise NotForKubernetes(
            f"--gpu-sharing {TIME_SLICING} shares each GPU, but WORKSHOP_ATTENDEES_PER_GPU=1: "
            f"set how many share one GPU, or use --gpu-sharing {WHOLE_GPUS}"
        )
    return sharing


def _is_mig(sharing: str | None) -> bool:
    return sharing is not None and sharing not in (WHOLE_GPUS, TIME_SLICING)


def gpu_resource(sharing: str) -> str:
    """The extended resource a GPU attendee's pod asks NVIDIA's device plugin for."""
    return f"nvidia.com/mig-{sharing}" if _is_mig(sharing) else GPU_RESOURCE


def check_choices(choices: ClusterChoices, settings: WorkshopSettings) -> None:
    """Refuse options the cluster could not use, each with the form that works."""
    if not REGISTRY.fullmatch(choices.registry or ""):
        raise NotForKubernetes(
            "--registry: the cluster's nodes pull the images from a registry: push them there "
            "and name it, e.g. --registry registry.example.org/workshop"
        )
    sharing = choices.gpu_sharing
    if sharing is not None:
        if not settings.gpus:
            raise NotForKubernetes(
                f"--gpu-sharing {sharing}: no GPU profile is offered (WORKSHOP_GPUS is "
                "empty): run with -e WORKSHOP_GPUS=auto, or leave out --gpu-sharing"
            )
        if _is_mig(sharing) and not MIG_PROFILE.fullmatch(sharing):
            raise NotForKubernetes(
                f"--gpu-sharing {sharing!r}: use {WHOLE_GPUS}, {TIME_SLICING}, or a MIG "
                "profile as nvidia-smi mig -lgip names it, such as 1g.10gb"
            )
    if choices.storage_class is not None and not STORAGE_CLASS.fullmatch(choices.storage_class):
        raise NotForKubernetes(
            f"--storage-class {choices.storage_class!r}: use the name of one of the cluster's "
            "storage classes (kubectl get storageclass), such as standard"
        )
    if choices.attendees is not None and not 1 <= choices.attendees <= 100_000:
        raise NotForKubernetes("--attendees: use a whole number from 1 to 100000")


def _cpu_guarantee(profile: Profile) -> float:
    return round(profile.cpu_limit * CPU_GUARANTEE_SHARE, 3)


def _profile_entry(
    profile: Profile, settings: WorkshopSettings, registry: str, sharing: str | None
) -> dict:
    """One entry of KubeSpawner's profile_list; its override applies when it is chosen."""
    memory = format_size(profile.mem_limit)  # KubeSpawner reads 2G as 2 GiB, as Docker does
    environment = {"WORKSHOP_PROFILE": profile.slug}
    override: dict[str, Any] = {
        "image": pushed_image(profile.image, registry),
        "cpu_limit": profile.cpu_limit,
        "cpu_guarantee": _cpu_guarantee(profile),
        # Guaranteed as much as allowed: the room is sized by the limit, never overcommitted.
        "mem_limit": memory,
        "mem_guarantee": memory,
        "environment": environment,
        "extra_labels": {LABEL_PROFILE: profile.slug},
    }
    if profile.slug == "gpu":
        override["extra_resource_limits"] = {gpu_resource(sharing): "1"}
        # Only a time-sliced GPU is shared: a whole GPU or a MIG slice is the attendee's own.
        shared = sharing == TIME_SLICING
        fraction = gpu_memory_fraction(settings) if shared else 1.0
        environment["WORKSHOP_GPU_MEMORY_FRACTION"] = str(fraction)
    return {
        "slug": profile.slug,
        "display_name": profile.display_name,
        "description": profile.description,
        "kubespawner_override": override,
    }


def _memory_volume(name: str, size: int, mount_path: str) -> tuple[dict, dict]:
    """An in-memory folder (tmpfs): counted against the pod's memory limit, as on Docker."""
    volume = {"name": name, "emptyDir": {"medium": "Memory", "sizeLimit": _quantity(size)}}
    return volume, {"name": name, "mountPath": mount_path}


def _pods(labels: dict) -> dict:
    return {"podSelector": {"matchLabels": dict(labels)}}


def _ports(*ports: int) -> list[dict]:
    return [{"port": port} for port in ports]


def _to_console() -> dict:
    """Egress to the console in the hub's pod: attendees' kernels report checks and read
    solutions there, the proxy routes /services/console/ to it."""
    return {"to": [_pods(HUB_COMPONENT)], "ports": _ports(CONSOLE_PORT)}


def _hub_ingress() -> list[dict]:
    """What the hub's pod lets in besides its API (which the chart opens)."""
    return [
        {"from": [_pods({HUB_ACCESS_LABEL: "true"})], "ports": _ports(CONSOLE_PORT)},
        # The hub's own services reach its API through its Service, and the hub checks the
        # console there, back into its own pod.
        {"from": [_pods(HUB_COMPONENT)], "ports": _ports(HUB_API_PORT, CONSOLE_PORT)},
    ]


def _nest(flat: dict[str, Any]) -> dict:
    """{'a.b': 1} -> {'a': {'b': 1}}, for keys of CHART_KEYS only."""
    unknown = sorted(set(flat) - set(CHART_KEYS))
    if unknown:
        raise KeyError(f"not in CHART_KEYS: {', '.join(unknown)}")
    nested: dict = {}
    for path, value in flat.items():
        *parents, leaf = path.split(".")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return nested


def helm_values(settings: WorkshopSettings, choices: ClusterChoices) -> dict:
    """The chart's values for this deployment, ready for `helm upgrade --install -f`."""
    check_choices(choices, settings)
    sharing = _gpu_sharing(settings, choices.gpu_sharing) if settings.gpus else None
    profiles = offered_profiles(settings, sharing is not None, mig_slices=_is_mig(sharing))
    registry = choices.registry
    hub_name, hub_tag = _name_and_tag(pushed_image(KUBERNETES_HUB_IMAGE, registry))
    default_name, default_tag = _name_and_tag(pushed_image(profiles[0].image, registry))
    attendees = choices.attendees or settings.max_attendees or DEFAULT_ATTENDEES
    largest = max(profiles, key=lambda profile: profile.mem_limit)
    memory_folders = [
        # DataLoader workers share batches in /dev/shm; Kubernetes gives a pod 64 MB.
        _memory_volume("shm", settings.shm_size, "/dev/shm"),
        _memory_volume("tmp", settings.tmp_size, "/tmp"),
        # The runtime files and caches of Jupyter, IPython and matplotlib; the work volume is
        # mounted below it. The image's own file system stays read-only.
        _memory_volume("home", HOME_TMPFS_SIZE, HOME_DIR),
    ]
    authenticator = {
        "dbm_path": str(credentials.ATTENDEE_PASSWORDS_FILE),
        "min_password_length": MIN_PASSWORD_LENGTH,
        "instructors": list(settings.admin_users),
        "max_names": max_names(settings),
    }
    flat: dict[str, Any] = {
        "hub.image.name": hub_name,
        "hub.image.tag": hub_tag,
        "hub.config": {
            "JupyterHub": {
                "authenticator_class": "workshop_hub.access.auth.WorkshopAuthenticator",
                "cookie_max_age_days": settings.session_length / 86400,
                "token_expires_in_max_seconds": settings.session_length,
            },
            "Authenticator": {
                "allow_all": True,
                "username_pattern": f"^{USERNAME_PATTERN}$",
            },
            "WorkshopAuthenticator": authenticator,
            "Spawner": {
                "notebook_dir": WORK_DIR,
                "disable_user_config": True,
                # JupyterLab shows the instructor's announcement among its news.
                "args": [f"--LabApp.news_url={announcement_feed_url()}"],
            },
            "KubeSpawner": {
                "gid": 100,
                "container_security_context": {
                    "capabilities": {"drop": ["ALL"]},
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                },
                # Docker's default system call filter, which Kubernetes leaves off.
                "pod_security_context": {"seccompProfile": {"type": "RuntimeDefault"}},
            },
        },
        "hub.extraConfig": {"workshop": EXTRA_CONFIG},
        "hub.extraEnv": secret_environment(),
        "hub.templatePaths": [KUBERNETES_TEMPLATES_DIR],
        "hub.templateVars": {
            "username_rule": USERNAME_RULE,
            "min_password_length": MIN_PASSWORD_LENGTH,
        },
        "hub.services": {
            CONSOLE_SERVICE: {
                # In the hub's pod; the proxy and attendees reach it through the hub's Service.
                "url": f"http://hub:{CONSOLE_PORT}",
                "command": ["python3", "-m", console.__name__],
                "environment": {console.INSTANCE_ENV: settings.instance},
                "display": True,
                "oauth_no_confirm": True,
            }
        },
        # As on one machine (jupyterhub_config.py): nobody is JupyterHub's admin, whose role
        # opens every attendee's server; instructors hold exactly the instructor role.
        "hub.loadRoles": {
            CONSOLE_SERVICE: {"scopes": console.SCOPES, "services": [CONSOLE_SERVICE]},
            "admin": {"users": []},
            INSTRUCTOR_ROLE: {
                "scopes": console.INSTRUCTOR_SCOPES,
                "users": list(settings.admin_users),
            },
        },
        "hub.service.extraPorts": [
            {"name": CONSOLE_SERVICE, "port": CONSOLE_PORT, "targetPort": CONSOLE_PORT}
        ],
        "hub.networkPolicy.ingress": _hub_ingress(),
        "proxy.chp.networkPolicy.egress": [_to_console()],
        "singleuser.image.name": default_name,
        "singleuser.image.tag": default_tag,
        "singleuser.cmd": [LAB_START_COMMAND],
        "singleuser.defaultUrl": START_PAGE_URL,
        # Names like the containers and volumes on one machine.
        "singleuser.podNameTemplate": f"{settings.instance}-{{user_server}}",
        "singleuser.uid": 1000,
        "singleuser.fsGid": 100,
        "singleuser.allowPrivilegeEscalation": False,
        "singleuser.extraEnv": {CONSOLE_URL_ENV: console_api_url()},
        "singleuser.extraLabels": {LABEL_INSTANCE: settings.instance},
        "singleuser.profileList": [
            _profile_entry(profile, settings, registry, sharing) for profile in profiles
        ],
        "singleuser.storage.capacity": _quantity(settings.disk_limit),
        "singleuser.storage.homeMountPath": WORK_DIR,
        "singleuser.storage.dynamic.pvcNameTemplate": f"{settings.instance}-user-{{user_server}}",
        "singleuser.storage.extraVolumes": [volume for volume, _ in memory_folders],
        "singleuser.storage.extraVolumeMounts": [mount for _, mount in memory_folders],
        # No way out but to the hub, the proxy and DNS, unless WORKSHOP_ATTENDEE_INTERNET;
        # never the metadata server nor private ranges.
        "singleuser.networkPolicy.enabled": True,
        "singleuser.networkPolicy.egressAllowRules.cloudMetadataServer": False,
        "singleuser.networkPolicy.egressAllowRules.privateIPs": False,
        "singleuser.networkPolicy.egressAllowRules.nonPrivateIPs": settings.attendee_internet,
        "singleuser.networkPolicy.egress": [_to_console()],
        "cull.enabled": True,
        "cull.timeout": settings.idle_timeout,
        "cull.every": cull_every(settings),
        "cull.maxAge": settings.max_server_age,
        # Every node pulls the lab images before the day (and when it joins), not at 09:00.
        "prePuller.hook.enabled": True,
        "prePuller.continuous.enabled": True,
        "prePuller.pullProfileListImages": True,
        # Placeholders keep room for the whole room warm; an attendee's pod evicts one.
        "scheduling.podPriority.enabled": True,
        "scheduling.userPlaceholder.enabled": True,
        "scheduling.userPlaceholder.replicas": attendees,
        "scheduling.userPlaceholder.resources": {
            "requests": {
                "cpu": _cpu_guarantee(largest),
                "memory": _quantity(largest.mem_limit),
            }
        },
    }
    if settings.max_attendees is not None:
        flat["hub.activeServerLimit"] = settings.max_attendees
        # The page that says the room is full names its size.
        flat["hub.templateVars"]["max_attendees"] = settings.max_attendees
    if choices.storage_class:
        flat["singleuser.storage.dynamic.storageClass"] = choices.storage_class
    if settings.domain:
        flat["proxy.https.enabled"] = True
        flat["proxy.https.type"] = "letsencrypt"
        flat["proxy.https.hosts"] = [settings.domain]
    return _nest(flat)


def secret_environment() -> dict[str, dict]:
    """hub.extraEnv: each secret setting from the organizer's Secret (the chart's implicit
    notation: the key is the variable's name)."""
    return {
        name: {"valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": name, "optional": True}}}
        for name in SECRETS
    }


def secret_command() -> str:
    """The command that makes SECRET_NAME, each value left for the organizer to type after
    its `=` (left empty, the hub generates that one)."""
    literals = " ".join(f"--from-literal={name}=" for name in SECRETS)
    return f"kubectl --namespace {NAMESPACE} create secret generic {SECRET_NAME} {literals}"


def secret_instructions(settings: WorkshopSettings) -> str:
    """What the organizer reads on stderr: the secrets are not in values.yaml, and how the
    hub gets them."""
    configured = [name for name, s in SECRETS.items() if getattr(settings, s.field)]
    what_to_do = (
        f"Your settings set {' and '.join(configured)}: put the same values in that Secret"
        if configured
        else "To choose them yourself, make that Secret"
    )
    return (
        "helm-values: values.yaml leaves out the room code and admin password; the hub reads "
        f"them from the Kubernetes Secret {SECRET_NAME}. {what_to_do} before installing, each "
        "value typed after its '=' (left empty, or with no Secret, the hub generates it on "
        f"first start):\n  {secret_command()}\n"
    )


def cluster_notes(settings: WorkshopSettings, choices: ClusterChoices) -> list[str]:
    """What the cluster itself must be set up with, for the values file's header."""
    notes = [
        # The pre-puller's hook holds the install until every node has the lab images.
        f"Zero to JupyterHub chart {CHART_VERSION}: helm upgrade --install workshop "
        f"jupyterhub --repo https://hub.jupyter.org/helm-chart/ --version {CHART_VERSION} "
        f"--namespace {NAMESPACE} --create-namespace --timeout 30m --values values.yaml",
        f"The room code and admin password (optional; generated when left out): {secret_command()}",
        f"WORKSHOP_PIDS_LIMIT={settings.pids_limit}: Kubernetes limits processes per pod on "
        f"each node, not per pod spec: kubelet podPidsLimit: {settings.pids_limit}",
    ]
    if settings.gpus:
        sharing = _gpu_sharing(settings, choices.gpu_sharing)
        if sharing == TIME_SLICING:
            notes.append(
                "NVIDIA device plugin with time-slicing: sharing.timeSlicing.resources: "
                f"[{{name: {GPU_RESOURCE}, replicas: {settings.attendees_per_gpu}}}]"
            )
        elif sharing == WHOLE_GPUS:
            notes.append("NVIDIA device plugin, each GPU to one attendee")
        else:
            notes.append(
                f"NVIDIA device plugin with migStrategy: mixed, GPUs split into {sharing} slices"
            )
    return notes


class _ValuesDumper(yaml.SafeDumper):
    """YAML as a person writes it: multi-line text as a block, no anchors."""

    def ignore_aliases(self, data) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_ValuesDumper.add_representer(str, _text)


def render(
    environ: Mapping[str, str],
    settings: WorkshopSettings,
    choices: ClusterChoices,
    instructions=None,
) -> str:
    """The values file: what the cluster needs, as comments, then the chart's values. How to
    make the Secret goes to `instructions` (default stderr), which stays on the organizer's
    screen while the values go to a file."""
    refuse_one_machine_settings(environ, settings)
    values = helm_values(settings, choices)
    header = "".join(f"# {note}\n" for note in cluster_notes(settings, choices))
    (instructions or sys.stderr).write(secret_instructions(settings))
    return header + yaml.dump(values, Dumper=_ValuesDumper, sort_keys=False, width=100)


def configure_hub(c) -> None:
    """What values cannot hold, run in the hub's pod (hub.extraConfig): the room code and the
    admin password from the organizer's Secret (in the pod's environment, hub.extraEnv),
    checked as on Docker, else made once and kept on the hub's volume; the console's way to
    the Kubernetes API, and the announcement on every page (a callable template variable)."""
    try:
        configured = read_secrets(os.environ)
    except SettingsError as error:
        raise SystemExit(f"workshop hub cannot start: Secret {SECRET_NAME}: {error}") from None
    limit_request_bodies()
    authenticator = c.WorkshopAuthenticator
    authenticator.room_code = credentials.resolve(
        configured["access_code"],
        credentials.ACCESS_CODE_FILE,
        credentials.generate_access_code,
    )
    authenticator.admin_password = credentials.resolve(
        configured["admin_password"],
        credentials.ADMIN_PASSWORD_FILE,
        credentials.generate_admin_password,
    )
    # Names nobody claims, and no attendee's name made an instructor's (access/names.py).
    instructors = set(authenticator.instructors)
    try:
        check_no_attendee_holds(
            instructors, PasswordStore(credentials.ATTENDEE_PASSWORDS_FILE).names()
        )
        instructors_ever = remember_instructors(instructors)
    except NameConflict as error:
        raise SystemExit(f"workshop hub cannot start: {error}") from None
    authenticator.reserved_names = set(
        reserved_names(instructors_ever, [service["name"] for service in c.JupyterHub.services])
    )
    # The console lists the attendees' pods (AttendeePods).
    for service in c.JupyterHub.services:
        if service["name"] == CONSOLE_SERVICE:
            cluster = {
                name: os.environ[name] for name in IN_CLUSTER_ENVIRONMENT if name in os.environ
            }
            service["environment"] = {**service.get("environment", {}), **cluster}
    c.JupyterHub.template_vars = {
        **c.JupyterHub.get("template_vars", {}),
        "announcement": announcement.for_page,
    }
