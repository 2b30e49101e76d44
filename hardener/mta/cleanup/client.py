"""smtpd's end of its cleanup channel: the same begin/write/commit/abort as an in-process Cleanup.

A message's records are gathered while the client sends it and go out when MAX_DATA bytes are
waiting or at COMMIT, so a small message costs one packet to cleanup and one reply back. commit()
returns the queue id once cleanup has made the file durable (its OK), raises CleanupError on its
FAIL, after COMMIT_TIMEOUT, or when cleanup restarted meanwhile (smtpd answers 451; the message may
then have been queued anyway: the client's retry makes a duplicate, as with Postfix).

At start smtpd sends RESET with a fresh nonce: cleanup forgets the streams of the smtpd process this
one replaced, and every reply before the RESET_ACK carrying our nonce belongs to that old process
and is dropped.

SECURITY: runs in the jailed smtpd; opens no file. What it sends, cleanup checks.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
from collections import deque
from collections.abc import Iterable

from hardener.mta.cleanup import channel as ch
from hardener.mta.cleanup.service import CleanupError
from hardener.mta.maillog import get_logger
from hardener.mta.queue.file import Recipient

log = get_logger("smtpd")

COMMIT_TIMEOUT = 3600.0    # Postfix's ipc_timeout: how long smtpd waits for cleanup's answer
PACKETS_PER_WAKEUP = 256


class CleanupClient:
    """Sends messages to the cleanup process over one channel; matches its replies."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._next_id = secrets.randbits(32)
        self._pending: dict[int, asyncio.Future[str]] = {}
        self._open: dict[int, RemoteWriter] = {}
        self._out: deque[tuple[bytes, asyncio.Future[None] | None]] = deque()
        self._writing = False
        self._nonce = secrets.token_bytes(8)
        self._synced = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read replies in `loop`; RESET the channel (see the module docstring)."""
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self._readable)
        self._enqueue([ch.record(ch.RESET, 0, self._nonce)], None)

    def close(self) -> None:
        """Stop reading and writing (process shutdown); waiting commits fail."""
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            if self._writing:
                self._loop.remove_writer(self.sock.fileno())
        self._fail_all("smtpd is stopping")

    def begin(self, sender: str, recipients: Iterable[Recipient | str], *,
              client: tuple[str, str] = ("localhost", "127.0.0.1"), helo: str = "",
              protocol: str = "ESMTP", queue_id: str) -> "RemoteWriter":
        """Start a message (nothing is sent until content or COMMIT)."""
        rcpts = [r if isinstance(r, Recipient) else Recipient(r) for r in recipients]
        if not rcpts:
            raise ValueError("a message needs at least one recipient")
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF or 1
        sid = self._next_id
        meta = {"queue_id": queue_id, "sender": sender, "client_name": client[0],
                "client_address": client[1], "helo": helo, "protocol": protocol}
        head = [ch.record(ch.BEGIN, sid, json.dumps(meta).encode())]
        head += [ch.record(ch.RCPT, sid, json.dumps([r.address, r.orcpt, r.notify]).encode())
                 for r in rcpts]
        return RemoteWriter(self, sid, queue_id, head)

    # -- sending ----------------------------------------------------------------------------------

    async def send(self, records: list[bytes]) -> None:
        """Send `records` (packed into packets) in order; waits while the channel is full."""
        packets = _pack(records)
        if not self._out:
            while packets:
                try:
                    self.sock.send(packets[0])
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    raise CleanupError(f"cleanup channel: {exc.strerror or exc}") from None
                packets.pop(0)
            if not packets:
                return
        assert self._loop is not None
        done: asyncio.Future[None] = self._loop.create_future()
        self._enqueue(packets, done)
        await done

    def _enqueue(self, packets: list[bytes], done: asyncio.Future[None] | None) -> None:
        for i, packet in enumerate(packets):
            self._out.append((packet, done if i == len(packets) - 1 else None))
        if self._loop is not None and not self._writing:
            self._writing = True
            self._loop.add_writer(self.sock.fileno(), self._flush)

    def _flush(self) -> None:
        while self._out:
            packet, done = self._out[0]
            try:
                self.sock.send(packet)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning(f"cleanup channel: {exc.strerror or exc}")
                if done is not None and not done.done():
                    done.set_exception(CleanupError("cleanup channel broken"))
                self._out.popleft()
                continue
            self._out.popleft()
            if done is not None and not done.done():
                done.set_result(None)
        self._writing = False
        assert self._loop is not None
        self._loop.remove_writer(self.sock.fileno())

    # -- replies ----------------------------------------------------------------------------------

    def _readable(self) -> None:
        try:
            packets, _gone = ch.recv_packets(self.sock, PACKETS_PER_WAKEUP)
            for packet in packets:
                for kind, sid, payload in ch.records(packet):
                    self._reply(kind, sid, payload)
        except ch.ChannelError as exc:
            log.warning(f"cleanup channel: {exc}")
            self._fail_all("bad reply from cleanup")

    def _reply(self, kind: int, sid: int, payload: bytes) -> None:
        if kind == ch.RESET_ACK:
            self._synced = self._synced or payload == self._nonce
            return
        if not self._synced:
            return                      # for the smtpd process this one replaced
        if kind == ch.RESTART:
            self._fail_all("cleanup restarted")
            return
        future = self._pending.pop(sid, None)
        if future is None or future.done():
            return
        if kind == ch.OK:
            future.set_result(payload.decode("ascii", "replace"))
        else:
            future.set_exception(CleanupError(payload.decode("utf-8", "replace")))

    def _fail_all(self, reason: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CleanupError(reason))
        self._pending.clear()
        for writer in self._open.values():
            writer.broken = reason
        self._open.clear()


class RemoteWriter:
    """One message on its way to cleanup (the interface of cleanup.service.CleanupWriter)."""

    def __init__(self, client: CleanupClient, sid: int, queue_id: str,
                 head: list[bytes]) -> None:
        self.client = client
        self.sid = sid
        self.queue_id = queue_id
        self._records = head
        self._waiting = sum(len(r) for r in head)
        self._sent = False
        self._closed = False
        self.broken: str | None = None

    async def write(self, chunk: bytes) -> None:
        """Queue content; sent when MAX_DATA bytes are waiting."""
        self._check()
        for start in range(0, len(chunk), ch.MAX_DATA):
            piece = chunk[start:start + ch.MAX_DATA]
            self._records.append(ch.record(ch.DATA, self.sid, piece))
            self._waiting += len(piece)
        if self._waiting >= ch.MAX_DATA:
            await self._send(self._take())

    async def commit(self) -> str:
        """Send what waits and COMMIT; the queue id once cleanup made the file durable."""
        self._check()
        self._closed = True
        client = self.client
        assert client._loop is not None
        future: asyncio.Future[str] = client._loop.create_future()
        client._pending[self.sid] = future
        try:
            await self._send(self._take() + [ch.record(ch.COMMIT, self.sid)])
            return await asyncio.wait_for(future, COMMIT_TIMEOUT)
        except asyncio.TimeoutError:
            raise CleanupError("timeout waiting for cleanup") from None
        finally:
            client._pending.pop(self.sid, None)
            client._open.pop(self.sid, None)

    async def abort(self) -> None:
        """Throw the message away (nothing to tell cleanup if nothing was sent)."""
        self._discard()

    def _discard(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._records = []
        self.client._open.pop(self.sid, None)
        if self._sent and self.broken is None:
            self.client._enqueue([ch.record(ch.ABORT, self.sid)], None)

    def _check(self) -> None:
        if self.broken is not None:
            self._discard()
            raise CleanupError(self.broken)
        if self._closed:
            raise CleanupError("write after commit/abort")

    def _take(self) -> list[bytes]:
        records, self._records, self._waiting = self._records, [], 0
        return records

    async def _send(self, records: list[bytes]) -> None:
        if not self._sent:
            self._sent = True
            self.client._open[self.sid] = self
        try:
            await self.client.send(records)
        except CleanupError:
            self._closed = True
            raise


def _pack(records: list[bytes]) -> list[bytes]:
    """Records joined into as few packets of at most MAX_PACKET bytes as fit."""
    packets: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for rec in records:
        if current and size + len(rec) > ch.MAX_PACKET:
            packets.append(b"".join(current))
            current, size = [], 0
        current.append(rec)
        size += len(rec)
    if current:
        packets.append(b"".join(current))
    return packets
