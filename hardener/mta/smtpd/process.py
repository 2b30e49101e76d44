"""One smtpd process per master.cf smtpd service, forked by the root master (Postfix's smtpd).

The process serves every listening socket of its service (inherited from the master, which bound
them) with asyncio sessions, so the service's process limit, stress state and anvil counts stay
exact in one place (see docs/mta.md: one process per service, and why not N). Before it reads a
byte from the network it enters the jail (hardener/mta/master/privileges.py): the pre-jail step
snapshots the passwd names local_recipient_maps needs (the jail has no /etc/passwd; Postfix asks
proxymap outside the jail instead), then chroot into the queue directory when master.cf's chroot
column says y, setgroups([]), setgid, setuid to the mail owner, a check that root cannot come back,
PR_SET_NO_NEW_PRIVS. Everything else it needs (modules, TLS key, /etc/hosts, tables, time zone)
the master loaded before the fork.

Reload: the master re-reads main.cf (a jailed process cannot), sends SIGHUP, then the new settings
down the `config` socket (length-prefixed pickle: it comes from the root master, the only writer
of that socket, never from the network). The process reopens its log through its maillog_reopen
channel, then applies the newest settings to new sessions; anvil's counts carry over.

Queue files: smtpd writes none. It streams each message to the cleanup process over its
service's channel (hardener/mta/cleanup/client.py) and answers 250 only after cleanup's OK, which
comes after the file and incoming/ were fsynced.

SECURITY: the network-facing process. Holds only its listening sockets, its maillog_reopen channel,
its config socket and its cleanup channel; opens no file after the jail closes.
"""

from __future__ import annotations

import asyncio
import pwd
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass

from hardener.mta import maillog
from hardener.mta.cleanup.client import CleanupClient
from hardener.mta.config.settings import Listener
from hardener.mta.master import config_channel, maillog_reopen
from hardener.mta.master.supervisor import run_child
from hardener.mta.smtpd.anvil import Anvil
from hardener.mta.smtpd.commands import fsspace
from hardener.mta.smtpd.context import SmtpdContext
from hardener.mta.smtpd.local_recipients import LocalRecipients
from hardener.mta.smtpd.relay_policy import PolicySettings
from hardener.mta.smtpd.server import start_services

log = maillog.get_logger("smtpd")

STOP_GRACE = 5.0


@dataclass
class SmtpdJob:
    """What the master hands one smtpd process at fork."""

    service: str
    sockets: list[tuple[Listener, socket.socket]]
    ctx: SmtpdContext
    config_sock: socket.socket          # the child's end; the master writes reloads into it
    cleanup_sock: socket.socket         # smtpd's end of its channel to the cleanup process
    close_fds: list[int]                # everything else of the master's this child must not hold

    @property
    def log_channel(self) -> str:
        """maillog_reopen channel name of this service."""
        return channel_name(self.service)


def channel_name(service: str) -> str:
    """The maillog_reopen channel of smtpd service `service`."""
    return f"smtpd {service}"


def snapshot_passwd(recipients: LocalRecipients) -> None:
    """Replace passwd lookups (unix:passwd.byname) by the account names read now, while
    /etc/passwd is still visible (before the jail). A reload or restart reads them again."""
    if recipients.use_passwd:
        recipients.keys |= {pw.pw_name.lower() for pw in pwd.getpwall()}
        recipients.use_passwd = False


# -- child side ----------------------------------------------------------------------------------

def run(job: SmtpdJob, *, post_jail: Callable[[], None] | None = None) -> int:
    """Body of the smtpd process (after the fork, still root): jail, then serve until SIGTERM.

    `post_jail` runs inside the jail, after the drop, before anything is served: the master passes
    none; tests/mta/test_jail.py passes a probe that tries to break out (a seam, not a setting).
    """
    settings = job.ctx.settings
    jail = str(settings.queue_directory) if any(l.chroot for l, _ in job.sockets) else None
    return run_child(lambda jailed: _serve(job, jailed), user=settings.mail_owner, chroot=jail,
                     close_fds=job.close_fds, log_channel=job.log_channel,
                     pre_jail=lambda: snapshot_passwd(job.ctx.recipients), post_jail=post_jail)


async def _serve(job: SmtpdJob, jailed: bool) -> None:
    loop = asyncio.get_running_loop()
    ctx = job.ctx
    if jailed:
        ctx.fsspace = lambda _path: fsspace("/")
    cleanup = CleanupClient(job.cleanup_sock)
    ctx.cleanup = cleanup
    cleanup.start(loop)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload(job))
    maillog.set_batched(True)
    servers = start_services(ctx, job.sockets)
    try:
        await stop.wait()
        ctx.stopping = True
        for server in servers:
            server.close()
        deadline = loop.time() + STOP_GRACE
        while sum(ctx.sessions.values()) and loop.time() < deadline:
            await asyncio.sleep(0.05)
    finally:
        cleanup.close()
        maillog.set_batched(False)


def _reload(job: SmtpdJob) -> None:
    """SIGHUP: reopen the log, then take the newest settings the master sent (None: keep)."""
    maillog_reopen.reopen_log(job.log_channel)
    payload = config_channel.read_latest(job.config_sock)
    if payload is None:
        return
    settings, recipients, host_names, credentials = payload
    ctx = job.ctx
    anvil = Anvil(settings.conn_count_limit, settings.conn_rate_limit, settings.rate_time_unit,
                  settings.event_limit_exceptions)
    anvil.carry_over(ctx.anvil)
    ctx.settings, ctx.policy = settings, PolicySettings.from_settings(settings)
    ctx.anvil, ctx.recipients, ctx.host_names = anvil, recipients, host_names
    ctx.credentials = credentials
    ctx.auth.configure(settings.auth_rate_limit, settings.rate_time_unit,
                       settings.event_limit_exceptions)
