"""smtpd: the SMTP server (aiosmtpd's SMTP protocol class, hardened to Postfix's behaviour).

What changes from aiosmtpd: the greeting, EHLO and HELP never name the software or a version; the
command loop, MAIL, RCPT and DATA are Postfix's (replies, enhanced status codes, logging); DATA
streams to cleanup in bounded chunks (aiosmtpd keeps the whole message in memory) and ends only at
<CR><LF>.<CR><LF>; relay and recipient decisions come from relay_policy; per-client limits from
anvil; unauthenticated pipelining, line length, recipient count and message size are limited.

SECURITY: talks to the outside world; trusts nothing the client sends. Runs as the mail owner after
the privilege drop (hardener/mta/privileges.py). Touches the queue only through cleanup.
"""

from __future__ import annotations

import asyncio
import fcntl
import re
import sys
import termios
from collections import Counter

from aiosmtpd.smtp import SMTP, Envelope, Session

from hardener.mta.cleanup import new_queue_id
from hardener.mta.maillog import get_logger
from hardener.mta.queue_file import Recipient
from hardener.mta.relay_policy import Decision, check_recipient, in_networks, resolve, FINAL
from hardener.mta.settings import Listener
from hardener.mta.smtpd_address import parse_path_arg, quote_for_reply
from hardener.mta.smtpd_context import SmtpdContext
from hardener.mta.smtpd_restrictions import check_data_list, check_early_lists, session_restriction

log = get_logger("smtpd")

READ_CHUNK = 65536
# Postfix's disconnect statistics order
_STAT_ORDER = ("helo", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "bdat", "rset", "noop",
               "vrfy", "etrn", "quit", "unknown")
_HEADER_RE = re.compile(r"^[!-9;-~]+:")  # a message header sent as a command (Postfix is_header)
_GROUP_ENDERS = {"EHLO", "HELO", "DATA", "QUIT", "NOOP", "VRFY", "EXPN", "STARTTLS"}


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


