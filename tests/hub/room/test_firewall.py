"""The firewall's rules, names and host checks; tests/e2e/test_network_isolation.py attacks it."""

import ipaddress
import subprocess
from pathlib import Path

import pytest
import yaml

from workshop_hub.room import firewall
from workshop_hub.room.firewall import Bridge, FirewallError
from workshop_hub.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[3]
LONGEST_INSTANCE = "a" * 41


def test_names_fit_the_kernels_limits():
    chains = firewall.chain_names(LONGEST_INSTANCE)
    assert all(len(chain) <= 28 for chain in chains)
    assert len(firewall.egress_bridge(LONGEST_INSTANCE)) <= 15
    assert firewall.chain_names("one") != firewall.chain_names("two")


def test_compose_names_the_networks_as_the_hub_and_firewall_do():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    default = SETTINGS["WORKSHOP_INSTANCE"].default
    attendees = compose["networks"]["attendees"]
    assert attendees["internal"] is True
    assert attendees["name"] == f"${{WORKSHOP_INSTANCE:-{default}}}-attendees"
    assert firewall.attendee_network(default) == f"{default}-attendees"
    assert "attendees" in compose["services"]["hub"]["networks"]


def rules_text(rules: list[list[str]]) -> list[str]:
    return [subprocess.list2cmdline(rule) for rule in rules]


def test_only_the_hub_crosses_the_attendee_bridge():
    rules = rules_text(firewall.filter_rules("room", Bridge("br-1", "172.20.0.2")))
    chain_in, chain_fwd = firewall.chain_names("room")
    accepts = [rule for rule in rules if rule.endswith("ACCEPT") and "br-1" in rule]
    assert len(accepts) == 4
    assert any("-s 172.20.0.2 -p tcp --dport 8888" in rule for rule in accepts)
    assert any("-d 172.20.0.2 -p tcp --dport 8081" in rule for rule in accepts)
    assert any("-d 172.20.0.2 -p tcp --dport 8082" in rule for rule in accepts)  # the console
    drops = [i for i, rule in enumerate(rules) if rule.startswith(chain_fwd) and "DROP" in rule]
    assert max(rules.index(rule) for rule in accepts) < min(drops)
    assert f"{chain_in} -i br-1 -m comment" in rules[0] and rules[0].endswith("DROP")
    assert any(rule.startswith(f"{chain_fwd} -i br-1 -m comment") for rule in rules)
    assert any(rule.startswith(f"{chain_fwd} -o br-1 -m comment") for rule in rules)


def test_before_the_hub_joins_nothing_crosses_the_attendee_bridge():
    rules = rules_text(firewall.filter_rules("room", Bridge("br-1")))
    assert not [rule for rule in rules if "br-1" in rule and rule.endswith("ACCEPT")]


def test_egress_reaches_no_private_range_but_the_hosts_dns():
    # A host resolver inside a blocked private range, as on many cloud VMs.
    nameserver = str(ipaddress.IPv4Network(firewall.BLOCKED_RANGES[1])[2])
    rules = rules_text(firewall.filter_rules("room", Bridge("br-1"), (nameserver,)))
    egress = firewall.egress_bridge("room")
    dns = [rules.index(rule) for rule in rules if f"-d {nameserver}" in rule]
    assert len(dns) == 2 and all(rules[i].endswith("ACCEPT") for i in dns)
    for blocked in firewall.BLOCKED_RANGES:
        (drop,) = [rule for rule in rules if f"-i {egress} -d {blocked} " in rule]
        assert drop.endswith("DROP") and rules.index(drop) > max(dns)
    assert any(f"-i {egress} -o {egress} " in rule for rule in rules)


def test_restore_input_empties_and_refills_both_chains_at_once():
    chains = firewall.chain_names("room")
    text = firewall.restore_input(chains, firewall.filter_rules("room", Bridge("br-1")))
    lines = text.splitlines()
    assert lines[:3] == ["*filter", f":{chains[0]} - [0:0]", f":{chains[1]} - [0:0]"]
    assert lines[-1] == "COMMIT"
    assert '--comment "room: attendees reach no host service"' in text


def saved(outputs: dict[str, str]):
    def run(command, **kwargs):
        return subprocess.CompletedProcess(command, 0, stdout=outputs.get(command[0], ""))

    return run


def test_the_backend_is_the_one_with_dockers_chains():
    docker_chains = ":DOCKER - [0:0]\n:DOCKER-USER - [0:0]\n"
    assert firewall.detect_backend(saved({"iptables-legacy-save": docker_chains})) == "legacy"
    assert firewall.detect_backend(saved({"iptables-nft-save": docker_chains})) == "nft"
    with pytest.raises(FirewallError, match="--iptables=false"):
        firewall.detect_backend(saved({"iptables-nft-save": ":INPUT ACCEPT [0:0]\n"}))


def test_bridge_filtering_off_is_refused_with_the_fix(tmp_path):
    with pytest.raises(FirewallError, match="modprobe br_netfilter"):
        firewall.check_bridge_filtering(tmp_path)
    for family in ("iptables", "ip6tables"):
        (tmp_path / f"bridge-nf-call-{family}").write_text("1\n")
    firewall.check_bridge_filtering(tmp_path)
    (tmp_path / "bridge-nf-call-iptables").write_text("0\n")
    with pytest.raises(FirewallError, match="net.bridge.bridge-nf-call-iptables=1"):
        firewall.check_bridge_filtering(tmp_path)


def test_nameservers_are_the_hosts_ipv4_ones(tmp_path):
    # Addresses only written into a file, never contacted: a private one, loopback, IPv6.
    private = str(ipaddress.IPv4Network(firewall.BLOCKED_RANGES[1])[2])
    loopback = str(ipaddress.IPv4Network(firewall.BLOCKED_RANGES[-1])[1])
    ipv6 = str(ipaddress.IPv6Address(1))
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(
        f"# comment\nnameserver {private}\nnameserver {loopback}\nnameserver {ipv6}\n"
        "nameserver bogus\nsearch example.org\n"
    )
    assert firewall.host_nameservers(resolv) == (private,)
    assert firewall.host_nameservers(tmp_path / "absent") == ()
