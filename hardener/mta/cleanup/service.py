"""cleanup: the only writer of queue files.

A message arrives as chunks (from smtpd while the client sends it, or from pickup). The writer streams
it to tmp/QID, never holding more than one message header in memory (header_size_limit, see
cleanup_headers); commit() fsyncs the file,
renames it into incoming/ and fsyncs incoming/ before the caller may answer 250. Concurrent commits
share directory fsyncs (group commit): every rename that happened before an fsync of incoming/ started
is made durable by it.

SECURITY: trusts its caller (smtpd or pickup, in the same process) for the envelope, nothing in the
content. Runs as the mail owner after the privilege drop. Writes only under queue_directory tmp/ and
incoming/. Any write error (disk full included) raises CleanupError, removes the temporary file and
leaves nothing in incoming/.
"""

from __future__ import annotations

import email.utils
import itertools
import os
import random
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hardener.mta.address_form import printable_external
from hardener.mta.maillog import get_logger
from hardener.mta.queue.file import Envelope, Recipient, format_envelope
from hardener.mta.cleanup.commit import CommitItem, GroupCommitter, create_file, write_all
from hardener.mta.cleanup.headers import HeaderReader
from hardener.mta.queue.layout import QueueLayout

log = get_logger("cleanup")

HEADER_LIMIT = 102400  # Postfix's header_size_limit default: a longer header is truncated
RECORD_LIMIT = 2048    # Postfix's line_length_limit default: the unit a header is stored in
_WANTED_NAMES = {"date", "resent-date", "message-id", "resent-message-id", "from", "resent-from"}
SPILL = 65536  # content kept in memory before the temporary file is created (bounded)
_SIZE_WIDTH = 20  # the size field is written zero-padded, then patched in place at commit
_counter = itertools.count(secrets.randbelow(4096))
_random = random.Random(secrets.randbits(64))  # uniqueness, not secrecy: no syscall per id


def _reseed_queue_ids() -> None:
    """Forked children (smtpd, qmgr's bounces, pickup) must not share the parent's id sequence."""
    global _counter
    _counter = itertools.count(secrets.randbelow(4096))
    _random.seed(secrets.randbits(64))


os.register_at_fork(after_in_child=_reseed_queue_ids)


class CleanupError(Exception):
    """The message could not be queued (disk full, I/O error): the client gets 451 4.3.0."""


def new_queue_id() -> str:
    """A fresh queue id: microseconds since the epoch (12 hex), a counter and random bits (5 hex).

    The counter makes ids from one process unique even within one microsecond; the time keeps them
    unique across restarts; the random part keeps two processes apart.
    """
    micros = time.time_ns() // 1000
    tail = ((next(_counter) & 0xFFF) << 8) | _random.getrandbits(8)
    return f"{micros & 0xFFFFFFFFFFFF:012X}{tail:05X}"


@dataclass(frozen=True)
class CleanupSettings:
    """What cleanup needs from main.cf."""

    myhostname: str
    myorigin: str
    header_limit: int = HEADER_LIMIT
    record_limit: int = RECORD_LIMIT
    recipient_limit: int = 1000      # smtpd_recipient_limit: what the cleanup process accepts
    message_size_limit: int = 0      # 0: no limit

    @classmethod
    def from_settings(cls, settings: Any) -> "CleanupSettings":
        """From the MTA's settings (hardener.mta.config.settings.MtaSettings)."""
        views = [settings, *getattr(settings, "services", {}).values()]   # -o overrides too
        sizes = [v.message_size_limit for v in views]
        return cls(settings.myhostname, settings.myorigin, settings.header_size_limit,
                   settings.line_length_limit, max(v.recipient_limit for v in views),
                   0 if 0 in sizes else max(sizes))


