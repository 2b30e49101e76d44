"""The SMTP verbs of smtpd's session (HELO/EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT, VRFY, EXPN,
STARTTLS; AUTH in smtpd/auth.py), with Postfix's replies, as a mixin of HardenedSMTP
(hardener/mta/smtpd/server.py).

Mandatory TLS (smtpd_tls_security_level = encrypt): before STARTTLS, MAIL, RCPT, DATA, VRFY, RSET
and AUTH are answered "530 5.7.0 Must issue a STARTTLS command first", as Postfix does (HELO,
EHLO, NOOP, STARTTLS and QUIT are allowed).

Each handler returns True when the command succeeded, as Postfix's command actions return 0: the
session counts every other result as an error (smtpd_soft_error_limit, smtpd_hard_error_limit) and
in its disconnect statistics. Limits checked here: smtpd_recipient_limit with
smtpd_recipient_overshoot_limit (RCPT), message_size_limit and queue_minfree (MAIL).

SECURITY: arguments come from the outside world; addresses are parsed by smtpd_address and quoted
before they are echoed. Runs as the mail owner. Touches the queue only through cleanup.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from hardener.mta.cleanup.service import new_queue_id
from hardener.mta.maillog import get_logger
from hardener.mta.queue.file import Recipient
from hardener.mta.smtpd.address import parse_path_arg, path_error_reply, quote_for_reply
from hardener.mta.smtpd.auth import SaslCommands, printable
from hardener.mta.smtpd.relay_policy import (
    FINAL,
    Decision,
    PolicySettings,
    check_recipient,
    resolve,
)
from hardener.mta.smtpd.restrictions import (
    check_data_list,
    check_early_lists,
    session_restriction,
)
from hardener.mta.smtpd.stream import receive_data

if TYPE_CHECKING:
    pass

MUST_STARTTLS = "530 5.7.0 Must issue a STARTTLS command first"

log = get_logger("smtpd")

# free space of the queue file system: (block size, blocks available), as Postfix's fsspace()
FsSpace = Callable[[str], "tuple[int, int]"]


def fsspace(path: str) -> tuple[int, int]:
    """(fragment size, blocks available to unprivileged users) of the file system holding path."""
    st = os.statvfs(path)
    return st.f_frsize, st.f_bavail


class SmtpdCommands(SaslCommands):
    """The command handlers; mixed into HardenedSMTP, whose state they use."""

    _service_policy: PolicySettings | None = None

    @property
    def policy(self) -> PolicySettings:
        """The relay policy of this session's settings (its service's -o overrides applied)."""
        if self.s is self.ctx.settings:
            return self.ctx.policy
        if self._service_policy is None:
            self._service_policy = PolicySettings.from_settings(self.s)
        return self._service_policy

    async def _need_tls(self) -> bool:
        """Mandatory TLS not yet in place: answer 530 (True)."""
        if self.s.tls_level == "encrypt" and self._tls_protocol is None:
            await self.reply(MUST_STARTTLS)
            return True
        return False

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
        if self.tls_context is not None and self._tls_protocol is None:
            lines.append("STARTTLS")
        lines += self.sasl_ehlo_lines()
        lines += ["ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8"]
        await self.push("\r\n".join(f"250-{x}" for x in lines[:-1]) + f"\r\n250 {lines[-1]}")
        return True

    def _queue_space_ok(self) -> bool:
        """Postfix's smtpd_check_queue: room for queue_minfree and for 1.5 message_size_limit."""
        try:
            block, free = self.ctx.fsspace(str(self.s.queue_directory))
        except OSError as exc:
            log.warning(f"cannot get free space of {self.s.queue_directory}: {exc.strerror}")
            return True
        block = max(block, 1)
        if (self.s.queue_minfree // block >= free
                or self.s.message_size_limit // block >= free / 1.5):
            log.warning(f"not enough free space in mail queue: {free * block} bytes < "
                        "1.5*message size limit")
            return False
        return True

    async def _need_helo(self) -> bool:
        if self.s.helo_required and self.helo is None:
            await self.reply("503 5.5.1 Error: send HELO/EHLO first")
            return True
        return False

    async def cmd_mail(self, arg: str) -> bool:
        if await self._need_tls() or await self._need_helo():
            return False
        if self.sender is not None:
            await self.reply("503 5.5.1 Error: nested MAIL command")
            return False
        parsed = parse_path_arg(arg, "FROM:")
        if parsed is None:
            await self.reply(path_error_reply(arg, "FROM:"))
            return False
        self.sasl_sender = None
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
            elif name == "AUTH":
                # RFC 4954 AUTH=: kept for the log only while AUTH is offered, as Postfix
                if self.sasl_offered() and value and value != "<>":
                    self.sasl_sender = printable(value, 255)
            elif name not in ("RET", "ENVID", "SMTPUTF8"):
                await self.reply(f"555 5.5.4 Unsupported option: {quote_for_reply(name)}")
                return False
        if not self._queue_space_ok():
            reply = "452 4.3.1 Insufficient system storage"
            self._log_reject("MAIL", reply)
            await self.reply(reply)
            return False
        self.sender = parsed.address
        self.mail_params = parsed.params
        await self.push("250 2.1.0 Ok")
        return True

    async def cmd_rcpt(self, arg: str) -> bool:
        if await self._need_tls() or await self._need_helo():
            return False
        if self.sender is None:
            await self.reply("503 5.5.1 Error: need MAIL command")
            return False
        parsed = parse_path_arg(arg, "TO:")
        if parsed is None:
            await self.reply(path_error_reply(arg, "TO:"))
            return False
        rcpt = parsed.address
        if not rcpt:
            await self.reply("501 5.1.3 Bad recipient address syntax")
            return False
        for name in parsed.params:
            if name not in ("NOTIFY", "ORCPT"):
                await self.reply(f"555 5.5.4 Unsupported option: {quote_for_reply(name)}")
                return False
        if len(self.recipients) >= self.s.recipient_limit:
            # Postfix: not an error until smtpd_recipient_overshoot_limit such replies (a client
            # that sends more recipients than the limit is told to send them again later)
            await self.reply("452 4.5.3 Error: too many recipients")
            self.rcpt_overshoot += 1
            return self.rcpt_overshoot <= self.s.recipient_overshoot_limit
        shown = quote_for_reply(rcpt)

        def extra(name: str) -> Decision | None:
            return session_restriction(self, name, shown, "RCPT")

        policy = self.policy
        resolved = resolve(rcpt, policy)
        decision = check_early_lists(self, extra)
        if decision is None:
            decision = check_recipient(self.client_addr, rcpt, policy, extra=extra,
                                       resolved=resolved,
                                       sasl_authenticated=self.sasl_username is not None)
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
            log.info(f"{self.queue_id}: client={self.client}{self._sasl_log()}")
        self.recipients.append(Recipient(rcpt, parsed.params.get("ORCPT"),
                                         parsed.params.get("NOTIFY")))
        await self.push("250 2.1.5 Ok")
        return True

    def _sasl_log(self) -> str:
        """Postfix's ', sasl_method=..., sasl_username=..., sasl_sender=...' of the client= line."""
        text = ""
        if self.sasl_method is not None:
            text += (f", sasl_method={self.sasl_method}, "
                     f"sasl_username={printable(self.sasl_username or '')}")
        if self.sasl_sender is not None:
            text += f", sasl_sender={self.sasl_sender}"
        return text

    async def cmd_auth(self, arg: str) -> bool:
        if await self._need_tls():
            return False
        return await self.sasl_auth(arg)

    async def cmd_data(self, arg: str) -> bool:
        if await self._need_tls() or await self._need_helo():
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

        return await receive_data(self)

    async def cmd_rset(self, arg: str) -> bool:
        if await self._need_tls():
            return False
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
        if await self._need_tls():
            return False
        if self.s.disable_vrfy:
            await self.reply("502 5.5.1 VRFY command is disabled")
            return False
        parsed = parse_path_arg("TO:" + arg, "TO:")
        if parsed is None or not parsed.address:
            await self.reply("501 5.5.4 Syntax: VRFY address")
            return False
        resolved = resolve(parsed.address, self.policy)
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
        if self.tls_context is None or self._tls_protocol is not None:
            await self.reply("502 5.5.2 Error: command not recognized")
            return False
        if arg:
            await self.reply("501 5.5.4 Syntax: STARTTLS")
            return False
        if self._pending_input():
            # STARTTLS command injection: plaintext after STARTTLS must not survive the handshake
            log.info(f"improper command pipelining after STARTTLS from {self.client}")
        self._reset_timeout(self.limits.starttls_timeout)   # the handshake
        try:
            await self.smtp_STARTTLS("")
        finally:
            self._disarm()
        # RFC 3207: forget everything learned before TLS
        self.helo, self.protocol = None, "SMTP"
        self._reset_transaction()
        self.sasl_reset()
        return True
