"""`hardener mta start|stop|reload|status`: manage the background daemon, as `postfix start|...`.

No systemd here (and none needed): start runs `hardener mta serve` detached and waits until it has
written its pid file and its listeners accept connections, or reports the error it exited with.

Whether the daemon runs is what its lock says (master_lock: the master holds pid/master.lock for its
whole life; F_GETLK names the holder), not a pid file alone, which may be stale or name a reused
pid. `status` exits as an LSB init script's: 0 running, 3 not running. `reload` first loads and
checks the new configuration here, in the command's own process (load_settings and `hardener mta
check`): a broken one is refused in one line with exit 2 and the daemon, not signalled, keeps
serving the old one (the daemon re-reads it on SIGHUP and would keep the old one too, with a
warning in the log). `start` runs the same check before it starts anything.

SECURITY: runs as the invoking user (root to start a daemon that binds port 25); signals only the
pid that holds the lock or is recorded in the queue directory's pid file, after checking it is a
hardener process. The pid file is read by daemon.read_pid: O_NOFOLLOW, a regular file owned by
root (or this user), so a link or file the mail owner planted in an older, mail-owner-owned pid/
never names the pid to signal.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hardener.errors import ConfigError
from hardener.mta.config.settings import load_settings
from hardener.mta.master import master_lock
from hardener.mta.master.check import refuse_unsafe
from hardener.mta.master.daemon import is_daemon_process, pid_file_path, read_pid
from hardener.postfix.maincf import load_main_cf

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
STATUS_RUNNING, STATUS_NOT_RUNNING = 0, 3     # LSB init script `status` exit codes


def _queue_directory(config: Path) -> Path:
    main = load_main_cf(Path(config) / "main.cf")
    return Path(main.get("queue_directory"))


def running_pid(queue_directory: Path) -> int | None:
    """The pid of the daemon running on `queue_directory`, or None: the holder of its lock, else
    (no lock file: a daemon of an older version) the pid file's process if it is hardener's."""
    pid = master_lock.holder(queue_directory)
    if pid is not None:
        return pid
    if master_lock.lock_path(queue_directory).exists():
        return None   # nobody holds the lock: whatever the pid file says is stale
    pid = read_pid(pid_file_path(queue_directory))
    return pid if pid is not None and is_daemon_process(pid) else None


def start(config: Path) -> int:
    """Start the daemon in the background; 0 when it runs, 2 with its error line when it failed."""
    settings = load_settings(config)  # refuse bad config here, with the one-line error
    running = running_pid(settings.queue_directory)
    if running is not None:
        print(f"hardener mta: already running (pid {running})")
        return 0
    refuse_unsafe(settings)           # `hardener mta check`: files, modes, owners, mail_owner
    pid_path = pid_file_path(settings.queue_directory)
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hardener", "mta", "serve", "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
            start_new_session=True, close_fds=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                errors.seek(0)
                text = errors.read().decode(errors="replace").strip()
                raise ConfigError(text.splitlines()[-1].removeprefix("hardener: error: ")
                                  if text else f"daemon exited with status {code}")
            if read_pid(pid_path) == proc.pid and _listening(settings.listeners):
                print(f"hardener mta: started (pid {proc.pid})")
                return 0
            time.sleep(0.05)
        proc.terminate()
    raise ConfigError(f"daemon did not start within {START_TIMEOUT:.0f}s")


def _listening(listeners) -> bool:
    for lst in listeners:
        addr = "127.0.0.1" if lst.address == "0.0.0.0" else "::1" if lst.address == "::" \
            else lst.address
        try:
            with socket.create_connection((addr, lst.port), timeout=1):
                pass
        except OSError:
            return False
    return True


def stop(config: Path) -> int:
    """SIGTERM the daemon and wait for it to exit (0), or say it was not running (0)."""
    pid = running_pid(_queue_directory(config))
    if pid is None or not is_daemon_process(pid):
        print("hardener mta: not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            print(f"hardener mta: stopped (pid {pid})")
            return 0
        time.sleep(0.05)
    print(f"hardener mta: pid {pid} did not stop within {STOP_TIMEOUT:.0f}s", file=sys.stderr)
    return 1


def _zombie(pid: int) -> bool:
    try:
        return " Z " in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:4]
    except OSError:
        return True


def reload(config: Path) -> int:
    """Check the new configuration, then SIGHUP the daemon (0); 2 and one line (ConfigError) for
    a configuration the daemon must not take, 1 when it is not running."""
    settings = load_settings(config)              # ConfigError: one line, exit 2, no signal
    refuse_unsafe(settings, create=False)
    pid = running_pid(settings.queue_directory)
    if pid is None or not is_daemon_process(pid):
        print("hardener mta: not running", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGHUP)
    print(f"hardener mta: reloaded (pid {pid})")
    return 0


def status(config: Path) -> int:
    """0 and the pid when the daemon runs, 3 when it does not (LSB)."""
    pid = running_pid(_queue_directory(config))
    if pid is None:
        print("hardener mta: not running")
        return STATUS_NOT_RUNNING
    print(f"hardener mta: running (pid {pid})")
    return STATUS_RUNNING