class Cleanup:
    """Queue file writer shared by smtpd and pickup (one per daemon)."""

    def __init__(self, layout: QueueLayout, settings: CleanupSettings,
                 on_commit: Callable[[str], None] | None = None, *, commit_threads: int = 32,
                 owner: tuple[int, int] | None = None) -> None:
        self.layout = layout
        # A cleanup running as root (the pickup helper) hands its files to the mail owner.
        self.owner = owner if owner is not None and os.geteuid() == 0 else None
        self.settings = settings
        self.on_commit = on_commit
        self.committer = GroupCommitter(layout.dir("incoming"), threads=commit_threads)

    def begin(self, sender: str, recipients: Iterable[Recipient | str], *,
              client: tuple[str, str] = ("localhost", "127.0.0.1"), helo: str = "",
              protocol: str = "ESMTP", local_submission: bool = False,
              flags: Iterable[str] = (), queue_id: str | None = None,
              full_name: str | None = None, submitter: str | None = None) -> "CleanupWriter":
        """Start a queue file; raises CleanupError if the temporary file cannot be created.

        `queue_id` lets smtpd use the id it already logged; `full_name` (sendmail -F) and
        `submitter` (the local user) only matter with local_submission.
        """
        rcpts = [r if isinstance(r, Recipient) else Recipient(r) for r in recipients]
        if not rcpts:
            raise ValueError("a message needs at least one recipient")
        env = Envelope(queue_id=queue_id or new_queue_id(), arrival=time.time(), sender=sender,
                       recipients=rcpts, client_name=client[0], client_address=client[1],
                       helo=helo, protocol=protocol, size=0, flags=frozenset(flags))
        return CleanupWriter(self, env, local_submission, full_name, submitter)

    def close(self) -> None:
        """Stop the commit and fsync threads (daemon shutdown)."""
        self.committer.close()


