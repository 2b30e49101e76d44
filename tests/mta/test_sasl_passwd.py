"""The credentials file (hardener/mta/sasl_passwd.py) and `hardener mta passwd`, on real files owned
and moded as root sets them."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from hardener.errors import ConfigError
from hardener.mta.sasl_passwd import (PasswordError, delete_user, hash_password, load_credentials,
                                      write_user)
from tests.mta.auth_helpers import add_user

GID = 0


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    os.chmod(tmp_path, 0o755)
    return tmp_path


def test_written_file_holds_scrypt_hashes_only_root_group_0640(conf: Path) -> None:
    path = conf / "sasl_passwd"
    write_user(path, "alice", b"s3cret pass", GID)
    write_user(path, "bob", b"other", GID)
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, GID, 0o640)
    text = path.read_text()
    assert b"s3cret" not in path.read_bytes() and "other" not in text.split("\n", 1)[1]
    assert [line.split(":", 1)[0] for line in text.splitlines()[1:]] == ["alice", "bob"]
    assert all(line.split(":", 1)[1].startswith("$scrypt$ln=15,r=8,p=3$")
               for line in text.splitlines()[1:])
    assert sorted(p.name for p in conf.iterdir()) == ["sasl_passwd"]   # no temporary left
    creds = load_credentials(path)
    assert creds.verify("alice", b"s3cret pass") and not creds.verify("alice", b"s3cret")
    assert not creds.verify("carol", b"s3cret pass")
    # a new password replaces the old one; a new salt every time
    first = text.splitlines()[1]
    write_user(path, "alice", b"s3cret pass", GID)
    assert path.read_text().splitlines()[1] != first
    assert delete_user(path, "alice", GID) and not delete_user(path, "alice", GID)
    assert list(load_credentials(path).users) == ["bob"]


def test_missing_file_has_no_users(conf: Path) -> None:
    assert len(load_credentials(conf / "absent")) == 0


@pytest.mark.parametrize("mode,message", [
    (0o644, "mode 0644 lets the group write or others read it"),
    (0o660, "mode 0660 lets the group write or others read it"),
    (0o604, "mode 0604"),
])
def test_file_others_can_read_or_group_can_write_is_refused(conf: Path, mode: int,
                                                            message: str) -> None:
    path = conf / "sasl_passwd"
    write_user(path, "alice", b"pw", GID)
    os.chmod(path, mode)
    with pytest.raises(ConfigError) as err:
        load_credentials(path)
    assert err.value.one_line().startswith(f"{path}: {message}")


def test_file_not_owned_by_root_is_refused(conf: Path) -> None:
    path = conf / "sasl_passwd"
    write_user(path, "alice", b"pw", GID)
    os.chown(path, 65534, GID)
    with pytest.raises(ConfigError, match="owned by uid 65534, not root"):
        load_credentials(path)


def test_symlink_and_hard_link_are_refused(conf: Path) -> None:
    real = conf / "real"
    write_user(real, "alice", b"pw", GID)
    (conf / "link").symlink_to(real)
    with pytest.raises(ConfigError, match="symbolic link"):
        load_credentials(conf / "link")
    os.link(real, conf / "hard")
    with pytest.raises(ConfigError, match="hard links"):
        load_credentials(conf / "hard")


@pytest.mark.parametrize("line,message", [
    ("alice", "expected NAME:HASH"),
    ("alice:plaintext", "not an scrypt hash"),
    ("alice:$scrypt$ln=25,r=8,p=1$c2FsdHNhbHRzYWx0$" + "A" * 43 + "=", "out of bounds"),
    ("al ice:" + hash_password(b"x", log_n=10), "no ':', whitespace or control characters"),
])
def test_malformed_line_is_refused_with_its_number(conf: Path, line: str, message: str) -> None:
    path = conf / "sasl_passwd"
    path.write_text("# comment\n\n" + line + "\n")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError) as err:
        load_credentials(path)
    assert err.value.line == 3 and message in err.value.message


def test_duplicate_user_is_refused(conf: Path) -> None:
    path = conf / "sasl_passwd"
    hashed = hash_password(b"x", log_n=10)
    path.write_text(f"a:{hashed}\na:{hashed}\n")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="listed twice"):
        load_credentials(path)


def test_bad_names_and_passwords_are_refused(conf: Path) -> None:
    for name in ("", "a:b", "a b", "a\nb", "x" * 256):
        with pytest.raises(PasswordError):
            write_user(conf / "f", name, b"pw", GID)
    with pytest.raises(PasswordError):
        write_user(conf / "f", "alice", b"", GID)
    with pytest.raises(PasswordError):
        write_user(conf / "f", "alice", b"x" * 1025, GID)
    assert not (conf / "f").exists()


def test_directory_others_can_write_is_refused(conf: Path) -> None:
    os.chmod(conf, 0o777)
    with pytest.raises(ConfigError, match="another user owns or can write"):
        write_user(conf / "sasl_passwd", "alice", b"pw", GID)


def test_passwd_command(conf: Path) -> None:
    (conf / "main.cf").write_text("mail_owner = nobody\n")
    done = add_user(conf, "alice", "pw one")
    assert done.returncode == 0, done.stderr
    assert b"pw one" not in done.stdout + done.stderr
    nogroup = os.stat(conf / "sasl_passwd").st_gid
    assert nogroup == pwd.getpwnam("nobody").pw_gid
    assert load_credentials(conf / "sasl_passwd").verify("alice", b"pw one")
    # no terminal and no --password-stdin: refused, nothing changed
    cmd = [sys.executable, "-m", "hardener", "mta", "passwd", "alice", "--config", str(conf)]
    asked = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert asked.returncode == 2 and "use --password-stdin" in asked.stderr
    gone = subprocess.run(cmd + ["--delete"], capture_output=True, text=True)
    assert gone.returncode == 0 and len(load_credentials(conf / "sasl_passwd")) == 0
    again = subprocess.run(cmd + ["--delete"], capture_output=True, text=True)
    assert again.returncode == 2 and "no user 'alice'" in again.stderr
    # the file's path is a main.cf parameter of its own
    (conf / "main.cf").write_text(f"mail_owner = nobody\n"
                                  f"hardener_sasl_passwd_file = {conf}/users\n")
    assert add_user(conf, "bob", "pw").returncode == 0
    assert list(load_credentials(conf / "users").users) == ["bob"]
