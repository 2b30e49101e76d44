"""Reopening maillog_file after log rotation, in processes that no longer run as root.

The problem: the daemon opens maillog_file as root before it drops to the mail owner, and the file
stays root's (mode 0600, as Postfix's postlogd creates it). After logrotate renames it away,
`hardener mta reload` (SIGHUP) must make every process write to a fresh file at the same path, but
the mail owner may neither create root's file nor open it.

The design: the root master holds the root end of one Unix socketpair (SOCK_SEQPACKET: one
request, one reply, descriptor and status together) per unprivileged process: "smtpd SERVICE" (one
per smtpd service), "cleanup", "qmgr" and "pickup"; each child keeps only its own end (keep_only),
which a restarted child inherits again. The master reopens its own log directly (it is root). On
SIGHUP an unprivileged process sends one byte on its own channel. The root end opens the path
fixed when the channels were made, never a path from the request, with safe_open.open_append
(O_WRONLY|O_APPEND|O_CREAT|O_NOFOLLOW, mode 0600, a regular file with one link), reopens its own
log on it, and sends the descriptor back with SCM_RIGHTS (socket.send_fds), or one error line.
The unprivileged process waits for the answer (at most REPLY_TIMEOUT; the root side answers at
once) and swaps the descriptor into its log sink (maillog.reopen(fd)), so the lines it logs next
are in the fresh file.

Why not Postfix's own design, where every process sends each log record over a socket to postlogd,
which runs as root and alone holds the file: passing the descriptor keeps the hot path a direct,
batched write (hardener batches log lines for throughput), and keeps the root side to one operation
on one fixed path. The unprivileged side gains nothing it did not hold before (an append descriptor
to the current log); it cannot name another file. The root side is a few functions with no state
but the path and the sockets, so it moves unchanged into the root master.

SECURITY: the root side trusts nothing from the channel: a request is one byte whose value is
ignored, each is answered once, and a channel is dropped at EOF (its process is gone).
"""

from __future__ import annotations

import asyncio
import os
import socket

from hardener.mta import maillog
from hardener.mta.safe_open import open_append

LOG_MODE = 0o600          # Postfix's logwriter creates maillog_file 0600
_MAX_REPLY = 512
REPLY_TIMEOUT = 5.0       # seconds an unprivileged process waits for the root side

log = maillog.get_logger("master")


class _State:
    """The channels of this process (inherited across fork, like the log sink itself)."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.root_ends: dict[str, socket.socket] = {}
        self.client_ends: dict[str, socket.socket] = {}


_state = _State()


def make_channels(path: str, names: tuple[str, ...]) -> None:
    """Create the channels (as root, before forking the root side); `path` is maillog_file."""
    close()
    _state.path = path
    for name in names:
        root_end, client_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        _state.root_ends[name], _state.client_ends[name] = root_end, client_end


def keep_only(name: str) -> None:
    """In a child after the fork: close the root ends and every other process's end."""
    for sock in _state.root_ends.values():
        sock.close()
    _state.root_ends.clear()
    for other in [n for n in _state.client_ends if n != name]:
        _state.client_ends.pop(other).close()


def close() -> None:
    """Close every channel end this process holds."""
    for sock in (*_state.root_ends.values(), *_state.client_ends.values()):
        sock.close()
    _state.root_ends.clear()
    _state.client_ends.clear()


# -- root side ---------------------------------------------------------------------------------

def serve(loop: asyncio.AbstractEventLoop) -> None:
    """Answer reopen requests on every root end from `loop` (in the process that stays root)."""
    for sock in _state.root_ends.values():
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), _answer, sock, loop)


def _answer(sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
    try:
        request = sock.recv(16)
    except BlockingIOError:
        return
    except OSError:
        request = b""
    if not request:   # the unprivileged process exited
        loop.remove_reader(sock.fileno())
        return
    assert _state.path is not None
    try:
        fd = open_append(_state.path, LOG_MODE)
    except OSError as exc:
        log.warning(f"cannot reopen {_state.path}: {exc.strerror}")
        _reply(sock, f"cannot open {_state.path}: {exc.strerror}".encode(errors="replace"))
        return
    try:
        maillog.reopen(os.dup(fd))   # this process's own lines go to the fresh file too
        _reply(sock, b"ok", fd)
    finally:
        os.close(fd)


def _reply(sock: socket.socket, text: bytes, fd: int | None = None) -> None:
    try:
        socket.send_fds(sock, [text[:_MAX_REPLY]], [fd] if fd is not None else [])
    except OSError:
        pass   # the requester is gone; nothing to tell


# -- unprivileged side -------------------------------------------------------------------------

def reopen_log(name: str, timeout: float = REPLY_TIMEOUT) -> None:
    """Reopen this process's log after rotation (SIGHUP): through channel `name` when the root
    side holds one, else directly (a daemon that never was root owns its log file). Waits at most
    `timeout` seconds for the root side (it answers at once: one open()), so the lines logged
    next, "reload -- ..." first, are in the fresh file; failures are logged as warnings."""
    sock = _state.client_ends.get(name)
    if sock is None:
        try:
            maillog.reopen()
        except OSError as exc:
            log.warning(f"cannot reopen the log file: {exc.strerror}")
        return
    _drain(sock)
    try:
        sock.settimeout(timeout)
        sock.send(b"R")
        text, fds, _flags, _addr = socket.recv_fds(sock, _MAX_REPLY, 1)
    except TimeoutError:
        log.warning(f"cannot reopen the log file: no answer within {timeout:.0f}s")
        return
    except OSError as exc:
        log.warning(f"cannot reopen the log file: {exc.strerror}")
        return
    if fds:
        for extra in fds[1:]:
            os.close(extra)
        maillog.reopen(fds[0])
    else:
        why = text.decode(errors="replace") or "the root side is gone (restart the daemon)"
        log.warning(f"cannot reopen the log file: {why}")


def _drain(sock: socket.socket) -> None:
    """Discard a reply that came after an earlier request timed out (bounded)."""
    sock.setblocking(False)
    for _ in range(8):
        try:
            _text, fds, _flags, _addr = socket.recv_fds(sock, _MAX_REPLY, 1)
        except OSError:
            return
        for fd in fds:
            os.close(fd)
        if not _text and not fds:
            return
