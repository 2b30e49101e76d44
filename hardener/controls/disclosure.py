"""What counts as disclosing software, version or OS (banner-leak): one list for both vantages.

`hardener lint` applies it to smtpd_banner and smtpd_reject_footer, `hardener audit` to what the
server says (greeting, EHLO, HELP, an error reply), so both reach the same verdict on the same
text. A name is searched as a whole word, case-insensitive, with the version that may follow it; a
version number alone (3.7.11, v2.1) counts too, but an IPv4 address, an enhanced status code at
the start of a reply line (5.5.2) and a version right after a slash (8.15.2/8.15.2) do not.
Callers remove what is not the server's to leak first: the host name (the greeting's first word)
and the names the client sent.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

_V = r"(?:[ /(v]*\d+(?:\.\d+)+[\w.-]*)?"   # an optional version right after a name

VERSION_LABEL = "version number"

# (label, pattern) in search order: each match is blanked before the next pattern looks, so a
# product's version is reported with the product, not again as a bare version number.
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(rx, re.IGNORECASE)) for label, rx in (
        ("Postfix", rf"\bPostfix\b{_V}"),
        ("Exim", rf"\bExim\b{_V}"),
        ("Sendmail", rf"\bSendmail\b{_V}|\b\d+\.\d+\.\d+/\d+\.\d+\.\d+\b"),
        ("Microsoft Exchange", r"\bMicrosoft ESMTP MAIL Service\b[\w ,.]*|\bMicrosoft Exchange\b[\w .]*"
                               r"|\bExchange Server\b[\w .]*|\bMicrosoft\b"),
        ("OpenSMTPD", rf"\bOpenSMTPD\b{_V}"),
        ("Haraka", rf"\bHaraka\b{_V}"),
        ("qmail", rf"\b(?:net)?qmail\b{_V}"),
        ("Zimbra", rf"\bZimbra\b{_V}"),
        ("aiosmtpd", rf"\bPython SMTP\b{_V}|\baiosmtpd\b{_V}"),
        ("Python", rf"\bPython\b{_V}"),
        ("hardener", rf"\bhardener\b{_V}"),
        ("Courier", rf"\bCourier(?:-MTA)?\b{_V}"),
        ("MDaemon", rf"\bMDaemon\b{_V}"),
        ("IceWarp", rf"\bIceWarp\b{_V}"),
        ("Kerio", rf"\bKerio Connect\b{_V}"),
        ("Lotus Domino", rf"\bLotus Domino\b{_V}|\bDomino\b{_V}"),
        ("Debian", r"\bDebian\b(?:/GNU)?"),
        ("Ubuntu", rf"\bUbuntu\b{_V}"),
        ("Raspbian", rf"\bRaspbian\b{_V}"),
        ("CentOS", rf"\bCentOS\b{_V}"),
        ("Red Hat", r"\bRed ?Hat\b|\bRHEL\b[\d.]*|\bel[6-9]\b"),
        ("AlmaLinux", rf"\bAlmaLinux\b{_V}"),
        ("Rocky Linux", rf"\bRocky(?: Linux)?\b{_V}"),
        ("Fedora", rf"\bFedora\b{_V}"),
        ("Alpine", rf"\bAlpine(?: Linux)?\b{_V}"),
        ("FreeBSD", rf"\bFreeBSD\b{_V}"),
        ("OpenBSD", rf"\bOpenBSD\b{_V}"),
        ("NetBSD", rf"\bNetBSD\b{_V}"),
        ("SUSE", r"\b(?:open)?SUSE\b"),
        ("Windows", r"\bWindows\b[\w .]*"),
        ("GNU/Linux", r"\bGNU/Linux\b|(?<!/)\bGNU\b|\bLinux\b"),
        (VERSION_LABEL, r"(?<![\w./-])v?\d+(?:\.\d+){1,3}(?![\w.])"),
    ))

_STATUS_CODE = re.compile(r"^\s*[245]\.\d{1,3}\.\d{1,3}(?=\s|$)")


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def leaks(text: str) -> list[tuple[str, str]]:
    """(label, matched text) for each product, OS or version number `text` names, in PATTERNS order."""
    found: list[tuple[str, str]] = []
    work = text
    for label, pattern in PATTERNS:
        for match in pattern.finditer(work):
            matched = match.group(0).strip()
            if label == VERSION_LABEL and _is_ipv4(matched):
                continue
            found.append((label, matched))
            work = work[:match.start()] + " " * (match.end() - match.start()) + work[match.end():]
            if label != VERSION_LABEL:
                break  # one report per product is enough
    return found


def scrub(text: str, names: Iterable[str]) -> str:
    """`text` with each of `names` (the host name, names the client sent) blanked wherever it
    occurs, case-insensitive: echoed back, they leak nothing."""
    for name in names:
        if name:
            text = re.sub(re.escape(name), " ", text, flags=re.IGNORECASE)
    return text


def without_status_codes(lines: list[str] | tuple[str, ...]) -> str:
    """Reply text lines joined, each without its leading enhanced status code (RFC 3463)."""
    return "\n".join(_STATUS_CODE.sub("", line) for line in lines)
