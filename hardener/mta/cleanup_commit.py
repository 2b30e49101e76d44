"""Group commit for cleanup: one worker job makes a whole batch of queue files durable.

Messages that finish while a batch is being written wait for the next batch. A job, in a worker
thread, does for every message: create tmp/QID (small messages were kept in memory until now) or
finish the spilled file, fsync it, rename it into incoming/; then one fsync of incoming/ for the
batch. The first fsync of a batch commits the file system journal for all of them, so the others are
nearly free; the directory fsync is shared. Nothing here touches the event loop thread.

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


def commit_batch(items: list[CommitItem], incoming: Path) -> None:
    """Worker-thread job: write, fsync, rename each item, then fsync incoming/ once.

    Sets item.error for items that failed; on a failed directory fsync every renamed item is taken
    back out of incoming/ and marked failed (the client will retry; nothing is left half-durable).
    """
    renamed: list[CommitItem] = []
    for item in items:
        fd = item.fd
        try:
            if fd < 0:
                fd = create_file(item.tmp_path, item.owner)
                write_all(fd, item.header)
                write_all(fd, item.body)
            os.fsync(fd)
        except OSError as exc:
            item.error = exc
            _unlink(item.tmp_path)
        finally:
            if fd >= 0:
                os.close(fd)
            item.fd = -1
        if item.error is not None:
            continue
        try:
            os.rename(item.tmp_path, item.target)
            renamed.append(item)
        except OSError as exc:
            item.error = exc
            _unlink(item.tmp_path)
    if not renamed:
        return
    try:
        fsync_dir(incoming)
    except OSError as exc:
        for item in renamed:
            item.error = exc
            _unlink(item.target)


class GroupCommitter:
    """Collects commit requests from the event loop and runs them in batches."""

    def __init__(self, incoming: Path, executor: ThreadPoolExecutor, max_batch: int = 256) -> None:
        self.incoming = incoming
        self.executor = executor
        self.max_batch = max_batch
        self.waiting: list[tuple[CommitItem, asyncio.Future[None]]] = []
        self.running = False

    async def commit(self, item: CommitItem) -> None:
        """Make `item` durable in incoming/; raises its OSError on failure."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self.waiting.append((item, fut))
        if not self.running:
            self.running = True
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
                    await loop.run_in_executor(self.executor, commit_batch, items, self.incoming)
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
            self.running = False
