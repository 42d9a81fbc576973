"""An attendee's kernel attacks the network; the firewall and the attendee network hold.

Every connection goes to a listener this test starts on this machine: an "outside" address
in a network namespace behind a veth pair it makes (198.18.0.0/15, the benchmarking range,
never a real network), a socket on all the host's addresses, and another attendee's server.
The metadata address and private ranges are never contacted: their block is read from the
kernel's view of its routes and from the host's firewall rules.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from workshop_hub import services
from workshop_hub.room import firewall

from .hub_client import Attendee
from .stack import ACCESS_CODE_OF_TESTS, ADMIN_PASSWORD_OF_TESTS, HubStack, progress

# A refused connection says "nothing listens"; only a timeout shows a dropped packet. The
# kernel waits this long per attempt.
ATTEMPT_SECONDS = 4

# JupyterHub checks running servers for 10 s at start, then in the background.
RECREATED_HUB_SECONDS = 15

ATTACK = """
import json, socket
def attempt(host, port):
    probe = socket.socket()
    probe.settimeout({timeout})
    try:
        probe.connect((host, port))
        return "connected"
    except OSError as error:
        return type(error).__name__
    finally:
        probe.close()
print(json.dumps({{label: attempt(host, port) for label, (host, port) in {targets!r}.items()}}))
"""

# The kernel's IPv4 routing table, read from /proc: no socket is opened, nothing is sent.
ROUTING_TABLE = """
import json
rows = [line.split() for line in open("/proc/net/route").read().splitlines()[1:]]
print(json.dumps([row[1:4] + [row[7]] for row in rows]))  # destination, gateway, flags, mask
"""


def _address(little_endian_hex: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(bytes.fromhex(little_endian_hex)[::-1])


def routes_covering(table: list[list[str]], target: ipaddress.IPv4Network) -> list[dict]:
    """The routes of /proc/net/route rows that the kernel could use for `target`."""
    covering = []
    for destination, gateway, _flags, mask in table:
        network = ipaddress.IPv4Network(f"{_address(destination)}/{_address(mask)}")
        if target.subnet_of(network):
            covering.append({"network": str(network), "gateway": str(_address(gateway))})
    return covering


LISTENER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], 0))
server.listen()
print(server.getsockname()[1], flush=True)
while True:
    peer = server.accept()[1]
    print(peer[0], flush=True)
"""


@dataclass
class Listener:
    address: str
    port: int
    peers: list[str]


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


def follow_listener(command: list[str], address: str) -> tuple[subprocess.Popen, Listener]:
    """Start LISTENER; its stdout gives the port, then one peer address per connection."""
    process = subprocess.Popen(
        [*command, sys.executable, "-c", LISTENER, address], stdout=subprocess.PIPE, text=True
    )
    listener = Listener(address, int(process.stdout.readline()), [])

    def collect() -> None:
        for line in process.stdout:
            listener.peers.append(line.strip())

    threading.Thread(target=collect, daemon=True).start()
    return process, listener


@contextmanager
def outside_listener():
    """A TCP listener at an address outside every Docker network: a namespace the test makes,
    joined to the host by a veth pair, the way a LAN or the internet hangs off a host."""
    tag = f"wsn{os.getpid() % 100_000}"
    octet = os.getpid() % 250 + 1
    host_side, inside = f"198.18.{octet}.1", f"198.18.{octet}.2"
    listener = None
    try:
        run("ip", "netns", "add", tag)
        run("ip", "link", "add", f"{tag}h", "type", "veth", "peer", "name", f"{tag}n", "netns", tag)
        run("ip", "addr", "add", f"{host_side}/30", "dev", f"{tag}h")
        run("ip", "link", "set", f"{tag}h", "up")
        run("ip", "-n", tag, "addr", "add", f"{inside}/30", "dev", f"{tag}n")
        run("ip", "-n", tag, "link", "set", f"{tag}n", "up")
        run("ip", "-n", tag, "route", "add", "default", "via", host_side)
        listener, found = follow_listener(["ip", "netns", "exec", tag], inside)
        yield found
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
        subprocess.run(["ip", "link", "del", f"{tag}h"], capture_output=True)
        subprocess.run(["ip", "netns", "del", tag], capture_output=True)
        assert not Path(f"/run/netns/{tag}").exists()


@contextmanager
def host_listener():
    """A service of the host bound to all its addresses, like sshd or a published port."""
    process, listener = follow_listener([], "0.0.0.0")
    try:
        yield listener
    finally:
        process.kill()
        process.wait()


