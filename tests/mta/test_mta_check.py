"""`hardener mta check` (Postfix's `postfix check`): real files, modes and owners, as root.

It creates missing queue directories with their owner and mode, and refuses (exit 2, one line per
problem naming the file) unsafe owners and modes; `serve` and `start` run the same check and refuse
to start in one line. Every refusal below was accepted before this check existed (issue 8 item 2):
the daemon started on a world-writable main.cf, a readable key, a shared mail_owner uid.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hardener.mta.queue.layout import ALL_DIRS, ROOT_OWNED, dir_mode
from tests.fixtures.mta import MAIL_OWNER, MtaInstance
from tests.fixtures.unprivileged import temporary_account

QID = "0123456789ABCDEF01"
NOBODY = 65534


def hardener(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hardener", *args], capture_output=True,
                          text=True, timeout=60)


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()


@pytest.fixture
def mta(mta_factory) -> MtaInstance:
    """A config directory and queue (not started); TLS file names set, the files root's 0600."""
    inst = mta_factory(start=False)
    for name in ("cert.pem", "key.pem"):
        path = inst.config_dir / name
        path.write_text("placeholder: check reads owners and modes, never contents\n")
        os.chmod(path, 0o600)
    with open(inst.config_dir / "main.cf", "a") as f:
        f.write(f"smtpd_tls_cert_file = {inst.config_dir / 'cert.pem'}\n"
                f"smtpd_tls_key_file = {inst.config_dir / 'key.pem'}\n")
    return inst


def test_a_clean_installation_passes_and_missing_directories_are_created(mta):
    shutil.rmtree(mta.queue_dir, ignore_errors=True)
    result = hardener("mta", "check", "--config", str(mta.config_dir))
    assert result.returncode == 0 and error_lines(result) == [], result.stderr
    owner = pwd.getpwnam(MAIL_OWNER)
    for name in ALL_DIRS:
        st = os.lstat(mta.queue_dir / name)
        want = 0 if name in ROOT_OWNED else owner.pw_uid
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (want, dir_mode(name)), name


def test_pid_directory_is_handed_back_to_root(mta):
    """pid/ as an older version left it (the mail owner's): check gives it back to root."""
    assert hardener("mta", "check", "--config", str(mta.config_dir)).returncode == 0
    owner = pwd.getpwnam(MAIL_OWNER)
    os.chown(mta.queue_dir / "pid", owner.pw_uid, owner.pw_gid)
    assert hardener("mta", "check", "--config", str(mta.config_dir)).returncode == 0
    st = os.lstat(mta.queue_dir / "pid")
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o755)


def _queue_file(mta: MtaInstance, mode: int, uid: int) -> Path:
    assert hardener("mta", "check", "--config", str(mta.config_dir)).returncode == 0
    path = mta.queue_dir / "incoming" / QID
    path.write_bytes(b"queue file\n")
    os.chmod(path, mode)
    os.chown(path, uid, -1)
    return path


# (what to break, the file named, what the line says)
BREAKAGES = [
    (lambda m: os.chmod(m.config_dir / "main.cf", 0o666), "main.cf",
     "writable by group or others (mode 0666)"),
    (lambda m: os.chown(m.config_dir / "master.cf", NOBODY, -1), "master.cf",
     "owned by nobody (uid 65534), not by root (uid 0)"),
    (lambda m: os.chmod(m.config_dir / "aliases", 0o664), "aliases",
     "writable by group or others (mode 0664)"),
    (lambda m: os.chmod(m.config_dir, 0o777), "etc", "writable by group or others (mode 0777)"),
    (lambda m: os.chmod(m.config_dir / "key.pem", 0o640), "key.pem",
     "private key readable or writable by group or others (mode 0640): chmod 600"),
    (lambda m: os.chown(m.config_dir / "cert.pem", NOBODY, -1), "cert.pem",
     "owned by nobody (uid 65534), not by root (uid 0)"),
    (lambda m: _queue_file(m, 0o600, 0), QID, "queue file owned by root (uid 0), not by hardener"),
    (lambda m: _queue_file(m, 0o644, pwd.getpwnam(MAIL_OWNER).pw_uid), QID,
     "queue file readable or writable by group or others (mode 0644, not 0600)"),
]


@pytest.mark.parametrize("breakage, name, what", BREAKAGES,
                         ids=["main.cf-0666", "master.cf-nobody", "aliases-0664", "confdir-0777",
                              "key-0640", "cert-nobody", "queue-file-root", "queue-file-0644"])
def test_unsafe_files_are_refused_in_one_line(mta, breakage, name, what):
    breakage(mta)
    result = hardener("mta", "check", "--config", str(mta.config_dir))
    assert result.returncode == 2
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith("hardener: error: /") and f"/{name}: {what}" in lines[0], lines[0]
    # the daemon refuses to start on the same problem, in one line, before it listens
    served = hardener("mta", "serve", "--config", str(mta.config_dir))
    assert served.returncode == 2
    assert error_lines(served) == lines, served.stderr
    assert not (mta.queue_dir / "pid" / "master.pid").exists()
    started = hardener("mta", "start", "--config", str(mta.config_dir))
    assert started.returncode == 2 and error_lines(started) == lines


def test_every_problem_gets_its_line(mta):
    os.chmod(mta.config_dir / "main.cf", 0o666)
    os.chmod(mta.config_dir / "key.pem", 0o644)
    result = hardener("mta", "check", "--config", str(mta.config_dir))
    assert result.returncode == 2 and len(error_lines(result)) == 2
    served = hardener("mta", "serve", "--config", str(mta.config_dir))
    (line,) = error_lines(served)
    assert line.endswith("(mode 0666) (and 1 more: run `hardener mta check`)"), line


def test_mail_owner_root_is_refused(mta):
    with open(mta.config_dir / "main.cf", "a") as f:
        f.write("mail_owner = root\n")
    result = hardener("mta", "check", "--config", str(mta.config_dir))
    assert result.returncode == 2
    assert any(line.endswith("mail_owner: root has uid 0 and gid 0: it must not be root or in "
                             "group 0") for line in error_lines(result)), result.stderr


OWNER, TWIN = "hrd-owner", "hrd-owner-twin"


@pytest.fixture
def twins() -> Iterator[tuple[str, str]]:
    """A mail owner of the test's own and a second account with its uid (useradd -o); removed
    afterwards. Not the shared `hardener` account: other tests' daemons would refuse it meanwhile."""
    with temporary_account(OWNER, "--system") as owner, \
            temporary_account(TWIN, "-o", "-u", str(owner.pw_uid), "-N"):
        yield OWNER, TWIN


def test_mail_owner_sharing_its_uid_is_refused(mta, twins):
    owner, twin = twins
    with open(mta.config_dir / "main.cf", "a") as f:
        f.write(f"mail_owner = {owner}\n")
    result = hardener("mta", "check", "--config", str(mta.config_dir))
    assert result.returncode == 2
    (line,) = error_lines(result)
    uid = pwd.getpwnam(owner).pw_uid
    assert line.startswith(f"hardener: error: {mta.config_dir / 'main.cf'}:")
    assert line.endswith(f"mail_owner: {owner} shares uid {uid} with {twin}: give the mail "
                         "owner an account of its own"), line


def test_bad_configuration_is_one_line(mta):
    with open(mta.config_dir / "main.cf", "a") as f:
        f.write("message_size_limit = lots\n")
    result = hardener("mta", "check", "--config", str(mta.config_dir))
    assert result.returncode == 2
    (line,) = error_lines(result)
    assert "message_size_limit" in line
