"""SMTP AUTH (RFC 4954) with the SASL mechanisms PLAIN (RFC 4616) and LOGIN, as Postfix's smtpd.

The mechanisms are small state machines (`Plain`, `Login`) fed decoded client responses; they never
see the network. `SaslCommands.sasl_auth` (mixed into the session) runs the exchange: Postfix's
checks in Postfix's order, every client response read with a bound (smtpd_sasl_response_limit,
reply "500 5.5.6 SASL response limit exceeded"), base64 decoded strictly (the canonical encoding
only: anything else is "bad protocol"), `*` cancels with "501 5.7.0 Authentication aborted".
The password is checked against the credentials file in a worker thread (scrypt takes ~0.3 s and
32 MiB; at most MAX_CONCURRENT_CHECKS run at once, so memory stays bounded), for a name that does
not exist as well (a dummy hash), so neither the reply nor its timing tells which names exist.

Throttling, per client address (AuthThrottle, shared by the sessions of the daemon):
- smtpd_client_auth_rate_limit, Postfix's anvil limit: AUTH commands per anvil_rate_time_unit;
  beyond it "450 4.7.1 Error: too many AUTH commands from ADDR" (clients in
  smtpd_client_event_limit_exceptions are not limited);
- hardener's own: the n-th failed AUTH from a client within anvil_rate_time_unit is answered after
  min(2^(n-1), MAX_FAILURE_DELAY) seconds (FAILURE_DELAY_BASE x ...), whatever the session;
- every failed AUTH is an error of the session, so smtpd_error_sleep_time, smtpd_soft_error_limit
  and smtpd_hard_error_limit apply as in Postfix.

Replies are a real Postfix 3.7's with Cyrus SASL (tests/mta/test_auth_postfix.py compares them);
log lines are Postfix's ("SASL PLAIN authentication failed: authentication failure,
sasl_username=alice").

SECURITY: talks to the outside world: the mechanism name, the responses, the names and passwords
are untrusted. Passwords are never logged or kept after the check; names are logged only in
printable form, truncated. Runs as the mail owner (chrooted where master.cf says so); the
credentials were read before the privilege drop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hardener.mta.maillog import get_logger
from hardener.mta.smtpd.relay_policy import in_networks

if TYPE_CHECKING:
    from hardener.mta.sasl_passwd import Credentials

log = get_logger("smtpd")

MAX_CONCURRENT_CHECKS = 2      # scrypt checks at once in one daemon (CPU and 32 MiB each)
FAILURE_DELAY_BASE = 1.0       # seconds before the first failed AUTH of a client is answered
MAX_FAILURE_DELAY = 30.0
MAX_NAME_BYTES = 255
MAX_PASSWORD_BYTES = 1024

# Postfix 3.7's replies (the texts after "authentication failed:" are Cyrus SASL's)
NOT_ENABLED = "503 5.5.1 Error: authentication not enabled"
IN_TRANSACTION = "503 5.5.1 Error: MAIL transaction in progress"
ALREADY = "503 5.5.1 Error: already authenticated"
SYNTAX = "501 5.5.4 Syntax: AUTH mechanism"
ABORTED = "501 5.7.0 Authentication aborted"
TOO_LONG = "500 5.5.6 SASL response limit exceeded"
SUCCESS = "235 2.7.0 Authentication successful"
FAILED = "535 5.7.8 Error: authentication failed: "
NO_MECHANISM = "no mechanism available"
BAD_PROTOCOL = "bad protocol / cancel"
BAD_AUTH = "authentication failure"


# -- mechanisms -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """What a mechanism wants next: a challenge to send (334), or the credentials to check, or a
    failure (the reason after 'authentication failed:')."""

    challenge: bytes | None = None
    name: str | None = None
    password: bytes | None = None
    failure: str | None = None


def _identity(raw: bytes) -> str | None:
    """A name from the client: UTF-8, 1-255 bytes, no NUL; None otherwise."""
    if not raw or len(raw) > MAX_NAME_BYTES or b"\0" in raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


class Plain:
    """RFC 4616: one message `[authzid] NUL authcid NUL passwd`."""

    name = "PLAIN"

    def start(self, initial: bytes | None) -> Step:
        return Step(challenge=b"") if initial is None else self.step(initial)

    def step(self, response: bytes) -> Step:
        parts = response.split(b"\0")
        if len(parts) != 3:
            return Step(failure=BAD_PROTOCOL)
        authzid, authcid, password = parts
        name = _identity(authcid)
        if name is None or not password or len(password) > MAX_PASSWORD_BYTES:
            return Step(failure=BAD_PROTOCOL)
        if authzid and authzid != authcid:
            # acting for another identity is not supported: the password is still checked (same
            # work and the same reply as a wrong password), but never accepted
            return Step(name=name, password=password, failure=BAD_AUTH)
        return Step(name=name, password=password)


class Login:
    """The LOGIN mechanism (draft-murchison-sasl-login): username, then password, each asked
    for with a challenge; an initial response is the username."""

    name = "LOGIN"

    def __init__(self) -> None:
        self.user: str | None = None

    def start(self, initial: bytes | None) -> Step:
        if initial is None:
            return Step(challenge=b"Username:")
        return self.step(initial)

    def step(self, response: bytes) -> Step:
        if self.user is None:
            self.user = _identity(response)
            if self.user is None:
                return Step(failure=BAD_PROTOCOL)
            return Step(challenge=b"Password:")
        if not response or len(response) > MAX_PASSWORD_BYTES:
            return Step(failure=BAD_PROTOCOL)
        return Step(name=self.user, password=response)


MECHANISMS: dict[str, Callable[[], Plain | Login]] = {"PLAIN": Plain, "LOGIN": Login}


def decode_response(text: str) -> bytes | None:
    """Strict base64 (RFC 4648 canonical form, padding required); None when it is not."""
    if not text or text.strip() != text:
        return None
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if base64.b64encode(data).decode("ascii") == text else None


def printable(text: str, limit: int = 100) -> str:
    """A client-supplied name as Postfix logs it (printable(): '?' for anything else), cut."""
    return "".join(c if c.isprintable() and not c.isspace() else "?" for c in text[:limit])


# -- throttling -----------------------------------------------------------------------------------

class AuthThrottle:
    """Per-client AUTH counters of one daemon (see the module docstring). Memory is bounded: at
    most `max_clients` addresses, idle ones dropped first."""

    def __init__(self, rate_limit: int, rate_unit: float, exceptions: Sequence,
                 clock: Callable[[], float] = time.monotonic, max_clients: int = 100_000) -> None:
        self.rate_limit = rate_limit
        self.rate_unit = rate_unit
        self.exceptions = list(exceptions)
        self.clock = clock
        self.max_clients = max_clients
        self.commands: dict[str, collections.deque[float]] = {}
        self.failures: dict[str, collections.deque[float]] = {}
        self._checks: asyncio.Semaphore | None = None

    def _recent(self, table: dict[str, collections.deque[float]], client: str,
                now: float) -> collections.deque[float]:
        q = table.get(client)
        if q is None:
            if len(table) >= self.max_clients:
                for key in [k for k, v in table.items() if not v or v[-1] <= now - self.rate_unit]:
                    del table[key]
                if len(table) >= self.max_clients:   # all busy: forget the oldest entry
                    del table[next(iter(table))]
            q = table.setdefault(client, collections.deque())
        while q and q[0] <= now - self.rate_unit:
            q.popleft()
        return q

    def command(self, client: str) -> int | None:
        """Count one AUTH command; returns the count when it exceeds the rate limit, else None."""
        if not self.rate_limit or in_networks(client, self.exceptions):
            return None
        now = self.clock()
        q = self._recent(self.commands, client, now)
        q.append(now)
        return len(q) if len(q) > self.rate_limit else None

    def failed(self, client: str) -> float:
        """Record a failed AUTH; returns the seconds its reply should wait."""
        now = self.clock()
        q = self._recent(self.failures, client, now)
        q.append(now)
        return min(FAILURE_DELAY_BASE * 2 ** (len(q) - 1), MAX_FAILURE_DELAY)

    def configure(self, rate_limit: int, rate_unit: float, exceptions: Sequence) -> None:
        """New limits (reload); the counts so far are kept, as anvil's."""
        self.rate_limit, self.rate_unit, self.exceptions = rate_limit, rate_unit, list(exceptions)

    @property
    def checks(self) -> asyncio.Semaphore:
        if self._checks is None:
            self._checks = asyncio.Semaphore(MAX_CONCURRENT_CHECKS)
        return self._checks


