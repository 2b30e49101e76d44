"""Value types of profile keys: each parses a YAML or `--set` value into what the templates render.

Every parser returns either a string or a tuple of strings and raises ValueError with a short reason
("not a fully qualified host name", ...). Before any type-specific parsing, `check_injection` refuses
what could add a line or a parameter to main.cf: control characters (newline, CR, NUL, ...),
leading or trailing whitespace (a line that starts with whitespace continues the previous one) and
a leading '#' (a comment).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

Value = str | tuple[str, ...]

_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*\.?$")
_PARAM_REF = r"\$(\{[a-z_][a-z0-9_]*\}|[a-z_][a-z0-9_]*)"
_DOMAIN_TOKEN_RE = re.compile(rf"^\.?({_LABEL}|{_PARAM_REF})(\.({_LABEL}|{_PARAM_REF}))*$")
_LOCALPART_RE = re.compile(r"^[A-Za-z0-9!%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!%&'*+/=?^_`{|}~-]+)*$")
_PATH_RE = re.compile(r"^/[A-Za-z0-9._/+@-]*$")
_RESTRICTION_RE = re.compile(r"^([a-z][a-z0-9_]*|[a-z]+:/[A-Za-z0-9._/+@-]+)$")
_COMPAT_RE = re.compile(r"^[0-9]+(\.[0-9]+){0,2}$")
_LEAKY_PARAMS = ("mail_name", "mail_version", "mail_release_date")


def check_injection(text: str) -> None:
    """Refuse text that could inject a line, a continuation or a comment into a Postfix file."""
    for ch in text:
        if ch == "\n":
            raise ValueError("contains a newline (would start a new line in main.cf)")
        if ch == "\r":
            raise ValueError("contains a carriage return")
        if ch == "\0":
            raise ValueError("contains a NUL character")
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise ValueError(f"contains the control character {ch!r}")
    if text != text.strip():
        raise ValueError("has leading or trailing whitespace (would become a continuation line)")
    if text.startswith("#"):
        raise ValueError("starts with '#' (would be read as a comment)")


def _scalar(raw: object) -> str:
    """The raw YAML/CLI value as a string; lists and mappings are refused."""
    if isinstance(raw, bool):
        raise ValueError(f"expected a string, got a boolean ({str(raw).lower()})")
    if isinstance(raw, (int, float)):
        raw = str(raw)
    if not isinstance(raw, str):
        raise ValueError(f"expected a string, got a {type(raw).__name__}")
    check_injection(raw)
    return raw


def _items(raw: object) -> tuple[str, ...]:
    """A list value: a YAML list of strings, or one string split on whitespace and commas."""
    if isinstance(raw, (list, tuple)):
        parts: list[str] = []
        for item in raw:
            parts.extend(_items(_scalar(item)))
        return tuple(parts)
    text = _scalar(raw)
    return tuple(p for p in re.split(r"[\s,]+", text) if p)


def is_fqdn(name: str) -> bool:
    """True when `name` is a host name with at least two labels (a trailing dot is allowed)."""
    name = name.rstrip(".") if name.endswith(".") and len(name) > 1 else name
    return (len(name) <= 253 and bool(_HOSTNAME_RE.match(name)) and "." in name
            and not name.split(".")[-1].isdigit())


def parse_fqdn(raw: object) -> str:
    """A fully qualified host name such as mx1.example.com."""
    text = _scalar(raw)
    if not is_fqdn(text):
        raise ValueError(f"{text!r} is not a fully qualified host name (e.g. mx1.example.com)")
    return text


def parse_domain_list(raw: object) -> tuple[str, ...]:
    """Domains (FQDNs, `localhost`, `.sub.domain`, `$myhostname`-style references)."""
    items = _items(raw)
    for item in items:
        if "$" in item:
            if not _DOMAIN_TOKEN_RE.match(item):
                raise ValueError(f"{item!r} is not a domain or $parameter reference")
        elif item != "localhost" and not is_fqdn(item.lstrip(".")):
            raise ValueError(f"{item!r} is not a fully qualified domain name")
    return items


def parse_domain(raw: object) -> str:
    """Exactly one domain (FQDN or a $parameter reference such as $mydomain)."""
    items = parse_domain_list(raw)
    if len(items) != 1:
        raise ValueError("must be exactly one domain")
    return items[0]


def parse_sasl_path(raw: object) -> str:
    """smtpd_sasl_path: private/auth, inet:HOST:PORT or a cyrus application name."""
    text = _scalar(raw)
    if not re.match(r"^[A-Za-z0-9._/:\[\]-]+$", text):
        raise ValueError(f"{text!r} is not a socket path, inet:host:port or application name")
    return text


def parse_network(item: str) -> str:
    """One mynetworks entry in Postfix syntax: 10.0.0.0/8, 192.0.2.1, [2001:db8::]/32, [::1]."""
    if item.startswith("/") or re.match(r"^[a-z]+:/", item):
        raise ValueError(f"{item!r}: tables are not allowed here; list the networks explicitly")
    if item.startswith("["):
        m = re.match(r"^\[([0-9A-Fa-f:.]+)\](?:/([0-9]{1,3}))?$", item)
        if not m:
            raise ValueError(f"{item!r} is not an IPv6 network in Postfix syntax ([addr]/len)")
        addr, length = m.group(1), m.group(2)
        try:
            net = ipaddress.IPv6Network(f"{addr}/{length or 128}", strict=True)
        except ValueError as err:
            raise ValueError(f"{item!r} is not a valid IPv6 network: {err}") from None
        if addr.endswith(":") and not addr.endswith("::"):
            raise ValueError(f"{item!r} has a trailing ':' that Postfix reads differently")
        return f"[{addr}]/{net.prefixlen}"  # the admin's spelling (e.g. ::ffff:127.0.0.0)
    if ":" in item:
        raise ValueError(f"{item!r}: write IPv6 networks in brackets, e.g. [2001:db8::]/32")
    if not re.match(r"^[0-9.]+(/[0-9]{1,2})?$", item):
        raise ValueError(f"{item!r} is not an IP network (e.g. 10.1.2.0/24)")
    try:
        net = ipaddress.IPv4Network(item, strict=True)
    except ValueError as err:
        raise ValueError(f"{item!r} is not a valid IPv4 network: {err}") from None
    return f"{net.network_address}/{net.prefixlen}"


def parse_network_list(raw: object) -> tuple[str, ...]:
    """Explicit networks (no tables, no mynetworks_style): normalized to ADDR/LEN."""
    items = _items(raw)
    if not items:
        raise ValueError("must list at least one network (e.g. 127.0.0.0/8 [::1]/128)")
    return tuple(parse_network(i) for i in items)


def _check_host(host: str, what: str) -> None:
    if host.lower().startswith("ipv6:"):
        try:
            ipaddress.IPv6Address(host[5:])
        except ValueError:
            raise ValueError(f"{what}: {host!r} is not an IPv6 address") from None
        return
    try:
        ipaddress.IPv4Address(host)
        return
    except ValueError:
        pass
    if not is_fqdn(host):
        raise ValueError(f"{what}: {host!r} is not a fully qualified host name or IPv4 address")


def parse_nexthop(raw: object) -> str:
    """A Postfix next hop: host, host:port, [host], [host]:port, [ipv6:addr]:port."""
    text = _scalar(raw)
    m = re.match(r"^(\[([^\]]+)\]|([^:\[\]]+))(?::([0-9]{1,5}))?$", text)
    if not m:
        raise ValueError(f"{text!r} is not a next hop (host, [host] or [host]:port)")
    host = m.group(2) or m.group(3)
    _check_host(host, "next hop")
    if m.group(4) is not None and not 0 < int(m.group(4)) < 65536:
        raise ValueError(f"port {m.group(4)} out of range 1-65535")
    return text


def parse_optional_nexthop(raw: object) -> str:
    """A next hop, or the empty string (deliver directly to the MX of each domain)."""
    text = _scalar(raw)
    return text if text == "" else parse_nexthop(text)


def parse_email(raw: object) -> str:
    """An email address local@domain (the domain must be a FQDN)."""
    text = _scalar(raw)
    local, sep, domain = text.rpartition("@")
    if not sep or not _LOCALPART_RE.match(local) or not is_fqdn(domain):
        raise ValueError(f"{text!r} is not an email address (user@example.com)")
    return text


def parse_positive_int(raw: object) -> str:
    """A whole number greater than zero."""
    if isinstance(raw, bool):
        raise ValueError("expected a number, got a boolean")
    text = str(raw) if isinstance(raw, int) else _scalar(raw)
    if not text.isdigit() or int(text) <= 0:
        raise ValueError(f"{text!r} is not a whole number greater than zero")
    return str(int(text))


def parse_bool(raw: object) -> str:
    """yes/no (YAML true/false accepted), rendered as Postfix's yes/no."""
    if isinstance(raw, bool):
        return "yes" if raw else "no"
    text = _scalar(raw).lower()
    if text in ("yes", "true", "on", "1"):
        return "yes"
    if text in ("no", "false", "off", "0"):
        return "no"
    raise ValueError(f"{text!r} is not yes or no")


