"""Next-hop resolution for the smtp delivery agent: `[host]:port`, `host:port` (MX) and MX via DNS.

SECURITY: sends DNS queries (dnspython) to the resolvers the daemon is configured with, and trusts
the answers only as far as Postfix does: host names from MX records are looked up again, at most
`smtp_mx_address_limit` addresses are tried, a null MX (RFC 7505) bounces. Touches no file.

Forms (Postfix's relayhost / transport next-hop syntax):
    [10.1.2.3]:2525  an address; brackets mean "no MX lookup"
    [mx.example.com] a host name looked up with A/AAAA records only
    example.com:587  MX lookup for example.com, then port 587 on each MX host
    a list separated by commas or spaces: tried in order (Postfix >= 3.5 relayhost lists)
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

from hardener.mta.delivery.smtp_client import HopError


@dataclass(frozen=True)
class Hop:
    """One server to try: the name to log, its address and port."""

    host: str
    addr: str
    port: int


def split_nexthop_list(nexthop: str) -> list[str]:
    """`a, [b]:25 c` -> ['a', '[b]:25', 'c']."""
    return [part for part in nexthop.replace(",", " ").split() if part]


def parse_nexthop(item: str, default_port: int = 25) -> tuple[str, int, bool]:
    """One next hop -> (host, port, mx_lookup). Raises ValueError on a malformed entry."""
    item = item.strip()
    if item.startswith("["):
        end = item.find("]")
        if end < 0:
            raise ValueError(f"missing ']' in next hop {item!r}")
        host = item[1:end]
        rest = item[end + 1:]
        mx = False
    else:
        # An IPv6 address without brackets cannot carry a port; Postfix needs brackets for it.
        host, rest = (item.rsplit(":", 1)[0], ":" + item.rsplit(":", 1)[1]) if ":" in item else (item, "")
        mx = True
    port = default_port
    if rest:
        if not rest.startswith(":") or not rest[1:].isdigit() or not 0 < int(rest[1:]) < 65536:
            raise ValueError(f"bad port in next hop {item!r}")
        port = int(rest[1:])
    if not host:
        raise ValueError(f"empty host in next hop {item!r}")
    if host.lower().startswith("ipv6:"):
        host = host[5:]
    return host, port, mx


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _dns():
    """dnspython, imported at the first DNS lookup: about 5 MB in every process of the daemon
    otherwise (smtpd, pickup and a qmgr whose next hops are all [bracketed] never need it)."""
    import dns.asyncresolver
    import dns.exception
    import dns.resolver

    return dns


class NextHopResolver:
    """Turns a next-hop string into the servers to try, in order.

    `nameservers`/`port` select the DNS resolvers (None: the system's /etc/resolv.conf); tests point
    them at a dnsmasq on loopback.
    """

    def __init__(self, *, nameservers: list[str] | None = None, dns_port: int = 53,
                 mx_address_limit: int = 5, timeout: float = 10.0) -> None:
        self._nameservers = nameservers
        self._dns_port = dns_port
        self._timeout = timeout
        self._dns_resolver = None
        self.mx_address_limit = mx_address_limit

    @property
    def _resolver(self):
        if self._dns_resolver is None:
            resolver = _dns().asyncresolver.Resolver(configure=self._nameservers is None)
            if self._nameservers is not None:
                resolver.nameservers = list(self._nameservers)
                resolver.port = self._dns_port
            resolver.lifetime = self._timeout
            self._dns_resolver = resolver
        return self._dns_resolver

    async def resolve(self, nexthop: str) -> list[Hop]:
        """All servers for `nexthop` (a list form is tried in order); HopError when there is none."""
        hops: list[Hop] = []
        last_error: HopError | None = None
        for item in split_nexthop_list(nexthop):
            try:
                host, port, mx = parse_nexthop(item)
            except ValueError as exc:
                raise HopError(f"bad next-hop destination: {exc}", "4.3.5", hop_dead=True) from None
            try:
                if _is_ip(host):
                    hops.append(Hop(host, host, port))
                elif mx:
                    hops.extend(await self._mx_hops(host, port))
                else:
                    hops.extend(Hop(host, a, port) for a in await self._addresses(host, native=True))
            except HopError as exc:
                last_error = exc
        if hops:
            return hops[: max(self.mx_address_limit, 1) * max(len(split_nexthop_list(nexthop)), 1)]
        if last_error is not None:
            raise last_error
        raise HopError(f"no next-hop server for {nexthop!r}", "4.4.4")

    async def _mx_hops(self, domain: str, port: int) -> list[Hop]:
        dns = _dns()
        try:
            answer = await self._resolver.resolve(domain, "MX")
        except dns.resolver.NoAnswer:
            # No MX: the domain itself is the implicit MX (RFC 5321 5.1).
            return [Hop(domain, a, port) for a in await self._addresses(domain)]
        except dns.resolver.NXDOMAIN:
            raise HopError(f"Host or domain name not found. Name service error for name={domain} "
                           "type=MX: Host not found", "5.4.4", permanent=True) from None
        except (dns.exception.DNSException, OSError) as exc:
            raise HopError(f"Host or domain name not found. Name service error for name={domain} "
                           f"type=MX: {exc.__class__.__name__}", "4.4.3") from None
        records = sorted(answer, key=lambda r: r.preference)
        if len(records) == 1 and str(records[0].exchange) == ".":
            raise HopError(f"Domain {domain} does not accept mail (nullMX)", "5.1.10",
                           permanent=True)
        hops: list[Hop] = []
        for record in records:
            name = str(record.exchange).rstrip(".")
            if not name:
                continue
            try:
                for addr in await self._addresses(name):
                    hops.append(Hop(name, addr, port))
            except HopError:
                continue
            if len(hops) >= self.mx_address_limit:
                break
        if not hops:
            raise HopError(f"no usable address for the MX hosts of {domain}", "4.4.4")
        return hops[: self.mx_address_limit]

    async def _addresses(self, name: str, native: bool = False) -> list[str]:
        """A records of `name` (IPv4 only: the daemon's inet_protocols is ipv4 here)."""
        if native:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    name, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
                return sorted({info[4][0] for info in infos})
            except OSError:
                pass
        dns = _dns()
        try:
            answer = await self._resolver.resolve(name, "A")
        except dns.resolver.NXDOMAIN:
            raise HopError(f"Host or domain name not found. Name service error for name={name} "
                           "type=A: Host not found", "5.4.4", permanent=True) from None
        except (dns.exception.DNSException, OSError) as exc:
            raise HopError(f"Host or domain name not found. Name service error for name={name} "
                           f"type=A: {exc.__class__.__name__}", "4.4.3") from None
        return [r.address for r in answer]
