"""Group commit for cleanup: queue files made durable in parallel threads before the 250.

Each message goes to one thread of a pool, which creates tmp/QID (small messages were kept in
memory until now), writes it, fsyncs it and renames it into incoming/, all in a row: every syscall
hands the GIL over, so a message visits one thread only. One fsync of incoming/ then covers every
rename done before it started (group commit without a batch barrier); the journal also merges the
concurrent fsyncs of the files. Nothing here runs in the event loop thread.

SECURITY: writes only tmp/ and incoming/ of the queue; runs as the mail owner (or as root in the
pickup helper, handing files to the mail owner).
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CommitItem:
    """One message to make durable. fd < 0: create the file from `header` + `body` first."""

    tmp_path: Path
    target: Path
    fd: int
    header: bytes = b""
    body: bytes = b""
    owner: tuple[int, int] | None = None
    write_pending: bool = False     # fd is open but header and body are still to be written
    error: OSError | None = field(default=None)


def create_file(path: Path, owner: tuple[int, int] | None) -> int:
    """Create a queue file exclusively, mode 0600 (owned by the mail owner)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    if owner is not None:
        try:
            os.fchown(fd, *owner)
        except OSError:
            os.close(fd)
            os.unlink(path)
            raise
    return fd


def write_all(fd: int, data: bytes) -> None:
    """os.write until everything is written (short writes happen on a full disk)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def make_durable(item: CommitItem) -> bool:
    """One item, in one thread from start to end (every syscall is a GIL hand-off, so the fewer
    threads an item visits the better): create and write the file if not done yet, fsync it,
    close it, rename it into incoming/. Returns True when it is in incoming/ (the caller fsyncs
    the directory); otherwise item.error is set and the temporary file is gone."""
    try:
        if item.fd < 0:
            item.fd = create_file(item.tmp_path, item.owner)
        if item.write_pending:
            write_all(item.fd, item.header + item.body)
        os.fsync(item.fd)
    except OSError as exc:
        item.error = exc
    if item.fd >= 0:
        try:
            os.close(item.fd)
        except OSError:
            pass
        item.fd = -1
    if item.error is None:
        try:
            os.rename(item.tmp_path, item.target)
            return True
        except OSError as exc:
            item.error = exc
    _unlink(item.tmp_path)
    return False


class GroupCommitter:
    """Makes queue files durable, each message in one thread of a pool, with no batch barrier.

    Each thread creates, writes, fsyncs and renames its message; then incoming/ is fsynced once
    for every rename done before that fsync started (a message whose rename an fsync in progress
    may have missed waits for the next one, which one of the waiting threads starts). Concurrent
    fsyncs of the files are merged by the file system journal into shared commits.
    """

    def __init__(self, incoming: Path, threads: int = 32) -> None:
        self.incoming = incoming
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cleanup-commit")
        self._dir_fd = -1   # incoming/, opened once: two syscalls (GIL hand-offs) less a message
        self._cond = threading.Condition()
        self._renamed = 0   # renames into incoming/ so far (a sequence number)
        self._synced = 0    # every rename up to this number is durable (or failed, see below)
        self._syncing = False
        self._failures: list[tuple[int, int, OSError]] = []  # (after, up to, error) of failed fsyncs

    async def commit(self, item: CommitItem) -> None:
        """Make `item` durable in incoming/ (file and directory fsynced); raises its OSError."""
        await asyncio.wrap_future(self.pool.submit(self._commit_one, item))
        if item.error is not None:
            raise item.error

    def _commit_one(self, item: CommitItem) -> None:
        if not make_durable(item):
            return
        with self._cond:
            self._renamed += 1
            seq = self._renamed
        error = self._sync_directory(seq)
        if error is not None:
            item.error = error
            _unlink(item.target)

    def _sync_directory(self, seq: int) -> OSError | None:
        """Return once an fsync of incoming/ that started after rename number `seq` has ended;
        its error, if it failed."""
        with self._cond:
            while self._synced < seq:
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing = True
                after, upto = self._synced, self._renamed
                self._cond.release()
                error = None
                try:
                    os.fsync(self._incoming_fd())
                except OSError as exc:
                    error = exc
                finally:
                    self._cond.acquire()
                if error is not None:
                    self._failures = self._failures[-63:] + [(after, upto, error)]
                self._synced, self._syncing = upto, False
                self._cond.notify_all()
            for after, upto, error in self._failures:
                if after < seq <= upto:
                    return error
        return None

    def _incoming_fd(self) -> int:
        if self._dir_fd < 0:   # called by the one thread that is syncing
            self._dir_fd = os.open(self.incoming, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self._dir_fd

    def close(self) -> None:
        """Stop the commit threads (waits for the commits in progress)."""
        self.pool.shutdown(wait=True)
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1
