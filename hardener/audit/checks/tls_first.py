"""Sessions behind STARTTLS for checks a server answers only after TLS (a helper, not a check).

Postfix at smtpd_tls_security_level = encrypt answers VRFY, MAIL and RCPT on a clear-text session
with "530 5.7.0 Must issue a STARTTLS command first". The command is still there, one STARTTLS
away, and lint (which reads disable_vrfy_command, smtpd_helo_required, ...) judges it there. So a
check that sees such a reply raises TlsRequired, and `run_session` runs the same steps again in a
session that says STARTTLS first. The certificate is not verified here: the question is the SMTP
behaviour behind TLS; checks/tls.py judges the certificate. STARTTLS needs no HELO/EHLO before it
(Postfix accepts it right after the greeting), so `ehlo=False` sessions stay without any HELO.

Once a target is known to need TLS first, later checks go straight to a TLS session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from hardener.audit.context import AuditContext
from hardener.audit.probe import Probe, ProbeError, Reply
from hardener.audit.tls_probe import any_protocol_context

T = TypeVar("T")
CACHE_KEY = "tls-first"


class TlsRequired(ProbeError):
    """The server refused a command until the client says STARTTLS (530 5.7.0)."""

    kind = "starttls required"

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"{reply}")
        self.reply = reply


class TlsUnavailable(ProbeError):
    """The server demands STARTTLS first, but STARTTLS could not be completed."""

    kind = "starttls required but failed"


def demands_tls(reply: Reply) -> bool:
    """Whether `reply` says "issue STARTTLS first" (RFC 3207's 530, Postfix's 5.7.0 text)."""
    return reply.code == 530 or (reply.permanent and "STARTTLS" in reply.text.upper()
                                 and (reply.enhanced or "").startswith("5.7."))


def raise_if_tls_required(reply: Reply) -> Reply:
    """Return `reply`, or raise TlsRequired when it demands STARTTLS first."""
    if demands_tls(reply):
        raise TlsRequired(reply)
    return reply


async def upgrade(ctx: AuditContext, probe: Probe, *, ehlo: bool = True) -> None:
    """STARTTLS on `probe` (then EHLO unless ehlo=False); TlsUnavailable when it cannot."""
    reply = await probe.starttls(any_protocol_context())
    if reply.code != 220:
        raise TlsUnavailable(f"STARTTLS answered {reply}")
    if ehlo:
        await ctx.say_ehlo(probe)


def known_tls_first(ctx: AuditContext) -> bool:
    """Whether this target is known to demand STARTTLS before MAIL, VRFY and the like."""
    return bool(ctx.cache.get(CACHE_KEY))


def mark_tls_first(ctx: AuditContext) -> None:
    """Remember that this target demands STARTTLS first (later sessions go straight to TLS)."""
    ctx.cache[CACHE_KEY] = True


@asynccontextmanager
async def tls_session(ctx: AuditContext, *, ehlo: bool = True) -> AsyncIterator[Probe]:
    """A session that says STARTTLS right after the greeting (then EHLO unless ehlo=False)."""
    async with ctx.lock:
        probe = await ctx.new_probe(ehlo=False)
        try:
            await upgrade(ctx, probe, ehlo=ehlo)
            yield probe
        finally:
            await probe.quit()


async def run_session(ctx: AuditContext, steps: Callable[[Probe], Awaitable[T]], *,
                      ehlo: bool = True) -> T:
    """`steps(probe)` in a clear-text session, or behind STARTTLS when the server demands it.

    `steps` must only collect replies (record nothing in ctx) until it returns, since a TlsRequired
    half way makes it run again from the start.
    """
    if not known_tls_first(ctx):
        try:
            async with ctx.session(ehlo=ehlo) as probe:
                return await steps(probe)
        except TlsRequired:
            mark_tls_first(ctx)
    async with tls_session(ctx, ehlo=ehlo) as probe:
        return await steps(probe)


def behind_tls(ctx: AuditContext) -> str:
    """' (behind STARTTLS: the server demands it first)' for evidence, or ''."""
    return " (behind STARTTLS: the server demands it first)" if known_tls_first(ctx) else ""
