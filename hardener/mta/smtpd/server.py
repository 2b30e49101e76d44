"""smtpd: the SMTP server (aiosmtpd's SMTP protocol class, hardened to Postfix's behaviour).

What changes from aiosmtpd: the greeting, EHLO and HELP never name the software or a version; the
command loop, MAIL, RCPT and DATA are Postfix's (replies, enhanced status codes, logging); DATA
streams to cleanup in bounded chunks (aiosmtpd keeps the whole message in memory) and ends only at
<CR><LF>.<CR><LF>; relay and recipient decisions come from relay_policy; per-client limits from
anvil; unauthenticated pipelining, line length, recipient count and message size are limited.
The SMTP verbs live in smtpd_commands; accepting, the process limit and stress in smtpd_service.

Postfix's per-session limits (SessionLimits; the stress values for sessions accepted under stress):
- smtpd_timeout: each command line must arrive within it (a per-request deadline: stricter than
  Postfix's default per-read limit, which lets a client trickle a line for hours); each reply must
  be written within it; in DATA each read must return within it, and with
  smtpd_per_request_deadline (on under stress) the whole DATA phase runs on one deadline that each
  read shortens by its wait and extends by bytes/smtpd_min_data_rate, up to smtpd_timeout.
- Errors: a command that fails counts one (a 452 "too many recipients" only after
  smtpd_recipient_overshoot_limit of them); from smtpd_soft_error_limit errors on, every reply
  waits smtpd_error_sleep_time; at smtpd_hard_error_limit: 421 and disconnect.
- smtpd_junk_command_limit: NOOP, RSET, HELO, EHLO and VRFY beyond it each count as an error.
- A message queued clears the error and junk counts, as in Postfix.

SECURITY: talks to the outside world; trusts nothing the client sends. Runs as the mail owner after
the privilege drop (hardener/mta/master/privileges.py). Touches the queue only through cleanup.
"""

from __future__ import annotations

import asyncio
import fcntl
import re
import sys
import termios
from collections import Counter
from collections.abc import Callable

from aiosmtpd.smtp import SMTP, Envelope, Session

from hardener.mta import metrics
from hardener.mta.address_form import printable_external
from hardener.mta.maillog import get_logger
from hardener.mta.queue.file import Recipient
from hardener.mta.smtpd.relay_policy import in_networks
from hardener.mta.config.settings import Listener
from hardener.mta.smtpd.commands import SmtpdCommands
from hardener.mta.smtpd.context import SmtpdContext
from hardener.mta.smtpd.service import SmtpdService

log = get_logger("smtpd")

READ_CHUNK = 65536
# Postfix's disconnect statistics order
_STAT_ORDER = ("helo", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "bdat", "rset", "noop",
               "vrfy", "etrn", "quit", "unknown")
_HEADER_RE = re.compile(r"^[!-9;-~]+:")  # a message header sent as a command (Postfix is_header)
_GROUP_ENDERS = {"EHLO", "HELO", "DATA", "QUIT", "NOOP", "VRFY", "EXPN", "STARTTLS"}
# commands that can be repeated without end (Postfix's SMTPD_CMD_FLAG_LIMIT; ETRN is not offered)
_JUNK = {"HELO", "EHLO", "NOOP", "RSET", "VRFY"}


class _NoHandler:
    pass


def _fionread_holding_gil():
    """libc ioctl through ctypes.PyDLL, which keeps the GIL: fcntl.ioctl releases it, and getting
    it back from the cleanup threads can cost the event loop a whole switch interval."""
    try:
        import ctypes

        ioctl = ctypes.PyDLL(None).ioctl
    except (ImportError, OSError, AttributeError):
        return None
    count = ctypes.c_int()
    ref = ctypes.byref(count)

    def waiting(fd: int) -> int:
        return count.value if ioctl(fd, termios.FIONREAD, ref) == 0 else 0
    return waiting


def _fionread_fcntl(fd: int) -> int:
    try:
        return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), sys.byteorder)
    except OSError:
        return 0


# bytes the kernel holds for a socket, unread (Postfix's peekfd)
_bytes_waiting = _fionread_holding_gil() or _fionread_fcntl


