"""vrfy-enabled, expn-enabled, user-enumeration: does the server answer VRFY and EXPN, and can a
stranger learn which mailboxes exist?

VRFY and EXPN are each asked about a random name that cannot exist, root (an account on nearly
every Unix host) and postmaster. Two questions, two controls (the catalog's rules):

- vrfy-enabled / expn-enabled: the command is answered at all. Anything but 500 or 502 (not
  recognized, not implemented, disabled) counts: Postfix with disable_vrfy_command = no answers
  `252 2.0.0 root` and `550 5.1.1 <x>: Recipient address rejected: User unknown in local recipient
  table`, aiosmtpd answers 252 "Cannot VRFY user" to everything; both answer VRFY, as lint says
  for the same configuration. Postfix has no EXPN (500), hardener's MTA answers 502.
- user-enumeration: the replies tell an existing user from an unknown one, through VRFY, EXPN or
  RCPT TO: root is confirmed (250/251, or 252 for VRFY/EXPN, which RFC 5321 3.5.3 defines as "will
  accept message and attempt delivery") while the random name is refused. RCPT is not tried with
  postmaster: RFC 5321 requires it to exist, so its acceptance says nothing.

A server that demands STARTTLS first (530) is asked again behind STARTTLS (checks/tls_first.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from hardener.audit.checks.tls_first import behind_tls, raise_if_tls_required, run_session
from hardener.audit.context import AuditContext
from hardener.audit.probe import Probe, Reply
from hardener.report.model import Finding

SLUGS = ("vrfy-enabled", "expn-enabled", "user-enumeration")
LIKELY_USERS = ("root", "postmaster")
NOT_ANSWERED = (500, 502)          # command not recognized / not implemented (or disabled)
CONFIRMING = (250, 251, 252)
RCPT_CONFIRMING = (250, 251)


def random_user() -> str:
    """A local part no real mailbox has."""
    return f"hrd-{secrets.token_hex(5)}"


def answered(reply: Reply) -> bool:
    """Whether a VRFY or EXPN reply shows the command is there (anything but 500 and 502)."""
    return reply.code not in NOT_ANSWERED


def tells_apart(existing: Reply, unknown: Reply, confirming: tuple[int, ...] = CONFIRMING) -> bool:
    """Whether the replies for an existing and an unknown address differ in a way that confirms it."""
    return (existing.code in confirming and unknown.code >= 400 and unknown.code != 421
            and existing.code != unknown.code)


@dataclass
class Replies:
    """What one session heard: (command, reply) per step, in order."""

    vrfy: list[tuple[str, Reply]] = field(default_factory=list)
    expn: list[tuple[str, Reply]] = field(default_factory=list)
    rcpt: list[tuple[str, Reply]] = field(default_factory=list)   # MAIL, RCPT root, RCPT unknown


async def _ask(probe: Probe, command: str) -> tuple[str, Reply]:
    return command, raise_if_tls_required(await probe.command(command))


async def _collect(probe: Probe, unknown: str, domain: str) -> Replies:
    heard = Replies()
    for name in (unknown, *LIKELY_USERS):
        heard.vrfy.append(await _ask(probe, f"VRFY {name}"))
    for name in (unknown, *LIKELY_USERS):
        heard.expn.append(await _ask(probe, f"EXPN {name}"))
    mail = await _ask(probe, "MAIL FROM:<>")
    heard.rcpt.append(mail)
    if mail[1].code == 250:
        heard.rcpt.append(await _ask(probe, f"RCPT TO:<root@{domain}>"))
        heard.rcpt.append(await _ask(probe, f"RCPT TO:<{unknown}@{domain}>"))
    await probe.rset()
    return heard


def _shown(steps: list[tuple[str, Reply]]) -> str:
    return "; ".join(f"{command} -> {reply}" for command, reply in steps)


async def run(ctx: AuditContext) -> None:
    """VRFY, EXPN and RCPT comparisons in one session (a few commands, no DATA)."""
    unknown = random_user()
    domain = ctx.server_name
    heard = await run_session(ctx, lambda probe: _collect(probe, unknown, domain))
    where = behind_tls(ctx)
    for slug, verb, steps in (("vrfy-enabled", "VRFY", heard.vrfy), ("expn-enabled", "EXPN", heard.expn)):
        if any(answered(reply) for _command, reply in steps):
            ctx.add(Finding.of(slug, evidence=_shown(steps) + where,
                               detail=f"{verb} is answered (not 500/502): the command is enabled"))
            ctx.failed(slug)
        else:
            ctx.passed(slug, _shown(steps[:1]))
    _judge_enumeration(ctx, heard, where)


def _judge_enumeration(ctx: AuditContext, heard: Replies, where: str) -> None:
    revealing = []
    for verb, steps in (("VRFY", heard.vrfy), ("EXPN", heard.expn)):
        unknown_reply = steps[0][1]
        for command, reply in steps[1:]:
            if tells_apart(reply, unknown_reply):
                revealing.append(f"{command} -> {reply}; {steps[0][0]} -> {unknown_reply}")
                break
    if len(heard.rcpt) == 3:
        (_m, _mail), (root_cmd, root), (unknown_cmd, unknown_reply) = heard.rcpt
        if tells_apart(root, unknown_reply, RCPT_CONFIRMING):
            revealing.append(f"{root_cmd} -> {root}; {unknown_cmd} -> {unknown_reply}")
    if revealing:
        ctx.add(Finding.of("user-enumeration", evidence=" | ".join(revealing) + where))
        ctx.failed("user-enumeration")
    elif len(heard.rcpt) < 3:
        ctx.skipped("user-enumeration", f"RCPT not tried: {_shown(heard.rcpt)}; VRFY and EXPN "
                                        f"tell no user apart")
    else:
        ctx.passed("user-enumeration", _shown(heard.rcpt[1:]))
