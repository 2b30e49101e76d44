"""maillog_file is reopened after rotation on `hardener mta reload`, as `postfix reload` does.

The file is root's (mode 0600, as Postfix's postlogd creates it) while smtpd, cleanup and the qmgr
child run as the mail owner: the part that stays root opens the fresh file and hands each process
its descriptor (hardener/mta/master/maillog_reopen.py). Before that design the reload logged
"cannot reopen the log file: Permission denied" and every process kept writing the rotated file.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from hardener.mta.pickup import new_maildrop_name, write_maildrop_header
from tests.fixtures import procs
from tests.fixtures.mta import MtaInstance, SmtpClient
from tests.fixtures.relay import wait_until


def hardener(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hardener", *args], capture_output=True,
                          text=True, timeout=60)


def session(mta: MtaInstance, helo: str) -> None:
    with SmtpClient(mta.address, mta.port) as c:
        assert c.greeting()[0] == 220
        assert c.cmd(f"EHLO {helo}")[0] == 250
        assert c.cmd("QUIT")[0] == 221


def log_files_held(pid: int) -> set[str]:
    """The log files process `pid` holds open (paths as the kernel reports them now)."""
    return {target for target in procs.fd_targets(pid) if "maillog" in target}


def submit_maildrop(mta: MtaInstance) -> None:
    """A local submission as `hardener sendmail` leaves it (written by root here), for pickup."""
    maildrop = mta.queue_dir / "maildrop"
    name = new_maildrop_name()
    data = write_maildrop_header("root", ["postmaster"], None) + b"Subject: rotated\n\nhello\n"
    (maildrop / f"t{name}").write_bytes(data)
    os.rename(maildrop / f"t{name}", maildrop / name)


def test_reload_after_rotation_writes_a_fresh_root_file(mta_factory):
    mta = mta_factory()
    session(mta, "before.example")
    mta.wait_for_log("disconnect from")
    rotated = mta.log_path.with_name("maillog.1")
    os.rename(mta.log_path, rotated)   # as logrotate does (no copytruncate)

    reloaded = hardener("mta", "reload", "--config", str(mta.config_dir))
    assert reloaded.returncode == 0, reloaded.stderr
    pids = mta.pids()
    assert len(pids) >= 3   # the daemon, the pickup helper (root), the qmgr child
    # every process of the daemon now holds the fresh file, none the rotated one
    assert wait_until(lambda: all(log_files_held(p) == {str(mta.log_path)} for p in pids)), \
        {p: log_files_held(p) for p in pids}

    session(mta, "after.example")
    submit_maildrop(mta)   # pickup (the root helper) and qmgr (its child) log about it
    mta.wait_for_log("(queue active)")
    mta.wait_for_log("disconnect from")
    st = os.stat(mta.log_path)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
    fresh = mta.log_text()
    assert "reload -- configuration" in fresh and fresh.count(" ehlo=1 quit=1") == 1
    for component in ("master", "smtpd", "pickup", "qmgr"):
        assert f"hardener/{component}[" in fresh, (component, fresh)
    old = rotated.read_text()
    assert old.count(" ehlo=1 quit=1") == 1 and "daemon started" in old   # session 1 only
    assert "reload -- configuration" not in old and "(queue active)" not in old
    for text in (old, fresh):
        assert "warning" not in text and "cannot reopen" not in text, text


def test_reload_after_rotation_a_second_time(mta_factory):
    """Rotation works every time, not only once (each process asks again on each reload)."""
    mta = mta_factory()
    for n in (1, 2):
        os.rename(mta.log_path, mta.log_path.with_name(f"maillog.{n}"))
        assert hardener("mta", "reload", "--config", str(mta.config_dir)).returncode == 0
        assert wait_until(lambda: all(log_files_held(p) == {str(mta.log_path)}
                                      for p in mta.pids()))
        session(mta, f"round{n}.example")
        mta.wait_for_log("disconnect from")
    assert "warning" not in mta.log_text()
