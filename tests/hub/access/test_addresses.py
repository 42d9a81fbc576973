"""The address a login came from: from the connection, or from the hub's own proxies."""

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from workshop_hub.access.addresses import ProxyAddress, client_address

HTTPS_PROXY = "172.20.0.3"
ip_addresses = st.ip_addresses().map(str)


@given(peer=ip_addresses.filter(lambda a: not a.startswith(("127.", "::1"))), forged=st.text())
def test_a_direct_client_is_its_connection_whatever_it_claims(peer, forged):
    assert client_address(peer, forged, forged, HTTPS_PROXY) == peer


@given(client=ip_addresses, forged=st.lists(ip_addresses, max_size=3), real=ip_addresses)
def test_through_the_hubs_proxy_only_its_own_entry_counts(client, forged, real):
    chain = ", ".join([*forged, client])
    if client == HTTPS_PROXY:
        return  # the HTTPS proxy's case, below
    assert client_address("127.0.0.1", chain, real, HTTPS_PROXY) == client


def test_through_the_https_proxy_its_x_real_ip_counts():
    chain = f"203.0.113.9, {HTTPS_PROXY}"
    assert client_address("127.0.0.1", chain, "198.51.100.4", HTTPS_PROXY) == "198.51.100.4"
    # Without an HTTPS proxy (profile off), an X-Real-IP is a client's own word.
    assert client_address("127.0.0.1", chain, "198.51.100.4", None) == HTTPS_PROXY


def test_the_https_proxy_is_looked_up_once_a_minute_and_may_be_absent():
    now = [0.0]
    answers = iter(["172.20.0.3", OSError("no such name")])

    def resolve(name):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    proxy = ProxyAddress(resolve=resolve, clock=lambda: now[0])
    assert asyncio.run(proxy.current()) == "172.20.0.3"
    now[0] = 59
    assert asyncio.run(proxy.current()) == "172.20.0.3"
    now[0] = 61
    assert asyncio.run(proxy.current()) is None
