"""The mail owner cannot make root open, write, chmod or touch a file outside the queue.

The attacker is the real mail owner account (the `mail_owner` fixture's `hardener` user): every link,
FIFO and file below is planted by a process running as that user (setpriv), in every queue
directory it can write, under every name root creates or opens there. Root then starts the daemon,
asks for its status, runs the queue tools and stops it, through the real command line. Afterwards
nothing outside the queue has changed (content, mode, owner, time stamps), and the daemon either
ran, or refused with one line naming what is wrong.

Review finding (issue 7, high): `pid/` belonged to the mail owner and root wrote `pid/master.pid`
through `pid/master.tmp`; a link planted there turned a root-only 0600 file into a 0644 file
holding a pid. Each test below failed on that code (see the report of the change).
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardener.mta.queue.layout import ALL_DIRS, QueueLayout
from hardener.mta.safe_open import UnsafeFileError, open_append
from tests.fixtures.mta import MAIL_OWNER, SmtpClient
from tests.fixtures.unprivileged import as_user

SECRET = b"root only: the review's 0600 file\n"
QID = "0123456789ABCDEF01"                 # a well-formed queue id
MAILDROP_NAME = "0123456789ABCDEF0123"     # a well-formed maildrop file name
# Every name root creates or opens in a queue directory, in some version of the code: the pid file
# and its temporary, the flush marker, a queue file, a maildrop file, a sendmail temporary.
PLANTED_NAMES = ("master.pid", "master.tmp", ".flush", QID, MAILDROP_NAME, f"t{MAILDROP_NAME}",
                 "maillog")


def hardener(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hardener", *args], capture_output=True,
                          text=True, timeout=timeout)


def as_mail_owner(*cmd: str) -> None:
    """Run `cmd` as the mail owner (real uid, gid and no supplementary groups)."""
    pw = pwd.getpwnam(MAIL_OWNER)
    subprocess.run(as_user(list(cmd), pw.pw_uid, pw.pw_gid), check=True, capture_output=True,
                   timeout=30)


def snapshot(paths: list[Path]) -> dict[str, tuple]:
    """What an attack could change: bytes, mode, owner, group, link count, modification time."""
    out = {}
    for p in paths:
        st = os.lstat(p)
        out[str(p)] = (p.read_bytes(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                       st.st_nlink, st.st_mtime_ns)
    return out


@pytest.fixture
def targets() -> Iterator[list[Path]]:
    """Files the mail owner must never reach: a root-only 0600 secret in a root-only directory,
    and an /etc-like directory (passwd 0644, shadow 0640) outside the queue."""
    base = Path(tempfile.mkdtemp(prefix="hardener-targets-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    private = base / "private"
    private.mkdir(mode=0o700)
    etc = base / "etc"
    etc.mkdir(mode=0o755)
    files = [(private / "secret", SECRET, 0o600), (etc / "passwd", b"root:x:0:0::/root:/bin/sh\n",
                                                     0o644), (etc / "shadow", b"root:*:1::::::\n", 0o640)]
    for path, data, mode in files:
        path.write_bytes(data)
        os.chmod(path, mode)
        os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    yield [p for p, _, _ in files]
    shutil.rmtree(base, ignore_errors=True)


def old_layout(queue_dir: Path) -> None:
    """The queue tree as the previous version left it: pid/ owned by the mail owner, mode 0700."""
    pw = pwd.getpwnam(MAIL_OWNER)
    QueueLayout(queue_dir).ensure(pw.pw_uid, pw.pw_gid)
    os.chown(queue_dir / "pid", pw.pw_uid, pw.pw_gid)
    os.chmod(queue_dir / "pid", 0o700)


def plant_everywhere(queue_dir: Path, targets: list[Path]) -> list[Path]:
    """As the mail owner: a symlink under every name in every queue directory it can write,
    pointing at the targets in turn. Returns the links made."""
    pw = pwd.getpwnam(MAIL_OWNER)
    made = []
    i = 0
    for name in ALL_DIRS:
        directory = queue_dir / name
        st = os.stat(directory)
        if st.st_uid != pw.pw_uid and not st.st_mode & 0o002:
            continue   # root's (the queue root; pid/ once fixed): the mail owner cannot plant there
        for entry in PLANTED_NAMES:
            link = directory / entry
            target = targets[0] if name == "maildrop" else targets[i % len(targets)]
            as_mail_owner("ln", "-s", str(target), str(link))
            made.append(link)
            i += 1
    return made


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr


@pytest.mark.parametrize("pid_plant", ["symlinks", "master.pid-file", "fifos"])
def test_links_planted_by_the_mail_owner_are_never_followed(mta_factory, targets, pid_plant):
    mta = mta_factory(start=False)
    old_layout(mta.queue_dir)
    pid_dir = mta.queue_dir / "pid"
    if pid_plant == "symlinks":
        planted = plant_everywhere(mta.queue_dir, targets)
        assert pid_dir / "master.tmp" in planted and pid_dir / "master.pid" in planted
    elif pid_plant == "master.pid-file":
        # a pid file of its own naming a live process (init): must not stop root's daemon from
        # starting (the old code said "already running (pid 1)") nor be trusted by `mta stop`
        as_mail_owner("sh", "-c", f"echo 1 > {pid_dir / 'master.pid'}")
        as_mail_owner("ln", "-s", str(targets[0]), str(pid_dir / "master.tmp"))
    else:
        for entry in ("master.pid", "master.tmp"):
            as_mail_owner("mkfifo", str(pid_dir / entry))
    before = snapshot(targets)

    cfg = str(mta.config_dir)
    started = hardener("mta", "start", "--config", cfg)
    no_traceback(started)
    assert started.returncode == 0, started.stderr
    assert snapshot(targets) == before   # the review's exploit: root wrote through master.tmp
    try:
        # pid/ is root's again (Postfix: $queue_directory/pid:d:root:-:755), master.pid is a
        # fresh regular file of root's, not a link, and nobody else can plant anything there now
        st = os.lstat(pid_dir)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o755)
        pid_st = os.lstat(pid_dir / "master.pid")
        assert stat.S_ISREG(pid_st.st_mode) and pid_st.st_uid == 0
        assert stat.S_IMODE(pid_st.st_mode) == 0o644
        pid = int((pid_dir / "master.pid").read_text())
        status = hardener("mta", "status", "--config", cfg)
        assert status.returncode == 0 and f"pid {pid}" in status.stdout
        with SmtpClient(mta.address, mta.port) as client:
            assert client.greeting()[0] == 220
        for args in (("queue", "list"), ("queue", "flush"), ("reload",)):
            result = hardener("mta", *args, "--config", cfg)
            no_traceback(result)
            assert result.returncode == 0, (args, result.stderr)
        if pid_plant == "symlinks":   # pickup (root) refused the link to the secret, not mailed it
            mta.wait_for_log(f"{MAILDROP_NAME}: refused maildrop file")
    finally:
        stopped = hardener("mta", "stop", "--config", cfg)
    no_traceback(stopped)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not os.path.lexists(pid_dir / "master.pid")   # removed by the part that stays root
    assert snapshot(targets) == before
    # the maildrop link was refused, not mailed: no queue file holds the secret
    for path in mta.queue_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert SECRET not in path.read_bytes(), path
    log = mta.log_text()
    assert "Traceback" not in log


def test_queue_tools_run_by_root_follow_no_link(mta_factory, targets):
    """`hardener mta queue` as root with no daemon running: a link at a deferred queue file, at
    the flush marker and at a held message changes nothing outside and prints no secret."""
    mta = mta_factory(start=False)
    QueueLayout(mta.queue_dir).ensure(*pwd.getpwnam(MAIL_OWNER)[2:4])
    secret = targets[0]
    as_mail_owner("ln", "-s", str(targets[1]), str(mta.queue_dir / "deferred" / QID))
    as_mail_owner("ln", "-s", str(secret), str(mta.queue_dir / "defer" / ".flush"))
    as_mail_owner("ln", "-s", str(secret), str(mta.queue_dir / "hold" / "0123456789ABCDEF02"))
    as_mail_owner("ln", "-s", str(secret), str(mta.queue_dir / "defer" / "0123456789ABCDEF02"))
    before = snapshot(targets)
    cfg = str(mta.config_dir)
    for args in (("list",), ("list", "--format", "json"), ("flush",),
                 ("release", "0123456789ABCDEF02")):
        result = hardener("mta", "queue", *args, "--config", cfg)
        no_traceback(result)
        assert SECRET.decode().strip() not in result.stdout + result.stderr
        assert result.returncode in (0, 2), (args, result.stderr)
    assert snapshot(targets) == before


def test_symlinked_pid_directory_is_refused_in_one_line(mta_factory, targets):
    """pid/ replaced by a link to another directory: the daemon refuses to start, in one line.
    (Planted as root: the mail owner cannot write the root-owned queue directory; this is the
    tree an older version or a careless admin may leave.)"""
    mta = mta_factory(start=False)
    QueueLayout(mta.queue_dir).ensure(*pwd.getpwnam(MAIL_OWNER)[2:4])
    shutil.rmtree(mta.queue_dir / "pid")
    (mta.queue_dir / "pid").symlink_to(targets[0].parent)
    before = snapshot(targets)
    result = hardener("mta", "serve", "--config", str(mta.config_dir))
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "queue_directory" in lines[0] and "pid" in lines[0] and "symlink" in lines[0]
    assert snapshot(targets) == before
    assert sorted(os.listdir(targets[0].parent)) == ["secret"]


@pytest.mark.parametrize("plant", ["symlink", "fifo", "hardlink"])
def test_maillog_file_in_a_mail_owner_directory(mta_factory, targets, plant):
    """maillog_file in a directory the mail owner writes, with a link or FIFO planted at its name:
    root refuses to open it (one line, exit 2) and never blocks on the FIFO."""
    pw = pwd.getpwnam(MAIL_OWNER)
    mta = mta_factory(start=False)
    logdir = mta.root / "log"
    logdir.mkdir()
    os.chown(logdir, pw.pw_uid, pw.pw_gid)
    log_file = logdir / "maillog"
    before = snapshot(targets)
    if plant == "symlink":
        as_mail_owner("ln", "-s", str(targets[0]), str(log_file))
    elif plant == "fifo":
        as_mail_owner("mkfifo", "-m", "0666", str(log_file))
    else:
        # A hard link to root's file: the mail owner can make one only on a host without
        # fs.protected_hardlinks (this one has it on), so root makes it here in its place.
        os.link(targets[0], log_file)
    mta.write_config({"maillog_file": str(log_file)}, None, None)
    result = hardener("mta", "serve", "--config", str(mta.config_dir), timeout=30)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert f"cannot open {log_file}" in lines[0] and "maillog_file" in lines[0]
    assert "refused" in lines[0]
    if plant == "hardlink":
        os.unlink(log_file)
    assert snapshot(targets) == before


def test_open_append_creates_0600_and_refuses_what_is_not_a_plain_file(tmp_path):
    fd = open_append(tmp_path / "log")
    os.close(fd)
    assert stat.S_IMODE(os.stat(tmp_path / "log").st_mode) == 0o600
    (tmp_path / "link").symlink_to(tmp_path / "log")
    os.mkfifo(tmp_path / "fifo")
    os.link(tmp_path / "log", tmp_path / "hard")
    for name, why in (("link", "symbolic link"), ("fifo", "not a regular file"),
                      ("hard", "2 hard links")):
        with pytest.raises(UnsafeFileError, match=why):
            open_append(tmp_path / name)
