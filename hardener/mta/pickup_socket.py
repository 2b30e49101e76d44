"""pickup's local submission socket, QUEUE/public/pickup: what Postfix's setgid `postdrop` is.

Postfix lets every local user write into maildrop/ (mode 0730, group postdrop) through the setgid
program postdrop; a Python program cannot be setgid. Here the unprivileged pickup process itself
accepts submissions on a Unix stream socket anyone may connect to, and writes the maildrop file:

    client (`hardener sendmail`, any uid)          pickup (the mail owner)
    envelope block, as in a maildrop file   --->   SO_PEERCRED -> uid (from the kernel)
    message bytes, then shutdown(SHUT_WR)   --->   maildrop/tNAME (O_EXCL|O_NOFOLLOW, 0600),
                                                   envelope re-written with `uid: N`, fsync,
                                            <---   rename to NAME: "ok NAME"  (or "error CODE text")

Why this is safe:
- The submitter's uid comes from the kernel (SO_PEERCRED, taken at connect), never from the client:
  a `uid:` line the client sends is refused, and the envelope pickup writes is built from the parsed
  values, never copied.
- maildrop/ belongs to the mail owner, mode 0700: no local user can plant, read, link or remove
  anything there (the world-writable 1733 maildrop, and pickup reading files users own, are gone).
  The socket lives in root's public/ (mode 0711: others can reach a known name, not list or
  create), bound by root before the fork, so nobody can put another socket in its place.
- The client gets nothing but one reply line; what it may send is bounded: the envelope block
  (MAX_HEADER), the recipients (MAX_RECIPIENTS, 1,000), the message (message_size_limit), the
  connections at once (MAX_CONNECTIONS, the others are told to retry) and the time (READ_TIMEOUT
  per read, SESSION_TIMEOUT in all). The client reads the whole message before it connects, so a
  slow typist never holds a connection.
- Nothing half-written: "ok" only after fsync and rename; on any error the temporary is removed.

Reply codes are sendmail's (sysexits.h): 65 data error (the message is refused), 75 temporary
failure (retry later).

SECURITY: runs as the mail owner (optionally chrooted into the queue directory); touches only
maildrop/ below the queue directory it is given.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path

from hardener.mta.address_form import externalize
from hardener.mta.maillog import get_logger
from hardener.mta.pickup import (MAX_HEADER, MaildropError, MaildropWriteError,
                                 new_maildrop_file, parse_maildrop_header, write_maildrop_header)
from hardener.mta.safe_open import open_dir

log = get_logger("pickup")

SOCKET_NAME = "pickup"          # in the queue directory's public/, as Postfix's public/pickup
MAX_CONNECTIONS = 20            # submissions handled at once; more are told to retry (75)
READ_TIMEOUT = 60.0             # seconds one read from the client may take
SESSION_TIMEOUT = 300.0         # seconds one whole submission may take
MAX_REPLY = 512                 # bytes of the reply line (the client reads no more)
EX_DATAERR, EX_TEMPFAIL = 65, 75
_CHUNK = 65536
_UCRED = struct.Struct("3i")    # struct ucred: pid, uid, gid


class SubmissionRefused(Exception):
    """A submission pickup does not accept: the reply's sysexits code and one line."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


def socket_path(queue_directory: str | os.PathLike[str]) -> Path:
    """Where pickup listens: QUEUE/public/pickup."""
    return Path(queue_directory) / "public" / SOCKET_NAME


