"""`hardener sendmail` (run as an unprivileged user) -> maildrop/ -> pickup -> cleanup -> incoming/.

pickup must trust nothing in maildrop/: hard links, symlinks, garbage and oversize files are refused.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hardener.mta.cleanup.service import Cleanup, CleanupSettings
from hardener.mta.pickup import Pickup, new_maildrop_name, write_maildrop_header
from hardener.mta.queue.file import parse_bytes
from hardener.mta.queue.layout import QueueLayout
from tests.fixtures.unprivileged import skip_unless_nobody_can_run


@pytest.fixture
def queue():
    """A queue directory other users can reach (pytest's tmp_path is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="hardener-pickup-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    layout = QueueLayout(base / "queue")
    layout.ensure()
    (base / "main.cf").write_text(f"queue_directory = {layout.root}\nmessage_size_limit = 100000\n"
                                  "myorigin = host.example\n")
    yield base, layout
    shutil.rmtree(base, ignore_errors=True)


def _sendmail(config: Path, args: list[str], stdin: bytes, user: str | None = "nobody"):
    cmd = [sys.executable, "-m", "hardener", "sendmail", "-C", str(config), *args]
    if user:
        skip_unless_nobody_can_run()
        cmd = ["setpriv", "--reuid", user, "--regid", "nogroup", "--clear-groups", *cmd]
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=30,
                          cwd="/", env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})


def _pickup(layout: QueueLayout, size_limit: int = 100000) -> int:
    async def go():
        cleanup = Cleanup(layout, CleanupSettings("mx.host.example", "host.example"))
        try:
            return await Pickup(layout, cleanup, myorigin="host.example",
                                size_limit=size_limit).scan()
        finally:
            cleanup.close()
    return asyncio.run(go())


def _incoming(layout: QueueLayout):
    return [parse_bytes((layout.dir("incoming") / q).read_bytes()) for q in layout.list("incoming")]


def test_sendmail_as_user_then_pickup(queue):
    base, layout = queue
    msg = b"To: Bob <bob@remote.example>\nCc: carol@remote.example\nBcc: secret@remote.example\n" \
          b"Subject: cron\n\nline one\n.\nnot reached without -i\n"
    done = _sendmail(base, ["-t", "-F", "Cron Daemon", "extra@remote.example"], msg)
    assert done.returncode == 0, done.stderr
    files = os.listdir(layout.dir("maildrop"))
    assert len(files) == 1
    st = os.stat(layout.dir("maildrop") / files[0])
    assert st.st_uid == 65534 and (st.st_mode & 0o777) == 0o600
    assert _pickup(layout) == 1
    assert os.listdir(layout.dir("maildrop")) == []
    (env, content), = _incoming(layout)
    assert env.sender == "nobody@host.example"
    assert sorted(r.address for r in env.recipients) == sorted(
        ["extra@remote.example", "bob@remote.example", "carol@remote.example",
         "secret@remote.example"])
    text = content.decode()
    assert "Bcc:" not in text and "secret@" not in text
    assert "\nDate: " in text and "\nMessage-Id: <" in text
    assert "From: nobody@host.example (Cron Daemon)" in text
    assert "line one\n" in text and "not reached" not in text
    assert "from userid 65534" in text


def test_dash_i_keeps_lone_dots_and_f_sets_sender(queue):
    base, layout = queue
    done = _sendmail(base, ["-oi", "-f", "robot@host.example", "u@remote.example"],
                     b"Subject: x\r\n\r\na\r\n.\r\nb\r\n")
    assert done.returncode == 0, done.stderr
    _pickup(layout)
    (env, content), = _incoming(layout)
    assert env.sender == "robot@host.example"
    assert content.endswith(b"a\n.\nb\n")  # CRLF normalised, lone dot kept


def test_sendmail_errors_have_sysexits_codes(queue, tmp_path):
    base, layout = queue
    no_rcpt = _sendmail(base, [], b"Subject: x\n\nhi\n")
    assert no_rcpt.returncode == 64 and b"no recipient" in no_rcpt.stderr
    assert len(no_rcpt.stderr.strip().splitlines()) == 1
    assert _sendmail(base, ["-bs"], b"").returncode == 64
    bad_config = _sendmail(tmp_path / "nowhere", ["u@x.example"], b"hi\n", user=None)
    assert bad_config.returncode == 78
    too_big = _sendmail(base, ["u@x.example"], b"Subject: x\n\n" + b"x" * 200000 + b"\n")
    assert too_big.returncode == 65
    assert os.listdir(layout.dir("maildrop")) == []  # nothing half-written left behind


def _drop(layout: QueueLayout, data: bytes) -> Path:
    path = layout.dir("maildrop") / new_maildrop_name()
    path.write_bytes(data)
    return path


def test_pickup_refuses_hard_links_and_symlinks(queue):
    base, layout = queue
    secret = base / "secret"
    secret.write_bytes(write_maildrop_header("x", ["mallory@evil.example"], None) + b"secret\n")
    os.link(secret, layout.dir("maildrop") / new_maildrop_name())
    os.symlink(secret, layout.dir("maildrop") / new_maildrop_name())
    assert _pickup(layout) == 0
    assert layout.list("incoming") == []
    assert secret.read_bytes().endswith(b"secret\n")  # the linked file itself is untouched


def test_pickup_refuses_garbage_and_oversize(queue):
    base, layout = queue
    _drop(layout, b"GET / HTTP/1.0\n\n")
    _drop(layout, write_maildrop_header("a", ["b@x.example\nrecipient: c@x"], None) + b"x\n")
    _drop(layout, b"hardener-maildrop: 1\nsender: a\nrecipient: b%0Ac@x\n\nhi\n")
    _drop(layout, write_maildrop_header("a", ["b@x.example"], None) + b"x" * 2000 + b"\n")
    assert _pickup(layout, size_limit=1000) == 0
    assert layout.list("incoming") == []
    assert len(os.listdir(layout.dir("corrupt"))) == 4
    assert os.listdir(layout.dir("maildrop")) == []


def test_sendmail_refuses_a_recipient_with_an_unquoted_space(queue):
    base, layout = queue
    done = _sendmail(base, ["bad address@@x.example"], b"Subject: x\n\nhi\n", user=None)
    assert done.returncode != 0
    err = done.stderr.decode()
    assert len(err.strip().splitlines()) == 1 and "space outside quotes" in err, err
    assert layout.list("maildrop") == []
    # a quoted local part may hold a space
    ok = _sendmail(base, ['"john smith"@x.example'], b"Subject: x\n\nhi\n", user=None)
    assert ok.returncode == 0, ok.stderr
