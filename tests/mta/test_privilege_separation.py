"""Privilege separation, checked from outside through /proc: one root master that holds no client
socket, smtpd and cleanup jailed in the queue directory as the mail owner with no capabilities and
NoNewPrivs, smtpd holding no queue file (cleanup writes them), a qmgr that holds no listening
socket (issue 8, item 1; hardener/mta/master/privileges.py)."""

from __future__ import annotations

import pwd
import time
from pathlib import Path

from tests.fixtures import procs
from tests.fixtures.mta import DEFAULT_MASTER_CF, MAIL_OWNER, SmtpClient
from tests.fixtures.procs import TCP_ESTABLISHED, TCP_LISTEN

# pickup runs as the mail owner too (hardener/mta/master/pickup_process.py): only the master is root
ROOT_UNTIL_PICKUP_IS_SPLIT: set[str] = set()
# as the rendered profiles (templates/postfix/master.cf.j2): smtpd and cleanup chrooted
JAILED_MASTER_CF = DEFAULT_MASTER_CF.replace("cleanup   unix  n  -  n  -  0  cleanup",
                                             "cleanup   unix  n  -  y  -  0  cleanup")
assert JAILED_MASTER_CF != DEFAULT_MASTER_CF


def _processes(mta) -> dict[int, str]:
    """pid -> role (its /proc comm) for the master and its children."""
    pids = mta.pids()
    assert pids, "the daemon is not running"
    return {pid: procs.comm(pid) for pid in pids}


def _with_open_session(mta):
    client = SmtpClient(mta.address, mta.port)
    assert client.greeting()[0] == 220
    assert client.cmd("EHLO client.example")[0] == 250
    return client


def test_one_root_master_without_client_sockets_and_a_jailed_unprivileged_smtpd(mta_factory):
    mta = mta_factory(master_cf_text=JAILED_MASTER_CF)
    owner = pwd.getpwnam(MAIL_OWNER)
    with _with_open_session(mta):
        roles = _processes(mta)
        states = procs.tcp_states()
        master = mta.proc.pid
        assert roles[master] == "master"
        assert sorted(r for r in roles.values() if r != "pickup") == [
            "cleanup", "master", "qmgr", "smtpd"]

        root = [pid for pid in roles if procs.status(pid)["Uid"].split()[:3] != ["0"] * 3
                and "0" in procs.status(pid)["Uid"].split()[:3]]
        assert root == [], f"half-dropped processes: {root}"
        uid0 = [pid for pid, role in roles.items() if procs.status(pid)["Uid"].split()[0] == "0"
                and role not in ROOT_UNTIL_PICKUP_IS_SPLIT]
        assert uid0 == [master]

        master_sockets = procs.socket_inodes(master)
        assert any(states.get(i) == TCP_LISTEN for i in master_sockets)  # it bound port 25
        assert not any(states.get(i) == TCP_ESTABLISHED for i in master_sockets)

        for pid, role in roles.items():
            status = procs.status(pid)
            if role == "smtpd":   # reads client input
                assert status["Uid"].split() == [str(owner.pw_uid)] * 4
                assert status["Gid"].split() == [str(owner.pw_gid)] * 4
                assert status["Groups"] == ""
                assert status["CapEff"] == status["CapPrm"] == "0" * 16
                assert status["NoNewPrivs"] == "1"
                assert procs.root(pid) == str(mta.queue_dir)
                # the open session is served here
                assert any(states.get(i) == TCP_ESTABLISHED for i in procs.socket_inodes(pid))
            if role == "cleanup":   # reads what smtpd sends
                assert status["Uid"].split() == [str(owner.pw_uid)] * 4
                assert status["Groups"] == ""
                assert status["CapEff"] == status["CapPrm"] == "0" * 16
                assert status["NoNewPrivs"] == "1"
                assert procs.root(pid) == str(mta.queue_dir)
                assert not any(states.get(i) in (TCP_LISTEN, TCP_ESTABLISHED)
                               for i in procs.socket_inodes(pid))
            if role == "qmgr":
                assert status["Uid"].split() == [str(owner.pw_uid)] * 4
                assert status["CapEff"] == "0" * 16 and status["NoNewPrivs"] == "1"
                assert not any(states.get(i) == TCP_LISTEN for i in procs.socket_inodes(pid))


