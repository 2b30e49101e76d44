"""The cleanup process, forked by the root master: the only writer of the queue files smtpd hands in.

It holds one channel end per smtpd service (hardener/mta/cleanup/channel.py; the master keeps both
ends, so a restarted cleanup or smtpd finds the channel again), the qmgr wake-up pipe, its
maillog_reopen channel and its config socket. Before it reads a record it enters the jail
(hardener/mta/master/privileges.py): chroot into the queue directory when master.cf's cleanup line
says y in the chroot column (no cleanup line: jailed when smtpd is), the mail owner, NoNewPrivs.

Reload: the master sends SIGHUP and the new CleanupSettings down the config socket (length-prefixed
pickle from the root master, the only writer of that socket; hardener/mta/master/config_channel.py).

SECURITY: reads untrusted records from smtpd (every field checked in server.py); writes only tmp/
and incoming/ of the queue.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from dataclasses import dataclass

from hardener.mta import maillog
from hardener.mta.cleanup.server import ChannelServer
from hardener.mta.cleanup.service import Cleanup, CleanupSettings
from hardener.mta.master import maillog_reopen
from hardener.mta.master.config_channel import read_latest
from hardener.mta.master.supervisor import run_child
from hardener.mta.queue.layout import QueueLayout

log = maillog.get_logger("cleanup")
LOG_CHANNEL = "cleanup"


@dataclass
class CleanupJob:
    """What the master hands the cleanup process at fork."""

    settings: CleanupSettings
    mail_owner: str
    queue_directory: str
    chroot: bool
    channels: dict[str, socket.socket]   # smtpd service name -> cleanup's end
    config_sock: socket.socket
    wake_fd: int                         # write end of the qmgr wake-up pipe
    close_fds: list[int]                 # the master's descriptors this process must not hold


def run(job: CleanupJob) -> int:
    """Body of the cleanup process (after the fork, still root): jail, then serve until SIGTERM."""
    return run_child(lambda jailed: _serve(job, jailed), user=job.mail_owner,
                     chroot=job.queue_directory if job.chroot else None,
                     close_fds=job.close_fds, log_channel=LOG_CHANNEL)


async def _serve(job: CleanupJob, jailed: bool) -> None:
    loop = asyncio.get_running_loop()
    layout = QueueLayout("/" if jailed else job.queue_directory)
    waker = _Waker(job.wake_fd)
    cleanup = Cleanup(layout, job.settings, on_commit=waker.wake)
    servers = [ChannelServer(name, sock, cleanup, job.settings.recipient_limit,
                             job.settings.message_size_limit)
               for name, sock in job.channels.items()]
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload(job, cleanup, servers))
    maillog.set_batched(True)
    for server in servers:
        server.start(loop)
    try:
        await stop.wait()
        # the master stops smtpd first: what it committed is answered before cleanup goes
        for server in servers:
            server.stop()
        await asyncio.gather(*(server.drain() for server in servers))
    finally:
        cleanup.close()
        maillog.set_batched(False)


def _reload(job: CleanupJob, cleanup: Cleanup, servers: list[ChannelServer]) -> None:
    """SIGHUP: reopen the log; apply the newest settings the master sent to new messages."""
    maillog_reopen.reopen_log(LOG_CHANNEL)
    settings = read_latest(job.config_sock)
    if not isinstance(settings, CleanupSettings):
        return
    cleanup.settings = settings
    for server in servers:
        server.recipient_limit = settings.recipient_limit
        server.size_limit = settings.message_size_limit


class _Waker:
    """cleanup's on_commit: one byte down the qmgr wake-up pipe per event-loop iteration."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending = False
        os.set_blocking(fd, False)

    def wake(self, _qid: str | None = None) -> None:
        if self.pending:
            return
        self.pending = True
        asyncio.get_running_loop().call_soon(self._send)

    def _send(self) -> None:
        self.pending = False
        try:
            os.write(self.fd, b"w")
        except OSError:
            pass   # pipe full: a wake-up is pending anyway
