"""Mail addresses in Postfix's two forms: internal (unquoted) and external (RFC 5321 / RFC 5322).

What a client or user writes is the external form; `internalize()` turns it into the internal form
that queue files, the queue manager and policy code hold; everything that writes an address into an
SMTP command, a message header, a DSN or a log line turns it back with `externalize()` (or, where
something must be written whatever the address holds, `printable_external()`). Postfix does the
same with tok822_internalize on input and quote_821_local / quote_822_local on output.

    internal                                external
    user@example.net                        user@example.net
    x y@example.net                         "x y"@example.net
    x@evil> NOTIFY=SUCCESS@example.net      "x@evil> NOTIFY=SUCCESS"@example.net
    a"b\\c@example.net                       "a\\"b\\\\c"@example.net
    @example.net                            ""@example.net
    (empty: the null sender)                (empty: the caller writes <>)

The local part is everything before the last '@'. It goes out as an RFC 5321 Dot-string when it is
one and as a Quoted-string otherwise, with '"' and '\\' escaped (RFC 5321 and RFC 5322 agree
on atext, so one quoting serves SMTP commands and headers). Like Postfix's smtpd, `internalize()`
drops a source route (`@a,@b:user@d` is `user@d`) and accepts dots anywhere and an unquoted '@' in
the local part.

Refused (AddressError), because no RFC 5321 form can carry them: control characters (C0, DEL, C1 and
other non-printable code points such as U+2028), text that was not valid UTF-8 (smtpd decodes with
surrogateescape; `BadUtf8Error`), a domain that is neither a host name nor an address literal, and
non-ASCII text where SMTPUTF8 is not available (`externalize(..., utf8=False)`). Postfix accepts
control characters inside quotes and relays them; hardener refuses them at input.

Lengths: RFC 5321 suggests 64 octets for a local part and 256 for a path, but Postfix enforces
neither (it relays a 300-octet local part) and neither does hardener; domains are checked as
Postfix's valid_hostname does (labels of at most 63 octets, at most 255 in all), and a whole
address is bounded to MAX_ADDRESS octets at input.

SECURITY: pure functions on untrusted text; no I/O, never evaluates anything it reads.
"""

from __future__ import annotations

import ipaddress
import re

MAX_ADDRESS = 512  # octets of the external form at input (Postfix: line_length_limit only)
_SPECIALS = frozenset('<>()[]\\,;:@"')  # excluded from atext (with '.' rules and space)
_LOCAL_UNQUOTED_FORBIDDEN = frozenset('<>()[],;:"')  # in a local part outside quotes ('@' is fine)
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?")
_MAX_LABEL = 63
_MAX_HOSTNAME = 255


class AddressError(ValueError):
    """An address that cannot be parsed or represented; str() is one printable line saying why."""


class BadUtf8Error(AddressError):
    """The address held bytes that were not valid UTF-8 (Postfix: 500 5.5.2 bad UTF-8 syntax)."""


def _is_surrogate(c: str) -> bool:
    return 0xD800 <= ord(c) <= 0xDFFF


def _unprintable(c: str) -> bool:
    """Characters no address may carry: controls, undecodable bytes, other non-printables."""
    return c != " " and not c.isprintable()


