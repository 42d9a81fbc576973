"""JupyterHub configuration of the PyTorch workshop: a flat list of decisions.

Values come from the workshop settings (documented in .env.example); the logic behind them
lives in the workshop_hub package, which has its own tests.
"""

import logging
import os
import sys

import docker

from workshop_hub import services
from workshop_hub.access import credentials, names, sessions
from workshop_hub.access.auth import max_names
from workshop_hub.access.exposure import (
    attendee_origin_host,
    limit_request_bodies,
    log_exposure,
    public_address,
)
from workshop_hub.access.passwords import MIN_PASSWORD_LENGTH, PasswordStore
from workshop_hub.console import announcement
from workshop_hub.console import service as console
from workshop_hub.room import firewall
from workshop_hub.room.disks import DiskError
from workshop_hub.room.limits import idle_culler_command
from workshop_hub.room.profiles import START_PAGE_URL, WORK_DIR
from workshop_hub.room.spawner import WorkshopSpawner
from workshop_hub.room.workshop import prepare_workshop
from workshop_hub.settings import (
    PROJECT_ENV_FILE,
    USERNAME_PATTERN,
    USERNAME_RULE,
    SettingsError,
    check_env_file,
    load_settings,
)

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)
log = logging.getLogger("JupyterHub")
# Who waits in the spawn line since when: attendees keep their place over a hub restart.
SPAWN_LINE_FILE = credentials.HUB_DATA_DIR / "spawn-line.json"

try:
    # The organizer's .env, mounted read-only: a misspelt name there stops the hub.
    check_env_file(PROJECT_ENV_FILE)
    # The room code and admin password come from .env itself, never from compose's
    # environment, where `docker inspect` would show them (settings.PROJECT_ENV_FILE).
    settings = load_settings(os.environ)
    workshop = prepare_workshop(settings, docker.from_env(), log, SPAWN_LINE_FILE)
    access_code = credentials.resolve(
        settings.access_code, credentials.ACCESS_CODE_FILE, credentials.generate_access_code
    )
    admin_password = credentials.resolve(
        settings.admin_password,
        credentials.ADMIN_PASSWORD_FILE,
        credentials.generate_admin_password,
    )
except (SettingsError, DiskError, docker.errors.DockerException, OSError) as error:
    # One line that names the setting (or the Docker problem) and the fix; no traceback.
    sys.exit(f"workshop hub cannot start: {error}")

try:
    # An attendee who holds a name the organizer now makes an instructor's would become one.
    names.check_no_attendee_holds(
        settings.admin_users, PasswordStore(credentials.ATTENDEE_PASSWORDS_FILE).names()
    )
    instructors_ever = names.remember_instructors(settings.admin_users)
    attendee_origins = attendee_origin_host(settings, os.environ)
except (names.NameConflict, SettingsError, OSError) as error:
    sys.exit(f"workshop hub cannot start: {error}")

print(credentials.banner(settings.admin_users), flush=True)
# Plain HTTP on loopback, HTTPS through the proxy, or a warning that codes travel in clear.
log_exposure(log, settings, os.environ)
limit_request_bodies()

# State that must survive restarts lives on the hub-data volume.
c.JupyterHub.db_url = f"sqlite:///{credentials.HUB_DATA_DIR}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = str(credentials.COOKIE_SECRET_FILE)
# Yesterday's attendees do not stay logged in, and no token outlives a day's session
# (OAuth tokens follow the cookie's age; a server's own token ends with the server).
c.JupyterHub.cookie_max_age_days = settings.session_length / 86400
c.JupyterHub.token_expires_in_max_seconds = settings.session_length
c.ConfigurableHTTPProxy.pid_file = "/tmp/jupyterhub-proxy.pid"

# Attendee servers keep running when the hub restarts; the hub reconnects to them.
c.JupyterHub.cleanup_servers = False
c.JupyterHub.hub_ip = "0.0.0.0"
c.JupyterHub.hub_port = services.HUB_API_PORT
# The compose service name: on the attendee network, the one network attendees share with it.
c.JupyterHub.hub_connect_ip = services.HUB_SERVICE
c.JupyterHub.template_paths = ["/srv/jupyterhub/templates"]
c.JupyterHub.template_vars = {
    # The instructor's announcement from the console, read at each page (announcement.py).
    "announcement": announcement.for_page,
    "max_attendees": workshop.max_attendees,
    "username_rule": USERNAME_RULE,
    "min_password_length": MIN_PASSWORD_LENGTH,
}

# A room of strangers: the room code claims a name once, the attendee's own password after.
c.JupyterHub.authenticator_class = "workshop_hub.access.auth.WorkshopAuthenticator"
c.Authenticator.allow_all = True
c.Authenticator.username_pattern = f"^{USERNAME_PATTERN}$"
c.WorkshopAuthenticator.instructors = set(settings.admin_users)
c.WorkshopAuthenticator.room_code = access_code
c.WorkshopAuthenticator.admin_password = admin_password
c.WorkshopAuthenticator.dbm_path = str(credentials.ATTENDEE_PASSWORDS_FILE)
c.WorkshopAuthenticator.min_password_length = MIN_PASSWORD_LENGTH
# One room code opens a bounded room: a script cannot claim names until the room is full.
c.WorkshopAuthenticator.max_names = max_names(settings)

# Instructors are not JupyterHub admins: the admin role (which JupyterHub lets nobody change)
# opens every attendee's server, and an attendee's server on the hub's own origin could then
# act in the instructor's browser. They hold the instructor role instead: the console and
# the REST API, not the attendees' servers or the hub's admin page (docs/security.md). Both
# memberships are exact at every start: a name taken out of WORKSHOP_ADMIN_USERS loses them.
c.JupyterHub.load_roles = [
    {"name": "admin", "users": []},
    {
        "name": "instructor",
        "scopes": console.INSTRUCTOR_SCOPES,
        "users": list(settings.admin_users),
    },
]

