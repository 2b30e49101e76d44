"""cleanup's end of the smtpd channels: untrusted records in, queue files and one reply out.

Every field smtpd sends is checked before it reaches a queue file (Postfix's cleanup trusts its
clients as little): the queue id's format and that no queued file has it yet, addresses (length,
no control characters), the recipient count (smtpd_recipient_limit), the envelope's size
(MAX_ENVELOPE_BYTES of the queue file format), the client address (an IP address), name, HELO and
protocol, the content size (message_size_limit), the number of open streams per channel. A bad
record fails its stream (the COMMIT then gets FAIL, smtpd answers 451); a packet that does not
parse resets the channel. The reply to COMMIT is sent only after the group commit (file fsync,
rename, fsync of incoming/, hardener/mta/cleanup/commit.py) finished.

SECURITY: runs as the mail owner, chrooted into the queue directory; reads only its channels,
writes only tmp/ and incoming/ (through hardener/mta/cleanup/service.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import socket
from collections import deque
from dataclasses import dataclass, field

from hardener.mta.cleanup import channel as ch
from hardener.mta.cleanup.service import Cleanup, CleanupError, CleanupWriter
from hardener.mta.maillog import get_logger
from hardener.mta.queue.file import MAX_ENVELOPE_BYTES, Recipient
from hardener.mta.queue.layout import valid_queue_id

log = get_logger("cleanup")

MAX_STREAMS = 4096            # open messages per channel (smtpd's sessions are fewer)
MAX_ADDRESS = 2048            # bytes of one address (Postfix: line_length_limit)
MAX_HELO = 1024
MAX_NAME = 255
PACKETS_PER_WAKEUP = 64       # fairness between channels
QUEUES_WITH_IDS = ("incoming", "active", "deferred", "hold")
_PROTOCOL_RE = re.compile(r"[A-Z0-9]{1,16}")
_NOTIFY_RE = re.compile(r"[A-Z,]{1,32}")
_BEGIN_KEYS = {"queue_id", "sender", "client_name", "client_address", "helo", "protocol"}


class _Invalid(Exception):
    """A field that fails its check: the stream fails with this reason."""


@dataclass
class _Stream:
    generation: int
    meta: dict
    recipients: list[Recipient] = field(default_factory=list)
    envelope_bytes: int = 0
    writer: CleanupWriter | None = None
    failed: str | None = None
    size: int = 0


def _printable(text: object, limit: int, what: str, empty_ok: bool = True) -> str:
    if not isinstance(text, str) or len(text.encode("utf-8", "surrogatepass")) > limit:
        raise _Invalid(f"{what}: not a string of at most {limit} bytes")
    if not empty_ok and not text:
        raise _Invalid(f"{what}: empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise _Invalid(f"{what}: control character")
    return text


class ChannelServer:
    """Serves one smtpd service's channel with the process's one Cleanup."""

    def __init__(self, name: str, sock: socket.socket, cleanup: Cleanup,
                 recipient_limit: int, size_limit: int) -> None:
        self.name = name
        self.sock = sock
        self.cleanup = cleanup
        self.recipient_limit = recipient_limit
        self.size_limit = size_limit
        self.streams: dict[int, _Stream] = {}
        self.generation = 0
        self._out: deque[bytes] = deque()
        self._writing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task] = set()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Tell smtpd this cleanup is new (it fails what it waits for), then serve."""
        self._loop = loop
        self._send(ch.record(ch.RESTART, 0))
        loop.add_reader(self.sock.fileno(), self._readable)

    def stop(self) -> None:
        """Stop reading; abort open streams (their clients get no 250)."""
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            if self._writing:
                self._loop.remove_writer(self.sock.fileno())
        self._forget_all()

    async def drain(self) -> None:
        """Wait for the commits in progress (their replies are sent)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- input ------------------------------------------------------------------------------------

    def _readable(self) -> None:
        try:
            packets, _gone = ch.recv_packets(self.sock, PACKETS_PER_WAKEUP)
        except ch.ChannelError as exc:
            log.warning(f"channel {self.name}: {exc}; open messages dropped")
            self._forget_all()
            return
        for packet in packets:
            try:
                for kind, stream, payload in ch.records(packet):
                    self._record(kind, stream, payload)
            except ch.ChannelError as exc:
                log.warning(f"channel {self.name}: {exc}; open messages dropped")
                self._forget_all()
                return

    def _record(self, kind: int, sid: int, payload: bytes) -> None:
        if kind == ch.RESET:
            self._forget_all()
            self._send(ch.record(ch.RESET_ACK, 0, payload[:16]))
            return
        if kind == ch.BEGIN:
            old = self.streams.pop(sid, None)
            if old is not None:
                self._discard(old)
                log.warning(f"channel {self.name}: stream {sid} begun twice")
            if len(self.streams) + len(self._tasks) >= MAX_STREAMS:
                stream = _Stream(self.generation, {}, failed="too many open messages")
            else:
                stream = _Stream(self.generation, {})
                try:
                    stream.meta = self._begin(payload)
                except _Invalid as exc:
                    stream.failed = str(exc)
            self.streams[sid] = stream
            return
        stream = self.streams.get(sid)
        if kind == ch.COMMIT:
            if stream is None:
                self._send(ch.record(ch.FAIL, sid, b"unknown message"))
                return
            del self.streams[sid]
            if stream.failed is not None:
                self._discard(stream)
                self._fail(sid, stream.failed)
                return
            task = asyncio.get_running_loop().create_task(self._commit(sid, stream))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        if stream is None:
            return      # DATA or ABORT of a message this cleanup never saw (restarted): ignored
        if kind == ch.ABORT:
            del self.streams[sid]
            self._discard(stream)
        elif stream.failed is not None:
            return
        elif kind == ch.RCPT:
            try:
                self._rcpt(stream, payload)
            except _Invalid as exc:
                stream.failed = str(exc)
        elif kind == ch.DATA:
            self._data(stream, payload)
        else:
            stream.failed = f"unknown record type {kind}"

    def _begin(self, payload: bytes) -> dict:
        try:
            meta = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise _Invalid("envelope: not JSON") from None
        if not isinstance(meta, dict) or set(meta) != _BEGIN_KEYS:
            raise _Invalid("envelope: wrong fields")
        qid = meta["queue_id"]
        if not isinstance(qid, str) or not valid_queue_id(qid):
            raise _Invalid("queue id: bad format")
        if any(os.path.lexists(self.cleanup.layout.path(q, qid)) for q in QUEUES_WITH_IDS):
            raise _Invalid(f"queue id {qid} is already queued")
        _printable(meta["sender"], MAX_ADDRESS, "sender")
        _printable(meta["client_name"], MAX_NAME, "client name", empty_ok=False)
        try:
            ipaddress.ip_address(_printable(meta["client_address"], 64, "client address"))
        except ValueError:
            raise _Invalid("client address: not an IP address") from None
        _printable(meta["helo"], MAX_HELO, "helo")
        if not isinstance(meta["protocol"], str) or not _PROTOCOL_RE.fullmatch(meta["protocol"]):
            raise _Invalid("protocol: bad name")
        return meta

    def _rcpt(self, stream: _Stream, payload: bytes) -> None:
        if stream.writer is not None:
            raise _Invalid("recipient after content")
        if len(stream.recipients) >= self.recipient_limit:
            raise _Invalid(f"more than {self.recipient_limit} recipients")
        stream.envelope_bytes += len(payload)
        if stream.envelope_bytes > MAX_ENVELOPE_BYTES:
            raise _Invalid("envelope too large")
        try:
            item = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise _Invalid("recipient: not JSON") from None
        if not isinstance(item, list) or len(item) != 3:
            raise _Invalid("recipient: wrong fields")
        address = _printable(item[0], MAX_ADDRESS, "recipient", empty_ok=False)
        orcpt = None if item[1] is None else _printable(item[1], MAX_ADDRESS, "ORCPT")
        notify = item[2]
        if notify is not None and (not isinstance(notify, str)
                                   or not _NOTIFY_RE.fullmatch(notify)):
            raise _Invalid("NOTIFY: bad value")
        stream.recipients.append(Recipient(address, orcpt, notify))

    def _data(self, stream: _Stream, chunk: bytes) -> None:
        if len(chunk) > ch.MAX_DATA:
            stream.failed = "content record too large"
        elif self.size_limit and stream.size + len(chunk) > self.size_limit:
            stream.failed = "message file too big"
        else:
            try:
                stream.size += len(chunk)
                self._writer(stream).write_now(chunk)
                return
            except (CleanupError, _Invalid) as exc:
                stream.failed = str(exc)
        self._discard(stream)

    def _writer(self, stream: _Stream) -> CleanupWriter:
        if stream.writer is None:
            if not stream.recipients:
                raise _Invalid("no recipients")
            m = stream.meta
            stream.writer = self.cleanup.begin(
                m["sender"], stream.recipients, client=(m["client_name"], m["client_address"]),
                helo=m["helo"], protocol=m["protocol"], queue_id=m["queue_id"])
        return stream.writer

    async def _commit(self, sid: int, stream: _Stream) -> None:
        try:
            qid = await self._writer(stream).commit()
        except (CleanupError, _Invalid) as exc:
            self._discard(stream)
            if stream.generation == self.generation:
                self._fail(sid, str(exc))
            return
        if stream.generation == self.generation:   # else smtpd restarted: nobody waits for it
            self._send(ch.record(ch.OK, sid, qid.encode("ascii")))

    def _fail(self, sid: int, reason: str) -> None:
        log.warning(f"channel {self.name}: message rejected: {reason}")
        self._send(ch.record(ch.FAIL, sid, reason.encode("utf-8", "replace")[:512]))

    def _discard(self, stream: _Stream) -> None:
        if stream.writer is not None:
            stream.writer._discard()

    def _forget_all(self) -> None:
        for stream in self.streams.values():
            self._discard(stream)
        self.streams.clear()
        self.generation += 1

    # -- output -----------------------------------------------------------------------------------

    def _send(self, packet: bytes) -> None:
        if not self._out:
            try:
                self.sock.send(packet)
                return
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                log.warning(f"channel {self.name}: cannot reply: {exc.strerror or exc}")
                return
        self._out.append(packet)   # bounded: one reply per stream, MAX_STREAMS streams
        if not self._writing and self._loop is not None:
            self._writing = True
            self._loop.add_writer(self.sock.fileno(), self._flush)

    def _flush(self) -> None:
        while self._out:
            try:
                self.sock.send(self._out[0])
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning(f"channel {self.name}: cannot reply: {exc.strerror or exc}")
            self._out.popleft()
        self._writing = False
        assert self._loop is not None
        self._loop.remove_writer(self.sock.fileno())
