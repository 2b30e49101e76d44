"""Network checks: mynetworks-too-broad, mynetworks-malformed, mynetworks-redundant,
inet-interfaces-exposed.

Every client in mynetworks may relay anywhere, so its width is a relay question. "Too broad" here:
a network matching every address, a public range wider than a /24 (IPv4) or /56 (IPv6), anything
outside the networks declared with --trusted, and mynetworks left to mynetworks_style = class (a
whole class A/B/C network) or subnet on a machine with a public address. A send-only host (it
receives mail for no domain and trusts only loopback) has no reason to listen beyond loopback.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hardener import postfix
from hardener.errors import ConfigError
from hardener.lint.base import LintContext, Network, Skip, finding
from hardener.lint.privilege import command_name
from hardener.report.model import Finding, Location

PUBLIC_V4_MAX_PREFIX = 24   # a public IPv4 range wider than this is "too broad"
PUBLIC_V6_MAX_PREFIX = 56
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"),
             ipaddress.ip_network("::ffff:127.0.0.0/104"))


def trusted_networks(ctx: LintContext) -> list[Network]:
    """The networks mynetworks trusts (explicit or from mynetworks_style), as the parser reads them.

    Empty when an entry makes Postfix fail the lookup (mynetworks-malformed reports that).
    """
    try:
        entries = postfix.parse_mynetworks(ctx.main)
    except ConfigError:
        return []
    return [entry.network for entry in entries if not entry.negated]


def _public(net: Network) -> bool:
    if net.prefixlen == 0:
        return True
    return net.network_address.is_global or net.broadcast_address.is_global


def _inside(net: Network, outer: tuple[Network, ...] | list[Network]) -> bool:
    return any(net.version == o.version and net.subnet_of(o) for o in outer)  # type: ignore[arg-type]


def _is_loopback(net: Network) -> bool:
    return _inside(net, _LOOPBACK)


def check_mynetworks_too_broad(ctx: LintContext) -> list[Finding]:
    """mynetworks-too-broad: every-address, wide public, undeclared or style-derived networks."""
    nets = trusted_networks(ctx)
    found: list[Finding] = []
    if not ctx.is_set("mynetworks"):
        style = ctx.value("mynetworks_style").strip().lower()
        public = [n for n in nets if _public(n) and not _is_loopback(n)]
        if style == "class":
            found.append(finding(ctx, "mynetworks-too-broad", "mynetworks_style",
                                 f"mynetworks is unset and {ctx.describe('mynetworks_style')}: Postfix "
                                 f"trusts the whole class A/B/C network of every interface"
                                 + (f" (on this machine: {', '.join(map(str, nets))})" if nets else "")))
        elif style == "subnet" and public:
            found.append(finding(ctx, "mynetworks-too-broad", "mynetworks_style",
                                 f"mynetworks is unset and {ctx.describe('mynetworks_style')}: every "
                                 f"host on this machine's subnets may relay, including public "
                                 f"{', '.join(map(str, public))}"))
    wide: list[str] = []
    first_wide: Network | None = None
    for net in nets:
        count = len(wide)
        if net.prefixlen == 0:
            wide.append(f"{net} matches every address")
        elif _public(net) and net.prefixlen < (PUBLIC_V4_MAX_PREFIX if net.version == 4
                                               else PUBLIC_V6_MAX_PREFIX):
            wide.append(f"{net} is a public range of {net.num_addresses} addresses")
        elif ctx.trusted and not _is_loopback(net) and not _inside(net, ctx.trusted):
            wide.append(f"{net} is outside the declared trusted networks "
                        f"({', '.join(map(str, ctx.trusted))})")
        if first_wide is None and len(wide) > count:
            first_wide = net
    if wide:
        name = "mynetworks" if ctx.is_set("mynetworks") else "mynetworks_style"
        owner = ctx.origin(name, str(first_wide)) if first_wide is not None else name
        found.append(finding(ctx, "mynetworks-too-broad", owner,
                             f"{ctx.describe(name)}{ctx.origin_text(name, owner)}: "
                             f"{'; '.join(wide)}; every client there may relay to any domain"))
    return found


def _problem_findings(ctx: LintContext, slug: str, redundant: bool) -> list[Finding]:
    # Only a mynetworks someone wrote: what mynetworks_style derives is Postfix's own doing.
    if not ctx.is_set("mynetworks"):
        return []
    loc = ctx.location("mynetworks")
    found = []
    for problem in postfix.mynetworks_problems(ctx.main):
        if problem.redundant != redundant:
            continue
        where = problem.location or loc
        found.append(finding(ctx, slug, "mynetworks", f"{ctx.describe('mynetworks')}: {problem.message}",
                             location=Location(str(where.file), where.line)))
    return found


def check_mynetworks_malformed(ctx: LintContext) -> list[Finding]:
    """mynetworks-malformed: entries Postfix rejects or reads differently from what is written."""
    return _problem_findings(ctx, "mynetworks-malformed", redundant=False)


def check_mynetworks_redundant(ctx: LintContext) -> list[Finding]:
    """mynetworks-redundant (info): entries that never match but whose networks are trusted anyway,
    such as Debian's [::ffff:127.0.0.0]/104 next to 127.0.0.0/8."""
    return _problem_findings(ctx, "mynetworks-redundant", redundant=True)