class HardenedSMTP(SMTP):
    """One SMTP session."""

    # StreamReader buffer limit (flow control); the SMTP line limit is line_length_limit in main.cf
    line_length_limit = READ_CHUNK

    def __init__(self, ctx: SmtpdContext, listener: Listener) -> None:
        # aiosmtpd's __init__ introspects handler and class on every connection; set only what the
        # inherited plumbing (connection_made/lost, timeouts, push, STARTTLS) uses.
        loop = asyncio.get_event_loop()
        asyncio.StreamReaderProtocol.__init__(
            self, asyncio.StreamReader(loop=loop, limit=READ_CHUNK),
            client_connected_cb=self._cb_client_connected, loop=loop)
        self.loop = loop
        self.ctx = ctx
        self.s = ctx.settings
        self.listener = listener
        self.__ident__ = ""
        self.event_handler = _NoHandler()
        self.data_size_limit = self.s.message_size_limit or None
        self.enable_SMTPUTF8 = True
        self._decode_data = False
        self.hostname = self.s.myhostname
        self.tls_context = ctx.tls
        self.require_starttls = False
        self._timeout_duration = self.s.smtpd_timeout
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
        self.helo: str | None = None
        self.protocol = "SMTP"
        self.stage = "CONNECT"
        self.errors = 0
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

    def _timeout_cb(self) -> None:
        if self.transport is not None:
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
        """Send one reply; count 4xx/5xx as errors (smtpd_hard_error_limit closes the session)."""
        await self.push(text)
        if text[:1] in ("4", "5"):
            self.errors += 1
            if self.errors >= self.s.hard_error_limit and self.transport is not None:
                log.info(f"too many errors after {self.stage} from {self.client}")
                self._closing = True
                await self.push(f"421 4.7.0 {self.s.myhostname} Error: too many errors")
                self.transport.close()

    def _log_reject(self, command: str, reply: str, rcpt: str | None = None) -> None:
        qid = self.queue_id or "NOQUEUE"
        text = f"{qid}: reject: {command} from {self.client}: {reply};"
        if self.sender is not None:
            text += f" from=<{quote_for_reply(self.sender)}>"
        if rcpt is not None:
            text += f" to=<{quote_for_reply(rcpt)}>"
        text += f" proto={self.protocol}"
        if self.helo is not None:
            text += f" helo=<{self.helo}>"
        log.info(text)

    # -- session -----------------------------------------------------------------------------

    async def _handle_client(self) -> None:
        peer = self.session.peer if self.session else None
        addr = str(peer[0]) if peer else "unknown"
        if addr.startswith("::ffff:") and "." in addr:
            addr = addr[7:]
        self.client_addr = addr
        self.client_name = self.ctx.client_name(addr)
        log.info(f"connect from {self.client}")
        service = self.listener.service
        try:
            if self.ctx.stopping or self.ctx.sessions.get(service, 0) >= self.listener.process_limit:
                log.warning(f"service {service}: process limit {self.listener.process_limit} "
                            f"reached, refusing {self.client}")
                await self.push("421 4.3.2 Service currently unavailable")
                return
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
            self.ctx.sessions[service] = self.ctx.sessions.get(service, 0) + 1
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
        if self._counted_session:
            self._counted_session = False
            self.ctx.anvil.disconnect(self.client_addr)
            self.ctx.sessions[self.listener.service] -= 1
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

    async def _read_line(self) -> bytes | None:
        """One command line (without the line end); None if it was too long (already answered)."""
        limit = self.s.line_length_limit
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            await self._reader.read(exc.consumed)
            while True:
                try:
                    await self._reader.readuntil(b"\n")
                    break
                except asyncio.LimitOverrunError as more:
                    await self._reader.read(more.consumed)
            await self.reply("500 5.5.2 Error: line too long")
            return None
        except asyncio.IncompleteReadError:
            raise ConnectionResetError from None
        if len(line) > limit:
            await self.reply("500 5.5.2 Error: line too long")
            return None
        if line.endswith(b"\r\n"):
            return line[:-2]
        if self.s.bare_newline == "reject" and not in_networks(self.client_addr,
                                                               self.s.bare_newline_exclusions):
            log.info(f"bare <LF> received after {self.stage} from {self.client}")
            await self.reply(f"{self.s.bare_newline_reject_code} 5.5.2 Error: bare <LF> received")
            return None
        return line[:-1]

    async def _command_loop(self) -> None:
        handlers = {
            "HELO": self.cmd_helo, "EHLO": self.cmd_ehlo, "MAIL": self.cmd_mail,
            "RCPT": self.cmd_rcpt, "DATA": self.cmd_data, "RSET": self.cmd_rset,
            "NOOP": self.cmd_noop, "QUIT": self.cmd_quit, "VRFY": self.cmd_vrfy,
            "EXPN": self.cmd_expn, "STARTTLS": self.cmd_starttls,
        }
        forbid_pipelining = self.s.main.get("smtpd_forbid_unauth_pipelining").lower() == "yes"
        while self.transport is not None and not self._closing:
            line = await self._read_line()
            if line is None:
                continue
            self._reset_timeout()
            text = line.decode("utf-8", "surrogateescape")
            verb, _, arg = text.partition(" ")
            verb = verb.upper()
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
                await self.reply("500 5.5.2 Error: command not recognized")
                continue
            if (not self.ill_pipelining and (verb in _GROUP_ENDERS or self.protocol != "ESMTP")
                    and self._pending_input()):
                self.ill_pipelining = True
                pending = bytes(self._reader._buffer[:100])  # type: ignore[attr-defined]
                log.info(f"improper command pipelining after {verb} from {self.client}: "
                         + pending.decode("ascii", "backslashreplace")
                         .replace("\r", "\\r").replace("\n", "\\n"))
                if forbid_pipelining:
                    await self.push("554 5.5.0 Error: SMTP protocol synchronization")
                    self._closing = True
                    self.transport.close()
                    return
            self.stage = verb
            if await handler(arg.strip()):
                self.ok_stats[name] += 1

    # -- commands (each returns True when it succeeded, for the disconnect statistics) --------

    async def cmd_helo(self, arg: str) -> bool:
        if not arg:
            await self.reply("501 Syntax: HELO hostname")
            return False
        self.helo, self.protocol = arg, "SMTP"
        self._reset_transaction()
        await self.push(f"250 {self.s.myhostname}")
        return True

    async def cmd_ehlo(self, arg: str) -> bool:
        if not arg:
            await self.reply("501 Syntax: EHLO hostname")
            return False
        self.helo, self.protocol = arg, "ESMTP"
        self._reset_transaction()
        lines = [self.s.myhostname, "PIPELINING"]
        lines.append(f"SIZE {self.s.message_size_limit}" if self.s.message_size_limit else "SIZE")
        if not self.s.disable_vrfy:
            lines.append("VRFY")
        if self.ctx.tls is not None and self._tls_protocol is None:
            lines.append("STARTTLS")
        lines += ["ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8"]
        await self.push("\r\n".join(f"250-{x}" for x in lines[:-1]) + f"\r\n250 {lines[-1]}")
        return True

    async def _need_helo(self) -> bool:
        if self.s.helo_required and self.helo is None:
            await self.reply("503 5.5.1 Error: send HELO/EHLO first")
            return True
        return False

    async def cmd_mail(self, arg: str) -> bool:
        if await self._need_helo():
            return False
        if self.sender is not None:
            await self.reply("503 5.5.1 Error: nested MAIL command")
            return False
        parsed = parse_path_arg(arg, "FROM:")
        if parsed is None:
            await self.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
            return False
        for name, value in parsed.params.items():
            if name == "SIZE":
                if value is None or not value.isdigit():
                    await self.reply("501 5.5.4 Bad message size syntax")
                    return False
                if self.s.message_size_limit and int(value) > self.s.message_size_limit:
                    reply = "552 5.3.4 Message size exceeds fixed limit"
                    self._log_reject("MAIL", reply)
                    await self.reply(reply)
                    return False
            elif name == "BODY":
                if (value or "").upper() not in ("7BIT", "8BITMIME"):
                    await self.reply("501 5.5.4 Unsupported BODY parameter value")
                    return False
            elif name not in ("RET", "ENVID", "SMTPUTF8", "AUTH"):
                await self.reply(f"555 5.5.4 Unsupported option: {quote_for_reply(name)}")
                return False
        self.sender = parsed.address
        self.mail_params = parsed.params
        await self.push("250 2.1.0 Ok")
        return True

    async def cmd_rcpt(self, arg: str) -> bool:
        if await self._need_helo():
            return False
        if self.sender is None:
            await self.reply("503 5.5.1 Error: need MAIL command")
            return False
        if len(self.recipients) >= self.s.recipient_limit:
            await self.reply("452 4.5.3 Error: too many recipients")
            return False
        parsed = parse_path_arg(arg, "TO:")
        if parsed is None:
            await self.reply("501 5.5.4 Syntax: RCPT TO:<address>")
            return False
        rcpt = parsed.address
        if not rcpt:
            await self.reply("501 5.1.3 Bad recipient address syntax")
            return False
        for name in parsed.params:
            if name not in ("NOTIFY", "ORCPT"):
                await self.reply(f"555 5.5.4 Unsupported option: {quote_for_reply(name)}")
                return False
        shown = quote_for_reply(rcpt)

        def extra(name: str) -> Decision | None:
            return session_restriction(self, name, shown, "RCPT")

        resolved = resolve(rcpt, self.ctx.policy)
        decision = check_early_lists(self, extra)
        if decision is None:
            decision = check_recipient(self.client_addr, rcpt, self.ctx.policy, extra=extra,
                                       resolved=resolved)
        if decision.action in ("reject", "defer"):
            self._log_reject("RCPT", decision.reply or "", rcpt)
            await self.reply(decision.reply or "554 5.7.1 Access denied")
            return False
        if (resolved.klass == FINAL and self.s.reject_unlisted_recipient
                and not self.ctx.recipients.exists(resolved.localpart)):
            code = self.s.unknown_local_recipient_reject_code
            reply = (f"{code} 5.1.1 <{shown}>: Recipient address rejected: "
                     "User unknown in local recipient table")
            self._log_reject("RCPT", reply, rcpt)
            await self.reply(reply)
            return False
        if self.queue_id is None:
            self.queue_id = new_queue_id()
            log.info(f"{self.queue_id}: client={self.client}")
        self.recipients.append(Recipient(rcpt, parsed.params.get("ORCPT"),
                                         parsed.params.get("NOTIFY")))
        await self.push("250 2.1.5 Ok")
        return True

    async def cmd_data(self, arg: str) -> bool:
        if await self._need_helo():
            return False
        if arg:
            await self.reply("501 5.5.4 Syntax: DATA")
            return False
        if not self.recipients:
            # Postfix: inside a mail transaction whose recipients were all refused, 554
            await self.reply("503 5.5.1 Error: need RCPT command" if self.sender is None
                             else "554 5.5.1 Error: no valid recipients")
            return False
        decision = check_data_list(self)
        if decision is not None:
            self._log_reject("DATA", decision.reply or "")
            await self.reply(decision.reply or "554 5.7.1 Access denied")
            return False
        from hardener.mta.smtpd_stream import receive_data  # one job per module

        return await receive_data(self)

    async def cmd_rset(self, arg: str) -> bool:
        self._reset_transaction()
        await self.push("250 2.0.0 Ok")
        return True

    async def cmd_noop(self, arg: str) -> bool:
        await self.push("250 2.0.0 Ok")
        return True

    async def cmd_quit(self, arg: str) -> bool:
        await self.push("221 2.0.0 Bye")
        self._closing = True
        if self.transport is not None:
            self.transport.close()
        return True

    async def cmd_vrfy(self, arg: str) -> bool:
        if self.s.disable_vrfy:
            await self.reply("502 5.5.1 VRFY command is disabled")
            return False
        parsed = parse_path_arg("TO:" + arg, "TO:")
        if parsed is None or not parsed.address:
            await self.reply("501 5.5.4 Syntax: VRFY address")
            return False
        resolved = resolve(parsed.address, self.ctx.policy)
        shown = quote_for_reply(parsed.address)
        if resolved.klass == FINAL and not self.ctx.recipients.exists(resolved.localpart):
            await self.reply(f"550 5.1.1 <{shown}>: Recipient address rejected: "
                             "User unknown in local recipient table")
            return False
        await self.push(f"252 2.0.0 {shown}")
        return True

    async def cmd_expn(self, arg: str) -> bool:
        await self.reply("502 5.5.2 Error: command not recognized")
        return False

    async def cmd_starttls(self, arg: str) -> bool:
        if self.ctx.tls is None or self._tls_protocol is not None:
            await self.reply("502 5.5.2 Error: command not recognized")
            return False
        if arg:
            await self.reply("501 5.5.4 Syntax: STARTTLS")
            return False
        if self._pending_input():
            # STARTTLS command injection: plaintext after STARTTLS must not survive the handshake
            log.info(f"improper command pipelining after STARTTLS from {self.client}")
        await self.smtp_STARTTLS("")
        # RFC 3207: forget everything learned before TLS
        self.helo, self.protocol = None, "SMTP"
        self._reset_transaction()
        return True