async def check_password(credentials: "Credentials", throttle: AuthThrottle, name: str,
                         password: bytes) -> bool:
    """credentials.verify in a worker thread, at most MAX_CONCURRENT_CHECKS at once."""
    async with throttle.checks:
        return await asyncio.get_running_loop().run_in_executor(
            None, credentials.verify, name, password)


# -- the AUTH command ------------------------------------------------------------------------------

class SaslCommands:
    """AUTH and its session state; mixed into the smtpd session (hardener/mta/smtpd/server.py),
    whose reply(), push(), read_raw_line(), settings (`s`) and context (`ctx`) it uses."""

    sasl_username: str | None = None    # set by a successful AUTH (Postfix's state->sasl_username)
    sasl_method: str | None = None
    sasl_sender: str | None = None      # MAIL FROM's AUTH= parameter, for the log

    def sasl_reset(self) -> None:
        """Forget the authentication (STARTTLS: nothing learned before TLS survives it)."""
        self.sasl_username = self.sasl_method = self.sasl_sender = None

    def sasl_offered(self) -> tuple[str, ...]:
        """The mechanisms AUTH offers in this session's state (empty: AUTH is not enabled)."""
        sasl = self.s.sasl
        if sasl is None or getattr(self.ctx, "credentials", None) is None:
            return ()
        tls = self._tls_protocol is not None
        if not tls and self.s.tls_level == "encrypt":
            return ()
        return sasl.offered(tls)

    def sasl_ehlo_lines(self) -> list[str]:
        """EHLO's AUTH line(s): none for smtpd_sasl_exceptions_networks clients."""
        mechanisms = self.sasl_offered()
        if not mechanisms or in_networks(self.client_addr, self.s.sasl.exceptions):
            return []
        lines = ["AUTH " + " ".join(mechanisms)]
        if self.s.sasl.broken_clients:
            lines.append("AUTH=" + " ".join(mechanisms))
        return lines

    async def sasl_auth(self, arg: str) -> bool:
        """The AUTH command (smtpd_sasl_auth_cmd), after the session's mandatory-TLS check."""
        if self.s.helo_required and self.helo is None:
            await self.reply("503 5.5.1 Error: send HELO/EHLO first")
            return False
        mechanisms = self.sasl_offered()
        if not mechanisms:
            await self.reply(NOT_ENABLED)
            return False
        if self.sender is not None:
            await self.reply(IN_TRANSACTION)
            return False
        if self.sasl_username is not None:
            await self.reply(ALREADY)
            return False
        words = arg.split()
        if not 1 <= len(words) <= 2:
            await self.reply(SYNTAX)
            return False
        count = self.ctx.auth.command(self.client_addr)
        if count is not None:
            log.warning(f"AUTH command rate limit exceeded: {count} from {self.client} "
                        f"for service {self.listener.service}")
            await self.reply(f"450 4.7.1 Error: too many AUTH commands from {self.client_addr}")
            return False
        method = words[0].upper()
        shown = printable(method)
        factory = MECHANISMS.get(method) if method in mechanisms else None
        if factory is None:
            return await self._auth_failed(shown, NO_MECHANISM, None, delay=False)
        mech = factory()
        if len(words) == 2:
            initial = b"" if words[1] == "=" else decode_response(words[1])
            if initial is None:
                return await self._auth_failed(shown, BAD_PROTOCOL, None)
            step = mech.start(initial)
        else:
            step = mech.start(None)
        while step.challenge is not None:
            await self.push("334 " + base64.b64encode(step.challenge).decode("ascii"))
            line = await self._sasl_response()
            if line is None:
                return False                         # too long: already answered
            if line == "*":
                log.warning(f"{self.client}: SASL {shown} authentication aborted")
                await self.reply(ABORTED)
                return False
            data = decode_response(line)
            if data is None:
                return await self._auth_failed(shown, BAD_PROTOCOL, None)
            step = mech.step(data)
        if step.name is None or step.password is None:
            return await self._auth_failed(shown, step.failure or BAD_PROTOCOL, None)
        name = step.name
        if self.s.sasl.local_domain and "@" not in name:
            name = f"{name}@{self.s.sasl.local_domain}"
        ok = await check_password(self.ctx.credentials, self.ctx.auth, name, step.password)
        if not ok or step.failure is not None:
            return await self._auth_failed(shown, step.failure or BAD_AUTH, name)
        self.sasl_username, self.sasl_method = name, method
        await self.push(SUCCESS)
        return True

    async def _auth_failed(self, method: str, reason: str, name: str | None, *,
                           delay: bool = True) -> bool:
        """Log and answer a failed AUTH (after the client's failure delay); returns False."""
        shown = printable(name) if name is not None else "(unavailable)"
        log.warning(f"{self.client}: SASL {method} authentication failed: {reason}, "
                    f"sasl_username={shown}")
        if delay:
            await asyncio.sleep(self.ctx.auth.failed(self.client_addr))
        await self.reply(FAILED + reason)
        return False

    async def _sasl_response(self) -> str | None:
        """One client response line, at most smtpd_sasl_response_limit bytes (else answered
        with TOO_LONG and None), within smtpd_timeout."""
        line = await self.read_raw_line()
        if line is None:
            await self.reply(TOO_LONG)
            return None
        line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        if len(line) > self.s.sasl.response_limit:
            await self.reply(TOO_LONG)
            return None
        return line.decode("ascii", "replace")
