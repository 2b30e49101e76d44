"""open-relay: the 16-form relay battery, run from every vantage point.

Each form is one MAIL FROM + RCPT TO pair followed by RSET; the battery never sends DATA (except
the optional canary below). Forms are split over sessions of at most BATCH forms, so a server that
slows down after repeated errors (Postfix's smtpd_soft_error_limit) is not provoked.

Verdicts:
- A 2xx to RCPT for a foreign-domain form is "RCPT accepted". A 4xx is "refused for now" (Debian's
  Postfix answers `454 4.7.1 Relay access denied` through defer_unauth_destination) and never a relay.
- Forms whose final domain is the server itself (percent hack, double @, bang path and quoted local
  part via the server's name) are only counted when the server rejects a random local user; a
  catch-all that accepts every local address would accept them without relaying anything.
- open-relay: every vantage point relays (at least one of them outside --trusted). A vantage inside
  --trusted that relays is expected. When some vantage points relay and others are refused, the
  finding is mynetworks-too-broad instead (checks/mynetworks.py reads the same battery results).
- A server that answers MAIL with 530 "Must issue a STARTTLS command first" (level encrypt) gets
  the battery behind STARTTLS (checks/tls_first.py): relaying is decided there, as lint judges it.
- With --intrusive --relay-canary ADDR, one accepted form is confirmed by sending a short message to
  ADDR (and only ADDR) through it; the finding then says "confirmed".
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field

from hardener.audit.checks.tls_first import demands_tls, known_tls_first, mark_tls_first, upgrade
from hardener.audit.context import AuditContext, GreetingRefused
from hardener.audit.probe import Probe, ProbeError, Reply
from hardener.report.model import Finding

SLUGS = ("open-relay",)
BATCH = 8                     # forms per session
RELAY_USER = "relaytest"
SENDER_USER = "hardener-audit"
FOREIGN_SENDER_DOMAIN = "example.org"


@dataclass(frozen=True)
class RelayForm:
    """One battery entry: a name and templates for the sender and recipient.

    Templates use {u} (local part), {d} (foreign domain), {s} (server name), {ip} (address literal
    of the server), {fs} (a foreign sender domain). `via_server`: the final domain is the server.
    """

    name: str
    sender: str
    rcpt: str
    via_server: bool = False

    def render(self, user: str, domain: str, server: str, ip: str) -> tuple[str, str]:
        values = {"u": user, "d": domain, "s": server, "ip": ip, "fs": FOREIGN_SENDER_DOMAIN,
                  "su": SENDER_USER}
        return self.sender.format(**values), self.rcpt.format(**values)


FORMS: tuple[RelayForm, ...] = (
    RelayForm("null sender", "", "{u}@{d}"),
    RelayForm("plain", "{su}@{fs}", "{u}@{d}"),
    RelayForm("server's own name as sender", "{su}@{s}", "{u}@{d}"),
    RelayForm("IP-literal sender", "{su}@{ip}", "{u}@{d}"),
    RelayForm("percent hack via name", "{su}@{s}", "{u}%{d}@{s}", via_server=True),
    RelayForm("percent hack via literal", "{su}@{ip}", "{u}%{d}@{ip}", via_server=True),
    RelayForm("quoted local part", "{su}@{s}", '"{u}@{d}"', via_server=True),
    RelayForm("quoted percent local part", "{su}@{s}", '"{u}%{d}"', via_server=True),
    RelayForm("double @ via literal", "{su}@{ip}", "{u}@{d}@{ip}", via_server=True),
    RelayForm("double @ via name", "{su}@{s}", "{u}@{d}@{s}", via_server=True),
    RelayForm("quoted local part via literal", "{su}@{ip}", '"{u}@{d}"@{ip}', via_server=True),
    RelayForm("source route via literal", "{su}@{ip}", "@{ip}:{u}@{d}"),
    RelayForm("source route via name", "{su}@{s}", "@{s}:{u}@{d}"),
    RelayForm("bang path", "{su}@{s}", "{d}!{u}", via_server=True),
    RelayForm("bang path via literal", "{su}@{ip}", "{d}!{u}@{ip}", via_server=True),
    RelayForm("bang path via name", "{su}@{s}", "{d}!{u}@{s}", via_server=True),
)


@dataclass(frozen=True)
class Vantage:
    """Where the battery runs from: a source address, optionally an XCLIENT-claimed address."""

    source: str | None = None
    xclient: str | None = None

    @property
    def label(self) -> str:
        if self.xclient:
            via = f" via {self.source}" if self.source else ""
            return f"XCLIENT ADDR={self.xclient}{via}"
        return self.source or "default source address"


@dataclass
class Attempt:
    """One form's outcome from one vantage."""

    form: RelayForm
    sender: str
    rcpt: str
    mail_reply: Reply
    rcpt_reply: Reply | None

    @property
    def accepted(self) -> bool:
        return self.rcpt_reply is not None and self.rcpt_reply.code in (250, 251)

    @property
    def evidence(self) -> str:
        shown = f"{self.rcpt_reply}" if self.rcpt_reply else f"MAIL refused: {self.mail_reply}"
        return f"MAIL FROM:<{self.sender}> RCPT TO:<{self.rcpt}> -> {shown}"


