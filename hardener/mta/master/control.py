"""`hardener mta start|stop|reload|status`: manage the background daemon through its pid file.

No systemd here (and none needed): start runs `hardener mta serve` detached and waits until it has
written its pid file and its listeners accept connections, or reports the error it exited with.

SECURITY: runs as the invoking user (root to start a daemon that binds port 25); signals only the
pid recorded in the queue directory's pid file, after checking it is a hardener process. The pid
file is read by daemon.read_pid: O_NOFOLLOW, a regular file owned by root (or this user), so a link
or file the mail owner planted in an older, mail-owner-owned pid/ never names the pid to signal.
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
from hardener.mta.master.daemon import is_daemon_process, pid_file_path, read_pid
from hardener.postfix.maincf import load_main_cf

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def _pid_path(config: Path) -> Path:
    main = load_main_cf(Path(config) / "main.cf")
    return pid_file_path(main.get("queue_directory"))


def start(config: Path) -> int:
    """Start the daemon in the background; 0 when it runs, 2 with its error line when it failed."""
    from hardener.mta.config.settings import load_settings

    settings = load_settings(config)  # refuse bad config here, with the one-line error
    pid_path = pid_file_path(settings.queue_directory)
    running = read_pid(pid_path)
    if running is not None and is_daemon_process(running):
        print(f"hardener mta: already running (pid {running})")
        return 0
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
    pid_path = _pid_path(config)
    pid = read_pid(pid_path)
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
    """SIGHUP the daemon (0), or 1 when it is not running."""
    pid = read_pid(_pid_path(config))
    if pid is None or not is_daemon_process(pid):
        print("hardener mta: not running", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGHUP)
    print(f"hardener mta: reloaded (pid {pid})")
    return 0


def status(config: Path) -> int:
    """0 and the pid when the daemon runs, 1 when it does not."""
    pid = read_pid(_pid_path(config))
    if pid is None or not is_daemon_process(pid):
        print("hardener mta: not running")
        return 1
    print(f"hardener mta: running (pid {pid})")
    return 0
