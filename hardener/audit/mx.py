"""`--mx DOMAIN`: the SMTP servers that receive a domain's mail, as audit targets.

RFC 5321 section 5.1: the MX records in preference order (lowest first), each exchange's A and AAAA
records; a domain without MX records receives mail at its own address ("implicit MX"). RFC 7505: a
single MX "0 ." (null MX) says the domain accepts no mail. Queries go to `--resolver ADDR[:PORT]`
when given (dnspython's asyncio resolver), else to the system's resolvers.

A domain name that is not a domain name is bad input (InputError, exit 2, before any query). What
DNS says or fails to say (the domain does not exist, publishes a null MX, has no server with an
address, the resolver does not answer) is MxLookupError, a TargetError: resolve_domain() turns it
into MxResolution.error, so that one domain is reported as an incomplete target (exit 3) and every
other target of the run is still audited.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from hardener.audit.context import AuditTarget
from hardener.errors import InputError, TargetError

DEFAULT_PORT = 25
DNS_PORT = 53


class MxLookupError(TargetError):
    """DNS could not give a domain's mail servers (exit 3 for that domain only)."""


@dataclass
class MxResolution:
    """The targets of a domain, plus notes for the report (e.g. an MX host with no address)."""

    domain: str
    targets: list[AuditTarget] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    implicit: bool = False      # no MX records: the domain's own address records were used
    error: str | None = None    # why no target could be found (resolve_domain only)


def parse_resolver(text: str) -> tuple[str, int]:
    """'ADDR', 'ADDR:PORT', '[v6]:PORT' or a bare IPv6 address -> (address, port).

    InputError (field --resolver) when it is not an IP address with an optional port 1-65535.
    """
    spec = text.strip()
    host, port_text = spec, ""
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise InputError(f"{text!r} is not ADDR[:PORT]", field="--resolver")
        port_text = rest[1:]
    elif spec.count(":") == 1:
        host, _, port_text = spec.partition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise InputError(f"{host!r} is not an IP address (give the DNS server as ADDR[:PORT])",
                         field="--resolver") from None
    if not port_text:
        return host, DNS_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InputError(f"port {port_text!r} is not a number in 1-65535", field="--resolver")
    return host, int(port_text)


def make_resolver(resolver: str | None, timeout: float) -> dns.asyncresolver.Resolver:
    """The DNS resolver for --mx: `resolver` ADDR[:PORT], else the system's (InputError if none)."""
    if resolver is None:
        try:
            res = dns.asyncresolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            raise InputError("no DNS resolver configured on this system; give one",
                             field="--resolver") from None
    else:
        address, port = parse_resolver(resolver)
        res = dns.asyncresolver.Resolver(configure=False)
        res.nameservers = [address]
        res.port = port
    res.timeout = timeout
    res.lifetime = timeout
    return res


def check_domain(domain: str) -> dns.name.Name:
    """The --mx DOMAIN as a DNS name; InputError (field --mx) when it is not a domain name."""
    text = domain.strip().rstrip(".")
    if not text:
        raise InputError("empty domain", field="--mx")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        raise InputError(f"{domain!r} is an IP address, not a domain", field="--mx")
    try:
        return dns.name.from_text(text)
    except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
        raise InputError(f"{domain!r} is not a domain name: {exc}", field="--mx") from None


async def _query(res: dns.asyncresolver.Resolver, name: dns.name.Name, rdtype: str,
                 domain: str) -> dns.resolver.Answer | None:
    """One query; None for 'no such record' (NoAnswer). NXDOMAIN is raised to the caller;
    a resolver failure or timeout becomes MxLookupError (field --mx, naming `domain`)."""
    what = f"{name.to_text(omit_final_dot=True)} {rdtype}"
    try:
        return await res.resolve(name, rdtype, search=False, raise_on_no_answer=True)
    except dns.resolver.NoAnswer:
        return None
    except dns.resolver.NXDOMAIN:
        raise
    except dns.resolver.LifetimeTimeout:
        raise MxLookupError(f"{domain}: no answer from {_servers(res)} within {res.lifetime:g}s "
                          f"({what})", field="--mx") from None
    except dns.exception.DNSException as exc:  # NoNameservers (REFUSED, SERVFAIL), bad replies
        raise MxLookupError(f"{domain}: DNS lookup of {what} failed: {_short(str(exc))}",
                          field="--mx") from None