def _shown(text: str, limit: int = 60) -> str:
    """`text` shortened and made printable for an error message."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit]) + (
        "..." if len(text) > limit else "")


def split_address(address: str) -> tuple[str, str | None]:
    """(local part, domain) split at the last '@'; domain None when there is no '@'."""
    at = address.rfind("@")
    if at < 0:
        return address, None
    return address[:at], address[at + 1:]


def is_dot_string(local: str, *, utf8: bool = True) -> bool:
    """Whether `local` may be written unquoted (RFC 5321 Dot-string; Postfix is_821_dot_string)."""
    if not local or local[0] == "." or local[-1] == "." or ".." in local:
        return False
    for c in local:
        if c in _SPECIALS or c == " " or _unprintable(c):
            return False
        if not utf8 and not c.isascii():
            return False
    return True


def quote_local(local: str) -> str:
    """`local` as an RFC 5321 Quoted-string: quotes around it, '"' and '\\' escaped."""
    return '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _char_problem(text: str, *, utf8: bool) -> str | None:
    for c in text:
        if _is_surrogate(c):
            return "bytes that are not valid UTF-8"
        if _unprintable(c):
            return f"a control character (U+{ord(c):04X})"
        if not utf8 and not c.isascii():
            return "non-ASCII text, but SMTPUTF8 is not available"
    return None


def domain_problem(domain: str, *, utf8: bool = True) -> str | None:
    """Why `domain` is neither a host name nor an address literal (None when it is fine).

    Host names follow Postfix's valid_hostname (letters, digits, '-', '_'; labels 1-63 octets, no
    '-' at either end; at most 255 octets; not all numeric), one trailing dot allowed as Postfix's
    resolver strips it; non-ASCII labels only with `utf8`. Literals are [IPv4] or [IPv6:address].
    """
    if not domain:
        return "an empty domain"
    problem = _char_problem(domain, utf8=utf8)
    if problem:
        return problem
    if domain.startswith("["):
        inner = domain[1:-1] if domain.endswith("]") else None
        try:
            if inner is None:
                raise ValueError
            if inner[:5].lower() == "ipv6:":
                ipaddress.IPv6Address(inner[5:])
            else:
                ipaddress.IPv4Address(inner)
        except ValueError:
            return "an address literal that is not [IPv4] or [IPv6:address]"
        return None
    name = domain.removesuffix(".")
    if len(name.encode("utf-8")) > _MAX_HOSTNAME:
        return f"a domain longer than {_MAX_HOSTNAME} octets"
    labels = name.split(".")
    for label in labels:
        if len(label.encode("utf-8")) > _MAX_LABEL:
            return f"a domain label longer than {_MAX_LABEL} octets"
        if label.isascii():
            if not _LABEL.fullmatch(label):
                return "a domain that is not a host name"
        elif (label.startswith("-") or label.endswith("-")
              or any(c.isascii() and not (c.isalnum() or c in "-_") for c in label)):
            return "a domain that is not a host name"
    if all(label.isdigit() for label in labels):
        return "a numeric domain (use an address literal)"
    return None


def address_problem(address: str, *, utf8: bool = True) -> str | None:
    """Why the internal-form `address` has no RFC 5321 form (None when it has one)."""
    local, domain = split_address(address)
    problem = _char_problem(local, utf8=utf8)
    if problem:
        return f"the local part holds {problem}"
    if domain is not None:
        problem = domain_problem(domain, utf8=utf8)
        if problem:
            return f"the address has {problem}"
    return None


def externalize(address: str, *, utf8: bool = True) -> str:
    """The RFC 5321 / RFC 5322 form of an internal-form address; '' stays '' (the null sender).

    Raises AddressError when the address cannot be represented (see address_problem); with
    `utf8=False` non-ASCII text counts as unrepresentable (a peer without SMTPUTF8).
    """
    if address == "":
        return ""
    problem = address_problem(address, utf8=utf8)
    if problem:
        raise AddressError(f"<{_shown(address)}>: {problem}")
    local, domain = split_address(address)
    out = local if is_dot_string(local, utf8=utf8) else quote_local(local)
    return out if domain is None else f"{out}@{domain}"


def printable_external(address: str) -> str:
    """The external form for a log line, a header or a DSN field; never raises.

    An address that cannot be represented (only an old or hand-made queue file holds one) is quoted
    the same way with every non-printable character shown as '?', as Postfix's logging does.
    """
    try:
        return externalize(address)
    except AddressError:
        local, domain = split_address(address)
        out = quote_local(local) if not is_dot_string(local) else local
        if domain is not None:
            out += "@" + domain
        return "".join(c if c.isprintable() else "?" for c in out)


def internalize(text: str) -> str:
    """The internal form of a mailbox as a client or user wrote it (without the angle brackets).

    Quoted strings lose their quotes and backslash pairs their backslash; the domain is what follows
    the last '@' outside quotes; a leading source route (`@a,@b:`) is dropped. Raises AddressError
    (BadUtf8Error for undecodable bytes) with a one-line reason.
    """
    if len(text.encode("utf-8", "surrogateescape")) > MAX_ADDRESS:
        raise AddressError(f"<{_shown(text)}>: address longer than {MAX_ADDRESS} octets")
    for c in text:
        if _is_surrogate(c):
            raise BadUtf8Error(f"<{_shown(text)}>: bytes that are not valid UTF-8")
        if _unprintable(c):
            raise AddressError(f"<{_shown(text)}>: a control character (U+{ord(c):04X})")
    if text.startswith("@") and ":" in text:
        text = text[text.index(":") + 1:]
    # find the last '@' outside quotes and backslash pairs: the domain separator
    at, quoted, i = -1, False, 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == "@" and not quoted:
            at = i
        i += 1
    if quoted:
        raise AddressError(f"<{_shown(text)}>: unbalanced quotes")
    raw_local, domain = (text, None) if at < 0 else (text[:at], text[at + 1:])
    local: list[str] = []
    quoted, i = False, 0
    while i < len(raw_local):
        c = raw_local[i]
        if c == "\\":
            if i + 1 >= len(raw_local):
                raise AddressError(f"<{_shown(text)}>: a backslash at the end of the local part")
            local.append(raw_local[i + 1])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif quoted:
            local.append(c)
        elif c == " ":
            raise AddressError(f"<{_shown(text)}>: a space outside quotes")
        elif c in _LOCAL_UNQUOTED_FORBIDDEN:
            raise AddressError(f"<{_shown(text)}>: '{c}' outside quotes")
        else:
            local.append(c)
        i += 1
    if domain is not None:
        problem = domain_problem(domain)
        if problem:
            raise AddressError(f"<{_shown(text)}>: {problem}")
    internal = "".join(local)
    return internal if domain is None else f"{internal}@{domain}"
