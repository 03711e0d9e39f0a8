"""Which addresses a webhook may reach: only public unicast ones, unless an operator allows."""

from __future__ import annotations

import ipaddress

import httpcore
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.actions import egress
from services.actions.egress import EgressPolicy, EgressRefused, GuardedBackend, refusal

REFUSED = {
    "127.0.0.1": "loopback",
    "127.255.0.9": "loopback",
    "::1": "loopback",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "169.254.169.254": "cloud metadata",
    "fd00:ec2::254": "cloud metadata",
    "169.254.1.1": "link-local",
    "fe80::1": "link-local",
    "100.64.0.1": "carrier-grade NAT",
    "100.127.255.254": "carrier-grade NAT",
    "224.0.0.1": "multicast",
    "239.1.2.3": "multicast",
    "ff02::1": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "broadcast",
    "0.1.2.3": "this network",
    "192.0.0.8": "IETF protocol assignments",
    "192.0.2.1": "documentation",
    "198.51.100.7": "documentation",
    "203.0.113.9": "documentation",
    "198.18.0.1": "benchmarking",
    "198.19.255.254": "benchmarking",
    "fec0::1": "site-local",  # deprecated (RFC 3879), but routers may still route it inside
    "feff:ffff::1": "site-local",
    "3fff::1": "documentation",  # RFC 9637 (2024): missing from Python 3.11's tables
    "3fff:fff:ffff::1": "documentation",
    "2001:db8::1": "documentation",
    "100::1": "discard-only",
    "2001:2::1": "IETF protocol assignments",
    "64:ff9b:1::a00:1": "private",  # local-use NAT64 (RFC 8215): the operator's own translator
    "4000::1": "reserved",  # outside 2000::/3, the only block IANA hands out as global unicast
    "5f00::1": "reserved",
}

# IPv6 spellings of internal IPv4 addresses: refused for the address they stand for.
EMBEDDED = {
    "::ffff:127.0.0.1": "loopback",  # IPv4-mapped
    "::ffff:169.254.169.254": "cloud metadata",
    "::ffff:10.0.0.1": "private",
    "::ffff:100.64.1.1": "carrier-grade NAT",
    "::127.0.0.1": "loopback",  # IPv4-compatible (deprecated, still routable by some stacks)
    "::a00:1": "private",
    "64:ff9b::7f00:1": "loopback",  # NAT64
    "2002:7f00:1::": "loopback",  # 6to4
    "2002:a9fe:a9fe::1": "cloud metadata",
    "::ffff:0:10.0.0.1": "private",  # IPv4-translated (SIIT, RFC 7915)
    "::ffff:0:127.0.0.1": "loopback",
    "64:ff9b::a9fe:a9fe": "cloud metadata",
    "64:ff9b::a00:1": "private",
    "2001:0:4136:e378:8000:63bf:f5ff:fffe": "private",  # Teredo: client 10.0.0.1
}

PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111",
          "2a00:1450:4001:80b::200e", "2001:4860:4860::8888", "3ffe:1::1", "::ffff:8.8.8.8",
          "64:ff9b::808:808", "::ffff:0:8.8.8.8"]


@pytest.mark.parametrize(("address", "why"), sorted(REFUSED.items()))
def test_internal_addresses_are_refused_with_the_reason(address: str, why: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == why


@pytest.mark.parametrize(("address", "why"), sorted(EMBEDDED.items()))
def test_ipv4_embedded_in_ipv6_is_judged_by_the_ipv4_address(address: str, why: str) -> None:
    found = refusal(ipaddress.ip_address(address))
    assert found is not None and found.startswith(why), found


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None
    assert EgressPolicy().allowed(ipaddress.ip_address(address))


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_and_its_mapped_form_are_judged_alike(address: ipaddress.IPv4Address
                                                             ) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    assert (refusal(address) is None) == (refusal(mapped) is None)
    policy = EgressPolicy(["127.0.0.0/8"])
    assert policy.allowed(address) == policy.allowed(mapped)


@given(st.ip_addresses(v=6).filter(
    lambda a: a not in ipaddress.ip_network("2000::/3") and egress.embedded_ipv4(a) is None))
def test_ipv6_outside_global_unicast_is_refused(address: ipaddress.IPv6Address) -> None:
    assert refusal(address) is not None


def test_the_operator_allowlist_lets_listed_networks_through_and_nothing_else() -> None:
    policy = EgressPolicy(["127.0.0.0/8", "10.20.0.0/16"])
    assert policy.allowed(ipaddress.ip_address("127.0.0.1"))
    assert policy.allowed(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert policy.allowed(ipaddress.ip_address("10.20.3.4"))
    assert not policy.allowed(ipaddress.ip_address("10.21.3.4"))
    assert not policy.allowed(ipaddress.ip_address("169.254.169.254"))
    assert not policy.allowed(ipaddress.ip_address("::1"))


def test_check_keeps_only_usable_addresses_and_refuses_when_none_is() -> None:
    policy = EgressPolicy()
    mixed = [ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("8.8.8.8")]
    assert policy.check("mixed.example", mixed) == [ipaddress.ip_address("8.8.8.8")]
    with pytest.raises(EgressRefused, match=r"10\.0\.0\.1 is private"):
        policy.check("internal.example", mixed[:1])


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands in for the socket layer: records which host it was asked to connect to."""

    def __init__(self) -> None:
        self.connected: list[str] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None, socket_options: object = None
                          ) -> httpcore.AsyncNetworkStream:
        self.connected.append(host)
        raise httpcore.ConnectError("recorded")


async def test_the_backend_connects_to_the_exact_address_it_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = iter([[ipaddress.ip_address("93.184.216.34")], [ipaddress.ip_address("127.0.0.1")]])

    async def rebinding_resolver(host: str, port: int) -> list[egress.IPAddress]:
        return next(answers)  # public first, loopback the next time: DNS rebinding

    monkeypatch.setattr(egress, "resolve", rebinding_resolver)
    inner = RecordingBackend()
    backend = GuardedBackend(EgressPolicy(), inner)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("rebind.example", 80)
    assert inner.connected == ["93.184.216.34"]  # the checked address, not the name
    with pytest.raises(EgressRefused, match="loopback"):
        await backend.connect_tcp("rebind.example", 80)
    assert inner.connected == ["93.184.216.34"]  # the loopback answer never reached a socket


async def test_localhost_resolves_to_loopback_and_is_refused() -> None:
    with pytest.raises(EgressRefused, match="loopback"):
        await GuardedBackend(EgressPolicy(), RecordingBackend()).connect_tcp("localhost", 80)


async def test_unix_sockets_are_never_a_destination() -> None:
    with pytest.raises(EgressRefused):
        await GuardedBackend(EgressPolicy()).connect_unix_socket("/var/run/docker.sock")