def _servers(res: dns.asyncresolver.Resolver) -> str:
    return ", ".join(f"{ns}:{res.port}" for ns in res.nameservers) or "the resolver"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:200] + "..."


async def _addresses(res: dns.asyncresolver.Resolver, host: dns.name.Name, domain: str) -> list[str]:
    """A then AAAA addresses of host, in the order the server gave them; [] if it has none."""
    out: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = await _query(res, host, rdtype, domain)
        except dns.resolver.NXDOMAIN:
            return out
        if answer is not None:
            out.extend(r.address for r in answer)
    return out


async def resolve_domain(domain: str, resolver: str | None, timeout: float, *,
                         port: int = DEFAULT_PORT,
                         dns_resolver: dns.asyncresolver.Resolver | None = None) -> MxResolution:
    """Like resolve_mx_detailed(), but what DNS says is in the result's `error` instead of raised
    (InputError still for a malformed domain or resolver)."""
    try:
        return await resolve_mx_detailed(domain, resolver, timeout, port=port,
                                         dns_resolver=dns_resolver)
    except MxLookupError as exc:
        return MxResolution(check_domain(domain).to_text(omit_final_dot=True), error=exc.message)


async def resolve_mx_detailed(domain: str, resolver: str | None, timeout: float, *,
                              port: int = DEFAULT_PORT,
                              dns_resolver: dns.asyncresolver.Resolver | None = None
                              ) -> MxResolution:
    """The targets for `domain` with notes; see resolve_mx()."""
    name = check_domain(domain)
    shown = name.to_text(omit_final_dot=True)
    res = dns_resolver or make_resolver(resolver, timeout)
    out = MxResolution(shown)
    try:
        answer = await _query(res, name, "MX", shown)
    except dns.resolver.NXDOMAIN:
        raise MxLookupError(f"domain {shown} does not exist (NXDOMAIN from {_servers(res)})",
                            field="--mx") from None
    records = sorted(answer, key=lambda r: (r.preference, r.exchange.to_text())) if answer else []
    if any(r.exchange == dns.name.root for r in records):
        # RFC 7505: "0 ." (alone) declares that the domain accepts no mail.
        raise MxLookupError(f"domain {shown} publishes a null MX (RFC 7505: it accepts no mail); "
                            f"there is no mail server to audit", field="--mx")
    if not records:
        out.implicit = True
        addresses = await _addresses(res, name, shown)
        if not addresses:
            raise MxLookupError(f"domain {shown} has no MX record and no A/AAAA record: "
                                f"no server receives its mail", field="--mx")
        out.notes.append(f"{shown} has no MX record; auditing its own address (implicit MX, "
                         f"RFC 5321 5.1)")
        out.targets = [AuditTarget(a, port, name=shown) for a in addresses]
        return out
    for record in records:
        exchange = record.exchange.to_text(omit_final_dot=True)
        addresses = await _addresses(res, record.exchange, shown)
        if not addresses:
            out.notes.append(f"MX {record.preference} {exchange} of {shown} has no A/AAAA "
                             f"record: not audited")
            continue
        out.targets.extend(AuditTarget(a, port, name=exchange) for a in addresses)
    if not out.targets:
        raise MxLookupError(f"no MX host of {shown} has an address "
                          f"({', '.join(r.exchange.to_text(omit_final_dot=True) for r in records)})",
                          field="--mx")
    return out


async def resolve_mx(domain: str, resolver: str | None, timeout: float, *,
                     port: int = DEFAULT_PORT) -> list[AuditTarget]:
    """The SMTP servers receiving mail for `domain`, in MX preference order.

    Each MX host's A and AAAA addresses become one AuditTarget each (name = the MX host name, which
    the certificate check matches). Without MX records the domain's own addresses are used
    (implicit MX). Raises InputError for a malformed domain name; MxLookupError (a TargetError)
    for a domain that does not exist, a null MX, a domain without any mail server, or a resolver
    that fails or does not answer in `timeout`.
    """
    return (await resolve_mx_detailed(domain, resolver, timeout, port=port)).targets
