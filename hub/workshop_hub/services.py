"""Where the hub's own services listen: the ports that cross the attendee bridge and the
addresses attendees' servers are given, read by the firewall, the spawner, the console and
the Kubernetes values alike."""

from __future__ import annotations

# The hub's compose service name: its name on the attendee network, and the firewall trusts
# the container of this service only.
HUB_SERVICE = "hub"
# The hub's API port (JupyterHub's hub_port), the console service's port (attendee kernels
# report their exercise checks there, workshop_hub/console/service.py) and the attendee
# server's port (DockerSpawner's port): the only ports that cross the attendee bridge.
HUB_API_PORT = 8081
CONSOLE_PORT = 8082
SERVER_PORT = 8888
# The instructor's console, a JupyterHub service of this name.
CONSOLE_SERVICE = "console"
# The attendee container's variable that tells its kernels where the console's API is (the
# labs' workshop_labs/progress.py reads it; a test keeps the two names the same).
CONSOLE_URL_ENV = "WORKSHOP_CONSOLE_URL"


def console_api_url() -> str:
    """Where an attendee's kernel posts its checks and asks for solutions: the hub by its
    name on the attendee network."""
    return f"http://{HUB_SERVICE}:{CONSOLE_PORT}/services/{CONSOLE_SERVICE}/api/"


def announcement_feed_url() -> str:
    """Where an attendee's server fetches the announcement for JupyterLab's news."""
    return console_api_url() + "announcement.atom"
