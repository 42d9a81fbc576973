"""Where the hub's own services listen (workshop_hub/services.py): what attendees' servers are
given and what the firewall opens agree."""

from __future__ import annotations

from urllib.parse import urlparse

from workshop_hub import services


def test_attendees_reach_the_console_by_the_hubs_name_on_its_own_port():
    address = urlparse(services.console_api_url())
    assert (address.hostname, address.port) == (services.HUB_SERVICE, services.CONSOLE_PORT)
    assert address.path == f"/services/{services.CONSOLE_SERVICE}/api/"
    assert services.announcement_feed_url() == services.console_api_url() + "announcement.atom"


def test_the_three_ports_that_cross_the_attendee_bridge_are_distinct():
    ports = {services.HUB_API_PORT, services.CONSOLE_PORT, services.SERVER_PORT}
    assert len(ports) == 3 and all(1024 < port < 65536 for port in ports)