def reached(listener: Listener, address: str) -> None:
    """The listener answers from the host itself: a refusal later is the firewall's doing."""
    before = len(listener.peers)
    socket.create_connection((address, listener.port), timeout=5).close()
    deadline = time.monotonic() + 5
    while len(listener.peers) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(listener.peers) == before + 1, "the test's own listener did not answer"


def attack(attendee: Attendee, targets: dict[str, tuple[str, int]]) -> dict[str, str]:
    code = ATTACK.format(timeout=ATTEMPT_SECONDS, targets=targets)
    result = attendee.run_code(code, timeout=60 + ATTEMPT_SECONDS * len(targets))
    assert result.error is None, result.error
    return json.loads(result.stdout)


def network_of(stack: HubStack, name: str) -> dict:
    return stack.docker.networks.get(name).attrs


def address_on(stack: HubStack, username: str, network: str) -> str:
    container = stack.attendee_container(username)
    return container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]


def started(stack: HubStack, name: str, room_code: str) -> Attendee:
    attendee = Attendee(stack.url, name)
    assert attendee.login(room_code).status_code == 200
    attendee.wait_until_ready()
    assert attendee.open_lab().status_code == 200
    return attendee


def host_rules(instance: str) -> str:
    """The host's filter rules in the backend Docker uses, as `iptables -S` lists them."""
    backend = firewall.detect_backend()
    listing = subprocess.run(
        [f"iptables-{backend}", "-S"], capture_output=True, text=True, check=True
    ).stdout
    return "\n".join(line for line in listing.splitlines() if instance in line)


def has_rule(rules: str, chain: str, *matches: str) -> bool:
    """Whether `chain` has a DROP rule with every match (iptables -S orders them its own way)."""
    return any(
        line.startswith(f"-A {chain} ")
        and line.endswith("-j DROP")
        and all(f" {match} " in line for match in matches)
        for line in rules.splitlines()
    )


def assert_still_working(stack: HubStack, *attendees: Attendee) -> None:
    assert requests.get(f"{stack.url}/hub/health", timeout=10).status_code == 200
    for attendee in attendees:
        result = attendee.run_code("print(6 * 7)")
        assert (result.stdout, result.error) == ("42\n", None)


@pytest.fixture(scope="module")
def eve_and_victim(hub, access_code):
    progress("network isolation: starting eve (attacker) and victim")
    return started(hub, "eve", access_code), started(hub, "victim", access_code)


def test_an_attendee_reaches_only_the_hub(hub, eve_and_victim):
    eve, victim = eve_and_victim
    attendees = firewall.attendee_network(hub.project)
    attrs = network_of(hub, attendees)
    assert attrs["Internal"] is True
    gateway = attrs["IPAM"]["Config"][0]["Gateway"]
    victim_ip = address_on(hub, "victim", attendees)
    # The hub opens the victim's server at this address: it is there to be attacked.
    hub_check = hub.hub_exec(
        "python3", "-c", f"import socket; socket.create_connection(({victim_ip!r}, 8888), 5)"
    )
    assert hub_check.returncode == 0, hub_check.stderr

    with outside_listener() as outside, host_listener() as on_host:
        reached(outside, outside.address)
        reached(on_host, gateway)
        peers_before = len(outside.peers), len(on_host.peers)
        progress(f"eve tries {outside.address}, the host at {gateway} and {victim_ip}:8888")
        results = attack(
            eve,
            {
                "outside": (outside.address, outside.port),
                "host service": (gateway, on_host.port),
                "other attendee": (victim_ip, services.SERVER_PORT),
            },
        )
        assert "connected" not in results.values(), results
        assert (len(outside.peers), len(on_host.peers)) == peers_before
    progress(f"eve's attacks: {results}")
    assert_still_working(hub, eve, victim)


def test_a_one_off_hub_container_never_takes_the_hubs_place_in_the_firewall(hub, eve_and_victim):
    """`compose run hub ...` (preflight, wipe-event) joins the attendee network with the
    hub's service label; the firewall must keep opening the hub's API to the real hub only."""
    attendees = firewall.attendee_network(hub.project)
    hub_id = hub.compose("ps", "-q", "hub").stdout.strip()
    hub_ip = hub.docker.containers.get(hub_id).attrs["NetworkSettings"]["Networks"][attendees][
        "IPAddress"
    ]
    one_off = hub.compose("run", "-d", "hub", "sleep", "120").stdout.strip().splitlines()[-1]
    try:
        one_off_ip = hub.docker.containers.get(one_off).attrs["NetworkSettings"]["Networks"][
            attendees
        ]["IPAddress"]
        # The firewall wakes on the network's connect event: give it time to (wrongly) move.
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            rules = host_rules(hub.project)
            assert f"-d {hub_ip}/32" in rules and f"-d {one_off_ip}/32" not in rules, rules
            time.sleep(1)
        assert_still_working(hub, *eve_and_victim)
    finally:
        hub.docker.containers.get(one_off).remove(force=True)


