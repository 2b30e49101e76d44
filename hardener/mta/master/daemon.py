"""`hardener mta serve`: the root master supervisor in the foreground, as Postfix's master.

Order, as Postfix's master: load and validate the configuration (ConfigError: exit 2), open the
log, create and own the queue tree, write the pid file, bind the listeners, start the pickup
helper, then start and watch the children, each of which drops its own privileges
(hardener/mta/master/privileges.py):

- one smtpd process per master.cf smtpd service (hardener/mta/smtpd/process.py): chrooted into the
  queue directory when the chroot column says y, mail owner, NoNewPrivs; it serves that service's
  listening sockets and hands each message to cleanup over its channel, writing no file;
- cleanup (hardener/mta/cleanup/process.py): the writer of the queue files smtpd hands in, one
  SOCK_SEQPACKET channel per smtpd service (the master keeps both ends, so either side restarts
  alone); chrooted as master.cf's cleanup line says (no line: as smtpd), mail owner, NoNewPrivs;
  it wakes qmgr after each commit;
- qmgr (hardener/mta/qmgr/process.py): mail owner, NoNewPrivs, no listening socket.

The master stays root and parses no network input: it holds the listening sockets (never an
accepted connection: it does not accept), restarts a child that dies (throttled: 1 s doubling to
60 s), reopens maillog_file for the children after rotation (maillog_reopen: it is the root side),
and on SIGHUP re-reads main.cf, refuses a broken one with one warning line, sends the new settings
to the smtpd processes and forwards the reload. SIGTERM/SIGINT stop the children (sessions given
a few seconds), then remove the pid file.

SECURITY: root for its whole life, so it does as little as possible: what root writes in the queue
tree, it writes in root-owned pid/ (master.pid, through safe_open: a fresh O_EXCL|O_NOFOLLOW
temporary file renamed into place); it reads a pid file only when it is a regular file owned by
root or by this user.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path

from hardener.errors import ConfigError
from hardener.mta import maillog, metrics
from hardener.mta.cleanup import channel
from hardener.mta.cleanup.process import CleanupJob
from hardener.mta.cleanup.process import run as run_cleanup
from hardener.mta.cleanup.service import Cleanup, CleanupSettings
from hardener.mta.config.settings import MtaSettings, load_settings
from hardener.mta.master import (
    check,
    config_channel,
    maillog_reopen,
    master_lock,
    pickup_process,
)
from hardener.mta.master.metrics_endpoint import children as metrics_children
from hardener.mta.master.privileges import (
    bind_listeners,
    drop_privileges,
    owner_ids,
    set_parent_death_signal,
    set_process_name,
)
from hardener.mta.master.supervisor import ChildService
from hardener.mta.qmgr.process import QmgrProcess
from hardener.mta.qmgr.settings import make_queue_manager
from hardener.mta.queue.layout import QueueLayout, QueueLayoutError
from hardener.mta.safe_open import open_dir, open_regular, replace_file
from hardener.mta.smtpd.context import SmtpdContext
from hardener.mta.smtpd.process import (
    SmtpdJob,
    channel_name,
    snapshot_passwd,
)
from hardener.mta.smtpd.process import run as run_smtpd

log = maillog.get_logger("master")
PID_FILE = "pid/master.pid"
STOP_GRACE = 5.0


def pid_file_path(queue_directory: str | os.PathLike[str]) -> Path:
    """Where the daemon's pid file lives (inside the queue directory, as Postfix's master.pid)."""
    return Path(queue_directory) / PID_FILE


def read_pid(path: Path) -> int | None:
    """The pid in `path` if that process is alive, else None.

    The file is opened with O_NOFOLLOW and trusted only when it is a regular file with one link
    owned by root, by this user or by the owner of its directory: a planted link or a pid file the
    mail owner left in an older, mail-owner-owned pid/ is ignored (it could name any process).
    """
    try:
        fd = open_regular(path)
        try:
            st = os.fstat(fd)
            data = os.read(fd, 64)
        finally:
            os.close(fd)
        if st.st_uid not in (0, os.geteuid()) and st.st_uid != os.stat(path.parent).st_uid:
            return None
        pid = int(data.decode("ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def is_daemon_process(pid: int) -> bool:
    """True when `pid` runs hardener's MTA daemon (not some process that reused a stale pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"hardener.mta.master.daemon" in cmdline or (
        any(b"hardener" in part for part in cmdline) and b"serve" in cmdline)