class CleanupWriter:
    """One message being written; use write() for content chunks, then commit() or abort()."""

    def __init__(self, cleanup: Cleanup, env: Envelope, local_submission: bool,
                 full_name: str | None, submitter: str | None) -> None:
        self.cleanup = cleanup
        self.env = env
        self.local = local_submission
        self.full_name = full_name
        self.submitter = submitter
        self.queue_id = env.queue_id
        self.tmp_path = cleanup.layout.path("tmp", self.queue_id)
        self.size = 0
        self.message_id: str | None = None
        self._headers_done = False
        self._started = False
        self._reader = HeaderReader(cleanup.settings.header_limit, cleanup.settings.record_limit)
        self._names: set[str] = set()
        self._cr_pending = False
        self._closed = False
        self._buf = bytearray()
        self._spilled = False
        self.fd = -1
        # tmp/QID is created when the content outgrows SPILL (a large message) or by the commit
        # job (a small one): no thread hand-off per message while it arrives

    # -- content ---------------------------------------------------------------------------------

    async def write(self, chunk: bytes) -> None:
        """Append content (LF line endings, dot-unstuffed); header block is held until complete."""
        self.write_now(chunk)

    def write_now(self, chunk: bytes) -> None:
        """write() without the coroutine (the cleanup process calls it from its reader)."""
        if self._closed:
            raise CleanupError("write after commit/abort")
        try:
            self._write_chunk(chunk)
        except BaseException:
            self._discard()  # a failed message leaves no temporary file behind
            raise

    def _write_chunk(self, chunk: bytes) -> None:
        if self.local:
            chunk = self._normalise_local(chunk)
        if self._headers_done:
            self._write_content(chunk)
            return
        headers, body = self._reader.feed(chunk)
        self._take_headers(headers)
        if body is not None:
            self._end_headers(body)

    def _normalise_local(self, chunk: bytes) -> bytes:
        # sendmail input: CRLF and bare LF both mean end of line; on disk it is LF
        if self._cr_pending:
            chunk = b"\r" + chunk
            self._cr_pending = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._cr_pending = True
        return chunk.replace(b"\r\n", b"\n")

    def _take_headers(self, headers: list[bytes]) -> None:
        """Write complete headers (after our Received: header, written first)."""
        if not self._started:
            self._started = True
            self._write_content(self._received_header())
        out = []
        for raw in headers:
            name = raw.split(b":", 1)[0].strip().decode("ascii", "replace").lower()
            if name in _WANTED_NAMES:
                self._names.add(name)
            if name == "message-id" and self.message_id is None:
                self.message_id = raw.split(b":", 1)[1].strip().decode("ascii", "replace")
            if self.local and name == "bcc":
                continue
            out.append(raw)
        self._write_content(b"".join(out))

    def _end_headers(self, body: bytes) -> None:
        self._take_headers([])
        self._headers_done = True
        if self._reader.truncated:
            log.info(f"{self.queue_id}: message header length exceeds safety limit "
                     f"(header_size_limit {self.cleanup.settings.header_limit}): truncated")
        if self.local:
            self._write_content(b"".join(self._missing_headers(self._names)))
        self._write_content(body)

    def _received_header(self) -> bytes:
        env = self.env
        s = self.cleanup.settings
        date = email.utils.formatdate(env.arrival, localtime=True)
        if self.local:
            who = f" (hardener, from userid {self.submitter})" if self.submitter else ""
            text = f"Received: by {s.myhostname}{who}\n\tid {env.queue_id}; {date}\n"
        else:
            helo = _printable(env.helo) or _printable(env.client_name)
            text = (f"Received: from {helo} ({_printable(env.client_name)} "
                    f"[{_printable(env.client_address)}])\n"
                    f"\tby {s.myhostname} with {env.protocol} id {env.queue_id}")
            if len(env.recipients) == 1:
                text += f"\n\tfor <{printable_external(env.recipients[0].address)}>"
            text += f"; {date}\n"
        return text.encode("ascii", "replace")

    def _missing_headers(self, names: set[str]) -> list[bytes]:
        # As Postfix's cleanup does for local submissions (always_add_missing_headers).
        s = self.cleanup.settings
        added: list[bytes] = []
        if "date" not in names and "resent-date" not in names:
            added.append(f"Date: {email.utils.formatdate(self.env.arrival, localtime=True)}\n"
                         .encode())
        if "message-id" not in names and "resent-message-id" not in names:
            stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(self.env.arrival))
            self.message_id = f"<{stamp}.{self.env.queue_id}@{s.myhostname}>"
            added.append(f"Message-Id: {self.message_id}\n".encode())
        if "from" not in names and "resent-from" not in names:
            sender = self.env.sender or f"MAILER-DAEMON@{s.myorigin}"
            if "@" not in sender:
                sender = f"{sender}@{s.myorigin}"
            name = f" ({_printable(self.full_name)})" if self.full_name else ""
            added.append(f"From: {_printable(sender)}{name}\n".encode("ascii", "replace"))
        return added

    def _write_content(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        self._buf += data
        if len(self._buf) >= SPILL:
            self._spill()

    def _envelope_header(self, padded: bool) -> bytes:
        self.env.size = self.size
        header = format_envelope(self.env)
        if padded:  # size unknown yet: patched in place at commit
            header = header.replace(f"size: {self.size}\n".encode(),
                                    b"size: " + b"0" * _SIZE_WIDTH + b"\n")
            self._size_offset = header.index(b"size: ") + len(b"size: ")
        return header

    def _take_fd(self) -> int:
        """The temporary file's descriptor (created on first use; OSError if that fails)."""
        if self.fd < 0:
            self.fd = create_file(self.tmp_path, self.cleanup.owner)
        return self.fd

    def _spill(self) -> None:
        """Move the buffered content to the temporary file (a large message)."""
        try:
            fd = self._take_fd()
            if not self._spilled:
                write_all(fd, self._envelope_header(padded=True))
                self._spilled = True
            write_all(fd, self._buf)
        except OSError as exc:
            raise CleanupError(f"write {self.queue_id}: {exc.strerror}") from exc
        self._buf = bytearray()

    # -- end -------------------------------------------------------------------------------------

    async def commit(self) -> str:
        """Make the message durable in incoming/ and return its queue id (CleanupError on failure)."""
        if self._closed:
            raise CleanupError("commit after commit/abort")
        cleanup = self.cleanup
        target = cleanup.layout.path("incoming", self.queue_id)
        try:
            if self._cr_pending:
                self._cr_pending = False
                self._write_content(b"\n")
            if not self._headers_done:
                headers, body = self._reader.finish()
                self._take_headers(headers)
                self._end_headers(body)
            if not self._spilled:
                item = CommitItem(self.tmp_path, target, -1,
                                  self._envelope_header(padded=False), bytes(self._buf),
                                  owner=cleanup.owner, write_pending=True)
                # the committer creates, writes, fsyncs and closes it
            else:
                try:
                    write_all(self.fd, self._buf)
                    size_field = str(self.size).rjust(_SIZE_WIDTH, "0").encode()
                    os.pwrite(self.fd, size_field, self._size_offset)
                except OSError as exc:
                    raise CleanupError(f"write {self.queue_id}: {exc.strerror}") from exc
                item = CommitItem(self.tmp_path, target, self.fd)
                self.fd = -1  # the committer closes it
            self._buf = bytearray()
            try:
                await cleanup.committer.commit(item)
            except OSError as exc:
                raise CleanupError(f"commit {self.queue_id}: {exc.strerror or exc}") from exc
        except BaseException:
            self._discard()
            raise
        self._closed = True
        if self.message_id:
            log.info(f"{self.queue_id}: message-id={self.message_id}")
        if cleanup.on_commit is not None:
            cleanup.on_commit(self.queue_id)
        return self.queue_id

    async def abort(self) -> None:
        """Throw the message away (client gone, size exceeded, rejected)."""
        self._discard()

    def _discard(self) -> None:
        self._closed = True
        self._buf = bytearray()
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1
        try:
            os.unlink(self.tmp_path)
        except OSError:
            pass


def _printable(text: str | None) -> str:
    if not text:
        return ""
    return "".join(c if c.isprintable() and c not in "\r\n" else "?" for c in text)
