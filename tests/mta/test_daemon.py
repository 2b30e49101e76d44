"""The daemon skeleton: refuses configs it cannot honour (exit 2, one line), start/stop/reload/status
through the pid file, privilege drop to the mail owner after binding."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import procs
from tests.fixtures.mta import SmtpClient


def hardener(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hardener", *args], capture_output=True,
                          text=True, timeout=timeout)


def uid_of(pid: int) -> int:
    return int(procs.status(pid)["Uid"].split()[1])   # effective uid


def child_named(master: int, comm: str) -> int:
    """The master's child process named `comm` (the master names them as Postfix's programs)."""
    for pid in procs.children(master):
        try:
            if procs.comm(pid) == comm:
                return pid
        except OSError:
            continue
    raise AssertionError(f"no {comm} child of {master}")


@pytest.mark.parametrize("override, field", [
    ({"smtpd_relay_restrictions": "permit_mynetworks, check_policy_service inet:1.2.3.4:9"},
     "smtpd_relay_restrictions"),
    ({"smtpd_recipient_restrictions": "reject_everything_fancy"}, "smtpd_recipient_restrictions"),
    ({"smtpd_relay_restrictions": "permit_mynetworks"}, "smtpd_recipient_restrictions"),
    ({"inet_interfaces": "127.0.250.250"}, "inet_interfaces"),
    ({"mail_owner": "no-such-user-here"}, "mail_owner"),
    ({"queue_directory": "/etc/passwd/queue"}, "queue_directory"),
    ({"smtpd_sasl_authenticated_header": "yes"}, "smtpd_sasl_authenticated_header"),
    ({"message_size_limit": "lots"}, "message_size_limit"),
    ({"smtpd_forbid_bare_newline": "sometimes"}, "smtpd_forbid_bare_newline"),
    ({"smtpd_banner": "$myhostname ESMTP $mail_name ($mail_version)"}, "smtpd_banner"),
    ({"smtpd_banner": "$myhostname ESMTP MailServer 2.4.1"}, "smtpd_banner"),
])
def test_refuses_config_it_cannot_honour(mta_factory, override, field):
    mta = mta_factory(override, start=False)
    result = hardener("mta", "serve", "--config", str(mta.config_dir))
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith(f"hardener: error: {mta.config_dir / 'main.cf'}:")
    assert f": {field}: " in lines[0]
    assert not mta.queue_dir.joinpath("pid", "master.pid").exists()


def test_refuses_listen_address_not_on_any_interface(mta_factory):
    mta = mta_factory(master_cf_text="127.0.250.251:2525 inet n - n - - smtpd\n", start=False)
    result = hardener("mta", "serve", "--config", str(mta.config_dir))
    assert result.returncode == 2
    assert "master.cf" in result.stderr and "127.0.250.251" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_start_status_reload_stop(mta_factory):
    mta = mta_factory(start=False)
    cfg = str(mta.config_dir)
    assert hardener("mta", "status", "--config", cfg).returncode == 3
    started = hardener("mta", "start", "--config", cfg)
    assert started.returncode == 0, started.stderr
    try:
        pid = int((mta.queue_dir / "pid" / "master.pid").read_text())
        status = hardener("mta", "status", "--config", cfg)
        assert status.returncode == 0 and str(pid) in status.stdout
        # the master stays root (it binds, restarts children, reopens logs); smtpd runs as the
        # mail owner (tests/mta/test_privilege_separation.py checks every process)
        assert uid_of(pid) == 0
        assert uid_of(child_named(pid, "smtpd")) == pwd.getpwnam("hardener").pw_uid
        with SmtpClient(mta.address, mta.port) as c:
            assert c.greeting()[1] == "220 mx.hardener.test ESMTP"
        # reload picks up a changed banner for new sessions
        main_cf = mta.config_dir / "main.cf"
        main_cf.write_text(main_cf.read_text().replace("smtpd_banner = $myhostname ESMTP",
                                                       "smtpd_banner = $myhostname ESMTP ready"))
        assert hardener("mta", "reload", "--config", cfg).returncode == 0
        mta.wait_for_log("reload -- configuration")
        with SmtpClient(mta.address, mta.port) as c:
            assert c.greeting()[1] == "220 mx.hardener.test ESMTP ready"
        assert hardener("mta", "start", "--config", cfg).returncode == 0   # already running: ok
    finally:
        stopped = hardener("mta", "stop", "--config", cfg)
    assert stopped.returncode == 0
    assert not (mta.queue_dir / "pid" / "master.pid").exists()
    assert hardener("mta", "status", "--config", cfg).returncode == 3
    log = mta.log_text()
    assert "hardener/master[" in log and "daemon started" in log


def test_start_reports_bad_config_in_one_line(mta_factory):
    mta = mta_factory({"smtpd_relay_restrictions": "permit_nobody"}, start=False)
    result = hardener("mta", "start", "--config", str(mta.config_dir))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "smtpd_relay_restrictions" in result.stderr


def test_restart_after_kill9_and_queue_ownership(mta_factory):
    mta = mta_factory()
    owner = pwd.getpwnam("hardener")
    for name in ("incoming", "active", "deferred", "hold", "corrupt", "tmp"):
        st = os.stat(mta.queue_dir / name)
        assert (st.st_uid, st.st_mode & 0o777) == (owner.pw_uid, 0o700)
    st = os.stat(mta.queue_dir / "maildrop")   # only pickup writes it (pickup_socket.py)
    assert (st.st_uid, st.st_mode & 0o7777) == (owner.pw_uid, 0o700)
    main_pid, *children = mta.pids()
    assert uid_of(child_named(main_pid, "smtpd")) == owner.pw_uid
    mta.kill9()                       # stale pid file left behind
    assert (mta.queue_dir / "pid" / "master.pid").exists()
    mta.start()
    with SmtpClient(mta.address, mta.port) as c:
        assert c.greeting()[0] == 220


def test_inet_interfaces_with_port_only_service_listens_on_each(mta_factory, loopback):
    second = loopback.host()
    mta = mta_factory(start=False)
    mta.write_config({"inet_interfaces": f"{mta.address}, {second}"},
                     f"{mta.port} inet n - n - - smtpd\n", None)
    mta.start()
    for address in (mta.address, second):
        with SmtpClient(address, mta.port) as c:
            assert c.greeting()[0] == 220
    with pytest.raises(OSError):   # nothing on an address that is not in inet_interfaces
        SmtpClient("127.0.0.1", mta.port, timeout=2)


def test_logs_to_stderr_without_maillog_file(mta_factory):
    mta = mta_factory({"maillog_file": ""}, start=False)
    if Path("/dev/log").exists():
        pytest.skip("a syslog socket exists here: the daemon would log there")
    mta.start()
    with SmtpClient(mta.address, mta.port) as c:
        c.greeting()
        c.cmd("QUIT")
    mta.stop()
    text = mta.stderr_path.read_text()
    assert "hardener/master[" in text and "hardener/smtpd[" in text
    assert "disconnect from" in text and mta.log_text() == ""