def bind_pickup_socket(public_dir: str | os.PathLike[str]) -> socket.socket:
    """Bind and listen on public_dir/pickup, mode 0666 (every local user may submit).

    Called by root before the pickup process is forked. `public_dir` must belong to this user and
    be writable by nobody else (the queue layout makes it root's, mode 0711), so the stale socket
    removed here and the one bound cannot be swapped by another user; OSError otherwise.
    """
    path = Path(public_dir) / SOCKET_NAME
    dfd = open_dir(public_dir)
    try:
        st = os.fstat(dfd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise OSError(errno.EPERM, "owned or writable by another user (refused)",
                          str(public_dir))
        try:
            os.unlink(SOCKET_NAME, dir_fd=dfd)
        except FileNotFoundError:
            pass
    finally:
        os.close(dfd)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o666)
        sock.listen(MAX_CONNECTIONS)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end, as the kernel recorded it at connect()."""
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return _UCRED.unpack(data)[1]


class PickupServer:
    """Accepts local submissions on a bound socket and writes them into maildrop/."""

    def __init__(self, sock: socket.socket, maildrop: str | os.PathLike[str], *, size_limit: int,
                 on_queued: Callable[[], None] | None = None) -> None:
        self.sock = sock
        self.maildrop = Path(maildrop)
        self.size_limit = size_limit
        self.on_queued = on_queued
        self.active = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Start accepting on the event loop."""
        self._server = await asyncio.start_unix_server(self._session, sock=self.sock,
                                                       limit=MAX_HEADER + 2)

    async def close(self) -> None:
        """Stop accepting; submissions in progress finish (each is bounded by SESSION_TIMEOUT)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            uid = peer_uid(sock)
        except OSError:
            writer.close()
            return
        self.active += 1
        try:
            if self.active > MAX_CONNECTIONS:
                raise SubmissionRefused(EX_TEMPFAIL, "too many local submissions at once")
            try:
                name = await asyncio.wait_for(self.receive(reader, uid), SESSION_TIMEOUT)
            except asyncio.TimeoutError:
                raise SubmissionRefused(EX_TEMPFAIL, "timeout reading the message") from None
            reply = f"ok {name}\n"
            if self.on_queued is not None:
                self.on_queued()
        except SubmissionRefused as exc:
            log.warning(f"uid={uid}: local submission refused: {exc}")
            reply = f"error {exc.code} {exc}\n"
        finally:
            self.active -= 1
        try:
            writer.write(reply.encode("ascii", "replace")[:MAX_REPLY])
            await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    async def receive(self, reader: asyncio.StreamReader, uid: int) -> str:
        """Read one submission from `reader` and write it into maildrop/ for `uid`; returns the
        maildrop file name. SubmissionRefused with its code for anything not accepted."""
        try:
            block = await asyncio.wait_for(reader.readuntil(b"\n\n"), READ_TIMEOUT)
        except asyncio.LimitOverrunError:
            raise SubmissionRefused(EX_DATAERR, "envelope too large") from None
        except asyncio.IncompleteReadError:
            raise SubmissionRefused(EX_DATAERR, "truncated envelope") from None
        except asyncio.TimeoutError:
            raise SubmissionRefused(EX_TEMPFAIL, "timeout reading the envelope") from None
        try:
            envelope = parse_maildrop_header(block[:-2])
        except MaildropError as exc:
            raise SubmissionRefused(EX_DATAERR, str(exc)) from None
        if envelope.uid is not None:
            raise SubmissionRefused(EX_DATAERR, "a client may not name its uid")
        # built from the parsed values, in the external form pickup reads back (never copied)
        header = write_maildrop_header(externalize(envelope.sender),
                                       [externalize(r) for r in envelope.recipients],
                                       envelope.full_name, uid=uid)
        return await self._write(reader, header)

    async def _write(self, reader: asyncio.StreamReader, header: bytes) -> str:
        try:
            with new_maildrop_file(self.maildrop) as (out, name):
                out.write(header)
                size = 0
                while True:
                    try:
                        chunk = await asyncio.wait_for(reader.read(_CHUNK), READ_TIMEOUT)
                    except asyncio.TimeoutError:
                        raise SubmissionRefused(EX_TEMPFAIL, "timeout reading the message") \
                            from None
                    if not chunk:
                        break
                    size += len(chunk)
                    if self.size_limit and size > self.size_limit:
                        raise SubmissionRefused(EX_DATAERR, "message file too big")
                    out.write(chunk)
        except MaildropWriteError as exc:
            what = {"open": "cannot open maildrop", "create": "cannot create a maildrop file",
                    "write": "cannot write the maildrop file"}[exc.stage]
            raise SubmissionRefused(EX_TEMPFAIL, f"{what}: {exc.error.strerror}") from None
        return name
