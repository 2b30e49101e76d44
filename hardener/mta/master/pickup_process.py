"""The pickup process: forked by the root master, serves local submission as the mail owner.

`start()` forks it from the master (still root) and returns (pid, lifeline fd), the contract of the
former root pickup helper: it exits when the lifeline closes (the master stops) or on SIGTERM, and
reopens its log on SIGHUP through its own maillog_reopen channel ("pickup"), as the other children
do. In the child, `run_child()`:

1. leaves what is the master's: the listening sockets, every maillog_reopen end but its own;
2. as root, binds QUEUE/public/pickup in root's public/ (pickup_socket.bind_pickup_socket: mode
   0666, a directory nobody else can write, so nobody can put another socket in its place);
3. enters the jail (privileges.drop_privileges: chroot into the queue directory when master.cf's
   pickup line says y; setgroups, setgid, setuid to mail_owner, checked; NoNewPrivs), then
   sets the parent-death signal (a change of credentials clears it);
4. serves: pickup_socket.PickupServer takes submissions and writes maildrop/ with the uid the
   kernel reports; pickup.Pickup queues what is in maildrop/ through its own cleanup.

Nothing of pickup needs root any more: maildrop/ belongs to the mail owner (mode 0700) and pickup
writes its files itself; root's only part is binding the socket.

SECURITY: the child reads input from every local user, so it runs with the mail owner's real,
effective and saved uids and holds only the socket it serves, its log channel, the lifeline and
the log file.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from typing import Any

from hardener.mta import maillog
from hardener.mta.cleanup.service import Cleanup, CleanupSettings
from hardener.mta.config.settings import MtaSettings
from hardener.mta.master import maillog_reopen
from hardener.mta.master.privileges import (drop_privileges, set_parent_death_signal,
                                            set_process_name)
from hardener.mta.pickup_socket import PickupServer, bind_pickup_socket
from hardener.mta.qmgr.settings import build_pickup
from hardener.mta.queue.layout import QueueLayout

log = maillog.get_logger("pickup")
COMMIT_THREADS = 2         # pickup queues one file at a time
LOG_CHANNEL = "pickup"     # its maillog_reopen channel (the master makes it)


def start(settings: MtaSettings, layout: QueueLayout, owner: tuple[int, int] | None,
          sockets: list) -> tuple[int, int]:
    """Fork the pickup process (from the root master); returns (pid, lifeline write fd): closing
    the fd stops it."""
    master = os.getpid()
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(rfd)
        return pid, wfd
    os.close(wfd)
    code = 0
    try:
        run_child(settings, layout, owner, sockets, rfd, master)
    except BaseException as exc:  # a crash of the child must never run the master's code
        log.fatal(f"pickup process: {exc!r}")
        code = 1
    finally:
        maillog.flush()
        os._exit(code)


def run_child(settings: MtaSettings, layout: QueueLayout, owner: tuple[int, int] | None,
              sockets: list, lifeline: int, master: int) -> None:
    """The pickup process's body, after the fork (still root): see the module docstring."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)    # until the loop handles it
    set_process_name("pickup")
    for _, sock in sockets:
        sock.close()
    maillog_reopen.keep_only(LOG_CHANNEL)
    maillog.set_batched(False)   # this process logs little: every line at once
    listen = bind_pickup_socket(layout.dir("public"))
    service = settings.master.find("pickup") if settings.master is not None else None
    jail = str(layout.root) if service is not None and service.chroot else None
    jailed = drop_privileges(settings.mail_owner, chroot=jail) and jail is not None
    set_parent_death_signal()   # after the drop: a change of credentials clears it
    if os.getppid() != master:
        return                  # the master died before the signal was set
    asyncio.run(_serve(settings, QueueLayout("/") if jailed else layout, listen, lifeline))


async def _serve(settings: MtaSettings, layout: QueueLayout, listen: socket.socket,
                 lifeline: int) -> None:
    loop = asyncio.get_running_loop()
    cleanup = Cleanup(layout, CleanupSettings.from_settings(settings),
                      commit_threads=COMMIT_THREADS)
    pickup: Any = build_pickup(settings, layout, cleanup)
    server = PickupServer(listen, layout.dir("maildrop"), size_limit=settings.message_size_limit,
                          on_queued=pickup.wake)

    def lifeline_closed() -> None:
        loop.remove_reader(lifeline)
        pickup.stop()

    loop.add_signal_handler(signal.SIGTERM, pickup.stop)
    loop.add_signal_handler(signal.SIGHUP, lambda: maillog_reopen.reopen_log(LOG_CHANNEL))
    loop.add_reader(lifeline, lifeline_closed)
    await server.start()
    try:
        await pickup.run()
    finally:
        await server.close()
        cleanup.close()