# One container per attendee, on the attendee network, with the profiles and limits.
c.JupyterHub.spawner_class = "workshop_hub.room.spawner.WorkshopSpawner"
WorkshopSpawner.workshop = workshop
# The attendee network has no route out; the firewall service fences the rest
# (docs/organizers.md, The network).
c.DockerSpawner.network_name = firewall.attendee_network(settings.instance)
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.port = services.SERVER_PORT
c.DockerSpawner.prefix = settings.instance
c.DockerSpawner.name_template = "{prefix}-{username}"
# The work volume is a capped disk of WORKSHOP_DISK_LIMIT (workshop_hub/room/disks.py).
c.DockerSpawner.volumes = {f"{settings.instance}-user-{{username}}": WORK_DIR}
c.DockerSpawner.notebook_dir = WORK_DIR
# With WORKSHOP_ORIGIN_PER_ATTENDEE each attendee's server is NAME.<this host>, an origin
# of its own: nothing it sends can act in another browser's session on the hub. Over HTTPS
# the hub's cookies also take the __Host- prefix, so an attendee origin cannot set them.
c.JupyterHub.subdomain_host = attendee_origins
c.JupyterHub.cookie_host_prefix_enabled = attendee_origins.startswith("https://")

# Attendees own their home: configuration there must not change how their server runs.
c.Spawner.disable_user_config = True
# Attendees land on the start page (labs/START_HERE.md, seeded with the labs), which links
# the seven labs and says how the day works, rather than on JupyterLab's Launcher.
c.DockerSpawner.default_url = START_PAGE_URL
# Containers go on stop; the work volume stays, so a restart picks up the newest image.
c.DockerSpawner.remove = True
# Images are built locally; pulling happens at hub start (ensure_image), never per spawn.
c.DockerSpawner.pull_policy = "never"
# At 09:00 servers start WORKSHOP_SPAWN_CONCURRENCY at a time and the others wait in line,
# seeing their place (workshop_hub/room/spawn_queue.py); JupyterHub's own limit would refuse them
# with 429 instead. The start timeout covers the wait in line (an hour: 200 attendees on a
# small host); once its turn comes a server has WorkshopSpawner's START_TIMEOUT_SECONDS.
c.JupyterHub.concurrent_spawn_limit = 0
c.Spawner.start_timeout = 3600
c.Spawner.http_timeout = 120
# No more servers than the host's memory holds (WORKSHOP_MAX_ATTENDEES); the next attendee
# reads "the room is full" (templates/error.html).
c.JupyterHub.active_server_limit = workshop.max_attendees

# Stop servers nobody has used for WORKSHOP_IDLE_TIMEOUT, and busy ones after
# WORKSHOP_MAX_SERVER_AGE; their volumes are kept.
c.JupyterHub.load_roles.append(
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
)
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": idle_culler_command(settings),
    }
]

# `workshop-hub rehearse` stops and deletes the simulated attendees it made; its token is
# generated once on the hub-data volume and read there by the command, never shown.
c.JupyterHub.load_roles.append(
    {
        "name": "rehearsal",
        "scopes": ["list:users", "read:users", "admin:users", "admin:servers"],
        "services": ["rehearsal"],
    }
)
c.JupyterHub.services.append(
    {
        "name": "rehearsal",
        "api_token": credentials.load_or_create(
            credentials.REHEARSAL_TOKEN_FILE, credentials.generate_api_token
        ),
    }
)

# The instructor's console (workshop_hub/console/service.py): attendee kernels report every exercise
# check to it, admins read the room's progress; the hub vouches for every caller's token.
c.JupyterHub.services.append(
    {
        "name": services.CONSOLE_SERVICE,
        "url": f"http://127.0.0.1:{services.CONSOLE_PORT}",
        "command": console.service_command(),
        "environment": {
            console.INSTANCE_ENV: settings.instance,
            console.PUBLIC_ADDRESS_ENV: public_address(settings, os.environ),
            console.WARM_AT_ENV: settings.warm_at,
            console.WARM_HOLD_ENV: str(settings.warm_hold),
        },
        # Admins open it from the hub's menu; JupyterHub's admin role may access services.
        "display": True,
        "oauth_no_confirm": True,
    }
)
c.JupyterHub.load_roles.append(
    {"name": "console", "scopes": console.SCOPES, "services": [services.CONSOLE_SERVICE]}
)

# The organizer's commands in the hub's container (`workshop-hub reset-password`, `new-event`)
# end attendees' sessions and tokens through the REST API (access/sessions.py).
c.JupyterHub.services.append(
    {
        "name": sessions.ORGANIZER_SERVICE,
        "api_token": credentials.load_or_create(
            sessions.ORGANIZER_TOKEN_FILE, credentials.generate_api_token
        ),
    }
)
c.JupyterHub.load_roles.append(
    {
        "name": sessions.ORGANIZER_SERVICE,
        "scopes": sessions.ORGANIZER_SCOPES,
        "services": [sessions.ORGANIZER_SERVICE],
    }
)

# Nobody claims the name of the one in charge, of a service, or of any instructor past or
# present (access/names.py).
service_names = {service["name"] for service in c.JupyterHub.services}
if service_names - names.HUB_SERVICES:
    sys.exit(f"workshop hub cannot start: list {service_names - names.HUB_SERVICES} in names.py")
c.WorkshopAuthenticator.reserved_names = set(names.reserved_names(instructors_ever, service_names))
