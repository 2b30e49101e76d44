"""helo-not-required, pipelining-unauth, size-unlimited: protocol discipline an MX should enforce.

- helo-not-required: MAIL FROM straight after the greeting, without HELO/EHLO, is accepted.
- pipelining-unauth: the probe sends HELO (not EHLO, so PIPELINING is never negotiated), MAIL,
  RCPT and DATA in one write. A server that still answers DATA with 354 accepts unauthorized
  pipelining (Postfix: no reject_unauth_pipelining, no smtpd_forbid_unauth_pipelining). The probe
  drops the connection at the 354 without sending any message content, so nothing is queued.
  The recipient is --rcpt when given, else postmaster at the server's name and at its address
  literal (RFC 5321 requires postmaster); when none is accepted (a gateway that accepts only its
  relay domains) the check cannot reach DATA and is skipped, asking for --rcpt.
- size-unlimited: EHLO does not advertise SIZE, or advertises SIZE without a limit / SIZE 0.

A server that demands STARTTLS before MAIL (530, smtpd_tls_security_level = encrypt) gets the HELO
and pipelining probes again behind STARTTLS (checks/tls_first.py), where lint judges the same
settings.
"""

from __future__ import annotations

from hardener.audit.checks.tls_first import behind_tls, raise_if_tls_required, run_session
from hardener.audit.context import AuditContext
from hardener.audit.probe import EarlyDisconnect, Probe, Reply
from hardener.report.model import Finding

SLUGS = ("helo-not-required", "pipelining-unauth", "size-unlimited")
PROBE_SENDER = "hardener-audit@example.org"


async def run(ctx: AuditContext) -> None:
    """Run the three protocol checks, each in its own session."""
    await _size(ctx)
    await _helo_required(ctx)
    await _pipelining(ctx)


async def _size(ctx: AuditContext) -> None:
    esmtp = await ctx.capabilities()
    if "SIZE" not in esmtp:
        ctx.add(Finding.of("size-unlimited", evidence="EHLO reply does not advertise SIZE"))
    else:
        value = esmtp["SIZE"].split()[0] if esmtp["SIZE"].split() else ""
        if not value.isdigit() or int(value) == 0:
            shown = f"SIZE {value}".strip()
            ctx.add(Finding.of("size-unlimited", evidence=f"EHLO advertises {shown!r}: no size limit"))
    ctx.conclude("size-unlimited")


async def _helo_required(ctx: AuditContext) -> None:
    """MAIL FROM right after the greeting: 250 is a finding, 503 ("send HELO first") a pass.

    Any other refusal may be about the sender, so the null sender is tried before concluding.
    """
    async def steps(probe: Probe) -> tuple[str, list[str]]:
        replies: list[str] = []
        for sender in (PROBE_SENDER, ""):
            reply = raise_if_tls_required(await probe.command(f"MAIL FROM:<{sender}>"))
            replies.append(f"MAIL FROM:<{sender}> -> {reply}")
            if reply.code == 250:
                await probe.rset()
                return "accepted", replies
            if reply.code == 503 or "HELO" in reply.text.upper():
                return "refused", replies
        return "other", replies

    outcome, replies = await run_session(ctx, steps, ehlo=False)
    where = behind_tls(ctx)
    if outcome == "accepted":
        ctx.add(Finding.of("helo-not-required", evidence=f"without HELO/EHLO: {replies[-1]}{where}"))
        ctx.failed("helo-not-required")
    elif outcome == "refused":
        ctx.passed("helo-not-required", replies[-1] + where)
    else:
        ctx.skipped("helo-not-required", "MAIL refused for another reason: " + "; ".join(replies))


def _pipelining_recipients(ctx: AuditContext) -> list[str]:
    """--rcpt, else postmaster at the server's name and at its address literal (one may be local)."""
    if ctx.options.rcpt:
        return [ctx.options.rcpt]
    return list(dict.fromkeys([f"postmaster@{ctx.server_name}", f"postmaster@{ctx.ip_literal}"]))


async def _pipelining(ctx: AuditContext) -> None:
    rcpts = _pipelining_recipients(ctx)
    names = ["HELO", "MAIL"] + ["RCPT"] * len(rcpts) + ["DATA"]

    async def steps(probe: Probe) -> list[Reply]:
        batch = (f"HELO {ctx.options.helo_name}\r\nMAIL FROM:<{PROBE_SENDER}>\r\n"
                 + "".join(f"RCPT TO:<{r}>\r\n" for r in rcpts) + "DATA\r\n")
        await probe.send_raw(batch.encode())
        replies: list[Reply] = []
        try:
            while len(replies) < len(names):
                replies.append(raise_if_tls_required(await probe.read_reply()))
                if replies[-1].code in (421, 554) and "synchroni" in replies[-1].text.lower():
                    break
        except EarlyDisconnect:
            pass  # a server that hangs up on pipelined input refuses it
        if len(replies) == len(names) and replies[-1].code == 354:
            probe.abort()  # never send content: drop the session at 354, nothing is queued
        return replies

    replies = await run_session(ctx, steps, ehlo=False)
    where = behind_tls(ctx)
    shown = ", ".join(f"{n} -> {r.code}" for n, r in zip(names, replies))
    complete = len(replies) == len(names)
    accepted = complete and any(r.positive for r in replies[2:-1])
    if complete and replies[-1].code == 354:
        ctx.add(Finding.of("pipelining-unauth", evidence=(
            f"HELO, MAIL, RCPT and DATA in one packet without PIPELINING: {shown}{where}")))
        ctx.failed("pipelining-unauth")
    elif not complete:
        ctx.passed("pipelining-unauth", f"server stopped at pipelined input: {shown or 'disconnect'}")
    elif accepted and replies[-1].code >= 500:
        ctx.passed("pipelining-unauth", f"DATA refused: {replies[-1]}{where}")
    else:
        ctx.skipped("pipelining-unauth", f"no accepted recipient to reach DATA ({shown}); "
                                         f"give --rcpt with an address the server accepts")
