"""Mail log in Postfix's line format, shared by every MTA component.

    Nov 25 17:26:43 mx hardener/smtpd[1234]: connect from client.example[192.0.2.1]

Destinations (any combination): a file (main.cf maillog_file), syslog (/dev/log, facility mail),
stderr. Each gets the time stamp its reader expects: a file and stderr get what Postfix's postlogd
writes to maillog_file (`Dec 07 23:09:14`, day zero-padded); syslog gets the RFC 3164 stamp glibc's
syslog(3) sends (`Dec  7 23:09:14`, day space-padded), so the syslog daemon parses it. Month names are
always English (Postfix's daemons run in the C locale), whatever the locale of the process.
Every component gets its logger with `get_logger("smtpd")`; `configure()` is called once by the
daemon. Warnings are logged as "warning: ...", as Postfix does, so log tools count them.

SECURITY: logs text that came from the network (addresses, HELO names); `_clean()` replaces control
characters so a client cannot forge log lines.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import time
from typing import Callable, TextIO

from hardener.mta.safe_open import open_append

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FACILITY_MAIL = 2 << 3
FLUSH_INTERVAL = 0.05  # seconds: batched info lines reach the file at most this late
_SEVERITY = {"info": 6, "warning": 4, "error": 3, "fatal": 2, "panic": 0}

Clock = Callable[[], float]


def format_stamp(moment: float, destination: str = "file") -> str:
    """The time stamp of a log line written at `moment` (seconds since the epoch, local time).

    destination "file" (maillog_file, stderr): Postfix's postlogd form, `Dec 07 23:09:14`;
    "syslog": the RFC 3164 form glibc's syslog(3) sends, `Dec  7 23:09:14`.
    """
    tm = time.localtime(moment)
    day = f"{tm.tm_mday:2d}" if destination == "syslog" else f"{tm.tm_mday:02d}"
    return f"{_MONTHS[tm.tm_mon - 1]} {day} {tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"


class _Sink:
    """Where log lines go; one per process, shared by every component's MailLog."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hostname = socket.gethostname().split(".")[0]
        self.syslog_name = "hardener"
        self.file: TextIO | None = None
        self.file_path: str | None = None
        self.to_stderr = False
        self.syslog_sock: socket.socket | None = None
        self.batched = False
        self._flush_pending = False
        self._last_flush = float("-inf")
        self.clock: Clock = time.time
        self._stamp_second = -1
        self._stamp_file = ""
        self._stamp_syslog = ""

    def _defer_flush(self) -> bool:
        """Schedule a flush: at the end of this event-loop iteration, but no sooner than
        FLUSH_INTERVAL after the previous one (under load, one write per interval, not per
        iteration: every write from the loop thread is a GIL hand-off to the cleanup threads)."""
        if self._flush_pending:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._flush_pending = True
        wait = self._last_flush + FLUSH_INTERVAL - loop.time()
        if wait > 0:
            loop.call_later(wait, self._flush_now)
        else:
            loop.call_soon(self._flush_now)
        return True

    def _flush_now(self) -> None:
        with self.lock:
            self._flush_pending = False
            try:
                self._last_flush = asyncio.get_running_loop().time()
            except RuntimeError:
                pass
            if self.file is not None:
                try:
                    self.file.flush()
                except OSError:
                    pass

    def _stamps(self) -> tuple[str, str]:
        """(file stamp, syslog stamp) for now; localtime() once per second, not per line."""
        now = int(self.clock())
        if now != self._stamp_second:
            self._stamp_second = now
            self._stamp_file = format_stamp(now, "file")
            self._stamp_syslog = format_stamp(now, "syslog")
        return self._stamp_file, self._stamp_syslog

    def emit(self, component: str, severity: str, text: str) -> None:
        stamp, syslog_stamp = self._stamps()
        tag = f"{self.syslog_name}/{component}[{os.getpid()}]"
        line = f"{stamp} {self.hostname} {tag}: {text}"
        with self.lock:
            if self.file is not None:
                try:
                    self.file.write(line + "\n")
                    # In the daemon, info lines go out together at the end of the event-loop
                    # iteration, at most one write per FLUSH_INTERVAL; warnings and worse at once.
                    if severity != "info" or not self.batched or not self._defer_flush():
                        self.file.flush()
                except OSError:
                    pass
            if self.to_stderr:
                try:
                    sys.stderr.write(line + "\n")
                    sys.stderr.flush()
                except OSError:
                    pass
            if self.syslog_sock is not None:
                pri = _FACILITY_MAIL | _SEVERITY.get(severity, 6)
                msg = f"<{pri}>{syslog_stamp} {tag}: {text}".encode("utf-8", "replace")
                try:
                    self.syslog_sock.send(msg)
                except OSError:
                    pass


