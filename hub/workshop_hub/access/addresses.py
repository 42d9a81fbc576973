"""The address a login came from, believed from the hub's own proxies only.

Tornado (JupyterHub runs it with `xheaders`) takes `X-Real-IP` and `X-Forwarded-For` from
any client. Attendees reach the hub's port 8081 straight from their kernels, and the LAN
reaches the hub's own proxy when WORKSHOP_LISTEN_ADDRESS opens it, so such a header would let
anyone dodge the per-address login delay and write any address into the "Login refused"
line that fail2ban reads. Only two hops are trusted:

- the hub's own proxy (configurable-http-proxy, in the hub's container, so it connects from
  loopback), which appends the address it saw to `X-Forwarded-For`;
- the HTTPS proxy (Caddy, the compose service `proxy`), which sets `X-Real-IP` to the
  address it saw, replacing whatever the client sent (docker/proxy/proxy-entrypoint.sh).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable

# The compose service of the HTTPS proxy (docker-compose.yml): its name resolves on the
# hub's network to the one container allowed to say who its client was.
HTTPS_PROXY_SERVICE = "proxy"
_RESOLVE_EVERY_SECONDS = 60.0


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def client_address(
    peer: str, forwarded_for: str | None, real_ip: str | None, https_proxy: str | None
) -> str:
    """Who sent a request that reached the hub from `peer` (the TCP connection's address).

    `forwarded_for` and `real_ip` are the request's headers, `https_proxy` the HTTPS proxy's
    current address (None without one).
    """
    if not _is_loopback(peer) or not forwarded_for:
        # Straight to the hub (an attendee's kernel on port 8081): its headers are its own.
        return peer
    # Through the hub's own proxy: the last entry is the address that proxy saw.
    seen_by_hub_proxy = forwarded_for.rsplit(",", 1)[-1].strip()
    if https_proxy and seen_by_hub_proxy == https_proxy and real_ip:
        return real_ip.strip()
    return seen_by_hub_proxy


class ProxyAddress:
    """The HTTPS proxy's address, looked up by its service name at most once a minute (it
    changes when the proxy container is recreated; without the https profile there is none)."""

    def __init__(
        self,
        name: str = HTTPS_PROXY_SERVICE,
        resolve: Callable[[str], str] = socket.gethostbyname,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.name, self.resolve, self.clock = name, resolve, clock
        self._address: str | None = None
        self._looked_up_at = float("-inf")

    async def current(self) -> str | None:
        if self.clock() - self._looked_up_at >= _RESOLVE_EVERY_SECONDS:
            try:
                # In a thread: an unknown name goes on to the host's resolvers, slow offline.
                self._address = await asyncio.to_thread(self.resolve, self.name)
            except OSError:
                self._address = None
            self._looked_up_at = self.clock()
        return self._address


async def request_client_address(request, https_proxy: ProxyAddress) -> str:
    """`client_address` of a Tornado request: the peer comes from the connection, not from
    `request.remote_ip`, which Tornado already rewrote from the headers."""
    peer = request.connection.context.address
    peer = peer[0] if isinstance(peer, tuple) else str(peer)
    forwarded_for = request.headers.get("X-Forwarded-For")
    proxy = await https_proxy.current() if forwarded_for else None
    return client_address(peer, forwarded_for, request.headers.get("X-Real-IP"), proxy)
