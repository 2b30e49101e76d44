"""Relay policy: Postfix's address resolution (trivial-rewrite) and smtpd restriction lists.

A pure function of (client address, recipient, settings): `check_recipient()` gives the reply smtpd
sends to RCPT TO, so the decision is unit-testable and is compared with a real Postfix in the tests.

`resolve()` follows trivial-rewrite's resolve_addr(): strip every local domain (mydestination, or an
address literal of this host) from the right, undo routing operators in what is left (user%domain
with allow_percent_hack, site!user with swap_bangpath, a quoted local part holding @ % ! with
resolve_dequoted_address, source routes @a:user@b), and repeat until the domain is remote or none is
left. A remote result whose local part still holds a routing operator is "sender-specified routing"
and is never relayed (Postfix's RESOLVE_FLAG_ROUTED).

SECURITY: input is the untrusted recipient address (already reduced to Postfix's internal, unquoted
form by smtpd/address.py). No I/O: runs anywhere.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# RFC 822 specials that force a local part into quotes (Postfix quote_822_local).
_SPECIALS = set('()<>@,;:\\".[] ')
_HOSTNAME_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$")

FINAL, RELAY, DEFAULT = "final", "relay", "default"


@dataclass(frozen=True)
class PolicySettings:
    """The main.cf values resolution and restrictions depend on."""

    myhostname: str
    myorigin: str
    mydomain: str
    mydestination: tuple[str, ...]
    relay_domains: tuple[str, ...]
    local_addresses: tuple[str, ...]
    mynetworks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    allow_percent_hack: bool = True
    swap_bangpath: bool = True
    resolve_dequoted_address: bool = True
    resolve_null_domain: bool = False
    append_at_myorigin: bool = True
    append_dot_mydomain: bool = False
    relay_restrictions: tuple[str, ...] = ("permit_mynetworks", "permit_sasl_authenticated",
                                           "defer_unauth_destination")
    recipient_restrictions: tuple[str, ...] = ()
    relay_domains_reject_code: int = 554

    @classmethod
    def from_settings(cls, s) -> "PolicySettings":  # s: hardener.mta.config.settings.MtaSettings
        """Build from the daemon's MtaSettings."""
        return cls(myhostname=s.myhostname, myorigin=s.myorigin, mydomain=s.mydomain,
                   mydestination=tuple(s.mydestination), relay_domains=tuple(s.relay_domains),
                   local_addresses=tuple(s.local_addresses), mynetworks=tuple(s.mynetworks),
                   allow_percent_hack=s.allow_percent_hack, swap_bangpath=s.swap_bangpath,
                   resolve_dequoted_address=s.resolve_dequoted_address,
                   resolve_null_domain=s.resolve_null_domain,
                   append_at_myorigin=s.append_at_myorigin,
                   append_dot_mydomain=s.append_dot_mydomain,
                   relay_restrictions=tuple(s.restrictions["smtpd_relay_restrictions"]),
                   recipient_restrictions=tuple(s.restrictions["smtpd_recipient_restrictions"]),
                   relay_domains_reject_code=s.relay_domains_reject_code)


@dataclass(frozen=True)
class Resolved:
    """Result of resolving one recipient: the final address, its domain and class."""

    address: str
    localpart: str
    domain: str
    klass: str          # FINAL (mydestination or our address literal), RELAY, DEFAULT
    routed: bool        # sender-specified routing left in a remote address
    error: bool         # the domain is not a valid hostname or address literal


# -- resolution -----------------------------------------------------------------------------------

def _dot_string(local: str) -> bool:
    if not local or local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    return not any(c in _SPECIALS or ord(c) < 32 or ord(c) == 127 for c in local if c != ".")


class _Addr:
    """Postfix's token tree reduced to what resolve needs: a local part (opaque when quoted)
    followed by an optional @domain; routing operators are searched outside the quoted part."""

    def __init__(self, text: str, quoted_local: str | None = None) -> None:
        self.text = text                # unquoted token text (when quoted_local is None)
        self.quoted = quoted_local      # a single quoted-string token, and nothing else

    @classmethod
    def scan(cls, internal: str) -> "_Addr":
        """quote_822_local + tok822_scan_addr: quote the local part when it is not a dot-string.

        A leading source route (@a,@b:) is skipped, as quote_822_local does, so it stays visible
        to rewrite (which strips it)."""
        start = 0
        if internal.startswith("@") and ":" in internal:
            start = internal.index(":") + 1
        route, rest = internal[:start], internal[start:]
        local, at, domain = rest.rpartition("@")
        if not at:
            local, domain = rest, ""
        if not route and local and not _dot_string(local) and any(c in _SPECIALS for c in local):
            return cls(local, None)._with_quoted(local, at + domain)
        if route and local and not _dot_string(local) and any(c in _SPECIALS for c in local):
            # a source route before a quoted local part: rewrite would strip the route anyway
            return cls(local, None)._with_quoted(local, at + domain)
        return cls(internal)

    def _with_quoted(self, local: str, rest: str) -> "_Addr":
        a = _Addr(rest)
        a.quoted = local
        return a

    # The tree is [quoted?] + text. With a quoted head, `text` holds "@domain..." or "".
    def rfind_at(self) -> int:
        return self.text.rfind("@")

    def has_op(self, op: str) -> bool:
        return op in self.text

    def internal(self) -> str:
        return (self.quoted or "") + self.text