def parse_path(raw: object) -> str:
    """An absolute path without spaces or special characters."""
    text = _scalar(raw)
    if not _PATH_RE.match(text) or "/../" in f"{text}/" or "//" in text:
        raise ValueError(f"{text!r} is not a plain absolute path")
    return text.rstrip("/") if len(text) > 1 else text


def parse_optional_path(raw: object) -> str:
    """An absolute path, or the empty string for 'not set'."""
    text = _scalar(raw)
    return text if text == "" else parse_path(text)


def parse_restrictions(raw: object) -> tuple[str, ...]:
    """An smtpd restriction list: names such as permit_mynetworks, or type:/table/path."""
    items = _items(raw)
    for item in items:
        if not _RESTRICTION_RE.match(item):
            raise ValueError(f"{item!r} is not a restriction name or type:/path table")
    return items


def parse_compatibility_level(raw: object) -> str:
    """A Postfix compatibility level such as 3.6."""
    text = _scalar(raw)
    if not _COMPAT_RE.match(text):
        raise ValueError(f"{text!r} is not a compatibility level (e.g. 3.6)")
    return text


def parse_banner(raw: object) -> str:
    """The SMTP greeting text after '220 ': must start with the host name, no software name."""
    text = _scalar(raw)
    for name in _LEAKY_PARAMS:
        if f"${name}" in text or f"${{{name}}}" in text:
            raise ValueError(f"${name} discloses the software (HRD-BANNER-001 banner-leak)")
    if re.search(r"postfix|sendmail|exim|debian|ubuntu|hardener", text, re.IGNORECASE):
        raise ValueError("names software or OS (HRD-BANNER-001 banner-leak)")
    first = text.split()[0] if text.split() else ""
    if first not in ("$myhostname", "${myhostname}") and not is_fqdn(first):
        raise ValueError("must start with $myhostname or a host name (RFC 5321)")
    return text


