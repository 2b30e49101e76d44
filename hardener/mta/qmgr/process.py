"""The queue manager in its own process, as in Postfix (smtpd and qmgr never share a CPU core).

SECURITY: the root master forks the child; `child_setup` (run first in the child) closes every
descriptor of the master's it does not serve (listening sockets included: it holds none) and drops
to the mail owner (hardener/mta/master/privileges.py, no chroot: local delivery reads /etc/passwd
and writes the spool), with NoNewPrivs. It stops when the master tells it to (SIGTERM), when the
wake-up pipe closes, or when the master dies (PR_SET_PDEATHSIG).

`wake_fd`: the read end of a wake-up pipe the master keeps for the daemon's life (smtpd processes
hold the write end), handed to every restarted child; without it each child gets a fresh pipe whose
write end is `wake()`'s.

The daemon keeps a `QmgrProcess` with the same small interface as QueueManager: `wake()` (cleanup's
on_commit: one byte down a pipe), `run()` (supervises the child and restarts it if it crashes) and
`stop()`. Queue state is only on disk, so a restarted child simply recovers active/ and carries on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable

from hardener.mta import maillog
from hardener.mta.maillog import get_logger
from hardener.mta.master import maillog_reopen
from hardener.mta.master.privileges import set_parent_death_signal
from hardener.mta.master.supervisor import reset_after_fork, restart_delay, terminate_child

log = get_logger("master")

_STOP_GRACE = 5.0


class QmgrProcess:
    """Runs `make_qmgr()` (a QueueManager factory) in a forked child process."""

    def __init__(self, make_qmgr: Callable[[], object], *, wake_fd: int | None = None,
                 child_setup: Callable[[], None] | None = None) -> None:
        self.make_qmgr = make_qmgr
        self.wake_fd = wake_fd
        self.child_setup = child_setup
        self.pid = 0
        self._wfd = -1
        self._stopping = False
        self._wake_pending = False
        self._fork()

    # -- parent side -------------------------------------------------------------------------
    def wake(self, qid: str | None = None) -> None:
        """Tell the child there is new mail in incoming/ (never blocks). Wake-ups within one
        event-loop iteration share one pipe write."""
        if self._wfd < 0 or self._wake_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._send_wake()
            return
        self._wake_pending = True
        loop.call_soon(self._send_wake)

    def _send_wake(self) -> None:
        self._wake_pending = False
        if self._wfd < 0:
            return
        try:
            os.write(self._wfd, b"w")
        except OSError:
            pass  # the pipe is full (a wake-up is pending anyway) or the child is gone

    async def run(self) -> None:
        """Supervise the child: restart it if it dies while the daemon runs. A child that keeps
        dying soon after its start is restarted with a doubling delay (1 s up to 60 s), as
        Postfix's master throttles a broken service instead of forking it in a tight loop."""
        delay = 1.0
        started = time.monotonic()
        while not self._stopping:
            await asyncio.sleep(1.0)
            if self._stopping or not self.pid:
                continue
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = self.pid, 0
            if pid and not self._stopping:
                lived = time.monotonic() - started
                delay = restart_delay(delay, lived)
                log.warning(f"qmgr process {self.pid} exited (status {status}) after {lived:.0f}s; "
                            f"restarting it in {delay:.0f}s")
                self._close_pipe()
                self.pid = 0
                await asyncio.sleep(delay - 1.0)
                if self._stopping:
                    break
                self._fork()
                started = time.monotonic()

    async def stop(self, grace: float = _STOP_GRACE) -> None:
        """SIGTERM the child and wait for it (SIGKILL after `grace` + 2 seconds)."""
        self._stopping = True
        self._close_pipe()
        if not self.pid:
            return
        await terminate_child(self.pid, grace)
        self.pid = 0

    def _close_pipe(self) -> None:
        if self._wfd >= 0:
            os.close(self._wfd)
            self._wfd = -1

    def _fork(self) -> None:
        if self.wake_fd is not None:
            rfd, wfd = self.wake_fd, -1
        else:
            rfd, wfd = os.pipe()
            os.set_blocking(wfd, False)
        pid = os.fork()
        if pid:
            if wfd >= 0:
                os.close(rfd)
            self.pid, self._wfd = pid, wfd
            return
        if wfd >= 0:
            os.close(wfd)
        code = 0
        try:
            if self.child_setup is not None:
                self.child_setup()
            _child_main(self.make_qmgr, rfd)
        except BaseException as exc:  # never fall back into the parent's code
            get_logger("qmgr").fatal(f"qmgr process: {exc!r}")
            code = 1
        finally:
            maillog.flush()   # os._exit does not flush the buffered log lines
            os._exit(code)


# -- child side --------------------------------------------------------------------------------
def _child_main(make_qmgr: Callable[[], object], rfd: int) -> None:
    """Body of the child: a fresh event loop running one QueueManager."""
    set_parent_death_signal()
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    reset_after_fork()   # the fork happened inside the daemon's running loop
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(_child_run(make_qmgr, rfd))
    loop.close()


async def _child_run(make_qmgr: Callable[[], object], rfd: int) -> None:
    maillog.set_batched(True)   # one log write per flush interval under load, not one per line
    try:
        await _child_serve(make_qmgr, rfd)
    finally:
        maillog.set_batched(False)


async def _child_serve(make_qmgr: Callable[[], object], rfd: int) -> None:
    qmgr = make_qmgr()
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def readable() -> None:
        try:
            data = os.read(rfd, 4096)
        except OSError:
            data = b""
        if data:
            qmgr.wake()
        else:  # the daemon closed the pipe or died
            loop.remove_reader(rfd)
            done.set()

    os.set_blocking(rfd, False)
    loop.add_reader(rfd, readable)
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGHUP, _reopen_log)   # the daemon forwards its reload
    task = asyncio.ensure_future(qmgr.run())
    await done.wait()
    await qmgr.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    close = getattr(qmgr, "close", None)
    if close is not None:
        close()


def _reopen_log() -> None:
    """SIGHUP from the daemon: reopen maillog_file after rotation (see maillog_reopen)."""
    maillog_reopen.reopen_log("qmgr")
