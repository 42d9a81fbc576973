"""JupyterHub configuration of the PyTorch workshop: a flat list of decisions.

Values come from the workshop settings (documented in .env.example); the logic behind them
lives in the workshop_hub package, which has its own tests.
"""

import logging
import os
import sys

import docker

from workshop_hub import credentials
from workshop_hub.settings import USERNAME_PATTERN, USERNAME_RULE, SettingsError, load_settings
from workshop_hub.spawner import WorkshopSpawner
from workshop_hub.workshop import prepare_workshop

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)
log = logging.getLogger("JupyterHub")

try:
    settings = load_settings(os.environ)
    workshop = prepare_workshop(settings, docker.from_env(), log)
    access_code = credentials.resolve(
        settings.access_code, credentials.ACCESS_CODE_FILE, credentials.generate_access_code
    )
    admin_password = credentials.resolve(
        settings.admin_password,
        credentials.ADMIN_PASSWORD_FILE,
        credentials.generate_admin_password,
    )
except (SettingsError, docker.errors.DockerException, OSError) as error:
    # One line that names the setting (or the Docker problem) and the fix; no traceback.
    sys.exit(f"workshop hub cannot start: {error}")

print(credentials.banner(access_code, settings.admin_users), flush=True)

# State that must survive restarts lives on the hub-data volume.
c.JupyterHub.db_url = f"sqlite:///{credentials.HUB_DATA_DIR}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = str(credentials.HUB_DATA_DIR / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = "/tmp/jupyterhub-proxy.pid"

# Attendee servers keep running when the hub restarts; the hub reconnects to them.
c.JupyterHub.cleanup_servers = False
c.JupyterHub.hub_ip = "0.0.0.0"
c.JupyterHub.hub_connect_ip = "hub"  # the compose service name, resolvable on the network
c.JupyterHub.template_paths = ["/srv/jupyterhub/templates"]
c.JupyterHub.template_vars = {"username_rule": USERNAME_RULE}

# A room of attendees choosing their own names, sharing one access code.
c.JupyterHub.authenticator_class = "workshop_hub.auth.WorkshopAuthenticator"
c.Authenticator.allow_all = True
c.Authenticator.username_pattern = f"^{USERNAME_PATTERN}$"
c.Authenticator.admin_users = set(settings.admin_users)
c.SharedPasswordAuthenticator.user_password = access_code
c.SharedPasswordAuthenticator.admin_password = admin_password

# One container per attendee, on the hub's network, with the workshop's profiles and limits.
c.JupyterHub.spawner_class = "workshop_hub.spawner.WorkshopSpawner"
WorkshopSpawner.workshop = workshop
c.DockerSpawner.network_name = os.environ["WORKSHOP_NETWORK"]
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.prefix = settings.instance
c.DockerSpawner.name_template = "{prefix}-{username}"
c.DockerSpawner.volumes = {f"{settings.instance}-user-{{username}}": "/home/jovyan/work"}
c.DockerSpawner.notebook_dir = "/home/jovyan/work"
c.DockerSpawner.default_url = "/lab/tree/labs"
# Containers go on stop; the work volume stays, so a restart picks up the newest image.
c.DockerSpawner.remove = True
# Images are built locally; pulling happens at hub start (ensure_image), never per spawn.
c.DockerSpawner.pull_policy = "never"
# Time for 200 attendees pressing start at 09:00 on one host.
c.Spawner.start_timeout = 300
c.Spawner.http_timeout = 120
c.JupyterHub.concurrent_spawn_limit = 200

# Stop servers nobody has used for WORKSHOP_IDLE_TIMEOUT; their volumes are kept.
c.JupyterHub.load_roles = [
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
]
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={settings.idle_timeout}",
            f"--cull-every={max(min(settings.idle_timeout // 4, 300), 10)}",
        ],
    }
]
