"""Group commit for cleanup: queue files made durable in parallel threads before the 250.

Each message goes to one thread of a pool, which creates tmp/QID (small messages were kept in
memory until now), writes it, fsyncs it, renames it into incoming/ and fsyncs incoming/, all in a
row: every syscall hands the GIL over, so a message visits one thread only. The journal merges the
concurrent fsyncs of many threads into shared commits (group commit without a batch barrier).
Nothing here runs in the event loop thread.

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


_TIMES = []  # TEMPPROF
from hardener.mta.maillog import get_logger as _gl  # TEMPPROF
_LOG = _gl('cleanup')  # TEMPPROF


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
    t_work: float = 0.0  # TEMPPROF


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

    Concurrent fsyncs (of the files and of incoming/) are merged by the file system journal into
    shared commits: that is the group commit, and a message never waits for a batch ahead of it.
    """

    def __init__(self, incoming: Path, threads: int = 16) -> None:
        self.incoming = incoming
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cleanup-commit")
        self._dir_fd = -1   # incoming/, opened once: two syscalls (GIL hand-offs) less a message
        self._dir_lock = threading.Lock()

    async def commit(self, item: CommitItem) -> None:
        """Make `item` durable in incoming/ (file and directory fsynced); raises its OSError."""
        import time as _t  # TEMPPROF
        t0 = _t.perf_counter()  # TEMPPROF
        await asyncio.wrap_future(self.pool.submit(self._commit_one, item))
        _TIMES.append((_t.perf_counter() - t0, item.t_work))  # TEMPPROF
        if len(_TIMES) >= 1000:  # TEMPPROF
            a = sorted(x for x, _ in _TIMES); b = sorted(y for _, y in _TIMES)
            _LOG.warning(f"TEMPPROF n={len(a)} total p50={a[len(a)//2]*1e3:.2f} p90={a[int(len(a)*.9)]*1e3:.2f} work p50={b[len(b)//2]*1e3:.2f} p90={b[int(len(b)*.9)]*1e3:.2f}")
            _TIMES.clear()
        if item.error is not None:
            raise item.error

    def _commit_one(self, item: CommitItem) -> None:
        import time as _t  # TEMPPROF
        t0 = _t.perf_counter()  # TEMPPROF
        try:
            self._commit_one_x(item)
        finally:
            item.t_work = _t.perf_counter() - t0  # TEMPPROF

    def _commit_one_x(self, item: CommitItem) -> None:
        if not make_durable(item):
            return
        try:
            os.fsync(self._incoming_fd())
        except OSError as exc:
            item.error = exc
            _unlink(item.target)

    def _incoming_fd(self) -> int:
        with self._dir_lock:
            if self._dir_fd < 0:
                self._dir_fd = os.open(self.incoming, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            return self._dir_fd

    def close(self) -> None:
        """Stop the commit threads (waits for the commits in progress)."""
        self.pool.shutdown(wait=True)
        if _TIMES:  # TEMPPROF
            import statistics
            a = sorted(x for x, _ in _TIMES); b = sorted(y for _, y in _TIMES)
            with open(f"/tmp/mtawork/commit_{os.getpid()}.txt", "w") as f:
                f.write(f"n={len(a)} total p50={a[len(a)//2]*1e3:.2f} p90={a[int(len(a)*.9)]*1e3:.2f} work p50={b[len(b)//2]*1e3:.2f} p90={b[int(len(b)*.9)]*1e3:.2f}\n")
        with self._dir_lock:
            if self._dir_fd >= 0:
                os.close(self._dir_fd)
                self._dir_fd = -1