@dataclass
class VantageResult:
    """The whole battery from one vantage point."""

    vantage: Vantage
    address: str | None = None            # the client address the server saw
    trusted: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    catch_all: bool = False               # a random local user at the server's name was accepted
    refused_at_connect: Reply | None = None
    xclient_refused: Reply | None = None
    error: str | None = None

    @property
    def relayed(self) -> list[Attempt]:
        """Accepted forms that are relaying (catch-all-ambiguous forms discounted)."""
        return [a for a in self.attempts if a.accepted and not (a.form.via_server and self.catch_all)]

    @property
    def relays(self) -> bool:
        return bool(self.relayed)

    @property
    def usable(self) -> bool:
        """The battery ran (or the server refused this vantage outright, which is a result too);
        a battery cut short still counts when what it saw before is a relay."""
        return self.xclient_refused is None and (self.error is None or self.relays)


def vantages(ctx: AuditContext) -> list[Vantage]:
    """Every --source-address (or the default route), then every --xclient-addr."""
    sources: list[str | None] = list(ctx.options.source_addresses) or [None]
    out = [Vantage(source=s) for s in sources]
    out += [Vantage(source=ctx.default_source, xclient=x) for x in ctx.options.xclient_addrs]
    return out


async def battery(ctx: AuditContext) -> list[VantageResult]:
    """Run the battery from every vantage once per target; later callers get the cached results."""
    cached = ctx.cache.get("relay-battery")
    if cached is None:
        cached = [await _run_vantage(ctx, v) for v in vantages(ctx)]
        ctx.cache["relay-battery"] = cached
    return cached  # type: ignore[return-value]


async def _open(ctx: AuditContext, vantage: Vantage, result: VantageResult) -> Probe | None:
    """A session from this vantage (after XCLIENT if asked); None when the vantage is refused."""
    try:
        probe = await ctx.new_probe(vantage.source)
    except GreetingRefused as err:
        if err.reply.permanent:
            result.refused_at_connect = err.reply
            return None
        raise
    if result.address is None:
        sock = probe.writer.get_extra_info("sockname")
        result.address = sock[0] if sock else None
    if vantage.xclient:
        if not probe.supports("XCLIENT"):
            result.xclient_refused = Reply(502, ("XCLIENT not offered to this client",))
            await probe.quit()
            return None
        addr = f"IPV6:{vantage.xclient}" if ":" in vantage.xclient else vantage.xclient
        reply = await probe.xclient(addr=addr)
        if reply.code != 220:
            result.xclient_refused = reply
            await probe.quit()
            return None
        result.address = vantage.xclient
        await ctx.say_ehlo(probe)
    if known_tls_first(ctx):  # the server answers MAIL only behind STARTTLS (checks/tls_first.py)
        try:
            await upgrade(ctx, probe)
        except BaseException:
            await probe.quit()
            raise
    return probe


async def _run_vantage(ctx: AuditContext, vantage: Vantage) -> VantageResult:
    result = VantageResult(vantage)
    user, domain = RELAY_USER, ctx.options.relay_domain
    pending = list(FORMS)
    first = True
    try:
        while pending:
            chunk, pending = pending[:BATCH], pending[BATCH:]
            async with ctx.lock:
                probe = await _open(ctx, vantage, result)
                if probe is None:
                    break
                try:
                    server, ip = ctx.server_name, ctx.ip_literal
                    if first:
                        mail = await probe.command("MAIL FROM:<>")
                        if demands_tls(mail) and not known_tls_first(ctx):
                            mark_tls_first(ctx)   # 530: run the battery behind STARTTLS
                            pending = chunk + pending
                            continue
                        result.catch_all = await _is_catch_all(probe, server)
                        first = False
                    for form in chunk:
                        sender, rcpt = form.render(user, domain, server, ip)
                        result.attempts.append(await _try_form(probe, form, sender, rcpt))
                finally:
                    await probe.quit()
    except ProbeError as err:
        result.error = str(err)
    result.trusted = ctx.options.is_trusted(result.address)
    return result


async def _is_catch_all(probe: Probe, server: str) -> bool:
    """After MAIL FROM:<>: whether a random user at the server's own name is accepted."""
    reply = await probe.command(f"RCPT TO:<hrd-{secrets.token_hex(5)}@{server}>")
    await probe.rset()
    return reply.code in (250, 251)


