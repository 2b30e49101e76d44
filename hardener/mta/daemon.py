"""`hardener mta serve`: the daemon in the foreground (Postfix's master + its services in one).

Order, as Postfix's daemon skeleton: load and validate the configuration (ConfigError: exit 2), open
the log, create and own the queue tree, write the pid file, bind the listeners, start the pickup
helper (it stays root: maildrop files belong to the submitting users), then drop to the mail owner
and run smtpd, cleanup and qmgr as asyncio tasks. SIGTERM/SIGINT stop (listeners closed, sessions
given a few seconds, qmgr stopped, pid file removed); SIGHUP reloads main.cf for smtpd's policy.

SECURITY: starts as root; after the drop the network-facing process runs as mail_owner.
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
from hardener.mta.cleanup import Cleanup, CleanupSettings
from hardener.mta.privileges import (bind_listeners, drop_privileges, owner_ids,
                                      set_parent_death_signal)
from hardener.mta.queue_layout import QueueLayout, QueueLayoutError
from hardener.mta.settings import MtaSettings, load_settings

# Imported lazily so the pickup helper, forked before them, stays small:
# hardener.mta.smtpd, hardener.mta.smtpd_context, hardener.mta.qmgr_settings builders.

log = maillog.get_logger("master")
PID_FILE = "pid/master.pid"
STOP_GRACE = 5.0


def pid_file_path(queue_directory: str | os.PathLike[str]) -> Path:
    """Where the daemon's pid file lives (inside the queue directory, as Postfix's master.pid)."""
    return Path(queue_directory) / PID_FILE


def read_pid(path: Path) -> int | None:
    """The pid in `path` if that process is alive, else None."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


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
    running = read_pid(path)
    if running is not None and running != os.getpid():
        raise ConfigError(f"the daemon is already running (pid {running})", file=str(path))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def _start_pickup_helper(settings: MtaSettings, layout: QueueLayout,
                         owner: tuple[int, int] | None, sockets: list) -> tuple[int, int] | None:
    """Fork the pickup helper (root, reads maildrop/); returns (pid, lifeline fd) or None.

    The helper stops when the lifeline pipe closes (the daemon exits or closes it): after the
    privilege drop the daemon can no longer signal a root process.
    """
    try:
        from hardener.mta.qmgr_settings import build_pickup
    except ImportError:
        return None
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
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        set_parent_death_signal()

        async def run() -> None:
            cleanup = Cleanup(layout, CleanupSettings(settings.myhostname, settings.myorigin),
                              owner=owner)
            pickup = build_pickup(settings, layout, cleanup)
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, pickup.stop)
            loop.add_reader(rfd, pickup.stop)
            await pickup.run()
            cleanup.close()

        asyncio.run(run())
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
    try:
        sockets = bind_listeners(settings.listeners)
        helper = _start_pickup_helper(settings, layout, owner, sockets)
        from hardener.mta.smtpd_context import SmtpdContext

        cleanup = Cleanup(layout, CleanupSettings(settings.myhostname, settings.myorigin))
        ctx = SmtpdContext.build(settings, cleanup)
        _preload_modules()
        drop_privileges(settings.mail_owner)
        log.info(f"daemon started -- configuration {Path(config_dir).resolve()}")
        _event_loop_policy()
        asyncio.run(_run(settings, layout, cleanup, ctx, sockets, Path(config_dir)))
        log.info("terminating on signal")
    finally:
        for _, sock in sockets:
            sock.close()
        if helper:
            os.close(helper[1])
            try:
                os.waitpid(helper[0], 0)
            except ChildProcessError:
                pass
        try:
            if read_pid(pid_path) in (os.getpid(), None):
                pid_path.unlink()
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                print(f"hardener: warning: cannot remove {pid_path}: {exc.strerror}",
                      file=sys.stderr)
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
    from hardener.mta.smtpd import HardenedSMTP

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload(ctx, config_dir))
    qmgr = None
    tasks: list[asyncio.Task] = []
    try:
        from hardener.mta.qmgr_settings import build_queue_manager
    except ImportError:
        build_queue_manager = None
    if build_queue_manager is not None:
        qmgr = build_queue_manager(settings, layout, cleanup)
        cleanup.on_commit = qmgr.wake
        tasks.append(loop.create_task(qmgr.run(), name="qmgr"))
    maillog.set_batched(True)
    servers = []
    for listener, sock in sockets:
        server = await loop.create_server(lambda lst=listener: HardenedSMTP(ctx, lst), sock=sock)
        servers.append(server)
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


def _reload(ctx, config_dir: Path) -> None:
    """SIGHUP: re-read main.cf; smtpd's policy, limits and tables change for new sessions."""
    from hardener.mta.relay_policy import PolicySettings
    from hardener.mta.smtpd_context import SmtpdContext

    try:
        settings = load_settings(config_dir)
        fresh = SmtpdContext.build(settings, ctx.cleanup)
    except Exception as exc:  # a bad edit must not kill a running daemon
        log.warning(f"reload failed, keeping the running configuration: {exc}")
        return
    if [(l.address, l.port) for l in settings.listeners] != \
            [(l.address, l.port) for l in ctx.settings.listeners]:
        log.warning("listen addresses changed: restart the daemon to apply them")
    try:
        maillog.reopen()  # after log rotation, as `postfix reload` does for maillog_file
    except OSError as exc:
        log.warning(f"cannot reopen the log file: {exc.strerror}")
    ctx.settings, ctx.policy = settings, PolicySettings.from_settings(settings)
    ctx.anvil, ctx.recipients = fresh.anvil, fresh.recipients
    log.info(f"reload -- configuration {config_dir.resolve()}")


def main(argv: list[str] | None = None) -> int:
    """Lean entry point (`python -m hardener.mta.daemon --config DIR`): `hardener mta serve` execs
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
