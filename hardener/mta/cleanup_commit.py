"""Group commit for cleanup: one worker job makes a whole batch of queue files durable.

Messages that finish while a batch is being written wait for the next batch. A job, in a worker
thread, creates tmp/QID for the small messages (kept in memory until now), fsyncs every file of
the batch in parallel (the journal merges concurrent fsyncs), renames each into incoming/, then
fsyncs incoming/ once for the whole batch. Nothing here runs in the event loop thread.

SECURITY: writes only tmp/ and incoming/ of the queue; runs as the mail owner (or as root in the
pickup helper, handing files to the mail owner).
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from hardener.mta.queue_layout import fsync_dir


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


def _fsync(fd: int) -> OSError | None:
    try:
        os.fsync(fd)
    except OSError as exc:
        return exc
    return None


def commit_batch(items: list[CommitItem], incoming: Path,
                 fsync_pool: ThreadPoolExecutor | None = None) -> None:
    """Worker-thread job: write every item, fsync them all (in parallel: the file system journal
    merges concurrent fsyncs into one commit), rename each into incoming/, fsync incoming/ once.

    Sets item.error for items that failed; on a failed directory fsync every renamed item is taken
    back out of incoming/ and marked failed (the client will retry; nothing is left half-durable).
    """
    for item in items:   # 1. small messages: write their file now (create it if not done yet)
        if item.fd >= 0 and not item.write_pending:
            continue
        try:
            if item.fd < 0:
                item.fd = create_file(item.tmp_path, item.owner)
            write_all(item.fd, item.header + item.body)   # one syscall: each costs a GIL hand-off
        except OSError as exc:
            item.error = exc
    live = [item for item in items if item.error is None]
    fds = [item.fd for item in live]
    if fsync_pool is not None and len(fds) > 1:   # 2. fsync
        errors = list(fsync_pool.map(_fsync, fds))
    else:
        errors = [_fsync(fd) for fd in fds]
    for item, error in zip(live, errors):
        item.error = error
    renamed: list[CommitItem] = []
    for item in items:   # 3. rename the durable ones into incoming/
        if item.fd >= 0:
            os.close(item.fd)
            item.fd = -1
        if item.error is None:
            try:
                os.rename(item.tmp_path, item.target)
                renamed.append(item)
                continue
            except OSError as exc:
                item.error = exc
        _unlink(item.tmp_path)
    if not renamed:
        return
    try:   # 4. one directory fsync for the batch
        fsync_dir(incoming)
    except OSError as exc:
        for item in renamed:
            item.error = exc
            _unlink(item.target)


class GroupCommitter:
    """Collects commit requests from the event loop and runs them in batches.

    Up to `max_inflight` batches run at once: a message that arrives while a batch is being
    written starts the next one instead of waiting for it (the journal merges their fsyncs).
    """

    def __init__(self, incoming: Path, executor: ThreadPoolExecutor, max_batch: int = 256,
                 fsync_threads: int = 16, max_inflight: int = 2) -> None:
        self.incoming = incoming
        self.executor = executor
        self.fsync_pool = ThreadPoolExecutor(max_workers=fsync_threads,
                                             thread_name_prefix="cleanup-fsync")
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self.waiting: list[tuple[CommitItem, asyncio.Future[None]]] = []
        self.inflight = 0

    async def commit(self, item: CommitItem) -> None:
        """Make `item` durable in incoming/; raises its OSError on failure."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self.waiting.append((item, fut))
        if self.inflight < self.max_inflight:
            self.inflight += 1
            loop.create_task(self._run())
        await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.waiting:
                batch = self.waiting[:self.max_batch]
                del self.waiting[:self.max_batch]
                items = [item for item, _ in batch]
                try:
                    await loop.run_in_executor(self.executor, commit_batch, items, self.incoming,
                                               self.fsync_pool)
                except BaseException as exc:  # the job itself failed: fail every item
                    for item in items:
                        item.error = item.error or OSError(str(exc))
                for item, fut in batch:
                    if fut.done():
                        continue
                    if item.error is None:
                        fut.set_result(None)
                    else:
                        fut.set_exception(item.error)
        finally:
            self.inflight -= 1

    def close(self) -> None:
        """Stop the fsync threads."""
        self.fsync_pool.shutdown(wait=True)
