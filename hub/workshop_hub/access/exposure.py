"""Who can reach the hub, and whether what they type travels encrypted: said once at start.

The hub itself speaks plain HTTP on a port compose publishes on WORKSHOP_LISTEN_ADDRESS
(loopback by default). HTTPS is the proxy's job (docker-compose.yml, profile https), with a
certificate from ACME for WORKSHOP_DOMAIN or the organizer's own (WORKSHOP_TLS_CERT).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping

from tornado.httpserver import HTTPServer

from ..settings import COMPOSE_SETTINGS, SettingsError, WorkshopSettings

# The largest request body the hub takes. Tornado reads a whole body into memory before any
# handler sees it (100 MB by default), so a few anonymous posts, from the network or from a
# kernel on the attendee network, could fill the hub's memory; nothing the hub serves takes
# more than a form or a small JSON document.
HUB_MAX_BODY_BYTES = 1024**2

HOW_TO_TURN_ON_HTTPS = (
    "set WORKSHOP_DOMAIN (or WORKSHOP_TLS_CERT and WORKSHOP_TLS_KEY) and COMPOSE_PROFILES=https "
    "in .env (docs/organizers.md: HTTPS for a hosted hub)"
)


def limit_request_bodies() -> None:
    """Every HTTP server of this process (the hub's) refuses bodies over HUB_MAX_BODY_BYTES.

    JupyterHub makes its server itself; Tornado's Configurable defaults reach it."""
    HTTPServer.configure(None, max_body_size=HUB_MAX_BODY_BYTES)


def _authority(address: str, port: str) -> str:
    return (
        f"[{address}]:{port}" if ipaddress.ip_address(address).version == 6 else f"{address}:{port}"
    )


def exposure_messages(
    domain: str, listen_address: str, port: str, own_certificate: bool
) -> list[tuple[int, str]]:
    """The (log level, message) pairs that say how attendees reach the hub."""
    plain = _authority(listen_address, port)
    https = bool(domain or own_certificate)
    if https:
        certificate = "WORKSHOP_TLS_CERT" if own_certificate else "ACME"
        name = f" for {domain}" if domain else ""
        summary = (
            f"serving HTTPS{name} through the proxy (compose profile https, certificate from "
            f"{certificate}); plain HTTP on {plain}"
        )
    else:
        summary = f"serving plain HTTP on {plain} only"
    if ipaddress.ip_address(listen_address).is_loopback:
        summary += (
            " for this host" if https else f" (this host); for a room, {HOW_TO_TURN_ON_HTTPS}"
        )
        return [(logging.INFO, summary)]
    fix = "set WORKSHOP_LISTEN_ADDRESS=127.0.0.1"
    if not https:
        fix += f", or {HOW_TO_TURN_ON_HTTPS}"
    warning = (
        f"plain HTTP on {plain} is open to the network (WORKSHOP_LISTEN_ADDRESS): room codes, "
        f"passwords and session cookies travel there in clear text; {fix}"
    )
    return [(logging.INFO, summary), (logging.WARNING, warning)]


def hub_port(environ: Mapping[str, str]) -> str:
    """The hub's port on the host, which compose passes (its default when unset)."""
    return environ.get("WORKSHOP_PORT") or COMPOSE_SETTINGS["WORKSHOP_PORT"][0]


def has_own_certificate(environ: Mapping[str, str]) -> bool:
    """Whether the organizer gave a certificate of their own (compose passes its path)."""
    return bool(environ.get("WORKSHOP_TLS_CERT"))


def log_exposure(
    log: logging.Logger, settings: WorkshopSettings, environ: Mapping[str, str]
) -> None:
    """Log how the hub is reached; compose passes the host port and certificate path."""
    for level, message in exposure_messages(
        settings.domain, settings.listen_address, hub_port(environ), has_own_certificate(environ)
    ):
        log.log(level, message)


def attendee_origin_host(settings: WorkshopSettings, environ: Mapping[str, str]) -> str:
    """JupyterHub's `subdomain_host` with WORKSHOP_ORIGIN_PER_ATTENDEE, else "".

    On this host, `http://localhost:PORT`: browsers resolve every NAME.localhost to loopback
    themselves. Over HTTPS, `https://DOMAIN`: NAME.DOMAIN needs a wildcard DNS record and a
    wildcard certificate, which only the organizer can bring (WORKSHOP_TLS_CERT): Let's
    Encrypt issues wildcards over DNS-01 alone, which the proxy cannot answer, and one
    certificate per attendee would run into its weekly limit per domain.
    """
    if not settings.origin_per_attendee:
        return ""
    if not (settings.domain or has_own_certificate(environ)):
        return f"http://localhost:{hub_port(environ)}"
    if not (settings.domain and has_own_certificate(environ)):
        raise SettingsError(
            "WORKSHOP_ORIGIN_PER_ATTENDEE over HTTPS serves each attendee at NAME."
            "WORKSHOP_DOMAIN: set WORKSHOP_DOMAIN and a wildcard certificate for *.DOMAIN in "
            "WORKSHOP_TLS_CERT and WORKSHOP_TLS_KEY (Let's Encrypt gives wildcards only over "
            "DNS), or set WORKSHOP_ORIGIN_PER_ATTENDEE=false"
        )
    return f"https://{https_authority(settings, environ)}"


def https_authority(settings: WorkshopSettings, environ: Mapping[str, str]) -> str:
    """WORKSHOP_DOMAIN with the proxy's HTTPS port, when it is not HTTPS's own 443."""
    https_port = environ.get("WORKSHOP_HTTPS_PORT") or COMPOSE_SETTINGS["WORKSHOP_HTTPS_PORT"][0]
    return settings.domain if https_port == "443" else f"{settings.domain}:{https_port}"


def public_address(settings: WorkshopSettings, environ: Mapping[str, str]) -> str:
    """The address attendees open (login cards print it): WORKSHOP_PUBLIC_URL, else HTTPS on
    WORKSHOP_DOMAIN, else plain HTTP on the published address; "" when only the organizer
    knows it (the hub listens on every address and has no name)."""
    if settings.public_url:
        return settings.public_url
    if settings.domain:
        return f"https://{https_authority(settings, environ)}/"
    if ipaddress.ip_address(settings.listen_address).is_unspecified:
        return ""
    return f"http://{_authority(settings.listen_address, hub_port(environ))}/"