def test_the_metadata_address_is_out_of_reach(hub, eve_and_victim):
    """Without sending a packet: where the kernel would route it, and what the host drops."""
    eve, _ = eve_and_victim
    result = eve.run_code(ROUTING_TABLE)
    assert result.error is None, result.error
    metadata = ipaddress.IPv4Network(firewall.BLOCKED_RANGES[0])
    routes = routes_covering(json.loads(result.stdout), metadata)
    attendees = firewall.attendee_network(hub.project)
    attrs = network_of(hub, attendees)
    gateway = attrs["IPAM"]["Config"][0]["Gateway"]
    if routes:  # none at all on Docker 26 and later
        # Docker before 26 gives containers on internal networks a default route to the
        # bridge's own address: the only way on is through the host, which drops it all.
        assert routes == [{"network": "0.0.0.0/0", "gateway": gateway}], routes
        bridge = attrs["Options"].get("com.docker.network.bridge.name") or f"br-{attrs['Id'][:12]}"
        rules = host_rules(hub.project)
        chain_in, chain_fwd = firewall.chain_names(hub.project)
        for chain, hook in ((chain_in, "INPUT"), (chain_fwd, "DOCKER-USER")):
            assert f"-A {hook} -m comment" in rules and f"-j {chain}" in rules, rules
            assert has_rule(rules, chain, f"-i {bridge} -m comment"), rules
    progress(f"routes from eve's kernel towards {metadata}: {routes}")


def test_with_internet_on_the_outside_is_reached_but_not_the_rest(lab_images):
    stack = HubStack(
        WORKSHOP_ACCESS_CODE=ACCESS_CODE_OF_TESTS,
        WORKSHOP_ADMIN_PASSWORD=ADMIN_PASSWORD_OF_TESTS,
        WORKSHOP_ATTENDEE_INTERNET="true",
    )
    try:
        stack.up()
        eve = started(stack, "evenet", ACCESS_CODE_OF_TESTS)
        egress = firewall.egress_network(stack.project)
        egress_gateway = network_of(stack, egress)["IPAM"]["Config"][0]["Gateway"]
        networks = stack.attendee_container("evenet").attrs["NetworkSettings"]["Networks"]
        assert set(networks) == {firewall.attendee_network(stack.project), egress}

        with outside_listener() as outside, host_listener() as on_host:
            reached(on_host, egress_gateway)
            before = len(outside.peers), len(on_host.peers)
            results = attack(
                eve,
                {
                    "outside": (outside.address, outside.port),
                    "host service": (egress_gateway, on_host.port),
                },
            )
            assert results == {"outside": "connected", "host service": "TimeoutError"}, results
            assert (len(outside.peers), len(on_host.peers)) == (before[0] + 1, before[1])
        progress(f"eve with internet: {results}")

        rules = host_rules(stack.project)
        chain_fwd = firewall.chain_names(stack.project)[1]
        interface = firewall.egress_bridge(stack.project)
        jump = f'--comment "{stack.project}: workshop firewall" -j {chain_fwd}'
        assert f"-A DOCKER-USER -m comment {jump}" in rules, rules
        for blocked in firewall.BLOCKED_RANGES:
            assert has_rule(rules, chain_fwd, f"-d {blocked}", f"-i {interface}"), blocked
        assert_still_working(stack, eve)

        # A new hub container joins the attendee network afresh: the firewall must let it
        # reach the servers still running before JupyterHub gives up checking them.
        stack.compose("up", "-d", "--no-build", "--force-recreate", "hub")
        stack.wait_healthy()
        back = time.monotonic()
        while eve.api("GET", "status", allow_redirects=False).status_code != 200:
            assert time.monotonic() - back < RECREATED_HUB_SECONDS, stack.logs()[-3000:]
            time.sleep(1)
        progress(f"eve's server reached again {time.monotonic() - back:.0f} s after a new hub")
        assert_still_working(stack, eve)
    finally:
        stack.down()
        firewall.Host(firewall.detect_backend()).remove("iptables", stack.project)
        firewall.Host(firewall.detect_backend()).remove("ip6tables", stack.project)
        assert host_rules(stack.project) == ""
