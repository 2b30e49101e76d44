"""banner-leak: software names, versions and OS names in what the server says to anyone.

Looks at the 220 greeting, the EHLO reply, the HELP reply and the reply to an unknown command. The
first word of the greeting and of the EHLO reply is the server's host name and is not scanned (a
host called postfix.example.com leaks nothing the DNS does not).
"""

from __future__ import annotations

import re

from hardener.audit.context import AuditContext
from hardener.audit.probe import Reply
from hardener.report.model import Finding

SLUGS = ("banner-leak",)
UNKNOWN_COMMAND = "XHRDPROBE"

_V = r"(?:[ /(v]*\d+(?:\.\d+)+[\w.-]*)?"   # an optional version right after a name

# (label, pattern): every label is a product or OS a client should not learn from the banner.
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((label, re.compile(rx, re.IGNORECASE)) for label, rx in (
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
    ("hardener", rf"\bhardener\b{_V}"),
    ("Courier", rf"\bCourier(?:-MTA)?\b{_V}"),
    ("MDaemon", rf"\bMDaemon\b{_V}"),
    ("IceWarp", rf"\bIceWarp\b{_V}"),
    ("Kerio", rf"\bKerio Connect\b{_V}"),
    ("Lotus Domino", rf"\bLotus Domino\b{_V}|\bDomino\b{_V}"),
    ("Debian", r"\bDebian\b(?:/GNU)?"),
    ("Ubuntu", rf"\bUbuntu\b{_V}"),
    ("CentOS", rf"\bCentOS\b{_V}"),
    ("Red Hat", r"\bRed ?Hat\b|\bRHEL\b[\d.]*|\bel[6-9]\b"),
    ("Fedora", rf"\bFedora\b{_V}"),
    ("FreeBSD", rf"\bFreeBSD\b{_V}"),
    ("OpenBSD", rf"\bOpenBSD\b{_V}"),
    ("SUSE", r"\b(?:open)?SUSE\b"),
    ("Windows", r"\bWindows\b[\w .]*"),
    ("GNU/Linux", r"\bGNU/Linux\b|(?<!/)\bGNU\b"),   # not the "/GNU" of "(Debian/GNU)"
))


def leaks(text: str) -> list[tuple[str, str]]:
    """(label, matched text) for each product or OS the text names, in PATTERNS order."""
    found = []
    for label, pattern in PATTERNS:
        match = pattern.search(text)
        if match:
            found.append((label, match.group(0).strip()))
    return found


def _without_host(reply: Reply) -> str:
    """The reply's text lines minus the first word of the first line (the server's host name)."""
    lines = list(reply.lines)
    if not lines:
        return ""
    first = lines[0].split(None, 1)
    lines[0] = first[1] if len(first) > 1 else ""
    return "\n".join(lines)


def _scrub(text: str, names: tuple[str, ...]) -> str:
    """Remove names we sent or the server's own name (echoed back, they leak nothing)."""
    for name in names:
        if name:
            text = re.sub(re.escape(name), " ", text, flags=re.IGNORECASE)
    return text


async def run(ctx: AuditContext) -> None:
    """Scan greeting, EHLO, HELP and an unknown command's reply for product and OS names."""
    async with ctx.session() as probe:
        sources: list[tuple[str, str, str]] = []  # (where, scanned text, full reply for evidence)
        assert probe.greeting is not None
        sources.append(("greeting", _without_host(probe.greeting), str(probe.greeting)))
        if probe.ehlo_reply is not None:
            sources.append(("EHLO", _without_host(probe.ehlo_reply), str(probe.ehlo_reply)))
        help_reply = await probe.command("HELP")
        sources.append(("HELP", help_reply.text, str(help_reply)))
        unknown = await probe.command(UNKNOWN_COMMAND)
        sources.append((f"unknown command {UNKNOWN_COMMAND}", unknown.text, str(unknown)))

    echoed = (ctx.options.helo_name, ctx.server_name, UNKNOWN_COMMAND)
    parts = []
    for where, text, _full in sources:
        found = leaks(_scrub(text, echoed))
        if found:
            names = ", ".join(f"{label} ({matched!r})" for label, matched in found)
            parts.append(f"{where}: {names}")
    if parts:
        first_where = parts[0].split(":", 1)[0]
        full = next(full for where, _t, full in sources if where == first_where)
        ctx.add(Finding.of("banner-leak", evidence="; ".join(parts),
                           detail=f"{first_where} reply: {full}"))
    ctx.conclude("banner-leak")