class HardenedSMTP(SmtpdCommands, SMTP):
    """One SMTP session. `stress`: accepted while its service was under stress (stress limits);
    `release`: called once when the session is over (frees its slot in the service)."""

    # StreamReader buffer limit (flow control); the SMTP line limit is line_length_limit in main.cf
    line_length_limit = READ_CHUNK

    def __init__(self, ctx: SmtpdContext, listener: Listener, stress: bool = False,
                 release: Callable[[], None] | None = None) -> None:
        # aiosmtpd's __init__ introspects handler and class on every connection; set only what the
        # inherited plumbing (connection_made/lost, timeouts, push, STARTTLS) uses.
        loop = asyncio.get_event_loop()
        asyncio.StreamReaderProtocol.__init__(
            self, asyncio.StreamReader(loop=loop, limit=READ_CHUNK),
            client_connected_cb=self._cb_client_connected, loop=loop)
        self.loop = loop
        self.ctx = ctx
        self.s = ctx.settings.for_service(listener.service)   # its master.cf -o overrides
        self.listener = listener
        self.stress = stress
        self.limits = self.s.stress_limits if stress else self.s.limits
        self._release = release
        self.__ident__ = ""
        self.event_handler = _NoHandler()
        self.data_size_limit = self.s.message_size_limit or None
        self.enable_SMTPUTF8 = True
        self._decode_data = False
        self.hostname = self.s.myhostname
        self.tls_context = ctx.tls_for(listener.service)
        self.require_starttls = False
        self._timeout_duration = self.limits.timeout
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._auth_require_tls = True
        self._proxy_timeout = None
        self._auth_required = False
        self._handle_hooks = {}
        self._smtp_methods = {}
        self._enforce_call_limit = False
        self._ehlo_hook_ver = None
        # session state
        self.client_addr = "unknown"
        self.client_name = "unknown"
        # smtpd_forbid_bare_newline = reject for this client (set once its address is known)
        self.reject_bare_newline = False
        self.helo: str | None = None
        self.protocol = "SMTP"
        self.stage = "CONNECT"
        self.errors = 0          # Postfix's error_count
        self.junk = 0            # Postfix's junk_cmds
        self.data_bytes = 0      # bytes received in the current DATA phase (for the log)
        self._armed_at = 0.0
        self.stats: Counter[str] = Counter()
        self.ok_stats: Counter[str] = Counter()
        self._counted_session = False
        self._closing = False
        # Postfix's SMTPD_FLAG_ILL_PIPELINING: set at the first improper pipelining (input pending
        # after a command that ends a group, or after any command before EHLO); it stays set for
        # the whole session (RSET, MAIL and a later EHLO keep it) and reject_unauth_pipelining
        # rejects on it.
        self.ill_pipelining = False
        self._writer_cleanup = None
        self._session_timer: asyncio.TimerHandle | None = None
        self._reset_transaction()

    # -- plumbing ----------------------------------------------------------------------------

    def _create_session(self) -> Session:
        return Session(self.loop)

    def _create_envelope(self) -> Envelope:
        return Envelope()

    def _reset_transaction(self) -> None:
        self.sender: str | None = None
        self.mail_params: dict[str, str | None] = {}
        self.recipients: list[Recipient] = []
        self.queue_id: str | None = None
        self.rcpt_overshoot = 0

    # -- I/O time limits (see the module docstring) --------------------------------------------

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Arm the I/O timer: _timeout_cb runs unless _disarm() comes within `duration` s."""
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        self._armed_at = self.loop.time()
        self._timeout_handle = self.loop.call_later(
            self._timeout_duration if duration is None else max(duration, 0.0), self._timeout_cb)

    def _disarm(self) -> float:
        """Stop the I/O timer (time spent elsewhere does not count); returns the seconds waited."""
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        return self.loop.time() - self._armed_at

    async def push(self, status: str | bytes) -> None:
        """Send one reply. From smtpd_soft_error_limit errors on, wait smtpd_error_sleep_time
        first (Postfix's tarpit); the write must complete within smtpd_timeout."""
        if self.errors >= self.limits.soft_error_limit and self.limits.error_sleep_time:
            await asyncio.sleep(self.limits.error_sleep_time)
        data = status.encode("utf-8", "surrogateescape") if isinstance(status, str) else status
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(data + b"\r\n")
        if self.transport.get_write_buffer_size():
            self._reset_timeout(self.limits.timeout)
            try:
                await self._writer.drain()
            finally:
                self._disarm()

    def _timeout_cb(self) -> None:
        if self.transport is not None and not self._closing:
            if self.stage == "DATA":
                log.info(f"timeout after DATA ({self.data_bytes} bytes) from {self.client}")
            else:
                log.info(f"timeout after {self.stage} from {self.client}")
            self._closing = True
            self.transport.write(f"421 4.4.2 {self.s.myhostname} Error: timeout exceeded\r\n".encode())
            self.transport.close()

    def _session_expired(self) -> None:
        if self.transport is not None:
            log.info(f"session time limit exceeded after {self.stage} from {self.client}")
            self._closing = True
            self.transport.write(f"421 4.4.2 {self.s.myhostname} Error: session time limit "
                                 "exceeded\r\n".encode())
            self.transport.close()

    @property
    def client(self) -> str:
        return f"{self.client_name}[{self.client_addr}]"

    def _pending_input(self) -> bool:
        """True when the client sent more than we have answered: bytes in our read buffer, or
        (as Postfix's peekfd) bytes still waiting in the kernel's socket buffer."""
        if self._reader._buffer:  # type: ignore[attr-defined]
            return True
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is None:
            return False
        return _bytes_waiting(sock.fileno()) > 0

    async def reply(self, text: str) -> None:
        """Send an error reply (the command loop counts the failed command as an error)."""
        await self.push(text)

    def _log_reject(self, command: str, reply: str, rcpt: str | None = None) -> None:
        qid = self.queue_id or "NOQUEUE"
        text = f"{qid}: reject: {command} from {self.client}: {reply};"
        if self.sender is not None:
            text += f" from=<{printable_external(self.sender)}>"
        if rcpt is not None:
            text += f" to=<{printable_external(rcpt)}>"
        text += f" proto={self.protocol}"
        if self.helo is not None:
            text += f" helo=<{self.helo}>"
        log.info(text)
        metrics.count_reject(reply)

    # -- session -----------------------------------------------------------------------------

    async def _handle_client(self) -> None:
        peer = self.session.peer if self.session else None
        addr = str(peer[0]) if peer else "unknown"
        if addr.startswith("::ffff:") and "." in addr:
            addr = addr[7:]
        self.client_addr = addr
        self.client_name = self.ctx.client_name(addr)
        self.reject_bare_newline = (self.s.bare_newline == "reject" and not in_networks(
            addr, self.s.bare_newline_exclusions))
        log.info(f"connect from {self.client}")
        service = self.listener.service
        metrics.count_connection(service)
        try:
            verdict = self.ctx.anvil.connect(addr)
            if verdict is not None:
                # Postfix's anvil wording, which log tools count
                if verdict == "count":
                    what, n = "concurrency", self.ctx.anvil.active.get(addr, 0) + 1
                else:
                    what, n = "rate", len(self.ctx.anvil.arrivals.get(addr, ())) + 1
                log.warning(f"Connection {what} limit exceeded: {n} from {self.client} "
                            f"for service {service}")
                await self.push(f"421 4.7.0 {self.s.myhostname} Error: too many connections "
                                f"from {addr}")
                return
            self._counted_session = True
            self._session_timer = self.loop.call_later(self.s.session_limit, self._session_expired)
            await self.push(f"220 {self.s.smtpd_banner}")
            await self._command_loop()
        except (asyncio.CancelledError, ConnectionError):
            if not self._closing:
                log.info(f"lost connection after {self.stage} from {self.client}")
        except Exception as exc:  # a bug must cost one session, never the daemon
            log.error(f"internal error after {self.stage} from {self.client}: {exc!r}")
            if self.transport is not None:
                self.transport.write(b"421 4.3.0 Error: internal error\r\n")
        finally:
            self._end_session()

    def _end_session(self) -> None:
        if self._session_timer is not None:
            self._session_timer.cancel()
        writer = self._writer_cleanup
        if writer is not None:
            writer._discard()
            self._writer_cleanup = None
        self._disarm()
        if self._counted_session:
            self._counted_session = False
            self.ctx.anvil.disconnect(self.client_addr)
        parts = []
        for name in _STAT_ORDER:
            total = self.stats.get(name, 0)
            if total:
                ok = self.ok_stats.get(name, 0)
                parts.append(f"{name}={ok}" if ok == total else f"{name}={ok}/{total}")
        total = sum(self.stats.values())
        ok = sum(self.ok_stats.values())
        parts.append(f"commands={ok}" if ok == total else f"commands={ok}/{total}")
        log.info(f"disconnect from {self.client} " + " ".join(parts))
        if self.transport is not None:
            self.transport.close()
        self._release_slot()

    def _release_slot(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        # the session may end before _handle_client ran (cancelled at shutdown): free the slot
        # here too (only the first release counts)
        self._release_slot()

    async def read_raw_line(self) -> bytes | None:
        """One line from the client with its line end, within smtpd_timeout; None when it
        overran the read buffer (READ_CHUNK), in which case the rest of it has been read and
        dropped (a bounded number of buffers)."""
        reader = self._reader
        self._reset_timeout(self.limits.timeout)
        try:
            return await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            await reader.read(exc.consumed)
            for _ in range(1 << 20):   # discard the rest of the line, one buffer at a time
                try:
                    await reader.readuntil(b"\n")
                    break
                except asyncio.LimitOverrunError as more:
                    await reader.read(more.consumed)
            return None
        except asyncio.IncompleteReadError:
            raise ConnectionResetError from None
        finally:
            self._disarm()

    async def _read_line(self) -> bytes | None:
        """One command line (without the line end); None if it was too long (already answered)."""
        line = await self.read_raw_line()
        if line is None or len(line) > self.s.line_length_limit:
            await self.reply("500 5.5.2 Error: line too long")
            return None
        if line.endswith(b"\r\n"):
            return line[:-2]
        if self.reject_bare_newline:
            log.info(f"bare <LF> received after {self.stage} from {self.client}")
            await self.reply(f"{self.s.bare_newline_reject_code} 5.5.2 Error: bare <LF> received")
            return None
        return line[:-1]

    async def _command_loop(self) -> None:
        handlers = {
            "HELO": self.cmd_helo, "EHLO": self.cmd_ehlo, "MAIL": self.cmd_mail,
            "RCPT": self.cmd_rcpt, "DATA": self.cmd_data, "RSET": self.cmd_rset,
            "NOOP": self.cmd_noop, "QUIT": self.cmd_quit, "VRFY": self.cmd_vrfy,
            "EXPN": self.cmd_expn, "STARTTLS": self.cmd_starttls, "AUTH": self.cmd_auth,
        }
        while self.transport is not None and not self._closing:
            if self.errors >= self.limits.hard_error_limit:
                log.info(f"too many errors after {self.stage} from {self.client}")
                await self.push(f"421 4.7.0 {self.s.myhostname} Error: too many errors")
                self._closing = True
                self.transport.close()
                return
            line = await self._read_line()
            if line is None:
                self.errors += 1
                continue
            text = line.decode("utf-8", "surrogateescape")
            verb, _, arg = text.partition(" ")
            verb = verb.upper()
            if not verb:
                await self.reply("500 5.5.2 Error: bad syntax")
                self.errors += 1
                continue
            if (verb in ("CONNECT", "GET", "POST") or (verb and not "A" <= verb[0] <= "Z")
                    or _HEADER_RE.match(text)):
                log.warning(f"non-SMTP command from {self.client}: {text[:100]}")
                await self.push("221 2.7.0 Error: I can break rules, too. Goodbye.")
                self._closing = True
                self.transport.close()
                return
            handler = handlers.get(verb)
            name = verb.lower() if handler is not None else "unknown"
            self.stats[name] += 1
            if handler is None:
                self.stage = "UNKNOWN"
                await self.reply("500 5.5.2 Error: command not recognized")   # Postfix 3.7
                self.errors += 1
                continue
            if (not self.ill_pipelining and (verb in _GROUP_ENDERS or self.protocol != "ESMTP")
                    and self._pending_input()):
                self.ill_pipelining = True
                pending = bytes(self._reader._buffer[:100])  # type: ignore[attr-defined]
                log.info(f"improper command pipelining after {verb} from {self.client}: "
                         + pending.decode("ascii", "backslashreplace")
                         .replace("\r", "\\r").replace("\n", "\\n"))
                if self.s.forbid_unauth_pipelining:
                    await self.push("554 5.5.0 Error: SMTP protocol synchronization")
                    self._closing = True
                    self.transport.close()
                    return
            self.stage = verb
            if await handler(arg.strip()):
                self.ok_stats[name] += 1
            else:
                self.errors += 1
            if verb in _JUNK:
                if self.junk > self.limits.junk_command_limit:
                    self.errors += 1
                self.junk += 1


def start_services(ctx: SmtpdContext, sockets: list) -> list[SmtpdService]:
    """Start accepting on the bound listening sockets, one SmtpdService per master.cf service
    (its sessions counted in ctx.sessions); call from the running event loop."""
    by_service: dict[str, list] = {}
    for listener, sock in sockets:
        by_service.setdefault(listener.service, []).append((listener, sock))

    def factory(listener: Listener, stress: bool, release: Callable[[], None]) -> HardenedSMTP:
        return HardenedSMTP(ctx, listener, stress, release)

    services = [SmtpdService(group, factory, counts=ctx.sessions) for group in by_service.values()]
    for service in services:
        service.start()
    return services
