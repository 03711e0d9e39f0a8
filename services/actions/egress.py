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

from services.actions.transport import AsyncioBackend, PooledTransport

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud instance metadata services (AWS, GCP, Azure, OpenStack on IPv4; AWS on IPv6).
METADATA = (ipaddress.ip_network("169.254.169.254/32"), ipaddress.ip_network("fd00:ec2::254/128"))
CGNAT = ipaddress.ip_network("100.64.0.0/10")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


class EgressRefused(Exception):
    """A webhook URL led to an address Polku must not connect to."""

    def __init__(self, host: str, reasons: Sequence[str]) -> None:
        self.host = host
        self.reasons = tuple(reasons)
        super().__init__(f"egress refused: {host} resolves only to non-public addresses "
                         f"({'; '.join(reasons)}); allow them with POLKU_ACTIONS_EGRESS_ALLOW")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, 6to4, Teredo, NAT64)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
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
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address in CGNAT:
        return "carrier-grade NAT"
    if isinstance(address, ipaddress.IPv6Address) and address in _NAT64_LOCAL:
        return "private"
    if address.is_private:
        return "private"  # RFC 1918, IPv6 unique-local (fc00::/7) and other special ranges
    if address.is_reserved or not address.is_global:
        return "reserved"
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


def guarded_transport(policy: EgressPolicy) -> PooledTransport:
    """The transport webhooks are sent with: every new connection passes `policy`."""
    return PooledTransport(GuardedBackend(policy))
