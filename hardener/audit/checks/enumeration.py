"""vrfy-enabled, expn-enabled, user-enumeration: can a stranger learn which mailboxes exist?

Each command is tried with likely existing addresses (root, postmaster) and a random one that
cannot exist. What matters is whether the replies *differ*, not the code alone:

- Postfix with disable_vrfy_command = no answers `252 2.0.0 root` for an existing user and
  `550 5.1.1 <x>: Recipient address rejected: User unknown in local recipient table` for an unknown
  one. RFC 5321 3.5.3 defines 252 as "cannot VRFY user, but will accept message and attempt
  delivery": Postfix uses it for every address it would accept, so 252-versus-550 confirms
  addresses (nmap's smtp-enum-users reads 252 as "not permitted" and misses this).
- A server answering 252 to everything (aiosmtpd: "Cannot VRFY user") confirms nothing.
- EXPN answering 250 for a list or alias discloses its members.
- RCPT TO is compared for root (a real account on nearly every Unix host) against a random user;
  postmaster is not used for RCPT because RFC 5321 requires it to exist, so its acceptance says
  nothing.
"""

from __future__ import annotations

import secrets

from hardener.audit.context import AuditContext
from hardener.audit.probe import Probe, Reply
from hardener.report.model import Finding

SLUGS = ("vrfy-enabled", "expn-enabled", "user-enumeration")
LIKELY_USERS = ("root", "postmaster")
CONFIRMING = (250, 251, 252)


def random_user() -> str:
    """A local part no real mailbox has."""
    return f"hrd-{secrets.token_hex(5)}"


def _differs(existing: Reply, unknown: Reply) -> bool:
    """Whether the two replies tell an existing address from an unknown one."""
    return existing.code in CONFIRMING and existing.code != unknown.code and unknown.code >= 400


async def run(ctx: AuditContext) -> None:
    """VRFY, EXPN and RCPT comparisons in one session (a few commands, no DATA)."""
    unknown = random_user()
    domain = ctx.server_name
    async with ctx.session() as probe:
        await _vrfy(ctx, probe, unknown)
        await _expn(ctx, probe, unknown)
        await _rcpt(ctx, probe, unknown, domain)


async def _vrfy(ctx: AuditContext, probe: Probe, unknown: str) -> None:
    random_reply = await probe.command(f"VRFY {unknown}")
    for user in LIKELY_USERS:
        reply = await probe.command(f"VRFY {user}")
        if _differs(reply, random_reply):
            ctx.add(Finding.of("vrfy-enabled", evidence=(
                f"VRFY {user} -> {reply}; VRFY {unknown} -> {random_reply}"),
                detail="the replies for an existing and an unknown address differ, so VRFY "
                       "confirms addresses (252 means 'will accept', 550 'unknown')"))
            break
    else:
        ctx.passed("vrfy-enabled", f"VRFY {unknown} -> {random_reply.code}")
        return
    ctx.failed("vrfy-enabled")


async def _expn(ctx: AuditContext, probe: Probe, unknown: str) -> None:
    random_reply = await probe.command(f"EXPN {unknown}")
    for user in LIKELY_USERS:
        reply = await probe.command(f"EXPN {user}")
        if reply.code in (250, 251) or _differs(reply, random_reply):
            ctx.add(Finding.of("expn-enabled", evidence=(
                f"EXPN {user} -> {reply}; EXPN {unknown} -> {random_reply}")))
            ctx.failed("expn-enabled")
            return
    ctx.passed("expn-enabled", f"EXPN {LIKELY_USERS[-1]} -> {reply.code}")


async def _rcpt(ctx: AuditContext, probe: Probe, unknown: str, domain: str) -> None:
    mail = await probe.command("MAIL FROM:<>")
    if mail.code != 250:
        ctx.skipped("user-enumeration", f"MAIL FROM:<> -> {mail}")
        await probe.rset()
        return
    existing = await probe.command(f"RCPT TO:<root@{domain}>")
    random_reply = await probe.command(f"RCPT TO:<{unknown}@{domain}>")
    await probe.rset()
    if existing.code in (250, 251) and random_reply.permanent:
        ctx.add(Finding.of("user-enumeration", evidence=(
            f"RCPT TO:<root@{domain}> -> {existing}; RCPT TO:<{unknown}@{domain}> -> {random_reply}")))
        ctx.failed("user-enumeration")
    else:
        ctx.passed("user-enumeration", f"root -> {existing.code}, unknown -> {random_reply.code}")
