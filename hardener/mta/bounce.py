"""bounce: RFC 3464 delivery status notifications for mail that could not be delivered.

SECURITY: reads the header block of a queue file (bounded to `header_size_limit` bytes) and text from
delivery results; everything that came from outside is copied as data into the report, with control
characters replaced in the human-readable part. Addresses are written in their external form
(address_form: quoted local part, printable), so an address cannot add a header or a DSN field.
Queues the DSN through cleanup only (flagged "bounce"), as the null sender, to the original envelope
sender. Never answers the null sender and never answers a bounce: such failures are logged and
dropped, so two MTAs cannot ping-pong bounces.
"""

from __future__ import annotations

import email.utils
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from hardener.mta.address_form import printable_external
from hardener.mta.maillog import get_logger
from hardener.mta.queue.file import Envelope, Recipient

log = get_logger("bounce")

HEADER_LIMIT = 102400


@dataclass(frozen=True)
class FailedRecipient:
    """One recipient to report: address, enhanced status, diagnostic and the remote MTA if any."""

    address: str
    dsn: str
    reason: str
    diagnostic: str = ""
    remote_mta: str = ""
    orcpt: str | None = None


def wants_failure_notice(rcpt: Recipient) -> bool:
    """RFC 3461 NOTIFY: no notice for NEVER, or for a list without FAILURE."""
    if not rcpt.notify:
        return True
    words = {w.strip().upper() for w in rcpt.notify.split(",")}
    return "FAILURE" in words and "NEVER" not in words


def should_bounce(env: Envelope) -> str | None:
    """None when a DSN may be sent for `env`, else the reason it must not be."""
    if not env.sender:
        return "the sender is the null sender"
    if env.is_bounce:
        return "the message is itself a bounce"
    return None


def read_original_headers(content: BinaryIO, limit: int = HEADER_LIMIT) -> bytes:
    """The header block of a message (up to the first empty line, at most `limit` bytes)."""
    out = bytearray()
    while len(out) < limit:
        line = content.readline(limit - len(out))
        if not line or line in (b"\n", b"\r\n"):
            break
        out += line
    return bytes(out)


def _clean(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)


def _addr(address: str) -> str:
    """An internal-form address as RFC 5322 / RFC 3464 want it: quoted local part, printable."""
    return printable_external(address)


def _xtext_decode(text: str) -> str | None:
    """RFC 3461 xtext decoding ("+HH" is the octet HH); None when malformed."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "+":
            hexpart = text[i + 1:i + 3]
            if len(hexpart) != 2 or not all(h in "0123456789ABCDEFabcdef" for h in hexpart):
                return None
            out.append(int(hexpart, 16))
            i += 3
            continue
        if not (33 <= ord(c) <= 126) or c == "=":
            return None
        out.append(ord(c))
        i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        return None


def original_recipient_field(orcpt: str) -> str | None:
    """The RFC 3464 Original-Recipient value for a stored ORCPT parameter (`rfc822;xtext`),
    xtext-decoded as Postfix writes it; None when it is malformed or not printable."""
    addr_type, sep, value = orcpt.partition(";")
    decoded = _xtext_decode(value) if sep else None
    if (decoded is None or not decoded or not addr_type.isascii()
            or not addr_type.replace("-", "").isalnum()
            or not all(c.isprintable() for c in decoded)):
        return None
    return f"{addr_type};{decoded}"


def build_dsn(env: Envelope, failed: list[FailedRecipient], original_headers: bytes, *,
              myhostname: str, now: float | None = None) -> bytes:
    """The DSN message (LF line endings) for `failed` recipients of `env`."""
    now = time.time() if now is None else now
    boundary = f"{env.queue_id}.{int(now)}/{myhostname}"
    date = email.utils.formatdate(now, localtime=True)
    message_id = f"<{time.strftime('%Y%m%d%H%M%S', time.gmtime(now))}.{secrets.token_hex(6)}" \
                 f"@{myhostname}>"
    human = [f"<{_addr(f.address)}>: {_clean(f.reason)}" for f in failed]
    lines = [
        f"From: MAILER-DAEMON@{myhostname} (Mail Delivery System)",
        "Subject: Undelivered Mail Returned to Sender",
        f"To: {_addr(env.sender)}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
        "Content-Transfer-Encoding: 8bit",
        f"Message-Id: {message_id}",
        f"Date: {date}",
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Description: Notification",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        f"This is the mail system at host {myhostname}.",
        "",
        "I'm sorry to have to inform you that your message could not",
        "be delivered to one or more recipients. It's attached below.",
        "",
        "For further assistance, please send mail to postmaster.",
        "",
        "If you do so, please include this problem report. You can",
        "delete your own text from the attached returned message.",
        "",
        "                   The mail system",
        "",
        *human,
        "",
        f"--{boundary}",
        "Content-Description: Delivery report",
        "Content-Type: message/delivery-status",
        "",
        f"Reporting-MTA: dns; {myhostname}",
        f"X-Postfix-Queue-ID: {env.queue_id}",
        f"X-Postfix-Sender: rfc822; {_addr(env.sender)}",
        f"Arrival-Date: {email.utils.formatdate(env.arrival, localtime=True)}",
    ]
    for f in failed:
        lines += ["", f"Final-Recipient: rfc822; {_addr(f.address)}"]
        original = original_recipient_field(f.orcpt) if f.orcpt else None
        if original:
            lines.append(f"Original-Recipient: {original}")
        lines += ["Action: failed", f"Status: {f.dsn}"]
        if f.remote_mta:
            lines.append(f"Remote-MTA: dns; {_clean(f.remote_mta)}")
        lines.append(f"Diagnostic-Code: {_clean(f.diagnostic or 'X-Postfix; ' + f.reason)}")
    lines += [
        "",
        f"--{boundary}",
        "Content-Description: Undelivered Message Headers",
        "Content-Type: text/rfc822-headers",
        "",
    ]
    body = "\n".join(lines).encode("utf-8", "replace") + b"\n"
    headers = original_headers.replace(b"\r\n", b"\n")
    if headers and not headers.endswith(b"\n"):
        headers += b"\n"
    return body + headers + f"\n--{boundary}--\n".encode()


class Bouncer:
    """Queues DSNs through cleanup. `cleanup` is hardener.mta.cleanup.service.Cleanup."""

    def __init__(self, cleanup: object, myhostname: str) -> None:
        self.cleanup = cleanup
        self.myhostname = myhostname

    async def bounce(self, env: Envelope, failed: list[FailedRecipient],
                     open_content: Callable[[], BinaryIO]) -> str | None:
        """Queue one DSN for `failed`; returns its queue id, or None when none may be sent.

        Raises the cleanup's error when the DSN cannot be queued (the caller keeps the message).
        """
        notify = {r.address: r for r in env.recipients}
        failed = [f for f in failed
                  if f.address not in notify or wants_failure_notice(notify[f.address])]
        if not failed:
            return None
        refusal = should_bounce(env)
        if refusal is not None:
            log.info(f"{env.queue_id}: not sending a non-delivery notification: {refusal}")
            return None
        content = open_content()
        try:
            headers = read_original_headers(content)
        finally:
            content.close()
        dsn = build_dsn(env, failed, headers, myhostname=self.myhostname)
        writer = self.cleanup.begin("", [env.sender], client=("localhost", "127.0.0.1"),
                                    protocol="local", flags=["bounce"])
        try:
            await writer.write(dsn)
            qid = await writer.commit()
        except BaseException:
            await writer.abort()
            raise
        log.info(f"{env.queue_id}: sender non-delivery notification: {qid}")
        return qid
