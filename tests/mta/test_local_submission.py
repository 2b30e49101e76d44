"""Local submission through the real daemon: a real non-root account runs `hardener sendmail`, the
message goes through pickup's socket to smtp-sink; pickup runs as the mail owner.

Before this design (issue 8), maildrop/ was world-writable (1733) and pickup ran as root in the
daemon's helper, reading files the users owned: every test below failed there (no socket; pickup's
/proc status showed uid 0).
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import procs
from tests.fixtures.mta import DEFAULT_MASTER_CF, MAIL_OWNER
from tests.fixtures.relay import NO_TLS
from tests.fixtures.unprivileged import as_user, skip_unless_nobody_can_run, temporary_account

SUBMITTER = "hrd-submit"
HARDENER = str(Path(sys.executable).parent / "hardener")


@pytest.fixture
def submitter() -> Iterator[pwd.struct_passwd]:
    """A real unprivileged account, created for the test and removed after it."""
    skip_unless_nobody_can_run()   # the same question: can another user run this checkout?
    with temporary_account(SUBMITTER, "--user-group") as user:
        yield user


def sendmail(config: Path, args: list[str], message: bytes,
             user: pwd.struct_passwd | None) -> subprocess.CompletedProcess[bytes]:
    """`hardener sendmail -C config ARGS` as `user` (real ids, no groups), or as root."""
    cmd = [HARDENER, "sendmail", "-C", str(config), *args]
    if user is not None:
        cmd = as_user(cmd, user.pw_uid, user.pw_gid)
    return subprocess.run(cmd, input=message, capture_output=True, timeout=60, cwd="/")


def status_ids(pid: int) -> dict[str, list[int]]:
    """Uid, Gid (real, effective, saved, fs), CapEff and NoNewPrivs from /proc/PID/status."""
    out = {}
    for key, value in procs.status(pid).items():
        if key in ("Uid", "Gid"):
            out[key] = [int(v) for v in value.split()]
        elif key in ("CapEff", "NoNewPrivs"):
            out[key] = [int(value.strip(), 16 if key == "CapEff" else 10)]
    return out


@pytest.mark.parametrize("chroot", ["n", "y"])
def test_a_user_submits_and_the_mail_is_delivered(mta_factory, smtp_sink_factory, submitter,
                                                  chroot):
    """master.cf's pickup line decides the jail: y (the rendered profiles) is the queue dir."""
    sink = smtp_sink_factory()
    master_cf = DEFAULT_MASTER_CF.replace("pickup    unix  n  -  n", f"pickup    unix  n  -  {chroot}")
    mta = mta_factory({**NO_TLS, "relayhost": f"[{sink.address}]:{sink.port}"},
                      master_cf_text=master_cf)
    # -f root: the user may choose the envelope sender, not who the log says submitted it
    done = sendmail(mta.config_dir, ["-f", "root", "ops@remote.example"],
                    b"Subject: from a user\n\nhello\n", submitter)
    assert done.returncode == 0, done.stderr
    assert sink.wait_for_messages(1, timeout=30) == 1, mta.log_text()[-2000:]
    text = sink.message_files()[0].read_text()
    assert f"(hardener, from userid {submitter.pw_uid})" in text and "hello" in text
    log = mta.wait_for_log("from=<root@mx.hardener.test>")
    found = re.search(rf"hardener/pickup\[(\d+)\]: [0-9A-F]+: uid={submitter.pw_uid} "
                      rf"from=<root@mx\.hardener\.test>", log)
    assert found, log[-2000:]
    assert "uid=0 " not in log
    # the process that logged it, pickup, is the mail owner's through and through
    pid = int(found.group(1))
    owner = pwd.getpwnam(MAIL_OWNER)
    ids = status_ids(pid)
    assert procs.comm(pid) == "pickup"
    assert ids["Uid"] == [owner.pw_uid] * 4 and ids["Gid"] == [owner.pw_gid] * 4, ids
    assert ids["CapEff"] == [0] and ids["NoNewPrivs"] == [1], ids
    root = procs.root(pid)
    assert root == (str(mta.queue_dir) if chroot == "y" else "/"), root
    # maildrop/ is the mail owner's alone; the socket is root's, in root's public/
    st = os.stat(mta.queue_dir / "maildrop")
    assert (st.st_uid, st.st_mode & 0o7777) == (owner.pw_uid, 0o700)
    sock = os.lstat(mta.queue_dir / "public" / "pickup")
    assert (sock.st_uid, sock.st_mode & 0o777) == (0, 0o666)


def test_daemon_down_user_is_told_root_queues(mta_factory, smtp_sink_factory, submitter):
    """With the daemon stopped: the user gets 75 (EX_TEMPFAIL) and one line, nothing is queued;
    root's message waits in maildrop/ and is delivered once the daemon runs again."""
    sink = smtp_sink_factory()
    mta = mta_factory({**NO_TLS, "relayhost": f"[{sink.address}]:{sink.port}"})
    mta.stop()
    user = sendmail(mta.config_dir, ["ops@remote.example"], b"Subject: user\n\nx\n", submitter)
    assert user.returncode == 75, user.stderr
    assert len(user.stderr.decode().strip().splitlines()) == 1
    assert b"the mail system is not running" in user.stderr
    assert os.listdir(mta.queue_dir / "maildrop") == []
    root = sendmail(mta.config_dir, ["ops@remote.example"], b"Subject: root\n\ny\n", None)
    assert root.returncode == 0 and b"warning: the mail system is not running" in root.stderr
    assert len(os.listdir(mta.queue_dir / "maildrop")) == 1
    mta.start()
    assert sink.wait_for_messages(1, timeout=30) == 1, mta.log_text()[-2000:]
    assert "Subject: root" in sink.message_files()[0].read_text()
    assert re.search(r"hardener/pickup\[\d+\]: [0-9A-F]+: uid=0 from=<root@", mta.log_text())
