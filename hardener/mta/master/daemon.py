"""`hardener mta serve`: the daemon in the foreground (Postfix's master + its services in one).

Order, as Postfix's daemon skeleton: load and validate the configuration (ConfigError: exit 2), open
the log, create and own the queue tree, write the pid file, bind the listeners, start the pickup
helper (it stays root: maildrop files belong to the submitting users), then drop to the mail owner
and run smtpd, cleanup and qmgr as asyncio tasks. SIGTERM/SIGINT stop (listeners closed, sessions
given a few seconds, qmgr stopped, pid file removed); SIGHUP reloads main.cf for smtpd's policy and
reopens maillog_file after rotation (the helper, still root, opens the fresh file: maillog_reopen).

SECURITY: starts as root; after the drop the network-facing process runs as mail_owner. What root
writes in the queue tree, it writes in root-owned pid/ (master.pid, through safe_open: a fresh
O_EXCL|O_NOFOLLOW temporary file renamed into place); it reads a pid file only when it is a regular
file owned by root or by this user. The pickup helper, root to the end, removes master.pid when the
daemon stops (the mail owner cannot: pid/ is root's, as in Postfix).
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import sys
from pathlib import Path

from hardener.errors import ConfigError
from hardener.mta import maillog
from hardener.mta.master import maillog_reopen
from hardener.mta.cleanup.service import Cleanup, CleanupSettings
from hardener.mta.master.privileges import (bind_listeners, drop_privileges, owner_ids,
                                      set_parent_death_signal)
from hardener.mta.queue.layout import QueueLayout, QueueLayoutError
from hardener.mta.safe_open import open_dir, open_regular, replace_file
from hardener.mta.config.settings import MtaSettings, load_settings

# Imported lazily so the pickup helper, forked before them, stays small:
# hardener.mta.smtpd.server, hardener.mta.smtpd.context, hardener.mta.qmgr.settings builders.

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


def _start_pickup_helper(settings: MtaSettings, layout: QueueLayout,
                         owner: tuple[int, int] | None, sockets: list,
                         pid_path: Path) -> tuple[int, int] | None:
    """Fork the pickup helper (root, reads maildrop/); returns (pid, lifeline fd) or None.

    The helper is the part that stays root: it also answers maillog_reopen requests and, when
    the daemon stops, removes master.pid. It stops when the lifeline pipe closes (the daemon exits
    or closes it): after the privilege drop the daemon can no longer signal a root process.
    """
    try:
        from hardener.mta.qmgr.settings import build_pickup
    except ImportError:
        return None
    daemon_pid = os.getpid()
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(rfd)
        return pid, wfd
    os.close(wfd)
    # child: no listening sockets, no network; only maildrop/ -> cleanup -> incoming/
    code = 0
    try:
        for _, sock in sockets:
            sock.close()
        maillog_reopen.keep_root_side()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        set_parent_death_signal()
        daemon_gone = False

        async def run() -> None:
            cleanup = Cleanup(layout, CleanupSettings.from_settings(settings),
                              owner=owner)
            pickup = build_pickup(settings, layout, cleanup)
            loop = asyncio.get_running_loop()

            def lifeline_closed() -> None:
                nonlocal daemon_gone
                daemon_gone = True
                loop.remove_reader(rfd)
                pickup.stop()

            loop.add_signal_handler(signal.SIGTERM, pickup.stop)
            loop.add_reader(rfd, lifeline_closed)
            maillog_reopen.serve(loop)
            await pickup.run()
            cleanup.close()

        asyncio.run(run())
        if daemon_gone:   # the daemon is stopping; it waits for us, so its pid is still its own
            remove_pid_file(pid_path, daemon_pid)
    except BaseException as exc:  # a crash of the helper must never run the parent's code
        maillog.get_logger("pickup").fatal(f"pickup helper: {exc!r}")
        code = 1
    finally:
        os._exit(code)


def serve(config_dir: str | os.PathLike[str]) -> int:
    """Run the daemon until SIGTERM/SIGINT; ConfigError before anything listens on bad config."""
    settings = load_settings(config_dir)
    _configure_log(settings)
    for warning in settings.warnings:
        log.warning(warning)
    layout, owner = _prepare_queue(settings)
    pid_path = pid_file_path(settings.queue_directory)
    _write_pid(pid_path)
    sockets = []
    helper: tuple[int, int] | None = None
    dropped = False
    try:
        sockets = bind_listeners(settings.listeners)
        if owner is not None and settings.maillog_file \
                and settings.maillog_file != maillog.STDOUT_PATH:
            maillog_reopen.make_channels(settings.maillog_file)
        helper = _start_pickup_helper(settings, layout, owner, sockets, pid_path)
        if helper is None:
            maillog_reopen.close()
        maillog_reopen.keep_client_side()
        from hardener.mta.smtpd.context import SmtpdContext

        cleanup = Cleanup(layout, CleanupSettings.from_settings(settings))
        ctx = SmtpdContext.build(settings, cleanup)
        _preload_modules()
        dropped = drop_privileges(settings.mail_owner)
        log.info(f"daemon started -- configuration {Path(config_dir).resolve()}")
        _event_loop_policy()
        asyncio.run(_run(settings, layout, cleanup, ctx, sockets, Path(config_dir)))
        log.info("terminating on signal")
    finally:
        for _, sock in sockets:
            sock.close()
        if helper:
            os.close(helper[1])   # the helper removes master.pid (root's pid/) and exits
            try:
                os.waitpid(helper[0], 0)
            except ChildProcessError:
                pass
        maillog_reopen.close()
        if not dropped:
            remove_pid_file(pid_path, os.getpid())
    return 0


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


async def _run(settings: MtaSettings, layout: QueueLayout, cleanup: Cleanup, ctx,
               sockets: list, config_dir: Path) -> None:
    from hardener.mta.smtpd.server import start_services

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    qmgr = None
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload(ctx, config_dir, qmgr))
    tasks: list[asyncio.Task] = []
    try:
        from hardener.mta.qmgr.settings import build_queue_manager
    except ImportError:
        build_queue_manager = None
    if build_queue_manager is not None:
        qmgr = build_queue_manager(settings, layout, cleanup)
        cleanup.on_commit = qmgr.wake
        tasks.append(loop.create_task(qmgr.run(), name="qmgr"))
    maillog.set_batched(True)
    servers = start_services(ctx, sockets)  # accept up to each service's process limit
    await stop.wait()
    ctx.stopping = True
    for server in servers:
        server.close()
    deadline = loop.time() + STOP_GRACE
    while sum(ctx.sessions.values()) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    if qmgr is not None:
        await qmgr.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    cleanup.close()
    maillog.set_batched(False)


def _reload(ctx, config_dir: Path, qmgr=None) -> None:
    """SIGHUP: reopen maillog_file (after rotation, as `postfix reload` does; also in the qmgr
    child), then re-read main.cf: smtpd's policy, limits and tables change for new sessions."""
    from hardener.mta.smtpd.relay_policy import PolicySettings
    from hardener.mta.smtpd.context import SmtpdContext

    maillog_reopen.reopen_log("master")
    qmgr_pid = getattr(qmgr, "pid", 0)
    if qmgr_pid:
        try:
            os.kill(qmgr_pid, signal.SIGHUP)
        except ProcessLookupError:
            pass   # restarting; the new child inherits the channel and reopens at the next reload
    try:
        settings = load_settings(config_dir)
        fresh = SmtpdContext.build(settings, ctx.cleanup)
    except Exception as exc:  # a bad edit must not kill a running daemon
        log.warning(f"reload failed, keeping the running configuration: {exc}")
        return
    if [(l.address, l.port) for l in settings.listeners] != \
            [(l.address, l.port) for l in ctx.settings.listeners]:
        log.warning("listen addresses changed: restart the daemon to apply them")
    if settings.maillog_file != ctx.settings.maillog_file:
        log.warning("maillog_file changed: restart the daemon to apply it")
    ctx.settings, ctx.policy = settings, PolicySettings.from_settings(settings)
    fresh.anvil.carry_over(ctx.anvil)
    ctx.anvil, ctx.recipients = fresh.anvil, fresh.recipients
    log.info(f"reload -- configuration {config_dir.resolve()}")


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