def _resolve_local(domain: str, s: PolicySettings) -> bool:
    """Postfix resolve_local(): mydestination, or an address literal of an interface we use."""
    d = domain[:-1] if domain.endswith(".") else domain
    if not d or d.endswith("."):
        return False
    if d.lower() in s.mydestination:
        return True
    if d.startswith("[") and d.endswith("]"):
        inner = d[1:-1]
        if inner.lower().startswith("ipv6:"):
            inner = inner[5:]
        try:
            ip = ipaddress.ip_address(inner)
        except ValueError:
            return False
        return str(ip) in s.local_addresses
    return False


def _rewrite(a: _Addr, s: PolicySettings) -> _Addr:
    """rewrite_tree() in the 'local' context: source route, bang path, percent hack, @myorigin."""
    if a.quoted is not None:
        if a.quoted == "" and not a.text:
            return a
        text = a.text
    else:
        text = a.text
        if text == "@":
            return _Addr("", "")
        # strip source route @a,@b:user@c
        if text.startswith("@"):
            colon = text.find(":")
            if colon >= 0 and colon != len(text) - 1:
                text = text[colon + 1:]
        if "@" not in text:
            if s.swap_bangpath and "!" in text:
                site, _, user = text.partition("!")
                text = f"{user}@{site}"
            elif s.allow_percent_hack and "%" in text:
                i = text.rfind("%")
                text = text[:i] + "@" + text[i + 1:]
            elif s.append_at_myorigin and s.myorigin:
                text = f"{text}@{s.myorigin}"
        a = _Addr(text)
    if s.append_dot_mydomain and s.mydomain:
        at = a.text.rfind("@")
        dom = a.text[at + 1:] if at >= 0 else ""
        if at >= 0 and dom and "[" not in dom and "." not in dom:
            a = _Addr(a.text + "." + s.mydomain, a.quoted) if a.quoted is None else a
    return a


def resolve(internal: str, s: PolicySettings) -> Resolved:
    """Resolve an internal-form recipient the way Postfix's trivial-rewrite does.

    smtpd first rewrites the address in the 'local' context (rewrite_clnt_internal: source route
    stripped, bang path / percent hack / @myorigin when there is no @), then resolves it."""
    first = _rewrite(_Addr.scan(internal), s)
    internal = first.internal()
    a = _Addr.scan(internal)
    saved_domain: str | None = None
    domain: str | None = None
    for _ in range(len(internal) + 100):
        text = a.text
        at = text.rfind("@")
        # strip one trailing dot of the domain, but not dot-dot or at-dot
        if at >= 0 and text.endswith(".") and len(text) >= 2 and text[-2] not in ".@":
            a.text = text = text[:-1]
        if s.resolve_null_domain and text.endswith("@"):
            a.text = text = text[:-1]
            at = text.rfind("@")
        if at >= 0:
            dom = text[at + 1:]
            if dom and not _resolve_local(dom, s):
                domain = dom
                break
            a.text = text[:at]
            saved_domain = text[at:]
            text = a.text
        if a.quoted is None and ("@" in text or (s.swap_bangpath and "!" in text)
                                 or (s.allow_percent_hack and "%" in text)):
            a = _rewrite(a, s)
            continue
        if (s.resolve_dequoted_address and a.quoted is not None and not a.text):
            local = a.quoted
            oper = max(local.rfind("@"), -1)
            op = "@" if oper >= 0 else ""
            if not op and s.allow_percent_hack and "%" in local:
                oper, op = local.rfind("%"), "%"
            if not op and s.swap_bangpath and "!" in local:
                oper, op = local.rfind("!"), "!"
            if op:
                if op == "%":
                    local = local[:oper] + "@" + local[oper + 1:]
                    op = "@"
                a = _Addr.scan(local) if op == "@" else _Addr(local)
                a = _rewrite(a, s)
                continue
        if a.quoted == "" and not a.text:
            a = _Addr("MAILER-DAEMON")
        elif a.quoted is None and not a.text:
            a = _Addr("MAILER-DAEMON")
        domain = None
        break
    if domain is None:
        a.text += saved_domain if saved_domain is not None else "@" + s.myhostname
    address = a.internal()
    at = address.rfind("@")
    localpart, rcpt_domain = address[:at], address[at + 1:]
    error = not _valid_destination(rcpt_domain)
    routed = False
    if not error:
        first = min([i for i in (address.find("@"), address.find("!"), address.find("%")) if i >= 0])
        routed = address[first + 1:] != rcpt_domain
    if error:
        klass = DEFAULT
    elif domain is None:
        klass = FINAL
    elif _relay_domain_match(rcpt_domain, s.relay_domains):
        klass = RELAY
    else:
        klass = DEFAULT
    return Resolved(address, localpart, rcpt_domain, klass, routed, error)


