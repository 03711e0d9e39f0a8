"""Outbound safety: webhooks reach only public addresses, checked when each connection is made.

The check runs inside the HTTP transport after DNS resolution, and the socket connects to the
exact address that passed, so a hostname that resolves to a public address for a validator and
to 127.0.0.1 a moment later (DNS rebinding) still cannot reach anything internal. Addresses an
operator lists in `POLKU_ACTIONS_EGRESS_ALLOW` (CIDRs) are let through, e.g. for local receivers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import typing
from collections.abc import Iterable, Sequence

import httpcore

from services.actions.transport import AsyncioBackend, HttpTransport

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud instance metadata services (AWS, GCP, Azure, OpenStack on IPv4; AWS on IPv6).
METADATA = (ipaddress.ip_network("169.254.169.254/32"), ipaddress.ip_network("fd00:ec2::254/128"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT (RFC 7915): ::ffff:0:a.b.c.d
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# The only IPv6 block IANA allocates as global unicast; everything outside it is refused.
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")


def _table(*rows: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), why) for cidr, why in rows)


# The ranges of IANA's IPv4 and IPv6 special-purpose registries that are not globally
# reachable, with the reason given; the first match wins. Written out instead of read from
# `ipaddress`' is_private/is_global: those tables differ between Python releases (3.11 has no
# 3fff::/20 and calls fec0::/10 global), and what a webhook may reach must not change with a
# patch release. Python's flags still run after this table, so they can only add refusals.
NON_GLOBAL = _table(
    ("0.0.0.0/32", "unspecified"),
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "carrier-grade NAT"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "private"),  # local-use NAT64 (RFC 8215): the operator's own translator
    ("100::/64", "discard-only"),
    ("2001::/23", "IETF protocol assignments"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),  # RFC 9637
    ("fc00::/7", "private"),  # unique-local
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),  # deprecated (RFC 3879); still routed inside some networks
    ("ff00::/8", "multicast"),
)


class EgressRefused(Exception):
    """A webhook URL led to an address Polku must not connect to."""

    def __init__(self, host: str, reasons: Sequence[str]) -> None:
        self.host = host
        self.reasons = tuple(reasons)
        super().__init__(f"egress refused: {host} resolves only to non-public addresses "
                         f"({'; '.join(reasons)}); allow them with POLKU_ACTIONS_EGRESS_ALLOW")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, translated, compatible, 6to4,
    Teredo, NAT64): a host or translator on the way connects to that IPv4 address."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address
    if address in _NAT64 or address in _IPV4_TRANSLATED or address in _IPV4_COMPATIBLE:
        if address in _IPV4_COMPATIBLE and int(address) <= 1:
            return None  # :: and ::1 are IPv6's own unspecified and loopback
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress) -> str | None:
    """Why `address` is not a public unicast address, or None when it is."""
    inner = embedded_ipv4(address)
    if inner is not None:
        why = refusal(inner)
        return f"{why} ({inner} embedded in IPv6)" if why else None
    if any(address in net for net in METADATA):
        return "cloud metadata"
    for network, why in NON_GLOBAL:
        if address.version == network.version and address in network:
            return why
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST:
        return "reserved"
    if address.is_private or address.is_reserved or not address.is_global:
        return "reserved"  # Python's view: only ever refuses more than the table above
    return None


class EgressPolicy:
    """Decides which resolved addresses a webhook may connect to."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.allow: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in allow
        )

    def allowed(self, address: IPAddress) -> bool:
        inner = embedded_ipv4(address)
        for candidate in (address, inner):
            if candidate is not None and any(
                candidate.version == net.version and candidate in net for net in self.allow
            ):
                return True
        return refusal(address) is None

    def check(self, host: str, addresses: Sequence[IPAddress]) -> list[IPAddress]:
        """The addresses that may be used, in resolver order; EgressRefused when none may."""
        usable = [a for a in addresses if self.allowed(a)]
        if not usable:
            reasons = [f"{a} is {refusal(a) or 'not allowed'}" for a in dict.fromkeys(addresses)]
            raise EgressRefused(host, reasons or ["no address"])
        return usable


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (a literal address resolves to itself)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks against the policy, then connects to that exact checked address."""

    def __init__(self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend | None = None
                 ) -> None:
        self.policy = policy
        self.inner = inner or AsyncioBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        last: Exception | None = None
        for address in self.policy.check(host, addresses):
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused(path, ["unix sockets are never a webhook destination"])

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_transport(policy: EgressPolicy) -> HttpTransport:
    """The transport webhooks are sent with: every new connection passes `policy`."""
    return HttpTransport(GuardedBackend(policy))
