"""The smtp delivery agent: sends queued mail to the next hop over SMTP.

SECURITY: talks to the outside world (next-hop servers, DNS); trusts nothing it reads from them.
Runs in the daemon process with its privileges; reads only the queue file it is given. With
`smtp_tls_security_level = encrypt` (or verify/secure) it never sends mail in clear text: no STARTTLS
or a failed handshake defers the mail. With `may` it uses STARTTLS when offered and falls back to
plain text only if the handshake fails (as Postfix's opportunistic TLS does).

Results are per recipient: 2xx sent, 4xx deferred, 5xx bounced. Sessions are cached per next hop for
`smtp_connection_cache_time_limit` seconds and reused for the next message to the same destination.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field

from hardener.mta.address_form import AddressError, externalize
from hardener.mta.delivery.nexthop import Hop, NextHopResolver
from hardener.mta.delivery.result import (BOUNCED, DEFERRED, AttemptReport, DeliveryRequest,
                                          Destination, RecipientResult, dsn_from_reply,
                                          status_from_code)
from hardener.mta.delivery.smtp_client import (HopError, SmtpConnection, Timeouts,
                                               dot_stuff_lines, open_connection)
from hardener.mta.maillog import get_logger

log = get_logger("smtp")

TLS_LEVELS = ("none", "may", "encrypt", "dane", "dane-only", "verify", "secure", "fingerprint")
_MANDATORY = ("encrypt", "dane-only", "verify", "secure", "fingerprint")


@dataclass
class SmtpSettings:
    """What the smtp agent takes from main.cf."""

    helo_name: str = "localhost"
    tls_security_level: str = "none"
    tls_cafile: str = ""
    timeouts: Timeouts = field(default_factory=Timeouts)
    cache_time_limit: float = 2.0
    reuse_time_limit: float = 300.0
    bind_address: str = ""


def client_tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    """The client TLS context for the configured security level.

    may/encrypt/dane: encryption without authentication (Postfix does not verify at these levels);
    verify/secure: the peer certificate must chain to smtp_tls_CAfile (or the system store) and match
    the next-hop name. TLS 1.2 is the minimum.
    """
    level = settings.tls_security_level
    if level in ("verify", "secure"):
        ctx = ssl.create_default_context(cafile=settings.tls_cafile or None)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class SmtpAgent:
    """Delivers DeliveryRequests to a Destination; one instance per daemon (shares the cache)."""

    def __init__(self, settings: SmtpSettings, resolver: NextHopResolver | None = None) -> None:
        self.settings = settings
        self.resolver = resolver or NextHopResolver()
        self._idle: dict[str, list[SmtpConnection]] = {}
        self._tls_context: ssl.SSLContext | None = None
        self._reaper: asyncio.Task[None] | None = None

    # -- public ------------------------------------------------------------------------------
    async def deliver(self, dest: Destination, req: DeliveryRequest) -> AttemptReport:
        """One attempt for `req.recipients`; never raises for delivery problems."""
        started = time.monotonic()
        for attempt in range(2):
            conn: SmtpConnection | None = None
            try:
                conn, reused = await self._session(dest)
            except HopError as exc:
                return self._all(req, exc, started, time.monotonic())
            setup_done = time.monotonic()
            try:
                results = await transaction(conn, req)
            except _StaleSession:
                # A cached session the server had closed: retry once on a fresh connection.
                conn.close()
                if reused and attempt == 0:
                    continue
                exc = HopError(f"lost connection with {conn.relay} while sending MAIL FROM",
                               hop_dead=False)
                return self._all(req, exc, started, setup_done)
            except HopError as exc:
                conn.close()
                return self._all(req, exc, started, setup_done, relay=conn.relay)
            self._release(dest, conn)
            return AttemptReport(results, conn_setup=0.0 if reused else setup_done - started,
                                 transmission=time.monotonic() - setup_done)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """QUIT every cached session (daemon shutdown)."""
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        idle, self._idle = self._idle, {}
        await asyncio.gather(*(c.quit() for conns in idle.values() for c in conns),
                             return_exceptions=True)

    # -- sessions ----------------------------------------------------------------------------
    async def _session(self, dest: Destination) -> tuple[SmtpConnection, bool]:
        now = time.monotonic()
        pool = self._idle.get(dest.key)
        while pool:
            conn = pool.pop()
            if conn.usable() and now - conn.opened < self.settings.reuse_time_limit:
                return conn, True
            conn.close()
        hops = await self.resolver.resolve(dest.nexthop)
        return await self._connect_any(hops, dest), False

    async def _connect_any(self, hops: list[Hop], dest: Destination) -> SmtpConnection:
        last: HopError | None = None
        for hop in hops:
            try:
                return await self._connect(hop, dest)
            except HopError as exc:
                last = exc
                if exc.permanent:
                    break
        assert last is not None
        raise last

    async def _connect(self, hop: Hop, dest: Destination, plaintext: bool = False) -> SmtpConnection:
        s = self.settings
        conn = await open_connection(hop.host, hop.addr, hop.port, s.timeouts,
                                     s.bind_address or None)
        try:
            await conn.ehlo(s.helo_name)
            level = s.tls_security_level
            if level == "none" or plaintext:
                return conn
            if "STARTTLS" not in conn.features:
                if level in _MANDATORY:
                    raise HopError(f"TLS is required, but was not offered by host {conn.relay}",
                                   "4.7.4")
                return conn
            if self._tls_context is None:
                self._tls_context = client_tls_context(s)
            name = hop.host if level in ("verify", "secure") else None
            try:
                await conn.starttls(self._tls_context, name)
            except HopError as exc:
                if level in _MANDATORY:
                    raise
                # Opportunistic TLS: a failed handshake falls back to plain text, as Postfix does.
                log.info(f"warning: {exc.reason}; trying again without TLS")
                conn.close()
                return await self._connect(hop, dest, plaintext=True)
            log.info(f"{'Trusted' if level in ('verify', 'secure') else 'Untrusted'} TLS "
                     f"connection established to {conn.relay}: {conn.tls}")
            await conn.ehlo(s.helo_name)
            return conn
        except HopError:
            conn.close()
            raise

    def _release(self, dest: Destination, conn: SmtpConnection) -> None:
        if not conn.usable() or self.settings.cache_time_limit <= 0:
            asyncio.ensure_future(conn.quit())
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(dest.key, []).append(conn)
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.ensure_future(self._reap())

    async def _reap(self) -> None:
        """Close cached sessions idle for longer than smtp_connection_cache_time_limit."""
        limit = self.settings.cache_time_limit
        while self._idle:
            await asyncio.sleep(max(limit / 2, 0.2))
            now = time.monotonic()
            for key in list(self._idle):
                keep = []
                for conn in self._idle[key]:
                    if now - conn.idle_since >= limit or not conn.usable():
                        asyncio.ensure_future(conn.quit())
                    else:
                        keep.append(conn)
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]

    # -- results -----------------------------------------------------------------------------
    @staticmethod
    def _all(req: DeliveryRequest, exc: HopError, started: float, setup_done: float,
             relay: str = "none") -> AttemptReport:
        status = BOUNCED if exc.permanent else DEFERRED
        results = [RecipientResult(r, status, exc.dsn, exc.reason, relay) for r in req.recipients]
        return AttemptReport(results, conn_setup=setup_done - started,
                             transmission=time.monotonic() - setup_done, hop_dead=exc.hop_dead)


class _StaleSession(Exception):
    """The server closed a session before answering our first command."""


async def transaction(conn: SmtpConnection, req: DeliveryRequest) -> list[RecipientResult]:
    """MAIL, RCPT..., DATA for one message on an open session (pipelined when offered).

    Addresses go out in RFC 5321 form (address_form.externalize): a local part that is not a
    Dot-string is quoted, so nothing in an address can become a parameter or a command at the next
    hop. An address with no RFC 5321 form bounces without being sent, and a non-ASCII one bounces
    (5.6.7, Postfix's wording) when the next hop does not offer SMTPUTF8.
    """
    t = conn.timeouts
    relay = conn.relay
    envelope = _envelope(conn, req)
    if isinstance(envelope, list):
        return envelope
    mail, rcpt_lines, refused = envelope
    recipients = [r for r, _ in rcpt_lines]
    rcpts = [line for _, line in rcpt_lines]
    pipelining = "PIPELINING" in conn.features
    first_transaction = conn.transactions == 0
    conn.transactions += 1

    try:
        if pipelining:
            await conn.send(("\r\n".join([mail, *rcpts, "DATA"]) + "\r\n").encode("utf-8"), t.mail)
        else:
            await conn.send(mail.encode("utf-8") + b"\r\n", t.mail)
        mail_reply = await conn.read_reply(t.mail)
    except HopError:
        if not first_transaction:
            raise _StaleSession() from None
        raise

    accepted: list[str] = []
    results: dict[str, RecipientResult] = dict(refused)
    if mail_reply.code != 250:
        if pipelining:  # drain the replies to the RCPTs and DATA we already sent
            for _ in range(len(rcpts) + 1):
                await conn.read_reply(t.rcpt)
        await conn.rset()
        for r in recipients:
            results[r] = _result(r, mail_reply.code, mail_reply.text, relay, "MAIL FROM")
        return [results[r] for r in req.recipients]

    for rcpt, line in zip(recipients, rcpts):
        reply = await conn.read_reply(t.rcpt) if pipelining else await conn.command(line, t.rcpt)
        if reply.code in (250, 251):
            accepted.append(rcpt)
        else:
            results[rcpt] = _result(rcpt, reply.code, reply.text, relay, "RCPT TO")

    if pipelining:
        data_reply = await conn.read_reply(t.data_init)
    elif accepted:
        data_reply = await conn.command("DATA", t.data_init)
    else:
        data_reply = None

    if not accepted:
        # The server must refuse DATA without recipients; if it said 354 anyway, end the empty data.
        if data_reply is not None and data_reply.code == 354:
            await conn.send(b".\r\n", t.data_xfer)
            await conn.read_reply(t.data_done)
        await conn.rset()
        return [results[r] for r in req.recipients]
    assert data_reply is not None
    if data_reply.code != 354:
        await conn.rset()
        for r in accepted:
            results[r] = _result(r, data_reply.code, data_reply.text, relay, "DATA")
        return [results[r] for r in req.recipients]

    content = req.open_content()
    try:
        last = b""
        for chunk in dot_stuff_lines(content):
            if last:
                await conn.send(last, t.data_xfer)
            last = chunk
    finally:
        content.close()
    await conn.send(last + b".\r\n", t.data_xfer)  # the end of data goes with the last chunk
    final = await conn.read_reply(t.data_done)
    for r in accepted:
        results[r] = _result(r, final.code, final.text, relay, "end of DATA")
    if final.code >= 400:
        await conn.rset()
    return [results[r] for r in req.recipients]


def _result(rcpt: str, code: int, text: str, relay: str, command: str) -> RecipientResult:
    """A recipient's result from a server reply, worded as Postfix logs it."""
    body = text[4:] if text[:3].isdigit() else text
    status = status_from_code(code)
    shown = text if 200 <= code < 300 else f"host {relay} said: {text} (in reply to {command} command)"
    return RecipientResult(rcpt, status, dsn_from_reply(code, body), shown, relay,
                           diagnostic=f"smtp; {text}")


_Envelope = tuple[str, list[tuple[str, str]], dict[str, RecipientResult]]


def _envelope(conn: SmtpConnection, req: DeliveryRequest) -> _Envelope | list[RecipientResult]:
    """(MAIL FROM line, [(recipient, RCPT TO line)], refused recipients' results), or every
    recipient's result when the sender cannot be sent or no recipient can."""
    smtputf8 = "SMTPUTF8" in conn.features
    no_utf8 = f"SMTPUTF8 is required, but was not offered by host {conn.relay}"
    try:
        sender = externalize(req.sender)
    except AddressError as exc:
        reason = f"bad sender address syntax: {exc}"
        return [RecipientResult(r, BOUNCED, "5.1.7", reason, conn.relay) for r in req.recipients]
    if not sender.isascii() and not smtputf8:
        return [RecipientResult(r, BOUNCED, "5.6.7", no_utf8, conn.relay) for r in req.recipients]
    utf8 = not sender.isascii()
    lines: list[tuple[str, str]] = []
    refused: dict[str, RecipientResult] = {}
    for r in req.recipients:
        try:
            rcpt = externalize(r)
        except AddressError as exc:
            refused[r] = RecipientResult(r, BOUNCED, "5.1.3",
                                         f"bad recipient address syntax: {exc}", conn.relay)
            continue
        if not rcpt.isascii():
            if not smtputf8:
                refused[r] = RecipientResult(r, BOUNCED, "5.6.7", no_utf8, conn.relay)
                continue
            utf8 = True
        lines.append((r, f"RCPT TO:<{rcpt}>"))
    if not lines:
        return [refused[r] for r in req.recipients]
    mail = f"MAIL FROM:<{sender}>"
    if "SIZE" in conn.features:
        mail += f" SIZE={req.size}"
    if utf8:
        mail += " SMTPUTF8"
    return mail, lines, refused
