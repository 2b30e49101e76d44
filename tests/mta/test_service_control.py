"""Service control as Postfix's: one daemon per queue (pid/master.lock), `status` with LSB exit
codes (0 running, 3 not running), `reload` that refuses a broken configuration in one line while
the running daemon keeps serving.

Before this change (issue 8 item 3): a second daemon started whenever master.pid was missing,
`status` exited 1, and `reload` signalled the daemon whatever main.cf held and said "reloaded".
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

from tests.fixtures.mta import MtaInstance, SmtpClient
from tests.fixtures.net import free_port
from tests.fixtures.unprivileged import as_user, skip_unless_nobody_can_run


def hardener(*args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "hardener", *args]
    if user:
        cmd = as_user(cmd, user)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/")


def banner(mta: MtaInstance) -> str:
    with SmtpClient(mta.address, mta.port) as client:
        return client.greeting()[1]


def test_a_second_daemon_on_the_same_queue_refuses_in_one_line(mta_factory):
    mta = mta_factory()
    # another config directory (another port) naming the same queue_directory
    other = mta.root / "etc2"
    shutil.copytree(mta.config_dir, other)
    port = free_port(mta.address)
    (other / "master.cf").write_text((other / "master.cf").read_text().replace(
        f"{mta.address}:{mta.port}", f"{mta.address}:{port}"))
    # even with the pid file gone (an admin's rm, a tmp cleaner), the lock says who runs
    os.unlink(mta.queue_dir / "pid" / "master.pid")
    second = hardener("mta", "serve", "--config", str(other))
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert lines == [f"hardener: error: {mta.queue_dir / 'pid' / 'master.lock'}: the daemon is "
                     f"already running on this queue (pid {mta.proc.pid})"], second.stderr
    assert mta.proc.poll() is None and banner(mta).startswith("220 ")
    status = hardener("mta", "status", "--config", str(other))   # the lock names the master
    assert status.returncode == 0 and f"pid {mta.proc.pid}" in status.stdout


def test_status_exit_codes(mta_factory):
    mta = mta_factory(start=False)
    cfg = str(mta.config_dir)
    never = hardener("mta", "status", "--config", cfg)
    assert (never.returncode, never.stdout) == (3, "hardener mta: not running\n")
    mta.start()
    running = hardener("mta", "status", "--config", cfg)
    assert (running.returncode, running.stdout) == (0, f"hardener mta: running (pid {mta.proc.pid})\n")
    skip_unless_nobody_can_run()
    anyone = hardener("mta", "status", "--config", cfg, user="nobody")   # no root needed
    assert anyone.returncode == 0, anyone.stderr
    mta.kill9()   # the pid file stays behind; the kernel released the lock
    assert (mta.queue_dir / "pid" / "master.pid").exists()
    assert hardener("mta", "status", "--config", cfg).returncode == 3
    mta.start()
    mta.stop()
    assert hardener("mta", "status", "--config", cfg).returncode == 3


def test_a_broken_reload_is_refused_and_the_daemon_keeps_serving(mta_factory):
    mta = mta_factory()
    cfg = str(mta.config_dir)
    main_cf = mta.config_dir / "main.cf"
    good = main_cf.read_text()
    main_cf.write_text(good + "smtpd_banner = $myhostname ESMTP broken\n"
                              "smtpd_relay_restrictions = permit_nobody\n")
    refused = hardener("mta", "reload", "--config", cfg)
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith(f"hardener: error: {main_cf}:") and "smtpd_relay_restrictions" in line
    assert banner(mta) == "220 mx.hardener.test ESMTP"   # not signalled: the old one serves
    assert "reload" not in mta.log_text()
    # signalled anyway (kill -HUP): the daemon keeps the running configuration and says why
    os.kill(mta.proc.pid, signal.SIGHUP)
    mta.wait_for_log("reload failed, keeping the running configuration")
    assert banner(mta) == "220 mx.hardener.test ESMTP" and mta.proc.poll() is None
    # an unsafe file is refused the same way (`hardener mta check`)
    main_cf.write_text(good + "smtpd_banner = $myhostname ESMTP new\n")
    os.chmod(main_cf, 0o666)
    unsafe = hardener("mta", "reload", "--config", cfg)
    assert unsafe.returncode == 2 and "writable by group or others (mode 0666)" in unsafe.stderr
    os.chmod(main_cf, 0o644)
    assert hardener("mta", "reload", "--config", cfg).returncode == 0
    mta.wait_for_log("reload -- configuration")
    assert banner(mta) == "220 mx.hardener.test ESMTP new"