def remove_pid_file(path: Path, pid: int) -> None:
    """Remove `path` if it (still) names `pid`; unlink through an O_NOFOLLOW directory fd."""
    if read_pid(path) not in (pid, None):
        return
    try:
        dfd = open_dir(path.parent)
        try:
            os.unlink(path.name, dir_fd=dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            print(f"hardener: warning: cannot remove {path}: {exc.strerror}", file=sys.stderr)


def _configure_log(settings: MtaSettings) -> None:
    """maillog_file (a file, or /dev/stdout as Postfix allows), else syslog, else stderr."""
    if settings.maillog_file:
        target = settings.maillog_file
        try:
            maillog.configure(maillog_file=target, hostname=settings.myhostname,
                              syslog_name=settings.syslog_name)
        except OSError as exc:
            file, line = settings.where("maillog_file")
            raise ConfigError(f"cannot open {target}: {exc.strerror}", file=file, line=line,
                              field="maillog_file") from None
    elif os.path.exists("/dev/log"):
        maillog.configure(use_syslog=True, hostname=settings.myhostname,
                          syslog_name=settings.syslog_name)
    else:
        maillog.configure(use_stderr=True, hostname=settings.myhostname,
                          syslog_name=settings.syslog_name)


def _prepare_queue(settings: MtaSettings) -> tuple[QueueLayout, tuple[int, int] | None]:
    file, line = settings.where("queue_directory")
    owner: tuple[int, int] | None = None
    try:
        if os.geteuid() == 0:
            owner = owner_ids(settings.mail_owner)
    except ConfigError as exc:
        f, ln = settings.where("mail_owner")
        raise ConfigError(exc.message, file=f, line=ln, field="mail_owner") from None
    layout = QueueLayout(settings.queue_directory)
    try:
        layout.ensure(*(owner or (None, None)))
    except QueueLayoutError as exc:
        raise ConfigError(f"queue directory cannot be owned: {exc}", file=file, line=line,
                          field="queue_directory") from None
    return layout, owner


def _write_pid(path: Path) -> None:
    """Write master.pid (mode 0644) in root's pid/: fresh O_EXCL|O_NOFOLLOW temporary, rename."""
    running = read_pid(path)
    if running is not None and running != os.getpid() and is_daemon_process(running):
        raise ConfigError(f"the daemon is already running (pid {running})", file=str(path))
    try:
        replace_file(path.parent, path.name, f"{os.getpid()}\n".encode(), 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot write the pid file: {exc.strerror}", file=str(path)) from None


def serve(config_dir: str | os.PathLike[str]) -> int:
    """Run the daemon until SIGTERM/SIGINT; ConfigError before anything listens on bad config."""

    settings = load_settings(config_dir)
    metrics.load_config(settings.main)   # a bad hardener_metrics_listen: one line, exit 2
    _configure_log(settings)
    for warning in settings.warnings:
        log.warning(warning)
    layout, owner = _prepare_queue(settings)
    master_lock.acquire(layout.root)   # fd kept open: the lock is held for the master's life
    check.refuse_unsafe(settings, create=False)   # `hardener mta check`: owners, modes, mail_owner
    pid_path = pid_file_path(settings.queue_directory)
    _write_pid(pid_path)
    sockets = []
    helper: tuple[int, int] | None = None
    try:
        sockets = bind_listeners(settings.listeners)
        ctx = SmtpdContext.build(settings, None)   # validated now; the smtpd processes inherit it
        snapshot_passwd(ctx.recipients)
        services = _group_by_service(sockets)
        if owner is not None and settings.maillog_file \
                and settings.maillog_file != maillog.STDOUT_PATH:
            maillog_reopen.make_channels(
                settings.maillog_file,
                tuple(channel_name(name) for name in services) + ("qmgr", "pickup", "cleanup"))
        helper = pickup_process.start(settings, layout, owner, sockets)   # mail owner
        _preload_modules()
        set_process_name("master")
        log.info(f"daemon started -- configuration {Path(config_dir).resolve()}")
        _event_loop_policy()
        asyncio.run(_run(settings, layout, ctx, services, sockets, Path(config_dir),
                         helper[0] if helper else 0))
        log.info("terminating on signal")
    finally:
        for _, sock in sockets:
            sock.close()
        if helper:
            os.close(helper[1])   # the helper exits when its lifeline closes
            try:
                os.waitpid(helper[0], 0)
            except ChildProcessError:
                pass
        maillog_reopen.close()
        remove_pid_file(pid_path, os.getpid())
    return 0


def cleanup_chroot(settings: MtaSettings) -> bool:
    """master.cf's chroot column of the cleanup service; without a cleanup line, jailed when an
    smtpd service is (cleanup reads what smtpd sends)."""
    lines = settings.master.find_all(command="cleanup")
    if lines:
        return bool(lines[0].chroot)
    return any(listener.chroot for listener in settings.listeners)


def _group_by_service(sockets: list) -> dict[str, list]:
    """The bound listening sockets per master.cf service, in master.cf order."""
    services: dict[str, list] = {}
    for listener, sock in sockets:
        services.setdefault(listener.service, []).append((listener, sock))
    return services


def _event_loop_policy() -> None:
    """uvloop when installed (about twice the throughput of the stock loop), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _preload_modules() -> None:
    """Import what the session code and the qmgr child import lazily, while the files are
    certainly readable (after the privilege drop the interpreter's own library may not be).
    After the pickup helper's fork: it needs none of these."""
    import importlib
    import pkgutil

    import hardener.mta
    import hardener.postfix

    # Every daemon module, not a hand-kept list: a checkout under a directory the mail owner cannot
    # read (e.g. /root, mode 0700) must not break a lazy import in the qmgr child after the drop.
    for package in (hardener.mta, hardener.postfix):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(info.name)
    from hardener.mta.delivery.nexthop import _dns

    _dns()  # dnspython, for MX lookups in the qmgr child (~5 MB the pickup helper does without)


class _Master:
    """The master's children and the descriptors it keeps for them across restarts."""

    def __init__(self, settings: MtaSettings, layout: QueueLayout, ctx, services: dict[str, list],
                 sockets: list, config_dir: Path) -> None:

        self.settings, self.layout, self.ctx, self.config_dir = settings, layout, ctx, config_dir
        self.wake_r, self.wake_w = os.pipe()     # qmgr wake-up: cleanup writes, qmgr reads
        os.set_inheritable(self.wake_r, False)
        self.listen_fds = [sock.fileno() for _, sock in sockets]
        self.config_socks: dict[str, tuple[socket.socket, socket.socket]] = {
            name: socket.socketpair() for name in services}
        self.cleanup_config = socket.socketpair()
        # (smtpd's end, cleanup's end) per service; the master holds both for restarts
        self.channels = {name: channel.make_pair() for name in services}
        master_only = [mine.fileno() for mine, _ in self.config_socks.values()] \
            + [self.cleanup_config[0].fileno()]
        smtpd_ends = {name: pair[0].fileno() for name, pair in self.channels.items()}
        cleanup_ends = [pair[1].fileno() for pair in self.channels.values()]
        self.smtpd: list[ChildService] = []
        self.smtpd_jobs: dict[str, SmtpdJob] = {}   # what each smtpd process is started with
        for name, group in services.items():
            own = {sock.fileno() for _, sock in group}
            theirs = self.config_socks[name][1]
            job = SmtpdJob(
                service=name, sockets=group, ctx=ctx, config_sock=theirs,
                cleanup_sock=self.channels[name][0],
                close_fds=[fd for fd in self.listen_fds if fd not in own] + master_only
                + [self.wake_r, self.wake_w, self.cleanup_config[1].fileno()] + cleanup_ends
                + [fd for other, fd in smtpd_ends.items() if other != name]
                + [s.fileno() for _, s in self.config_socks.values() if s is not theirs])
            self.smtpd_jobs[name] = job
            self.smtpd.append(ChildService(f"smtpd {name}", lambda job=job: run_smtpd(job)))
        self.cleanup_job = CleanupJob(
            settings=CleanupSettings.from_settings(settings), mail_owner=settings.mail_owner,
            queue_directory=str(settings.queue_directory), chroot=cleanup_chroot(settings),
            channels={name: pair[1] for name, pair in self.channels.items()},
            config_sock=self.cleanup_config[1], wake_fd=self.wake_w,
            close_fds=self.listen_fds + master_only + [self.wake_r] + list(smtpd_ends.values())
            + [s.fileno() for _, s in self.config_socks.values()])
        self.cleanup = ChildService("cleanup", lambda: run_cleanup(self.cleanup_job))
        self.qmgr = None
        self.helper_pid = 0   # the pickup process, for the reload's SIGHUP

    def channel_fds(self) -> list[int]:
        """Every descriptor the master keeps for smtpd, cleanup and qmgr (a child that is none
        of them closes them all)."""
        return [s.fileno() for pair in (*self.config_socks.values(), *self.channels.values(),
                                         self.cleanup_config) for s in pair] \
            + [self.wake_r, self.wake_w]

    def qmgr_child_setup(self) -> None:
        """In the qmgr child, before it builds the queue manager: no listening socket, no
        smtpd channel, only its own log channel; then drop to the mail owner (no chroot)."""
        set_parent_death_signal()
        set_process_name("qmgr")
        for fd in self.listen_fds + [self.wake_w]:
            os.close(fd)
        for mine, theirs in (*self.config_socks.values(), *self.channels.values(),
                             self.cleanup_config):
            mine.close()
            theirs.close()
        maillog_reopen.keep_only("qmgr")
        drop_privileges(self.settings.mail_owner)

    def start_qmgr(self):
        """The qmgr child."""
        settings, layout = self.settings, self.layout

        def make():
            own = Cleanup(layout, CleanupSettings.from_settings(settings))
            qmgr = make_queue_manager(settings, layout, own)
            own.on_commit = qmgr.wake
            qmgr.close = own.close
            return qmgr

        self.qmgr = QmgrProcess(make, wake_fd=self.wake_r, child_setup=self.qmgr_child_setup)
        return self.qmgr

    def reload(self) -> None:
        """SIGHUP: reopen maillog_file (as `postfix reload` does), re-read main.cf; a broken one
        is refused with one warning and the running one keeps serving. The smtpd processes get
        the new settings for new sessions; every child reopens its log."""
        maillog_reopen.reopen_log("master")
        payload = None
        try:
            settings = load_settings(self.config_dir)
            fresh = SmtpdContext.build(settings, None)
            snapshot_passwd(fresh.recipients)
        except Exception as exc:  # a bad edit must not kill a running daemon
            log.warning(f"reload failed, keeping the running configuration: {exc}")
        else:
            if [(l.address, l.port, l.chroot) for l in settings.listeners] != \
                    [(l.address, l.port, l.chroot) for l in self.settings.listeners]:
                log.warning("listen addresses changed: restart the daemon to apply them")
            if settings.maillog_file != self.settings.maillog_file:
                log.warning("maillog_file changed: restart the daemon to apply it")
            payload = (replace(settings, extra={}), fresh.recipients, fresh.host_names,
                       fresh.credentials)
            # a restarted smtpd process starts from the new settings (and the old TLS context:
            # certificates are loaded at start, as the listeners are bound at start)
            self.ctx.settings, self.ctx.policy = settings, fresh.policy
            self.ctx.recipients, self.ctx.host_names = fresh.recipients, fresh.host_names
            self.ctx.credentials = fresh.credentials   # SASL users, read as root
            fresh.anvil.carry_over(self.ctx.anvil)
            self.ctx.anvil = fresh.anvil
        for child in self.smtpd:
            child.signal(signal.SIGHUP)
            config_channel.send(self.config_socks[child.name.split(" ", 1)[1]][0], payload)
        if payload is not None:   # a restarted cleanup starts from the new settings too
            self.cleanup_job.settings = CleanupSettings.from_settings(settings)
        self.cleanup.signal(signal.SIGHUP)
        config_channel.send(self.cleanup_config[0],
                            None if payload is None else self.cleanup_job.settings)
        for pid in (self.qmgr.pid if self.qmgr is not None else 0, self.helper_pid):
            if pid:
                try:
                    os.kill(pid, signal.SIGHUP)
                except ProcessLookupError:
                    pass   # restarting; the new child reopens at the next reload
        if payload is not None:
            log.info(f"reload -- configuration {self.config_dir.resolve()}")

    def close(self) -> None:
        """Close the descriptors kept for the children."""
        for mine, theirs in (*self.config_socks.values(), *self.channels.values(),
                             self.cleanup_config):
            mine.close()
            theirs.close()
        os.close(self.wake_r)
        os.close(self.wake_w)


async def _run(settings: MtaSettings, layout: QueueLayout, ctx, services: dict[str, list],
               sockets: list, config_dir: Path, helper_pid: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    master = _Master(settings, layout, ctx, services, sockets, config_dir)
    master.helper_pid = helper_pid
    loop.add_signal_handler(signal.SIGHUP, master.reload)
    maillog_reopen.serve(loop)
    tasks: list[asyncio.Task] = []
    try:
        endpoint = metrics_children(settings, master.listen_fds + master.channel_fds())
        for child in endpoint:
            child.start()
            tasks.append(loop.create_task(child.run(), name=child.name))
        qmgr = master.start_qmgr()
        if qmgr is not None:
            tasks.append(loop.create_task(qmgr.run(), name="qmgr"))
        for child in (master.cleanup, *master.smtpd):
            child.start()
            tasks.append(loop.create_task(child.run(), name=child.name))
        await stop.wait()
        await asyncio.gather(*(child.stop(STOP_GRACE) for child in master.smtpd + endpoint))
        await master.cleanup.stop(STOP_GRACE)   # after smtpd: its last commits are answered
        if qmgr is not None:
            await qmgr.stop()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        master.close()


def main(argv: list[str] | None = None) -> int:
    """Lean entry point (`python -m hardener.mta.master.daemon --config DIR`): `hardener mta serve` execs
    it so the daemon does not carry the whole command line's imports."""
    import argparse

    from hardener.errors import HardenerError

    parser = argparse.ArgumentParser(prog="hardener mta serve")
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    try:
        return serve(args.config)
    except HardenerError as err:
        print(f"hardener: error: {err.one_line()}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