def send_only_reasons(ctx: LintContext) -> list[str] | None:
    """Why this host is send-only (a null client), or None when it receives or relays mail."""
    local_off = ctx.value("local_transport").strip().lower().startswith("error")
    if ctx.words("mydestination") and not local_off:
        return None
    for name in ("relay_domains", "virtual_alias_domains", "virtual_mailbox_domains"):
        if ctx.words(name):
            return None
    if ctx.flag("smtpd_sasl_auth_enable"):
        return None
    if not all(_is_loopback(n) for n in trusted_networks(ctx)):
        return None
    reasons = ["mydestination is empty" if not ctx.words("mydestination")
               else f"local_transport = {ctx.value('local_transport')}",
               "it relays for no domain", "mynetworks is loopback only"]
    if ctx.value("relayhost").strip():
        reasons.insert(0, f"relayhost = {ctx.value('relayhost').strip()}")
    return reasons


def _exposed_interfaces(values: list[str]) -> list[str]:
    exposed = []
    for value in values:
        word = value.strip().lower()
        if word in ("loopback-only", "localhost", ""):
            continue
        try:
            if ipaddress.ip_address(word.strip("[]")).is_loopback:
                continue
        except ValueError:
            pass
        exposed.append(value)
    return exposed


def _inet_smtpd_services(ctx: LintContext) -> list[Any]:
    if ctx.master is None:
        return []
    return [s for s in ctx.master.services
            if s.type == "inet" and command_name(s) in ("smtpd", "postscreen")]


def check_inet_interfaces_exposed(ctx: LintContext) -> list[Finding]:
    """inet-interfaces-exposed: a send-only host listening beyond loopback (main.cf or master.cf)."""
    reasons = send_only_reasons(ctx)
    if reasons is None:
        raise Skip("not a send-only host: it receives or relays mail for others")
    found = []
    services = _inet_smtpd_services(ctx)
    exposed = _exposed_interfaces(ctx.words("inet_interfaces"))
    unbound = [s for s in services if s.listen_host is None]
    if exposed and (ctx.master is None or unbound):
        found.append(finding(ctx, "inet-interfaces-exposed", "inet_interfaces",
                             f"send-only host ({', '.join(reasons)}) yet {ctx.describe('inet_interfaces')}"
                             f" listens on {', '.join(exposed)}"))
    for service in services:
        host = service.listen_host
        if host is not None and _exposed_interfaces([host]):
            found.append(Finding.of(
                "inet-interfaces-exposed",
                f"send-only host ({', '.join(reasons)}) yet master.cf service {service.name} "
                f"({command_name(service)}) listens on {host}",
                location=Location(str(ctx.master_path), service.line)))
    return found


MYNETWORKS_CHECKS = {
    "mynetworks-too-broad": check_mynetworks_too_broad,
    "mynetworks-malformed": check_mynetworks_malformed,
    "mynetworks-redundant": check_mynetworks_redundant,
}
HOST_CHECKS = {"inet-interfaces-exposed": check_inet_interfaces_exposed}
CHECKS = {**MYNETWORKS_CHECKS, **HOST_CHECKS}