def parse_listen(raw: object) -> str:
    """The smtpd service name in master.cf: smtp, PORT, ADDR:PORT or [IPv6]:PORT."""
    text = _scalar(raw)
    if text == "smtp" or text.isdigit():
        port = "25" if text == "smtp" else text
    else:
        m = re.match(r"^(\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):([0-9]{1,5}|smtp)$", text)
        if not m:
            raise ValueError(f"{text!r} is not smtp, PORT, ADDRESS:PORT or [IPv6]:PORT")
        try:
            ipaddress.ip_address(m.group(2) or m.group(3))
        except ValueError:
            raise ValueError(f"{text!r}: not an IP address before ':'") from None
        if m.group(2) and ":" not in m.group(2):
            raise ValueError(f"{text!r}: only IPv6 addresses go in brackets")
        port = "25" if m.group(4) == "smtp" else m.group(4)
    if not 0 < int(port) < 65536:
        raise ValueError(f"port {port} out of range 1-65535")
    return text


def parse_interfaces(raw: object) -> tuple[str, ...]:
    """inet_interfaces: all, loopback-only, or IP addresses."""
    items = _items(raw)
    if not items:
        raise ValueError("must not be empty (use loopback-only or all)")
    for item in items:
        if item in ("all", "loopback-only"):
            if len(items) > 1:
                raise ValueError(f"{item!r} cannot be combined with other interfaces")
            continue
        try:
            ipaddress.ip_address(item.strip("[]"))
        except ValueError:
            raise ValueError(f"{item!r} is not all, loopback-only or an IP address") from None
    return items


def parse_error_text(raw: object) -> str:
    """A short one-line text (used after error: in local_transport)."""
    text = _scalar(raw)
    if not text:
        raise ValueError("must not be empty")
    return text


def enum(*choices: str) -> Callable[[object], str]:
    """A parser accepting exactly one of `choices`."""

    def parse(raw: object) -> str:
        text = _scalar(raw)
        if text not in choices:
            raise ValueError(f"{text!r} is not one of: {', '.join(choices)}")
        return text

    parse.__doc__ = f"one of: {', '.join(choices)}"
    return parse


def protocol_floor(raw: object) -> str:
    """A TLS protocol floor in Postfix 3.6+ syntax: >=TLSv1.2 or >=TLSv1.3."""
    text = _scalar(raw)
    if text not in (">=TLSv1.2", ">=TLSv1.3"):
        raise ValueError(f"{text!r} is weaker than >=TLSv1.2 or not Postfix syntax (HRD-TLS-002)")
    return text