def _valid_destination(domain: str) -> bool:
    if domain.startswith("["):
        if not domain.endswith("]"):
            return False
        inner = domain[1:-1]
        if inner.lower().startswith("ipv6:"):
            try:
                ipaddress.IPv6Address(inner[5:])
                return True
            except ValueError:
                return False
        try:
            ipaddress.IPv4Address(inner)
            return True
        except ValueError:
            return False
    if not domain or len(domain) > 255 or domain.endswith(".") or domain.startswith("."):
        return False
    labels = domain.split(".")
    if all(label.isdigit() for label in labels):
        return False  # a bare address is not a hostname (resolve_numeric_domain = no)
    return all(len(label) <= 63 and _HOSTNAME_LABEL.match(label) for label in labels)


def _relay_domain_match(domain: str, relay_domains: Sequence[str]) -> bool:
    """domain_list match with parent_domain_matches_subdomains (relay_domains is in it)."""
    d = domain.lower()
    for entry in relay_domains:
        if entry.startswith("."):
            if d.endswith(entry):
                return True
        elif d == entry or d.endswith("." + entry):
            return True
    return False


# -- restrictions -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    """Outcome of a restriction list: reply None means 'no objection' (continue / accept)."""

    action: str                 # "permit", "reject", "defer", "dunno"
    reply: str | None = None


PERMIT = Decision("permit")
DUNNO = Decision("dunno")


def in_networks(client: str, networks: Sequence) -> bool:
    """True when `client` (an IP address text) matches `networks`: networks, or (network, True)
    for a negated entry; the first match wins, as in Postfix's match lists."""
    try:
        ip = ipaddress.ip_address(client)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for item in networks:
        net, negated = item if isinstance(item, tuple) else (item, False)
        if ip.version == net.version and ip in net:
            return not negated
    return False


def auth_destination(resolved: Resolved) -> bool:
    """Postfix permit_auth_destination: final or relay_domains, and no sender routing."""
    if resolved.routed:
        return False
    return resolved.klass in (FINAL, RELAY)


def _evaluate(restrictions: Sequence[str], *, client: str, recipient: str, resolved: Resolved,
              s: PolicySettings, sasl_authenticated: bool,
              extra: Callable[[str], Decision | None] | None) -> Decision:
    for name in restrictions:
        if name == "permit":
            return PERMIT
        if name == "reject":
            return Decision("reject", f"554 5.7.1 <{recipient}>: Recipient address rejected: "
                                      "Access denied")
        if name == "defer":
            return Decision("defer", f"450 4.7.1 <{recipient}>: Recipient address rejected: "
                                     "Access denied")
        if name == "permit_mynetworks":
            if in_networks(client, s.mynetworks):
                return PERMIT
        elif name == "permit_sasl_authenticated":
            if sasl_authenticated:
                return PERMIT
        elif name == "permit_auth_destination":
            if auth_destination(resolved):
                return PERMIT
        elif name in ("reject_unauth_destination", "defer_unauth_destination"):
            if not auth_destination(resolved):
                if name == "defer_unauth_destination":
                    return Decision("defer", f"454 4.7.1 <{recipient}>: Relay access denied")
                code = s.relay_domains_reject_code
                return Decision("reject", f"{code} 5.7.1 <{recipient}>: Relay access denied")
        elif name == "reject_non_fqdn_recipient":
            if resolved.domain.startswith("[") is False and "." not in resolved.domain:
                return Decision("reject", f"504 5.5.2 <{recipient}>: Recipient address rejected: "
                                          "need fully-qualified address")
        elif extra is not None:
            decision = extra(name)
            if decision is not None and decision.action != "dunno":
                return decision
    return DUNNO


def check_recipient(client: str, recipient: str, s: PolicySettings, *,
                    sasl_authenticated: bool = False,
                    extra: Callable[[str], Decision | None] | None = None,
                    resolved: Resolved | None = None) -> Decision:
    """Run smtpd_relay_restrictions then smtpd_recipient_restrictions for one RCPT TO.

    `client` is the client IP address, `recipient` the internal-form address. Returns PERMIT or
    DUNNO when the recipient passes (smtpd then checks that a local recipient exists), or a reject /
    defer Decision with its reply. `extra` evaluates restriction names that need session state
    (e.g. reject_unauth_pipelining); it returns None for names it does not know.
    """
    if resolved is None:
        resolved = resolve(recipient, s)
    for restrictions in (s.relay_restrictions, s.recipient_restrictions):
        decision = _evaluate(restrictions, client=client, recipient=recipient, resolved=resolved,
                             s=s, sasl_authenticated=sasl_authenticated, extra=extra)
        if decision.action in ("reject", "defer"):
            return decision
    return PERMIT
