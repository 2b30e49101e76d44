"""The root master's children: fork, watch, restart with Postfix's throttle, stop.

A `ChildService` runs `child_main()` in a forked process (the master's own code never runs on in the
child: it leaves with os._exit). `run()` watches it and restarts it when it dies while the daemon
runs; a child that keeps dying soon after its start is restarted after a doubling delay (1 s up to
60 s, `restart_delay`), as Postfix's master throttles a broken service instead of forking it in a
tight loop. `stop()` sends SIGTERM and waits (SIGKILL after the grace period). `run_child()` is the common body
of a child that drops its privileges and serves from an event loop of its own (smtpd, cleanup).

SECURITY: runs in the root master; it reads nothing from its children but their exit status.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from hardener.mta import maillog
from hardener.mta.master import maillog_reopen
from hardener.mta.master.privileges import (drop_privileges, set_parent_death_signal,
                                            set_process_name)

log = maillog.get_logger("master")

HEALTHY_AFTER = 30.0        # a child that ran this long resets the restart delay
MAX_RESTART_DELAY = 60.0
POLL = 0.5                  # seconds between exit checks


def restart_delay(previous: float, lived: float) -> float:
    """The delay before the next start of a child that exited after `lived` seconds."""
    return 1.0 if lived > HEALTHY_AFTER else min(previous * 2, MAX_RESTART_DELAY)


def reset_after_fork() -> None:
    """In a child forked inside the master's running event loop: forget that loop (the child
    starts its own) and a log flush the parent had scheduled on it."""
    asyncio.events._set_running_loop(None)
    sink = getattr(maillog, "_sink", None)
    if sink is not None and hasattr(sink, "_flush_pending"):
        sink._flush_pending = False


def run_child(main: Callable[[bool], Coroutine[Any, Any, None]], *, user: str,
              chroot: str | None, close_fds: Iterable[int], log_channel: str,
              pre_jail: Callable[[], None] | None = None,
              post_jail: Callable[[], None] | None = None) -> int:
    """Body of a child of the master after the fork (still root): SIGTERM when the master dies,
    SIGHUP and SIGINT ignored until `main` handles them, the master's `close_fds` closed, only its
    own maillog_reopen channel `log_channel` kept; then drop to `user` (chrooted into `chroot`
    when given; hooks as drop_privileges) and run `main(jailed)` in a fresh event loop. Returns 0.
    """
    set_parent_death_signal()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)    # until the loop handles it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for fd in close_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    maillog_reopen.keep_only(log_channel)
    jailed = drop_privileges(user, chroot=chroot, pre_jail=pre_jail,
                             post_jail=post_jail) and chroot is not None
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main(jailed))
    finally:
        loop.close()
    return 0


class ChildService:
    """One child process of the master: `child_main()` returns the exit code."""

    def __init__(self, name: str, child_main: Callable[[], int]) -> None:
        self.name = name
        self.child_main = child_main
        self.pid = 0
        self._stopping = False
        self._started = 0.0

    def start(self) -> None:
        """Fork the child."""
        pid = os.fork()
        if pid:
            self.pid, self._started = pid, time.monotonic()
            return
        code = 1
        try:
            reset_after_fork()
            set_process_name(self.name.split()[0])
            code = self.child_main()
        except BaseException as exc:  # never fall back into the master's code
            maillog.get_logger(self.name.split()[0]).fatal(f"{self.name}: {exc!r}")
        finally:
            maillog.flush()
            os._exit(code)

    def signal(self, sig: int) -> None:
        """Send `sig` to the child if it runs."""
        if self.pid:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    async def run(self) -> None:
        """Watch the child; restart it (throttled) while the daemon runs."""
        delay = 1.0
        while not self._stopping:
            await asyncio.sleep(POLL)
            if self._stopping or not self.pid:
                continue
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = self.pid, 0
            if not pid or self._stopping:
                continue
            lived = time.monotonic() - self._started
            delay = restart_delay(delay, lived)
            log.warning(f"process {self.name} pid {self.pid} exit status {status} after "
                        f"{lived:.0f}s; restarting it in {delay:.0f}s")
            self.pid = 0
            await asyncio.sleep(delay)
            if not self._stopping:
                self.start()

    async def stop(self, grace: float) -> None:
        """SIGTERM the child and wait for it (SIGKILL after `grace` + 2 seconds)."""
        self._stopping = True
        if not self.pid:
            return
        await terminate_child(self.pid, grace)
        self.pid = 0


async def terminate_child(pid: int, grace: float) -> None:
    """SIGTERM child `pid` and reap it, polling without blocking the event loop; SIGKILL it if it
    is still there `grace` + 2 seconds later."""
    _signal(pid, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace + 2.0
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        if loop.time() > deadline:
            _signal(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            return
        await asyncio.sleep(0.05)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