def _queue_files_open(pid: int, queue_dir: Path) -> list[str]:
    """Files under the queue directory `pid` holds open (paths as the jailed process sees them
    are relative to its root, which /proc/PID/fd resolves: both spellings are checked)."""
    found = []
    root = procs.root(pid)
    for target in procs.fd_targets(pid):
        if not target.startswith("/"):
            continue
        for full in {target, root.rstrip("/") + target}:
            if any(full.startswith(f"{queue_dir}/{sub}/")
                   for sub in ("incoming", "tmp", "active", "deferred")):
                found.append(target)
                break
    return found


def test_smtpd_holds_no_queue_file_while_cleanup_writes_the_message(mta_factory):
    """A message larger than cleanup's in-memory part is on its way: cleanup holds tmp/QID open,
    smtpd holds no descriptor under the queue (it has no code path that opens one: the message
    goes down its cleanup channel)."""
    mta = mta_factory(master_cf_text=JAILED_MASTER_CF)
    with SmtpClient(mta.address, mta.port) as c:
        c.greeting()
        c.cmd("EHLO client.example")
        assert c.cmd("MAIL FROM:<a@example.org>")[0] == 250
        assert c.cmd("RCPT TO:<root@mx.hardener.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send_raw(b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 400)   # ~400 KB
        roles = _processes(mta)
        (smtpd,) = [pid for pid, role in roles.items() if role == "smtpd"]
        (cleanup,) = [pid for pid, role in roles.items() if role == "cleanup"]
        held: list[str] = []
        for _ in range(100):   # until cleanup has spilled the message to tmp/ (bounded)
            held = _queue_files_open(cleanup, mta.queue_dir)
            if held:
                break
            time.sleep(0.05)
        assert held and held[0].endswith(tuple("0123456789ABCDEF")) and "/tmp/" in held[0]
        assert _queue_files_open(smtpd, mta.queue_dir) == []
        code, text = c.cmd(b".")
        assert code == 250, text
    assert _queue_files_open(smtpd, mta.queue_dir) == []


def test_smtpd_without_chroot_is_still_unprivileged(mta_factory):
    """chroot n in master.cf: no jail (root directory /), the rest of the drop is the same."""
    mta = mta_factory(master_cf_text="{listen}  inet  n  -  n  -  -  smtpd\n"
                                     "qmgr      unix  n  -  n  300 1 qmgr\n")
    with _with_open_session(mta):
        smtpd = [pid for pid, role in _processes(mta).items() if role == "smtpd"]
        assert len(smtpd) == 1
        status = procs.status(smtpd[0])
        assert status["Uid"].split()[0] != "0" and status["NoNewPrivs"] == "1"
        assert procs.root(smtpd[0]) == "/"
    assert "chroot is not done" not in mta.log_text()


def test_jailed_smtpd_takes_mail_and_a_reload(mta_factory):
    """Inside the jail smtpd still queues mail (cleanup writes queue-relative paths) and a reload
    reaches it (the master sends the settings it read: the jail has no main.cf)."""
    import subprocess
    import sys

    mta = mta_factory()
    with SmtpClient(mta.address, mta.port) as c:
        c.greeting()
        c.cmd("EHLO client.example")
        assert c.cmd("MAIL FROM:<a@example.org>")[0] == 250
        assert c.cmd("RCPT TO:<root@mx.hardener.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        code, text = c.cmd(b"Subject: jailed\r\n\r\nbody\r\n.")
        assert code == 250, text
    (mta.config_dir / "main.cf").write_text(
        (mta.config_dir / "main.cf").read_text() + "smtpd_banner = $myhostname reloaded ESMTP\n")
    subprocess.run([sys.executable, "-m", "hardener", "mta", "reload", "--config",
                    str(mta.config_dir)], check=True, capture_output=True, timeout=60)
    mta.wait_for_log("reload -- configuration")
    with SmtpClient(mta.address, mta.port) as c:
        assert "reloaded ESMTP" in c.greeting()[1]