async def _try_form(probe: Probe, form: RelayForm, sender: str, rcpt: str) -> Attempt:
    mail = await probe.command(f"MAIL FROM:<{sender}>")
    rcpt_reply = await probe.command(f"RCPT TO:<{rcpt}>") if mail.code == 250 else None
    await probe.rset()
    return Attempt(form, sender, rcpt, mail, rcpt_reply)


def who(result: VantageResult) -> str:
    """The vantage as a reader knows it: its label, plus the address the server saw if different."""
    label = result.vantage.label
    if result.vantage.source is None and result.vantage.xclient is None and result.address:
        return result.address
    return label if result.address in (None, label) else f"{label} ({result.address})"


def _private(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local


def _deferred(result: VantageResult) -> str:
    """', N refused for now (4xx)' when the server deferred instead of rejecting."""
    n = sum(1 for a in result.attempts if a.rcpt_reply is not None and a.rcpt_reply.transient)
    return f", {n} refused for now (4xx)" if n else ""


def describe(results: list[VantageResult]) -> str:
    """One line per vantage: relays or not, for check details."""
    parts = []
    for r in results:
        state = ("error: " + r.error if r.error else
                 f"refused at connect ({r.refused_at_connect.code})" if r.refused_at_connect else
                 f"XCLIENT refused ({r.xclient_refused.code})" if r.xclient_refused else
                 f"{len(r.relayed)}/{len(r.attempts)} forms accepted{_deferred(r)}")
        trust = " [trusted]" if r.trusted else ""
        parts.append(f"{who(r)}{trust}: {state}")
    return "; ".join(parts)


async def run(ctx: AuditContext) -> None:
    """open-relay verdict from the battery of every vantage point."""
    results = await battery(ctx)
    usable = [r for r in results if r.usable]
    errors = [r for r in results if r.error]
    if errors and not usable:
        ctx.error("open-relay", describe(results))
        return
    untrusted = [r for r in usable if not r.trusted]
    if not untrusted:
        ctx.skipped("open-relay", "every vantage point is inside --trusted; " + describe(results))
        return
    if all(r.relays for r in usable):
        witness = next(r for r in untrusted if r.relays)
        accepted = witness.relayed
        confirmed = await _canary(ctx, witness, accepted[0]) if ctx.options.relay_canary else None
        status = "confirmed" if confirmed else "RCPT accepted"
        evidence = f"{accepted[0].evidence} ({status}; {len(accepted)} of {len(witness.attempts)} " \
                   f"forms accepted from {who(witness)})"
        detail = "accepted forms: " + ", ".join(a.form.name for a in accepted)
        if witness.catch_all:
            detail += ("; the server also accepts a random user at its own name (catch-all), so "
                       "forms routed through its own name were not counted; a sink that accepts "
                       "every recipient looks the same at RCPT: confirm with --intrusive "
                       "--relay-canary ADDR")
        if confirmed:
            detail += f"; canary: {confirmed}"
        if len(usable) == 1 and not ctx.options.trusted and _private(witness.address):
            detail += (f"; the only vantage point ({witness.address}) is a private address: if it "
                       f"is meant to relay (inside mynetworks), declare it with --trusted, and "
                       f"probe from an outside --source-address as well")
        ctx.add(Finding.of("open-relay", evidence=evidence, detail=detail,
                           confirmed=bool(confirmed)))
        ctx.failed("open-relay", describe(results))
    elif errors:
        ctx.error("open-relay", describe(results))
    else:
        ctx.passed("open-relay", describe(results))


async def _canary(ctx: AuditContext, witness: VantageResult, attempt: Attempt) -> str | None:
    """Send one short message to --relay-canary through the accepted form; the 250 text or None.

    Only with --intrusive; the canary replaces the battery's foreign address in the form.
    """
    canary = ctx.options.relay_canary
    if not ctx.options.intrusive or not canary or "@" not in canary:
        return None
    user, domain = canary.rsplit("@", 1)
    sender, rcpt = attempt.form.render(user, domain, ctx.server_name, ctx.ip_literal)
    async with ctx.lock:
        probe = await _open(ctx, witness.vantage, VantageResult(witness.vantage))
        if probe is None:
            return None
        try:
            if not await probe.start_data(sender, rcpt):
                return None
            body = (f"From: <{sender or 'mailer-daemon@' + ctx.server_name}>\r\nTo: <{canary}>\r\n"
                    f"Subject: hardener relay canary for {ctx.target.display}\r\n\r\n"
                    f"This message was relayed by {ctx.target.display} ({attempt.form.name}, "
                    f"RCPT TO:<{rcpt}>) during a hardener audit.\r\n.\r\n")
            await probe.send_raw(body.encode())
            reply = await probe.read_reply()
            return str(reply) if reply.code == 250 else None
        finally:
            await probe.quit()
