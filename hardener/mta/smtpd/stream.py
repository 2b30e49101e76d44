"""smtpd's DATA phase: stream the message from the socket to cleanup in bounded chunks.

Reads at most READ_CHUNK bytes at a time, runs them through DataParser (end-of-data, dot-unstuffing,
bare <LF>/<CR>) and hands the content to the cleanup writer, so memory per session stays bounded
whatever the message size. Oversized messages, bare newlines in reject mode and write errors stop
the writing at once but read on to the end-of-data before replying (RFC 5321 4.2.5), so the reply
stays in step with the client.

Time limits, as Postfix's smtpd: each read must return within smtpd_timeout; with
smtpd_per_request_deadline (on under stress) the DATA phase has one deadline instead, which each read
shortens by the time it waited and extends by (bytes read)/smtpd_min_data_rate, never beyond
smtpd_timeout, so a client that trickles the message slower than smtpd_min_data_rate is cut off.

SECURITY: raw network input; runs in the smtpd session as the mail owner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hardener.mta import metrics
from hardener.mta.cleanup.service import CleanupError, new_queue_id
from hardener.mta.maillog import get_logger
from hardener.mta.smtpd.data import DataParser

if TYPE_CHECKING:
    from hardener.mta.smtpd.server import HardenedSMTP

log = get_logger("smtpd")
READ_CHUNK = 65536


async def receive_data(sess: "HardenedSMTP") -> bool:
    """Handle DATA after its checks passed; returns True when the message was queued."""
    s = sess.s
    if sess.queue_id is None:  # not reachable (the first accepted RCPT sets it); never desync

        sess.queue_id = new_queue_id()
    try:
        writer = sess.ctx.cleanup.begin(
            sess.sender or "", sess.recipients, client=(sess.client_name, sess.client_addr),
            helo=sess.helo or "", protocol=sess.protocol, queue_id=sess.queue_id)
    except CleanupError as exc:
        log.warning(f"{sess.queue_id}: queue file write error: {exc}")
        await sess.reply("451 4.3.0 Error: queue file write error")
        return False
    sess._writer_cleanup = writer
    await sess.push("354 End data with <CR><LF>.<CR><LF>")
    reject_bare = sess.reject_bare_newline
    limit = s.message_size_limit
    parser = DataParser()
    failure: str | None = None
    size = 0
    reader = sess._reader
    limits = sess.limits
    budget = float(limits.timeout)
    sess.data_bytes = 0
    while True:
        if budget <= 0:      # the deadline passed while data was still buffered
            sess._timeout_cb()
            raise ConnectionResetError("DATA deadline exceeded")
        sess._reset_timeout(budget)
        try:
            chunk = await reader.read(READ_CHUNK)
        finally:
            waited = sess._disarm()
        if not chunk:
            raise ConnectionResetError("EOF during DATA")
        sess.data_bytes += len(chunk)
        if limits.per_request_deadline:
            budget = min(float(limits.timeout),
                         budget - waited + len(chunk) / limits.min_data_rate)
        content, leftover = parser.feed(chunk)
        if failure is None:
            if reject_bare and (parser.bare_lf or parser.bare_cr):
                failure = "bare"
            elif limit and size + len(content) > limit:
                failure = "size"
            else:
                try:
                    await writer.write(content)
                    size += len(content)
                except CleanupError as exc:
                    log.warning(f"{sess.queue_id}: queue file write error: {exc}")
                    failure = "write"
            if failure is not None:
                await writer.abort()
        if leftover is not None:
            if leftover:
                reader._buffer[0:0] = leftover  # type: ignore[attr-defined]  # pipelined commands
            break
    sess.stage = "END-OF-MESSAGE"
    sess._writer_cleanup = None
    rcpt = sess.recipients[0].address if sess.recipients else None
    if failure is None:
        try:
            qid = await writer.commit()
        except CleanupError as exc:
            log.warning(f"{sess.queue_id}: queue file write error: {exc}")
            failure = "write"
        else:
            sess._reset_transaction()
            sess.errors = sess.junk = 0   # Postfix forgives earlier errors once mail got through
            await sess.push(f"250 2.0.0 Ok: queued as {qid}")
            metrics.count_accepted(sess.listener.service)
            return True
    if failure == "size":
        reply = "552 5.3.4 Error: message file too big"
    elif failure == "bare":
        what = "<LF>" if parser.bare_lf else "<CR>"
        log.info(f"bare {what} received after DATA from {sess.client}")
        reply = f"{s.bare_newline_reject_code} 5.5.2 Error: bare {what} received"
    else:
        reply = "451 4.3.0 Error: queue file write error"
    sess._log_reject("END-OF-MESSAGE", reply, rcpt)
    sess._reset_transaction()
    await sess.reply(reply)
    return False
