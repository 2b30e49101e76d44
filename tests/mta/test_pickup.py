"""`hardener sendmail` (run as an unprivileged user) -> pickup's socket -> maildrop/ -> pickup ->
cleanup -> incoming/.

The socket server (hardener/mta/pickup_socket.py) runs here in a thread of the test process, the
client is the real `hardener sendmail` run as nobody (or a raw socket, for what sendmail would never
send); the whole daemon path, with pickup running as the mail owner, is test_local_submission.py.
pickup must trust nothing in maildrop/ either: hard links, symlinks, garbage, oversize files and
forged `uid:` lines are refused.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from hardener.mta import pickup_socket
from hardener.mta.cleanup.service import Cleanup, CleanupSettings
from hardener.mta.pickup import Pickup, new_maildrop_name, write_maildrop_header
from hardener.mta.pickup_socket import PickupServer, bind_pickup_socket, socket_path
from hardener.mta.queue.file import parse_bytes
from hardener.mta.queue.layout import QueueLayout
from tests.fixtures.unprivileged import skip_unless_nobody_can_run

NOBODY = 65534


@pytest.fixture
def queue():
    """A queue directory other users can reach (pytest's tmp_path is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="hardener-pickup-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    layout = QueueLayout(base / "queue")
    layout.ensure()
    (base / "main.cf").write_text(f"queue_directory = {layout.root}\nmessage_size_limit = 100000\n"
                                  "myorigin = host.example\nmail_owner = nobody\n")
    yield base, layout
    shutil.rmtree(base, ignore_errors=True)


class ServerThread:
    """pickup's socket server on its own event loop in a thread of the test process."""

    def __init__(self, layout: QueueLayout, size_limit: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = PickupServer(bind_pickup_socket(layout.dir("public")),
                                   layout.dir("maildrop"), size_limit=size_limit)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)

    def close(self) -> None:
        async def finish() -> None:
            await self.server.close()
            sessions = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in sessions:
                task.cancel()
            await asyncio.gather(*sessions, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(finish(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def server(queue):
    """The queue with pickup's socket served (size limit 100000, as main.cf says)."""
    base, layout = queue
    running = ServerThread(layout, 100000)
    yield base, layout
    running.close()


def _raw_submit(layout: QueueLayout, data: bytes, *, shut: bool = True) -> str:
    """Send `data` on pickup's socket as this process (root); pickup's reply line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(str(socket_path(layout.root)))
        try:
            sock.sendall(data)
            if shut:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass   # refused early: the reply says why
        return sock.recv(512).decode()


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


def test_sendmail_as_user_then_pickup(server):
    base, layout = server
    msg = b"To: Bob <bob@remote.example>\nCc: carol@remote.example\nBcc: secret@remote.example\n" \
          b"Subject: cron\n\nline one\n.\nnot reached without -i\n"
    done = _sendmail(base, ["-t", "-F", "Cron Daemon", "extra@remote.example"], msg)
    assert done.returncode == 0, done.stderr
    files = os.listdir(layout.dir("maildrop"))
    assert len(files) == 1
    path = layout.dir("maildrop") / files[0]
    st = os.stat(path)   # pickup's own file, with the uid the kernel reported
    assert st.st_uid == os.geteuid() and (st.st_mode & 0o777) == 0o600
    assert f"\nuid: {NOBODY}\n" in path.read_text()
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


def test_dash_i_keeps_lone_dots_and_f_sets_sender(server):
    base, layout = server
    done = _sendmail(base, ["-oi", "-f", "robot@host.example", "u@remote.example"],
                     b"Subject: x\r\n\r\na\r\n.\r\nb\r\n")
    assert done.returncode == 0, done.stderr
    _pickup(layout)
    (env, content), = _incoming(layout)
    assert env.sender == "robot@host.example"
    assert content.endswith(b"a\n.\nb\n")  # CRLF normalised, lone dot kept


def test_sendmail_errors_have_sysexits_codes(server, tmp_path):
    base, layout = server
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


def test_sendmail_refuses_a_recipient_with_an_unquoted_space(server):
    base, layout = server
    done = _sendmail(base, ["bad address@@x.example"], b"Subject: x\n\nhi\n", user=None)
    assert done.returncode != 0
    err = done.stderr.decode()
    assert len(err.strip().splitlines()) == 1 and "space outside quotes" in err, err
    assert layout.list("maildrop") == []
    # a quoted local part may hold a space
    ok = _sendmail(base, ['"john smith"@x.example'], b"Subject: x\n\nhi\n", user=None)
    assert ok.returncode == 0, ok.stderr


def test_the_uid_comes_from_the_kernel_not_the_client(server):
    """-f root changes the envelope sender only; a `uid:` line from the client is refused."""
    base, layout = server
    done = _sendmail(base, ["-f", "root", "u@remote.example"], b"Subject: x\n\nhi\n")
    assert done.returncode == 0, done.stderr
    (name,) = os.listdir(layout.dir("maildrop"))
    assert f"\nuid: {NOBODY}\n" in (layout.dir("maildrop") / name).read_text()
    forged = write_maildrop_header("root", ["u@remote.example"], None, uid=0)
    assert _raw_submit(layout, forged + b"hi\n") == "error 65 a client may not name its uid\n"
    assert os.listdir(layout.dir("maildrop")) == [name]
    assert _pickup(layout) == 1
    (env, content), = _incoming(layout)
    assert env.sender == "root@host.example" and b"from userid 65534" in content


@pytest.mark.parametrize("data, reply", [
    (write_maildrop_header("a", ["b@x.example"], None) + b"x" * 100001, "error 65 message file too big"),
    (b"GET / HTTP/1.0\n\n", "error 65 not a hardener maildrop file"),
    (b"hardener-maildrop: 1\nsender: a\n", "error 65 truncated envelope"),
    (b"hardener-maildrop: 1\nsender: a\nrecipient: b%0Ac@x\n\nhi\n", "error 65 recipient address"),
    (b"hardener-maildrop: 1\n" + b"recipient: a@x.example\n" * 1001 + b"sender: a\n\nhi\n",
     "error 65 too many recipients"),
    (b"hardener-maildrop: 1\nsender: " + b"a" * (1 << 20) + b"\n\n", "error 65 envelope too large"),
])
def test_the_server_bounds_what_a_client_sends(server, data, reply):
    """What `hardener sendmail` would never send, sent raw: refused, nothing left in maildrop/."""
    base, layout = server
    assert _raw_submit(layout, data).startswith(reply)
    assert os.listdir(layout.dir("maildrop")) == []


def test_connections_beyond_the_limit_are_told_to_retry(server, monkeypatch):
    base, layout = server
    monkeypatch.setattr(pickup_socket, "MAX_CONNECTIONS", 2)
    held = []
    try:
        for _ in range(2):   # two submissions in progress (envelope sent, message not finished)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(20)
            sock.connect(str(socket_path(layout.root)))
            sock.sendall(write_maildrop_header("a", ["b@x.example"], None) + b"partial")
            held.append(sock)
        assert _raw_submit(layout, b"") == "error 75 too many local submissions at once\n"
        done = held.pop()
        done.shutdown(socket.SHUT_WR)   # one finishes: the next one is taken again
        assert done.recv(512).startswith(b"ok ")
        done.close()
        ok = _raw_submit(layout, write_maildrop_header("a", ["b@x.example"], None) + b"hi\n")
        assert ok.startswith("ok "), ok
    finally:
        for sock in held:
            sock.close()


def test_a_silent_client_times_out(server, monkeypatch):
    """A client that connects and sends nothing is dropped after READ_TIMEOUT (here 0.2 s)."""
    base, layout = server
    monkeypatch.setattr(pickup_socket, "READ_TIMEOUT", 0.2)
    assert _raw_submit(layout, b"", shut=False) == "error 75 timeout reading the envelope\n"


def test_daemon_down_user_gets_tempfail_and_nothing_is_written(queue):
    """Nobody listens on public/pickup: an ordinary user gets 75 and one line; nothing queued."""
    base, layout = queue
    done = _sendmail(base, ["u@remote.example"], b"Subject: x\n\nhi\n")
    assert done.returncode == 75, done.stderr
    err = done.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "the mail system is not running" in err, err
    assert os.listdir(layout.dir("maildrop")) == []


def test_daemon_down_root_queues_in_maildrop(queue):
    """Root may write maildrop/ anyway: the file waits there for pickup, as with Postfix."""
    base, layout = queue
    done = _sendmail(base, ["u@remote.example"], b"Subject: x\n\nhi\n", user=None)
    assert done.returncode == 0, done.stderr
    assert "warning: the mail system is not running" in done.stderr.decode()
    (name,) = os.listdir(layout.dir("maildrop"))
    path = layout.dir("maildrop") / name
    st = os.stat(path)   # handed to the mail owner (nobody here), as pickup's own files are
    assert (st.st_uid, st.st_mode & 0o777) == (NOBODY, 0o600)
    assert "\nuid: 0\n" in path.read_text()
    os.chown(path, os.geteuid(), -1)   # pickup runs as root in this test: its own file again
    assert _pickup(layout) == 1
    (env, content), = _incoming(layout)
    assert b"from userid 0" in content


def test_pickup_refuses_a_uid_line_in_a_file_it_did_not_write(queue):
    """Only pickup's own files (in the mail owner's maildrop/) may say who submitted them."""
    base, layout = queue
    path = _drop(layout, write_maildrop_header("a", ["b@x.example"], None, uid=0) + b"x\n")
    os.chown(path, NOBODY, NOBODY)
    assert _pickup(layout) == 0
    assert layout.list("incoming") == [] and len(os.listdir(layout.dir("corrupt"))) == 1


def test_quoted_addresses_survive_the_socket(server):
    """The server re-writes the envelope from the parsed (internal) addresses: in their external
    form, or pickup would refuse what it wrote itself (`"a b"@x` stored as `a b@x`)."""
    base, layout = server
    done = _sendmail(base, ["-f", '"a b"@sender.example', '"x y"@remote.example'],
                     b"Subject: x\n\nhi\n")
    assert done.returncode == 0, done.stderr
    assert _pickup(layout) == 1
    (env, _content), = _incoming(layout)
    assert env.sender == "a b@sender.example"
    assert [r.address for r in env.recipients] == ["x y@remote.example"]
