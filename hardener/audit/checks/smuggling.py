"""smtp-smuggling: does the server end DATA at a non-standard end-of-data sequence?

Only with --intrusive --rcpt ADDR: every test sends one real message, to ADDR only. The ten
sequences are those of hannob/smtpsmug (after SEC Consult's 2023 research).

Detection, per sequence, without relying on timing: the message body ends with the bad sequence,
then a marker word and a proper <CRLF>.<CRLF>, all in one write (the marker keeps the bad sequence
from merging with the proper ending, e.g. "\r\n.\r" + "\r\n"). A server that honours only
<CRLF>.<CRLF> answers that with one 250. A server that ends the message at the bad sequence answers
250 there, and then reads the rest (the marker and ".") as commands, so the reply to a following
NOOP is not the NOOP's own 250 but a 5xx for those leftovers. A server that rejects the bare
characters (Postfix's smtpd_forbid_bare_newline = yes: "521 5.5.2 Error: bare <LF> received") or
hangs up is not vulnerable to that sequence.
"""

from __future__ import annotations

import secrets
from email.utils import format_datetime, make_msgid
from datetime import datetime, timezone

from hardener.audit.context import AuditContext
from hardener.audit.probe import EarlyDisconnect, Probe
from hardener.report.model import Finding

SLUGS = ("smtp-smuggling",)
SENDER_USER = "hardener-audit"
MARKER = b"XHRDSMUG"   # not an SMTP verb: a server reading it as a command answers 5xx

SEQUENCES: tuple[tuple[str, bytes], ...] = (
    ("lflf", b"\n.\n"),
    ("crcr", b"\r.\r"),
    ("crlf", b"\r.\n"),
    ("lfcr", b"\n.\r"),
    ("lfcrlf", b"\n.\r\n"),
    ("crlflf", b"\r\n.\n"),
    ("crcrlf", b"\r.\r\n"),
    ("crlfcr", b"\r\n.\r"),
    ("nullbefore", b"\r\n\x00.\r\n"),
    ("nullafter", b"\r\n.\x00\r\n"),
)


def _show(seq: bytes) -> str:
    return seq.decode("latin-1").replace("\r", "\\r").replace("\n", "\\n").replace("\x00", "\\0")


async def run(ctx: AuditContext) -> None:
    """Send one message per sequence to --rcpt and see where the server ends it."""
    opts = ctx.options
    if not (opts.intrusive and opts.rcpt):
        ctx.skipped("smtp-smuggling", "needs --intrusive and --rcpt ADDR (sends real messages)")
        return
    accepted: list[str] = []
    not_tested: list[str] = []
    for name, seq in SEQUENCES:
        async with ctx.session() as probe:
            outcome = await _try(ctx, probe, name, seq)
        if outcome is None:
            not_tested.append(name)
        elif outcome:
            accepted.append(f"{_show(seq)} ({name}): {outcome}")
    if accepted:
        ctx.add(Finding.of("smtp-smuggling", evidence="message ended at " + "; ".join(accepted),
                           detail=f"{len(accepted)} of {len(SEQUENCES)} sequences end DATA; "
                                  f"test messages went to {opts.rcpt}"))
        ctx.failed("smtp-smuggling")
    elif not_tested:
        ctx.skipped("smtp-smuggling", f"the server did not accept a test message to {opts.rcpt}")
    else:
        ctx.passed("smtp-smuggling", f"all {len(SEQUENCES)} sequences kept inside the message")


async def _try(ctx: AuditContext, probe: Probe, name: str, seq: bytes) -> str | None | bool:
    """The reply that ended the message at `seq` (vulnerable), False (not), None (not testable)."""
    sender = f"{SENDER_USER}@{ctx.options.helo_name}"
    rcpt = ctx.options.rcpt
    if not await probe.start_data(sender, rcpt):
        return None
    token = secrets.token_hex(4)
    headers = (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: hardener smuggling test {name} {token}\r\n"
               f"Date: {format_datetime(datetime.now(timezone.utc))}\r\n"
               f"Message-ID: {make_msgid(domain=ctx.options.helo_name)}\r\n\r\n")
    body = f"hardener smuggling test: end-of-data {_show(seq)} ({name}).".encode()
    await probe.send_raw(headers.encode() + body + seq + MARKER + b"\r\n.\r\n")
    try:
        first = await probe.read_reply()
    except EarlyDisconnect:
        return False  # the server hung up on the bare characters
    if first.code != 250:
        return False  # rejected (e.g. 521 bare <LF> received)
    try:
        after = await probe.command("NOOP")
    except EarlyDisconnect:
        return False
    if after.code == 250:
        return False  # the only reply was for the proper <CRLF>.<CRLF>
    for _ in range(3):  # read the leftovers' replies up to the NOOP's own 250, to QUIT in step
        try:
            if (await probe.read_reply()).code == 250:
                break
        except EarlyDisconnect:
            break
    return str(first)
