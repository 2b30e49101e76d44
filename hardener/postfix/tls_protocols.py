"""TLS protocol lists as Postfix 3.7 reads them, and the protocol versions they leave enabled.

One grammar serves smtpd_tls_protocols, smtpd_tls_mandatory_protocols, smtp_tls_protocols,
smtp_tls_mandatory_protocols (and the lmtp_/tlsproxy_ copies): Postfix's tls_proto_mask_lims()
(tls_misc.c). The value is split on whitespace, commas and colons; each element is one of

- `NAME`: include the protocol (SSLv2, SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3; any case). When any
  protocol is included, every known protocol not included is excluded;
- `!NAME`: exclude the protocol;
- `>=VERSION` / `<=VERSION` (Postfix >= 3.6): the floor / ceiling. VERSION is SSLv3..TLSv1.3, `None`,
  or a hexadecimal number read like strtoul(3) base 16 (`303`, `0303`, `0x303` are TLS 1.2; an empty
  VERSION, as in `>= TLSv1.2`, is 0). The last floor and the last ceiling win. 0 means no bound, and so
  does a number OpenSSL does not know (Postfix only logs a warning when OpenSSL refuses the bound).

Anything else (`TLSv9`, `!0303` -- numbers only work after >= or <= --, `>=SSLv2`) makes the whole
list invalid: smtpd logs "Invalid TLS protocol list ...: disabling TLS support" and answers STARTTLS
with 454; the SMTP client aborts the TLS session. An empty value means every protocol the TLS library
can do.

The enabled set is what the library can do (Debian 12's OpenSSL 3: TLS 1.0 to 1.3, SSLv2 removed,
SSLv3 compiled out), minus the exclusions, within the floor and ceiling. A server accepts exactly
that set, holes included (`!TLSv1.1` leaves TLS 1.0, 1.2 and 1.3). An OpenSSL *client* offers only
the lowest contiguous run of it (ssl_get_min_max_version): `TLSv1 TLSv1.3` makes the Postfix SMTP
client speak TLS 1.0 only. Both were checked against a real Postfix
(tests/postfix/test_tls_protocols_postfix.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROTOCOLS: tuple[str, ...] = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
WEAK: tuple[str, ...] = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")   # RFC 8996 and older
# What Debian 12's OpenSSL 3 can do (SSLv2 is gone from OpenSSL >= 1.1.0, SSLv3 is compiled out).
LIBRARY_PROTOCOLS: tuple[str, ...] = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
# TLS wire versions (SSL3_VERSION ... TLS1_3_VERSION); SSLv2 has none OpenSSL accepts as a bound.
VERSION_NUMBERS: dict[str, int] = {"SSLv3": 0x0300, "TLSv1": 0x0301, "TLSv1.1": 0x0302,
                                   "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}

_BY_LOWER = {name.lower(): name for name in PROTOCOLS}
_BOUND_NAMES = {"none": 0, **{name.lower(): number for name, number in VERSION_NUMBERS.items()}}
_SEPARATORS = re.compile(r"[\s,:]+")
# strtoul(tok, &end, 16) consuming the whole token: optional sign, optional 0x, hex digits
_HEX = re.compile(r"[+-]?(?:0[xX])?[0-9a-fA-F]+")
_INT_MAX = 2**31 - 1


class InvalidProtocolList(ValueError):
    """A protocol list Postfix refuses as a whole (TLS_PROTOCOL_INVALID)."""

    def __init__(self, value: str, element: str) -> None:
        super().__init__(f"{element!r} is not a TLS protocol name, !name, >=version or <=version")
        self.value = value
        self.element = element


@dataclass(frozen=True)
class ProtocolList:
    """A parsed protocol list: exclusions (included-list complement folded in) and bounds (0: none)."""

    excluded: frozenset[str]
    floor: int = 0
    ceiling: int = 0


def _bound(token: str) -> int | None:
    """parse_tls_version(): the version number of a >= or <= operand, None when invalid."""
    known = _BOUND_NAMES.get(token.lower())
    if known is not None:
        return known
    if token == "":
        return 0     # strtoul("") consumes nothing and stops at the terminating NUL: 0, accepted
    if not _HEX.fullmatch(token):
        return None
    number = int(token, 16)   # "-0" is 0; strtoul wraps any other negative number past INT_MAX
    return number if 0 <= number <= _INT_MAX else None


def parse_protocols(value: str) -> ProtocolList:
    """Parse a Postfix TLS protocol list; InvalidProtocolList names the first element Postfix refuses."""
    include: set[str] = set()
    exclude: set[str] = set()
    floor = ceiling = 0
    for token in _SEPARATORS.split(value):
        if not token:
            continue
        if token.startswith((">=", "<=")):
            number = _bound(token[2:])
            if number is None:
                raise InvalidProtocolList(value, token)
            if token.startswith(">="):
                floor = number
            else:
                ceiling = number
            continue
        negated = token.startswith("!")
        name = _BY_LOWER.get(token[1:].lower() if negated else token.lower())
        if name is None:
            raise InvalidProtocolList(value, token)
        (exclude if negated else include).add(name)
    if include:
        exclude |= set(PROTOCOLS) - include
    return ProtocolList(frozenset(exclude), floor, ceiling)


def _effective_bound(number: int) -> int:
    # SSL_CTX_set_min/max_proto_version() accept 0 and SSL3_VERSION..TLS1_3_VERSION; Postfix keeps
    # going (with a warning) when OpenSSL refuses any other number, so that bound is not set.
    return number if number in VERSION_NUMBERS.values() else 0


def _allowed(protocols: ProtocolList, library: tuple[str, ...]) -> list[str]:
    floor = _effective_bound(protocols.floor)
    ceiling = _effective_bound(protocols.ceiling)
    out = []
    for name in PROTOCOLS:
        number = VERSION_NUMBERS.get(name)
        if name not in library or name in protocols.excluded or number is None:
            continue
        if (floor and number < floor) or (ceiling and number > ceiling):
            continue
        out.append(name)
    return out


def server_protocols(value: str, library: tuple[str, ...] = LIBRARY_PROTOCOLS) -> tuple[str, ...]:
    """The protocol versions a Postfix server (smtpd) with this protocol list accepts, oldest first.

    InvalidProtocolList when Postfix refuses the list (smtpd then offers no working STARTTLS).
    `library` is what the TLS library itself can do (default: Debian 12's OpenSSL 3).
    """
    return tuple(_allowed(parse_protocols(value), library))


def client_protocols(value: str, library: tuple[str, ...] = LIBRARY_PROTOCOLS) -> tuple[str, ...]:
    """The protocol versions the Postfix SMTP client offers with this list, oldest first: OpenSSL
    clients use only the lowest contiguous run of the enabled versions.

    InvalidProtocolList when Postfix refuses the list (the client aborts the TLS session).
    """
    allowed = set(_allowed(parse_protocols(value), library))
    run: list[str] = []
    for name in PROTOCOLS:
        if name in allowed:
            run.append(name)
        elif run:
            break
    return tuple(run)


def weak(protocols: tuple[str, ...] | list[str]) -> list[str]:
    """The deprecated ones (SSL, TLS 1.0, TLS 1.1) among `protocols`, in order."""
    return [p for p in protocols if p in WEAK]
