"""Where a recipient goes: Postfix's trivial-rewrite resolution, reduced to what hardener honours.

SECURITY: pure computation on main.cf values and the transport table (read once at start by the
settings loader); the recipient address comes from a queue file and is treated as data only.

Order (Postfix's resolve(5) and transport(5)):
 1. transport_maps, looked up with the full address, then the domain, then `.parent` domains, then
    `*`; an entry is `transport:nexthop`, either part may be empty (= the class default).
 2. the address class: domain in mydestination (or no domain) -> local_transport; domain in
    relay_domains -> relay_transport; anything else -> default_transport.
 3. for the relay and default classes without an explicit next hop: relayhost if set, else the
    recipient domain (MX lookup).
Transport names map to delivery agents through master.cf (service name -> command); the standard
names work without a master.cf.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hardener.mta.delivery.result import Destination

# Delivery agents hardener has; a master.cf service whose command is one of these uses it.
AGENTS = ("smtp", "local", "error", "retry", "discard")
_DEFAULT_SERVICES = {"smtp": "smtp", "relay": "smtp", "local": "local", "error": "error",
                     "retry": "retry", "discard": "discard"}


@dataclass
class RoutingSettings:
    """The main.cf values (expanded, lowercased domains) that routing needs."""

    mydestination: list[str] = field(default_factory=lambda: ["localhost"])
    relay_domains: list[str] = field(default_factory=list)
    relayhost: str = ""
    default_transport: str = "smtp"
    relay_transport: str = "relay"
    local_transport: str = "local:localhost"
    transport_map: Mapping[str, str] = field(default_factory=dict)
    services: Mapping[str, str] = field(default_factory=lambda: dict(_DEFAULT_SERVICES))


def split_address(address: str) -> tuple[str, str]:
    """`user@Example.COM` -> ('user', 'example.com'); no @ -> (address, '')."""
    local, at, domain = address.rpartition("@")
    if not at:
        return address, ""
    return local, domain.lower().rstrip(".")


def _domain_matches(domain: str, patterns: list[str]) -> bool:
    """Exact domain match, or a subdomain of an entry (relay_domains/mydestination style)."""
    for pattern in patterns:
        p = pattern.lower().rstrip(".")
        if p.startswith("."):
            if domain.endswith(p):
                return True
        elif domain == p:
            return True
    return False


class Router:
    """Resolves recipients to Destinations."""

    def __init__(self, settings: RoutingSettings) -> None:
        self.s = settings

    def is_local_domain(self, domain: str) -> bool:
        """True when `domain` (or no domain at all) is delivered by the local transport."""
        return not domain or _domain_matches(domain, self.s.mydestination)

    def _transport_lookup(self, address: str) -> str | None:
        table = self.s.transport_map
        if not table:
            return None
        local, domain = split_address(address)
        keys = [address.lower()]
        if "+" in local:
            keys.append(f"{local.split('+', 1)[0]}@{domain}".lower())
        if domain:
            keys.append(domain)
            parts = domain.split(".")
            keys += ["." + ".".join(parts[i:]) for i in range(1, len(parts))]
        keys.append("*")
        for key in keys:
            value = table.get(key)
            if value is not None:
                return value.strip()
        return None

    def resolve(self, address: str) -> Destination:
        """The Destination of one recipient address."""
        _, domain = split_address(address)
        if self.is_local_domain(domain):
            klass_transport = self.s.local_transport
            klass = "local"
        elif _domain_matches(domain, self.s.relay_domains):
            klass_transport = self.s.relay_transport
            klass = "relay"
        else:
            klass_transport = self.s.default_transport
            klass = "default"
        default_name, _, default_hop = klass_transport.partition(":")
        name, nexthop = default_name, default_hop
        override = self._transport_lookup(address)
        if override is not None:
            o_name, sep, o_hop = override.partition(":")
            name = o_name or default_name
            nexthop = o_hop if sep and o_hop else (default_hop if not o_name else "")
        agent = self.s.services.get(name, "")
        if agent not in AGENTS:
            return Destination("error", f"unknown mail transport {name!r}")
        if agent == "smtp" and not nexthop:
            if klass != "local" and self.s.relayhost:
                nexthop = self.s.relayhost
            else:
                nexthop = domain
        if agent == "error" and not nexthop:
            nexthop = "mail transport unavailable"
        if agent == "local":
            nexthop = ""
        return Destination(agent, nexthop)