_sink = _Sink()


def _clean(text: str) -> str:
    # Postfix prints control characters in log lines as '?'
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else "?" for c in text)


class MailLog:
    """Logger of one component (smtpd, cleanup, qmgr, smtp, local, bounce, pickup, master)."""

    def __init__(self, component: str) -> None:
        self.component = component

    def info(self, text: str) -> None:
        """Log `text` as is (Postfix's msg_info)."""
        _sink.emit(self.component, "info", _clean(text))

    def warning(self, text: str) -> None:
        """Log 'warning: text'."""
        _sink.emit(self.component, "warning", "warning: " + _clean(text))

    def error(self, text: str) -> None:
        """Log 'error: text'."""
        _sink.emit(self.component, "error", "error: " + _clean(text))

    def fatal(self, text: str) -> None:
        """Log 'fatal: text' (the caller exits)."""
        _sink.emit(self.component, "fatal", "fatal: " + _clean(text))


def get_logger(component: str) -> MailLog:
    """The logger for `component` (e.g. "smtpd"): lines read hardener/smtpd[PID]: ..."""
    return MailLog(component)


def configure(*, maillog_file: str | None = None, use_syslog: bool = False,
              use_stderr: bool = False, hostname: str | None = None,
              syslog_name: str = "hardener", clock: Clock | None = None,
              syslog_socket: str = "/dev/log") -> None:
    """Set where log lines go. Re-callable (reload); opens the file in append mode.

    `clock` (seconds since the epoch) replaces time.time for the stamps: tests pass a fixed one.

    The file is opened before the privilege drop, so it may stay root-owned (see _open_file).
    """
    with _sink.lock:
        if _sink.file is not None and maillog_file != _sink.file_path:
            _sink.file.close()
            _sink.file = None
        if maillog_file and _sink.file is None:
            _sink.file = _open_file(maillog_file)
            _sink.file_path = maillog_file
        _sink.to_stderr = use_stderr
        if use_syslog and _sink.syslog_sock is None:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.connect(syslog_socket)
                _sink.syslog_sock = sock
            except OSError:
                _sink.syslog_sock = None
        elif not use_syslog and _sink.syslog_sock is not None:
            _sink.syslog_sock.close()
            _sink.syslog_sock = None
        if hostname:
            _sink.hostname = hostname.split(".")[0]
        _sink.syslog_name = syslog_name
        if clock is not None:
            _sink.clock = clock
            _sink._stamp_second = -1


def set_batched(batched: bool) -> None:
    """Batch info lines to the log file: one write per event-loop iteration (daemon only)."""
    with _sink.lock:
        _sink.batched = batched
        if not batched and _sink.file is not None:
            _sink.file.flush()


def flush() -> None:
    """Write out batched log lines."""
    with _sink.lock:
        if _sink.file is not None:
            try:
                _sink.file.flush()
            except OSError:
                pass


def reopen(fd: int | None = None) -> None:
    """Reopen the log file after rotation: on `fd` when given (a descriptor the part that stays
    root opened for this process, see maillog_reopen), else by opening maillog_file again (which
    only works for a process that may create and open it)."""
    with _sink.lock:
        if _sink.file is None or not _sink.file_path or _sink.file_path == STDOUT_PATH:
            if fd is not None:
                os.close(fd)
            return
        if fd is not None:
            fresh = os.fdopen(fd, "a", encoding="utf-8", errors="replace")
        else:
            fresh = _open_file(_sink.file_path)
        try:
            _sink.file.close()  # only once the new one is open: never lose the log
        except OSError:
            pass
        _sink.file = fresh


STDOUT_PATH = "/dev/stdout"   # Postfix's maillog_file for containers: the process's stdout


def _open_file(path: str) -> TextIO:
    """maillog_file opened as Postfix's logwriter does (safe_open O_CREAT|O_WRONLY|O_APPEND, mode
    0600): a symlink, a FIFO or a hard link there is refused (OSError), never written through."""

    fd = os.dup(1) if path == STDOUT_PATH else open_append(path, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8", errors="replace")
