"""The attendee networks' firewall: what an attendee container may reach, in the host's iptables.

Attendee containers sit on an `internal` Docker network, which Docker forwards nothing out
of (before Docker 26 containers still get a default route, to the bridge's own address); the
hub is attached to it too. Docker leaves three paths open that this module closes, on the host:

- the host's own services (sshd, any port published on 0.0.0.0) through the bridge's address:
  INPUT from the attendee bridges is dropped;
- other attendees' servers, since containers on one bridge talk to each other directly:
  within the attendee bridge only the hub may open connections to servers, and attendees
  only to the hub's API;
- with WORKSHOP_ATTENDEE_INTERNET on, attendees also join an egress network, which routes
  anywhere: the metadata address, private ranges, the host and the other attendees on it stay
  dropped.

Why a second network for the internet: compose cannot switch a network's `internal` from a
setting, and the hub's network must stay internal whatever the setting says. This service
makes the egress network itself, with a bridge name derived from the instance, and only
after the rules for that bridge are in place, so no attendee is ever on an unfenced egress
network; with the setting off it disconnects everyone from it and removes it. The hub does
not join it: attendees must resolve `hub` to its address on the attendee network only.

Rules live in two chains per instance, flushed and refilled at once (iptables-restore), jumped
to from INPUT and DOCKER-USER: re-applying never duplicates a rule. They stay when the service
stops, so attendees left running stay fenced; `python -m workshop_hub.room.firewall remove` takes
them away.

Run by the `firewall` compose service (network_mode: host, NET_ADMIN). It reads the networks'
bridges and the hub's address from Docker, because Docker chooses them: compose can neither
derive a per-instance bridge name or subnet (two instances on one host, as the tests run,
need different ones) nor give the hub a fixed address without a fixed subnet.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import docker

from ..services import CONSOLE_PORT, HUB_API_PORT, HUB_SERVICE, SERVER_PORT
from ..settings import SettingsError, WorkshopSettings, load_settings
from .docker_host import service_filter

# Where a cloud VM hands out credentials, and every range that is not the internet (RFC 1918,
# carrier-grade NAT, loopback): never reachable from the egress network.
BLOCKED_RANGES = (
    "169.254.0.0/16",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
)
# Written once the rules are in place; the compose healthcheck looks for it, and the hub
# starts only after that.
APPLIED_MARKER = Path("/run/workshop-firewall.applied")
RECHECK_SECONDS = 30

log = logging.getLogger("workshop-firewall")


class FirewallError(Exception):
    """A host that cannot be firewalled as is; the message names the fix."""


def attendee_network(instance: str) -> str:
    """Docker network of attendee containers and the hub (internal: no route out)."""
    return f"{instance}-attendees"


def egress_network(instance: str) -> str:
    """Docker network that gives attendees the internet when WORKSHOP_ATTENDEE_INTERNET is on."""
    return f"{instance}-egress"


def _digest(instance: str) -> str:
    """Short and fixed per instance: names on the host are limited (chains 28, links 15)."""
    return hashlib.sha256(instance.encode()).hexdigest()[:10]


def chain_names(instance: str) -> tuple[str, str]:
    """(INPUT chain, FORWARD chain) of one instance."""
    return f"WORKSHOP-{_digest(instance)}-IN", f"WORKSHOP-{_digest(instance)}-FWD"


def egress_bridge(instance: str) -> str:
    """Host interface of the egress network, known before the network exists."""
    return f"wse{_digest(instance)}"


@dataclass(frozen=True)
class Bridge:
    """The attendee network as the host sees it."""

    interface: str
    # The hub's address on it; None before the hub has joined.
    hub_ip: str | None = None


def filter_rules(
    instance: str, attendees: Bridge, nameservers: tuple[str, ...] = ()
) -> list[list[str]]:
    """The rules of both chains, in order, as iptables arguments after `-A`.

    `nameservers`: the host's DNS servers, which Docker's resolver asks on behalf of the
    containers on the egress network; port 53 on them stays open even in a blocked range (on
    some clouds the resolver is the metadata address itself).
    """
    chain_in, chain_fwd = chain_names(instance)

    def rule(chain: str, why: str, *match: str, target: str = "DROP") -> list[str]:
        return [chain, *match, "-m", "comment", "--comment", f"{instance}: {why}", "-j", target]

    inside = attendees.interface
    rules = [rule(chain_in, "attendees reach no host service", "-i", inside)]
    if attendees.hub_ip:
        rules += [
            rule(
                chain_fwd,
                "replies within the attendee network",
                *("-i", inside, "-o", inside, "-m", "conntrack"),
                *("--ctstate", "ESTABLISHED,RELATED"),
                target="ACCEPT",
            ),
            rule(
                chain_fwd,
                "hub opens attendee servers",
                *("-i", inside, "-o", inside, "-s", attendees.hub_ip, "-p", "tcp"),
                *("--dport", str(SERVER_PORT)),
                target="ACCEPT",
            ),
            *(
                rule(
                    chain_fwd,
                    why,
                    *("-i", inside, "-o", inside, "-d", attendees.hub_ip, "-p", "tcp"),
                    *("--dport", str(port)),
                    target="ACCEPT",
                )
                for why, port in (
                    ("attendee servers call the hub API", HUB_API_PORT),
                    ("attendee kernels report checks to the console", CONSOLE_PORT),
                )
            ),
        ]
    rules += [
        rule(chain_fwd, "no other traffic from attendees", "-i", inside),
        rule(chain_fwd, "no other traffic to attendees", "-o", inside),
    ]
    # The egress network's rules are there whether or not it exists: fenced from its first packet.
    egress = egress_bridge(instance)
    rules += [
        rule(chain_in, "egress reaches no host service", "-i", egress),
        rule(chain_fwd, "attendees never meet on egress", "-i", egress, "-o", egress),
    ]
    rules += [
        rule(
            chain_fwd,
            "DNS of the host",
            *("-i", egress, "-d", server, "-p", protocol, "--dport", "53"),
            target="ACCEPT",
        )
        for server in nameservers
        for protocol in ("udp", "tcp")
    ]
    rules += [
        rule(chain_fwd, f"egress never to {blocked}", "-i", egress, "-d", blocked)
        for blocked in BLOCKED_RANGES
    ]
    return rules


def host_nameservers(resolv_conf: Path = Path("/etc/resolv.conf")) -> tuple[str, ...]:
    """IPv4 DNS servers of the host (the firewall shares the host's network, and its file)."""
    servers = []
    for line in resolv_conf.read_text().splitlines() if resolv_conf.exists() else []:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                address = ipaddress.ip_address(fields[1])
            except ValueError:
                continue
            if address.version == 4 and not address.is_loopback:
                servers.append(str(address))
    return tuple(servers)


def ipv6_rules(instance: str, attendees: Bridge) -> list[list[str]]:
    """IPv6 has no use on these networks (Docker gives them none); link-local must not leak."""
    chain_in, chain_fwd = chain_names(instance)
    comment = ["-m", "comment", "--comment", f"{instance}: no IPv6 for attendees"]
    rules = []
    for interface in (attendees.interface, egress_bridge(instance)):
        rules += [
            [chain_in, "-i", interface, *comment, "-j", "DROP"],
            [chain_fwd, "-i", interface, *comment, "-j", "DROP"],
            [chain_fwd, "-o", interface, *comment, "-j", "DROP"],
        ]
    return rules


def restore_input(chains: tuple[str, str], rules: list[list[str]]) -> str:
    """iptables-restore input that empties and refills `chains` in one transaction."""
    lines = ["*filter", *(f":{chain} - [0:0]" for chain in chains)]
    lines += ["-A " + subprocess.list2cmdline(rule) for rule in rules]
    return "\n".join([*lines, "COMMIT", ""])


# --- the host ----------------------------------------------------------------------------------


def detect_backend(run=subprocess.run) -> str:
    """'nft' or 'legacy': the iptables backend holding Docker's chains.

    Debian's `iptables` defaults to nft, but a host may run Docker on legacy iptables; rules in
    the other backend would never see a packet. Like kube-proxy's iptables-wrapper, look where
    the chains of the component we extend are.
    """
    found = []
    for backend in ("nft", "legacy"):
        try:
            saved = run(
                [f"iptables-{backend}-save", "-t", "filter"], capture_output=True, text=True
            ).stdout
        except FileNotFoundError:
            continue
        if ":DOCKER-USER" in saved:
            found.append((saved.count("DOCKER"), backend))
    if not found:
        raise FirewallError(
            "Docker's iptables chains (DOCKER-USER) are in neither iptables backend: start "
            "dockerd with its iptables integration on (the default; not --iptables=false)"
        )
    return max(found)[1]


def check_bridge_filtering(proc_sys: Path = Path("/proc/sys/net/bridge")) -> None:
    """Traffic between containers on one bridge is filtered only with br_netfilter on."""
    for family in ("iptables", "ip6tables"):
        switch = proc_sys / f"bridge-nf-call-{family}"
        if not switch.exists():
            raise FirewallError(
                "the br_netfilter kernel module is not loaded on the host, so traffic between "
                "attendee containers bypasses the firewall: run `modprobe br_netfilter` on the "
                "host (and add br_netfilter to /etc/modules-load.d/ to keep it after a reboot)"
            )
        if switch.read_text().strip() != "1":
            raise FirewallError(
                f"{switch} is 0 on the host, so traffic between attendee containers bypasses "
                f"the firewall: run `sysctl -w net.bridge.bridge-nf-call-{family}=1` on the host"
            )


class Host:
    """The host's iptables (`family` is iptables or ip6tables), through Docker's backend."""

    def __init__(self, backend: str):
        self.backend = backend

    def _run(self, family: str, *args: str, stdin: str | None = None, check: bool = True):
        """`family` is iptables, ip6tables or one of their -restore tools."""
        tool, _, restore = family.partition("-")
        command = [f"{tool}-{self.backend}" + (f"-{restore}" if restore else ""), *args]
        try:
            result = subprocess.run(command, input=stdin, capture_output=True, text=True)
        except FileNotFoundError:
            raise FirewallError(f"{command[0]} is missing: install iptables") from None
        if check and result.returncode != 0:
            raise FirewallError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
        return result

    def apply(self, family: str, instance: str, rules: list[list[str]]) -> None:
        """Refill the instance's chains, then make sure each is jumped to first."""
        chains = chain_names(instance)
        self._run(f"{family}-restore", "--noflush", stdin=restore_input(chains, rules))
        for hook, chain in zip(HOOKS[family], chains, strict=True):
            jump = [hook, "-m", "comment", "--comment", f"{instance}{JUMP_COMMENT}"]
            if self._run(family, "-C", *jump, "-j", chain, check=False).returncode != 0:
                self._run(family, "-I", hook, "1", *jump[1:], "-j", chain)

    def installed(self, family: str, instance: str) -> bool:
        """Whether the chains and their jumps are still there (a host firewall reload flushes)."""
        listing = self._run(family, "-S", check=False).stdout
        return all(f"-j {chain}" in listing for chain in chain_names(instance))

    def instances(self, family: str) -> set[str]:
        """Instances whose chains are jumped to, read back from the jumps' comments."""
        found = set()
        for line in self._run(family, "-S", "INPUT", check=False).stdout.splitlines():
            words = shlex.split(line)
            if "--comment" in words:
                comment = words[words.index("--comment") + 1]
                if comment.endswith(JUMP_COMMENT):
                    found.add(comment.removesuffix(JUMP_COMMENT))
        return found

    def remove(self, family: str, instance: str) -> None:
        """Delete the instance's jumps and chains; whatever is absent already is fine."""
        chains = chain_names(instance)
        for line in self._run(family, "-S", check=False).stdout.splitlines():
            if line.startswith("-A ") and line.split()[-1] in chains:
                self._run(family, "-D", *shlex.split(line[3:]), check=False)
        for chain in chains:
            self._run(family, "-F", chain, check=False)
            self._run(family, "-X", chain, check=False)


JUMP_COMMENT = ": workshop firewall"
# Where each family's two chains are jumped to from. DOCKER-USER is Docker's place for rules
# that must come before its own; Docker creates it for IPv4 only unless it manages IPv6 too.
HOOKS = {"iptables": ("INPUT", "DOCKER-USER"), "ip6tables": ("INPUT", "FORWARD")}


# --- Docker ------------------------------------------------------------------------------------


def find_network(client: docker.DockerClient, name: str):
    """The network called exactly `name` (Docker's name filter also matches parts of names)."""
    return next((n for n in client.networks.list(names=[name]) if n.name == name), None)


def read_bridge(client: docker.DockerClient, name: str) -> Bridge | None:
    """The host side of the attendee network and the hub's address on it; None if absent."""
    network = find_network(client, name)
    if network is None:
        return None
    network.reload()
    interface = network.attrs["Options"].get("com.docker.network.bridge.name")
    endpoints = network.attrs["Containers"] or {}
    # All hub containers, not only running ones: the network's connect event, which wakes the
    # firewall, comes before the new hub counts as running. Never a one-off `compose run hub`
    # (preflight, wipe-event): it joins the network with the same service label.
    hubs = client.containers.list(all=True, filters=service_filter(HUB_SERVICE))
    addresses = [
        endpoints[hub.id]["IPv4Address"].split("/")[0] for hub in hubs if hub.id in endpoints
    ]
    return Bridge(interface or f"br-{network.id[:12]}", next(iter(addresses), None))


def wanted_rules(client: docker.DockerClient, instance: str) -> tuple[dict, Bridge] | None:
    """Every rule of the instance per family, and the attendee network's bridge; None while
    compose has not made that network."""
    attendees = read_bridge(client, attendee_network(instance))
    if attendees is None:
        return None
    rules = {
        "iptables": filter_rules(instance, attendees, host_nameservers()),
        "ip6tables": ipv6_rules(instance, attendees),
    }
    return rules, attendees


def reconcile_egress(client: docker.DockerClient, instance: str, internet: bool) -> None:
    """Make the egress network when attendees may have the internet; take it away when not."""
    name = egress_network(instance)
    existing = find_network(client, name)
    if internet and existing is None:
        client.networks.create(
            name,
            driver="bridge",
            options={
                "com.docker.network.bridge.name": egress_bridge(instance),
                # Docker's own drop between containers on it; the rules above drop it too.
                "com.docker.network.bridge.enable_icc": "false",
            },
        )
        log.info("egress network %s made (bridge %s)", name, egress_bridge(instance))
    elif not internet and existing is not None:
        existing.reload()
        for container in existing.containers:
            existing.disconnect(container, force=True)
            log.info("%s disconnected from %s: internet is off", container.name, name)
        existing.remove()
        log.info("egress network %s removed: WORKSHOP_ATTENDEE_INTERNET is off", name)


def enforce(
    client: docker.DockerClient, host: Host, settings: WorkshopSettings, applied: dict | None
) -> dict | None:
    """Install the rules if they changed or went missing; returns what is in place."""
    instance = settings.instance
    wanted = wanted_rules(client, instance)
    if wanted is None:
        log.warning("network %s does not exist yet; waiting for it", attendee_network(instance))
        return applied
    rules, attendees = wanted
    if rules != applied or not all(host.installed(family, instance) for family in rules):
        for family, family_rules in rules.items():
            host.apply(family, instance, family_rules)
            for rule in family_rules:
                log.info("%s -A %s", family, subprocess.list2cmdline(rule))
        log.info(
            "firewall of %s in place (iptables-%s: the backend with Docker's chains), %s",
            instance,
            host.backend,
            f"hub at {attendees.hub_ip}" if attendees.hub_ip else "hub not on the network yet",
        )
    reconcile_egress(client, instance, settings.attendee_internet)
    APPLIED_MARKER.touch()
    return rules


def remove_leftovers(client: docker.DockerClient, host: Host) -> None:
    """Take away the rules of instances taken down (`compose down` removed their network):
    they fence nothing any more, and a stack that comes back installs its own again."""
    for family in HOOKS:
        for instance in host.instances(family):
            if find_network(client, attendee_network(instance)) is None:
                host.remove(family, instance)
                log.info("%s rules of %s removed: its network is gone", family, instance)


def follow_networks(client: docker.DockerClient, names: list[str], wake: threading.Event) -> None:
    """Wake the firewall at each event of the instance's networks (the hub joining, a network
    made again); Docker's event stream ends only when dockerd stops."""
    while True:
        try:
            for _event in client.events(decode=True, filters={"type": "network", "network": names}):
                wake.set()
        except docker.errors.DockerException as error:
            log.warning("Docker events interrupted (%s); following them again", error)
        time.sleep(1)


def serve(settings: WorkshopSettings) -> None:
    """Apply the rules, then again at each network event and every RECHECK_SECONDS (a host
    firewall reload flushes them)."""
    APPLIED_MARKER.unlink(missing_ok=True)
    check_bridge_filtering()
    host = Host(detect_backend())
    client = docker.from_env()
    remove_leftovers(client, host)
    names = [attendee_network(settings.instance), egress_network(settings.instance)]
    wake = threading.Event()
    threading.Thread(target=follow_networks, args=(client, names, wake), daemon=True).start()
    applied = None
    while True:
        applied = enforce(client, host, settings, applied)
        wake.wait(RECHECK_SECONDS)
        wake.clear()


def main(argv: list[str] | None = None) -> None:
    """`python -m workshop_hub.room.firewall [remove]`: keep the rules in place, or take them
    away."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    args = sys.argv[1:] if argv is None else argv
    try:
        settings = load_settings(os.environ)
        instance = settings.instance
        if args == ["remove"]:
            host = Host(detect_backend())
            for family in HOOKS:
                host.remove(family, instance)
            log.info("firewall of %s removed", instance)
        elif not args:
            serve(settings)
        else:
            raise FirewallError(f"unknown arguments {args}: use no argument, or `remove`")
    except (SettingsError, FirewallError, docker.errors.DockerException) as error:
        # One line, then compose restarts the service, which applies everything again.
        sys.exit(f"workshop firewall: {error}")


if __name__ == "__main__":
    main()
