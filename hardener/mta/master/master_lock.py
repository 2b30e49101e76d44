"""QUEUE/pid/master.lock: one daemon per queue directory, as Postfix's master.lock.

The master takes an exclusive POSIX record lock (fcntl F_SETLK) on pid/master.lock before it
touches the queue and holds it for its whole life; a second daemon on the same queue finds it
taken and refuses in one line. The kernel drops the lock when the master exits, however it exits
(kill -9 included), so a stale pid file never blocks a start. A record lock, not flock(): it
belongs to the master process alone, so its children (forked, some running as the mail owner)
neither hold nor can release it, and F_GETLK tells anyone the holder's pid without taking the lock
(`hardener mta status`, which needs no write access to the file: it is mode 0644).

The master must never open and close master.lock a second time (closing any descriptor of a
locked file releases the process's lock on it): only acquire() opens it, once.

SECURITY: pid/ is root's and nobody else can write it (checked here): root opens master.lock with
O_NOFOLLOW and trusts an existing one only when it is a regular file of its own with one link;
anything else (a link or file the mail owner left in the mail-owner-owned pid/ of an older
version) is removed and the file created anew (O_EXCL).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from pathlib import Path

from hardener.errors import ConfigError
from hardener.mta.safe_open import UnsafeFileError, create_exclusive, open_dir, open_regular

LOCK_FILE = "master.lock"
LOCK_MODE = 0o644
_FLOCK = struct.Struct("hhqqi4x")   # struct flock on Linux (LP64): type, whence, start, len, pid


def lock_path(queue_directory: str | os.PathLike[str]) -> Path:
    """QUEUE/pid/master.lock."""
    return Path(queue_directory) / "pid" / LOCK_FILE


def acquire(queue_directory: str | os.PathLike[str]) -> int:
    """Lock master.lock for this process and return its descriptor (keep it open: closing it
    releases the lock); ConfigError naming the holder's pid when another daemon holds it."""
    path = lock_path(queue_directory)
    try:
        dfd = open_dir(path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot open: {exc.strerror}", file=str(path.parent)) from None
    try:
        st = os.fstat(dfd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise ConfigError("owned or writable by another user: cannot hold the daemon's lock "
                              "there (run `hardener mta check` as root)", file=str(path.parent))
        fd = _open_own(dfd, str(path))
    finally:
        os.close(dfd)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            os.close(fd)
            raise ConfigError(f"cannot lock: {exc.strerror}", file=str(path)) from None
        pid = _holder(fd)
        os.close(fd)
        raise ConfigError(f"the daemon is already running on this queue"
                          f"{f' (pid {pid})' if pid else ''}", file=str(path)) from None
    return fd


def _open_own(dfd: int, shown: str) -> int:
    """master.lock opened read-write: an existing regular file of ours, else a fresh one."""
    for _ in range(3):   # bounded: nobody else can write pid/, so one retry is plenty
        try:
            fd = open_regular(LOCK_FILE, os.O_RDWR, dir_fd=dfd)
        except FileNotFoundError:
            pass
        except UnsafeFileError:
            os.unlink(LOCK_FILE, dir_fd=dfd)   # a link or FIFO: removed, never followed
            continue
        else:
            if os.fstat(fd).st_uid == os.geteuid():
                return fd
            os.close(fd)
            os.unlink(LOCK_FILE, dir_fd=dfd)
        try:
            fd = create_exclusive(LOCK_FILE, LOCK_MODE, dir_fd=dfd, flags=os.O_RDWR)
        except FileExistsError:
            continue
        os.fchmod(fd, LOCK_MODE)
        return fd
    raise ConfigError("keeps changing: cannot create the lock file", file=shown)


def holder(queue_directory: str | os.PathLike[str]) -> int | None:
    """The pid of the daemon holding the queue's lock, or None when nobody holds it (or there is
    no lock file). Takes no lock; never call it in the master process itself."""
    try:
        fd = open_regular(lock_path(queue_directory))
    except OSError:
        return None
    try:
        return _holder(fd)
    finally:
        os.close(fd)


def _holder(fd: int) -> int | None:
    query = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    try:
        kind, _whence, _start, _len, pid = _FLOCK.unpack(fcntl.fcntl(fd, fcntl.F_GETLK, query))
    except OSError:
        return None
    return None if kind == fcntl.F_UNLCK else pid
