"""banner-leak: software names, versions and OS names in what the server says to anyone.

Looks at the 220 greeting, the EHLO reply, the HELP reply and the reply to an unknown command. The
first word of the greeting and of the EHLO reply is the server's host name and is not scanned (a
host called postfix.example.com leaks nothing the DNS does not), nor are enhanced status codes
(5.5.2 is not a version). What counts as a leak is hardener.controls.disclosure, the list lint
applies to smtpd_banner and smtpd_reject_footer.
"""

from __future__ import annotations

from hardener.audit.context import AuditContext
from hardener.audit.probe import Reply
from hardener.controls.disclosure import leaks, scrub, without_status_codes
from hardener.report.model import Finding

SLUGS = ("banner-leak",)
UNKNOWN_COMMAND = "XHRDPROBE"


def _without_host(reply: Reply) -> str:
    """The reply's text lines minus the first word of the first line (the server's host name)."""
    lines = list(reply.lines)
    if not lines:
        return ""
    first = lines[0].split(None, 1)
    lines[0] = first[1] if len(first) > 1 else ""
    return without_status_codes(lines)


async def run(ctx: AuditContext) -> None:
    """Scan greeting, EHLO, HELP and an unknown command's reply for product and OS names."""
    async with ctx.session() as probe:
        sources: list[tuple[str, str, str]] = []  # (where, scanned text, full reply for evidence)
        assert probe.greeting is not None
        sources.append(("greeting", _without_host(probe.greeting), str(probe.greeting)))
        if probe.ehlo_reply is not None:
            sources.append(("EHLO", _without_host(probe.ehlo_reply), str(probe.ehlo_reply)))
        help_reply = await probe.command("HELP")
        sources.append(("HELP", without_status_codes(help_reply.lines), str(help_reply)))
        unknown = await probe.command(UNKNOWN_COMMAND)
        sources.append((f"unknown command {UNKNOWN_COMMAND}", without_status_codes(unknown.lines),
                         str(unknown)))

    echoed = (ctx.options.helo_name, ctx.server_name, UNKNOWN_COMMAND)
    parts = []
    for where, text, _full in sources:
        found = leaks(scrub(text, echoed))
        if found:
            names = ", ".join(f"{label} ({matched!r})" for label, matched in found)
            parts.append(f"{where}: {names}")
    if parts:
        first_where = parts[0].split(":", 1)[0]
        full = next(full for where, _t, full in sources if where == first_where)
        ctx.add(Finding.of("banner-leak", evidence="; ".join(parts),
                           detail=f"{first_where} reply: {full}"))
    ctx.conclude("banner-leak")
